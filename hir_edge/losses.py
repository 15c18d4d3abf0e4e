"""Losses of CLIBD-HiR and CLIBD-HiR-Fuse, with the maths of METHOD.md §1–3 in plain view.

* :func:`symmetric_info_nce` — L_sym(a, b) = ½(L(a→b) + L(b→a)), InfoNCE with scale s.
* :class:`ContrastiveLoss` — L_con = L_sym(I,D) + L_sym(I,T) + L_sym(D,T) over the global batch.
* :func:`hir_loss` / :class:`HiRLoss` — Hierarchical Information Regularization on images.
* :class:`FusionLoss` — L_F: fused-to-text InfoNCE (the paper's) or per-rank cross-entropy
  against a cached prompt bank (Eq. 11, for a frozen text tower).
* :class:`HirObjective` — L = L_con + λ_HiR·L_HiR (+ λ_F·L_F), the three variants.

Every module runs at world size 1 without torch.distributed. With several processes the
embeddings are all-gathered *with gradients* (:mod:`hir_edge.gather`): every process computes
the global-batch loss, and DDP's gradient averaging then equals the single-process gradient of
the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hir_edge.gather import gather_no_grad, gather_with_grad

# Finite stand-in for log(0) in masked log-sum-exps: exp(-1e4) underflows to 0 but, unlike
# -inf, keeps gradients finite when a row has no admissible entry at all.
_NEG = -1.0e4


# --------------------------------------------------------------------------- contrastive
def info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """L(a→b) = −(1/B) Σ_i log softmax_j(s·<a_i, b_j>)[i] (matching pairs on the diagonal)."""
    logits = scale * a @ b.T
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def symmetric_info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    scale: torch.Tensor,
    not_negative: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_sym(a, b) = ½ (L(a→b) + L(b→a)); one B×B matrix serves both directions.

    ``not_negative`` ([B, B] bool, optional) marks off-diagonal pairs (i, j) that are known
    positives — two specimens of one species (:func:`same_group`), or specimen i and a prompt
    naming a taxon of i's own lineage (:func:`lineage_members`) — and leaves them out of both
    softmax denominators instead of pushing them apart as negatives. The taxonomy-aware sampler
    that HiR needs plants such pairs in every batch, and so do prompts of coarser ranks; with
    none marked this is exactly METHOD.md §1.
    """
    logits = scale * a @ b.T
    if not_negative is not None:
        mask = not_negative.clone()
        mask.fill_diagonal_(False)
        logits = logits.masked_fill(mask, float("-inf"))
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def same_group(groups: torch.Tensor) -> torch.Tensor:
    """[B, B]: i and j share a known group id (>= 0), e.g. the same species."""
    return (groups[:, None] == groups[None, :]) & (groups[:, None] >= 0)


def lineage_members(labels: torch.Tensor, text_levels: torch.Tensor) -> torch.Tensor:
    """[B, B]: specimen i belongs to the taxon that text j names.

    Text j is the prompt of specimen j's taxon at rank ``text_levels[j]`` (-1: no text). Pair
    (i, j) is a member pair when i's label at that rank is j's label there: "Diptera" is
    true of every fly in the batch, not a negative for the other flies.
    """
    level = text_levels.clamp(min=0)
    taxon = labels.gather(1, level[:, None]).squeeze(1)  # [B]: text j's taxon id
    label_at = labels[:, level]  # [B, B]: labels[i, level[j]]
    named = (text_levels >= 0) & (taxon >= 0)
    return (label_at == taxon[None, :]) & named[None, :]


def _pair_loss(
    a: torch.Tensor | None,
    b: torch.Tensor | None,
    mask: torch.Tensor | None,
    scale: torch.Tensor,
    not_negative: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """L_sym over the rows that have both modalities (None when fewer than 2 rows have)."""
    if a is None or b is None:
        return None
    if mask is not None:
        idx = torch.nonzero(mask, as_tuple=False).squeeze(1)
        if idx.numel() < 2:
            return None
        a, b = a.index_select(0, idx), b.index_select(0, idx)
        if not_negative is not None:
            not_negative = not_negative.index_select(0, idx).index_select(1, idx)
    return symmetric_info_nce(a, b, scale, not_negative)


class ContrastiveLoss(nn.Module):
    """L_con = L_sym(I,D) + L_sym(I,T) + L_sym(D,T) (METHOD.md §1) over the global batch.

    A modality that is absent for some specimens (no photo, no barcode) is handled by
    computing each pair's loss over the specimens that have both; a pair term with fewer
    than two such specimens in the global batch is left out (it would be a 1×1 softmax).
    """

    def forward(
        self,
        scale: torch.Tensor,
        image: torch.Tensor | None = None,
        dna: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        has_image: torch.Tensor | None = None,
        has_dna: torch.Tensor | None = None,
        has_text: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        text_levels: torch.Tensor | None = None,
        known: dict[str, torch.Tensor | None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args ``labels`` ([B, L], -1 missing) and ``text_levels`` ([B]: the rank each text
        names) mark known positives: specimens of one species for (I,D) and specimens of the
        taxon a text names for the pairs with T (:func:`same_group`, :func:`lineage_members`).
        None treats every off-diagonal pair as a negative. ``known``: those pairs already
        computed (:func:`known_positives`), so a caller with several losses builds them once."""
        emb = {
            "I": None if image is None else gather_with_grad(image),
            "D": None if dna is None else gather_with_grad(dna),
            "T": None if text is None else gather_with_grad(text),
        }
        has = {
            "I": None if has_image is None else gather_no_grad(has_image.bool()),
            "D": None if has_dna is None else gather_no_grad(has_dna.bool()),
            "T": None if has_text is None else gather_no_grad(has_text.bool()),
        }
        if known is None:
            known = known_positives(labels, text_levels)
        parts: dict[str, torch.Tensor] = {}
        for x, y in (("I", "D"), ("I", "T"), ("D", "T")):
            mask = _both(has[x], has[y])
            value = _pair_loss(emb[x], emb[y], mask, scale, known["T" if "T" in (x, y) else "D"])
            if value is not None:
                parts[f"con_{x}{y}"] = value
        ref = next(e for e in emb.values() if e is not None)
        parts["con"] = sum(parts.values()) if parts else ref.sum() * 0.0
        return parts


def known_positives(
    labels: torch.Tensor | None, text_levels: torch.Tensor | None
) -> dict[str, torch.Tensor | None]:
    """The global batch's known positive pairs: ``D`` (same species, for specimen–specimen
    pairs) and ``T`` (member of the taxon a text names, for pairs with a text)."""
    if labels is None:
        return {"D": None, "T": None}
    labels = gather_no_grad(labels)
    species = same_group(labels[:, -1])
    if text_levels is None:
        return {"D": species, "T": None}
    return {"D": species, "T": lineage_members(labels, gather_no_grad(text_levels))}


def _both(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


# --------------------------------------------------------------------------- HiR
def hir_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """Hierarchical Information Regularization, exactly as METHOD.md §2.

    For each rank l (coarse to fine) and anchor i with a known label at l:

    * positives P_l(i): other specimens with the same known label at l;
    * negatives N_l(i): specimens *known* to differ from i at l or at any coarser rank
      (a missing label on either side is not evidence of a difference);
    * pair loss ℓ_l(i,p) = −log( e^{s_ip/τ} / (e^{s_ip/τ} + Σ_{n∈N_l(i)} e^{s_in/τ}) ),
      computed as softplus(LSE_{n∈N_l(i)}(s_in/τ) − s_ip/τ) (0 when N_l(i) is empty);
    * ℓ^max_l = max over all positive pairs at l; the rectified loss at a finer rank is
      ℓ~_l(i,p) = max(ℓ_l(i,p), ℓ^max_{l−1}). The coarsest rank is not clamped, and a rank
      without any positive pair clamps nothing. The max is *not* detached: while a coarser
      worst pair is worse, the gradient goes to that coarser pair.
    * L_HiR = Σ_l (1/L) · mean_{i∈A_l} mean_{p∈P_l(i)} ℓ~_l(i,p), A_l = anchors with a
      positive; a rank with no anchor contributes 0 and keeps its weight 1/L.

    Vectorised over pairs: memory O(B²·L), no Python loop over specimens.

    Args:
        embeddings: [B, d] L2-normalised image embeddings.
        labels: [B, L] label ids, coarse to fine, -1 where missing. Ids are path-keyed
            (``hir_edge.taxonomy``), so equal ids at l imply equal ancestors.
        temperature: τ_h.

    Returns:
        The scalar L_HiR.
    """
    if embeddings.ndim != 2 or labels.ndim != 2 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"hir_loss needs embeddings [B, d] and labels [B, L]; got {tuple(embeddings.shape)} "
            f"and {tuple(labels.shape)}"
        )
    n, num_ranks = labels.shape
    sim = embeddings @ embeddings.T / temperature  # [B, B]
    not_self = ~torch.eye(n, dtype=torch.bool, device=embeddings.device)
    known_differs = torch.zeros(n, n, dtype=torch.bool, device=embeddings.device)
    total = embeddings.sum() * 0.0  # keeps a graph even when no rank has an anchor
    coarser_max: torch.Tensor | None = None
    for level in range(num_ranks):
        y = labels[:, level]
        known = y >= 0
        both = known[:, None] & known[None, :]
        same = both & (y[:, None] == y[None, :])
        known_differs = known_differs | (both & ~same)  # cumulative over coarser ranks
        positives = same & not_self
        lse_neg = torch.logsumexp(sim.masked_fill(~known_differs, _NEG), dim=1)  # [B]
        has_neg = known_differs.any(dim=1)
        pair = F.softplus(lse_neg[:, None] - sim)  # ℓ_l(i, p) for every (i, p)
        pair = torch.where(has_neg[:, None], pair, torch.zeros_like(pair))
        if not positives.any():
            coarser_max = None
            continue
        level_max = pair.masked_fill(~positives, float("-inf")).max()
        rectified = pair if coarser_max is None else torch.maximum(pair, coarser_max)
        coarser_max = level_max
        n_pos = positives.sum(dim=1)
        anchors = n_pos > 0
        per_anchor = (rectified * positives).sum(dim=1)[anchors] / n_pos[anchors]
        total = total + per_anchor.mean() / num_ranks
    return total


class HiRLoss(nn.Module):
    """HiR on the global batch: embeddings and labels are all-gathered first."""

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return hir_loss(gather_with_grad(embeddings), gather_no_grad(labels), self.temperature)


# --------------------------------------------------------------------------- fusion
class FusionLoss(nn.Module):
    """L_F for the GatedFusion head (METHOD.md §3).

    ``mode="contrastive"`` (the paper's recipe): L_sym(F, T) over specimens that have a photo,
    a barcode and a text. ``mode="prompt_ce"`` (Eq. 11, when the text tower is frozen): the
    per-rank cross-entropy of s·z_F·T_lᵀ against the label at l, averaged over specimens
    labelled at l and summed over ranks; ``prompt_bank`` holds one [n_l, d] tensor per rank.
    """

    def __init__(self, mode: str = "contrastive"):
        super().__init__()
        if mode not in ("contrastive", "prompt_ce"):
            raise ValueError(f"fusion loss mode {mode!r}; choose 'contrastive' or 'prompt_ce'")
        self.mode = mode

    def forward(
        self,
        fused: torch.Tensor,
        scale: torch.Tensor,
        text: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        prompt_bank: list[torch.Tensor] | None = None,
        text_levels: torch.Tensor | None = None,
        known: dict[str, torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        if self.mode == "contrastive":
            if text is None:
                raise ValueError("contrastive fusion loss needs text embeddings")
            fused_all, text_all = gather_with_grad(fused), gather_with_grad(text)
            mask_all = None if mask is None else gather_no_grad(mask.bool())
            known = (known_positives(labels, text_levels) if known is None else known)["T"]
            value = _pair_loss(fused_all, text_all, mask_all, scale, known)
            return fused.sum() * 0.0 if value is None else value
        if labels is None or prompt_bank is None:
            raise ValueError("prompt_ce fusion loss needs labels and a prompt bank")
        rows = labels if mask is None else labels.masked_fill(~mask.bool()[:, None], -1)
        every = [
            torch.ones(len(bank), dtype=torch.bool, device=bank.device) for bank in prompt_bank
        ]
        return prompt_bank_loss(fused, rows, prompt_bank, every, scale, reduction="sum")


# --------------------------------------------------------------------------- prompt bank
def prompt_bank_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    bank: list[torch.Tensor],
    candidates: list[torch.Tensor],
    scale: torch.Tensor,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    smoothing_scope: str = "rank",
) -> torch.Tensor:
    """L_P: per-rank cross-entropy of s·<z_i, T_l> over *every* taxon's prompt at rank l.

    The prompt ranking that evaluation and the field runtime do, trained directly: the same
    InfoNCE as L(a→T) but with the whole prompt bank as candidates instead of the batch's own
    texts (METHOD.md §3's Eq. 11, there for the fused embedding). A rank with one candidate
    teaches nothing and is skipped; specimens unlabelled at a rank, or labelled with an
    "incertae sedis" placeholder, are left out of it. Averaged over the ranks that have any.

    Args:
        embeddings: [B, d] normalised embeddings (image or DNA).
        labels: [B, L] label ids, -1 missing.
        bank: per rank, [n_l, d] normalised prompt embeddings.
        candidates: per rank, [n_l] bool: taxa that are answers (not placeholders).
        scale: s.
        label_smoothing: ε, the target mass taken off the true taxon (in ``rank`` scope, PyTorch's,
            which also spreads it over placeholder columns).
        reduction: ``"mean"`` over the ranks that have a term, or ``"sum"`` (Eq. 11's L_F).
        smoothing_scope: ``"rank"``: ``label_smoothing`` at every rank (PyTorch's label
            smoothing), which trains a rank of few taxa toward a smaller margin between the
            true and the other prompts (log(1 + K(1-ε)/ε): 4.8 for 14 orders, 6.8 for 100
            species). ``"candidate"``: every wrong answer gets the same target mass at every
            rank, ``label_smoothing`` / (K_max - 1) with K_max the answers of the largest rank,
            so every rank is trained toward nearly one margin (6.9 for 14 orders, 6.8 for 100
            species at ε = 0.1).
    """
    if smoothing_scope not in ("rank", "candidate"):
        raise ValueError(f"smoothing_scope must be 'rank' or 'candidate', not {smoothing_scope!r}")
    per_wrong = label_smoothing / max(max(int(a.sum()) for a in candidates) - 1, 1)
    terms = []
    for level, (prompts, allowed) in enumerate(zip(bank, candidates)):
        if int(allowed.sum()) < 2:
            continue
        y = labels[:, level]
        keep = y >= 0
        keep[keep.clone()] = allowed[y[keep]]
        if not keep.any():
            continue
        logits = scale * embeddings[keep] @ prompts.T
        logits = logits.masked_fill(~allowed[None, :], _NEG)
        if smoothing_scope == "rank" or label_smoothing == 0:
            terms.append(F.cross_entropy(logits, y[keep], label_smoothing=label_smoothing))
            continue
        # target: per_wrong on every other answer, the rest on the truth; placeholders get none
        target = allowed[None, :].to(logits.dtype).expand_as(logits) * per_wrong
        target = target.scatter(1, y[keep][:, None], 1.0 - per_wrong * (int(allowed.sum()) - 1))
        log_p = F.log_softmax(logits, dim=1).masked_fill(~allowed[None, :], 0.0)
        terms.append(-(target * log_p).sum(1).mean())
    if not terms:
        return embeddings.sum() * 0.0
    stacked = torch.stack(terms)
    return stacked.sum() if reduction == "sum" else stacked.mean()


# --------------------------------------------------------------------------- objective
@dataclass
class LossWeights:
    """λ_HiR, λ_F and τ_h: CLIBD = (0, 0); CLIBD-HiR = (λ, 0); CLIBD-HiR-Fuse = (λ, λ_F).

    ``prompt`` (λ_P) adds :func:`prompt_bank_loss` for the image and the DNA embeddings, with
    ``prompt_smoothing`` as its label smoothing (0: the paper's objective), spread per rank or
    per candidate (``prompt_smoothing_scope``, see :func:`prompt_bank_loss`).
    """

    hir: float = 1.0
    fusion: float = 1.0
    hir_temperature: float = 0.1
    fusion_mode: str = "contrastive"
    prompt: float = 0.0
    prompt_smoothing: float = 0.0
    prompt_smoothing_scope: str = "rank"


class HirObjective(nn.Module):
    """L = L_con + λ_HiR·L_HiR + λ_F·L_F on one batch of embeddings (METHOD.md §3)."""

    def __init__(self, weights: LossWeights):
        super().__init__()
        self.weights = weights
        self.contrastive = ContrastiveLoss()
        self.hir = HiRLoss(weights.hir_temperature)
        self.fusion = FusionLoss(weights.fusion_mode)

    def forward(
        self,
        scale: torch.Tensor,
        image: torch.Tensor | None,
        dna: torch.Tensor | None,
        text: torch.Tensor | None,
        labels: torch.Tensor,
        has_image: torch.Tensor | None = None,
        has_dna: torch.Tensor | None = None,
        has_text: torch.Tensor | None = None,
        fused: torch.Tensor | None = None,
        prompt_bank: list[torch.Tensor] | None = None,
        text_levels: torch.Tensor | None = None,
        mask_known_positives: bool = True,
        prompt_candidates: list[torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """``text_levels``: the rank each specimen's text names (see
        :func:`lineage_members`); with ``mask_known_positives`` off, every off-diagonal pair is
        a negative (METHOD.md §1 read literally). ``prompt_bank`` and ``prompt_candidates``
        (per rank: every taxon's prompt embedding, and which taxa are answers) feed L_P."""
        known_labels = labels if mask_known_positives else None
        known = known_positives(known_labels, text_levels)  # once, for L_con and L_F
        parts = self.contrastive(
            scale, image, dna, text, has_image, has_dna, has_text, known_labels, text_levels, known
        )
        total = parts["con"]
        if self.weights.hir > 0 and image is not None:
            img_labels = (
                labels if has_image is None else labels.masked_fill(~has_image.bool()[:, None], -1)
            )
            parts["hir"] = self.hir(image, img_labels)
            total = total + self.weights.hir * parts["hir"]
        if self.weights.prompt > 0 and prompt_bank is not None and prompt_candidates is not None:
            for key, emb, has in (("prompt_I", image, has_image), ("prompt_D", dna, has_dna)):
                if emb is None:
                    continue
                rows = labels if has is None else labels.masked_fill(~has.bool()[:, None], -1)
                parts[key] = prompt_bank_loss(
                    gather_with_grad(emb),
                    gather_no_grad(rows),
                    prompt_bank,
                    prompt_candidates,
                    scale,
                    self.weights.prompt_smoothing,
                    smoothing_scope=self.weights.prompt_smoothing_scope,
                )
                total = total + self.weights.prompt * parts[key]
        if self.weights.fusion > 0 and fused is not None:
            mask = _both(_both(has_image, has_dna), has_text)
            parts["fusion"] = self.fusion(
                fused,
                scale,
                text,
                mask,
                known_labels if self.fusion.mode == "contrastive" else labels,
                prompt_bank,
                text_levels,
                known,
            )
            total = total + self.weights.fusion * parts["fusion"]
        parts["loss"] = total
        return parts


def term_gradient_norms(parts: dict, emb: dict) -> dict[str, float]:
    """Norm of each loss term's gradient on the image and DNA embeddings of the batch
    (``grad_<term>_<modality>``): how hard each term pulls, logged beside its value."""
    targets = {m: emb[m] for m in ("image", "dna") if m in emb and emb[m].requires_grad}
    out = {}
    if not targets:  # frozen towers (a fusion-only run): nothing to pull on
        return out
    for name, term in parts.items():
        if name in ("loss", "con") or not term.requires_grad:
            continue
        grads = torch.autograd.grad(
            term, list(targets.values()), retain_graph=True, allow_unused=True
        )
        for modality, grad in zip(targets, grads):
            out[f"grad_{name}_{modality}"] = 0.0 if grad is None else float(grad.norm())
    return out
