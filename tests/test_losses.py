"""Losses against plain-Python references written from METHOD.md, and their invariances."""

from __future__ import annotations

import math
import os
import socket
from itertools import permutations

import pytest
import torch
import torch.nn.functional as F

from hir_edge.losses import (
    ContrastiveLoss,
    FusionLoss,
    HirObjective,
    LossWeights,
    hir_loss,
    info_nce,
    lineage_members,
    prompt_bank_loss,
    same_group,
    symmetric_info_nce,
)


# --------------------------------------------------------------------------- references
def ref_hir(z, labels, tau):
    """METHOD.md §2 with explicit loops over anchors, positives and negatives."""
    z = [list(map(float, row)) for row in z]
    labels = [list(map(int, row)) for row in labels]
    n, num_ranks = len(labels), len(labels[0])

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b))

    def differs_known(i, j, level):
        return any(
            labels[i][m] >= 0 and labels[j][m] >= 0 and labels[i][m] != labels[j][m]
            for m in range(level + 1)
        )

    pair_losses = []  # per level: {(i, p): loss}
    for level in range(num_ranks):
        losses = {}
        for i in range(n):
            if labels[i][level] < 0:
                continue
            negs = [j for j in range(n) if differs_known(i, j, level)]
            for p in range(n):
                if p == i or labels[p][level] != labels[i][level]:
                    continue
                pos = math.exp(dot(z[i], z[p]) / tau)
                den = pos + sum(math.exp(dot(z[i], z[j]) / tau) for j in negs)
                losses[(i, p)] = -math.log(pos / den)
        pair_losses.append(losses)

    total = 0.0
    for level in range(num_ranks):
        losses = pair_losses[level]
        if not losses:
            continue
        clamp = (
            max(pair_losses[level - 1].values()) if level > 0 and pair_losses[level - 1] else None
        )
        anchors = sorted({i for i, _ in losses})
        per_anchor = []
        for i in anchors:
            vals = [v for (a, _), v in losses.items() if a == i]
            if clamp is not None:
                vals = [max(v, clamp) for v in vals]
            per_anchor.append(sum(vals) / len(vals))
        total += (sum(per_anchor) / len(per_anchor)) / num_ranks
    return total


def unit(x):
    return F.normalize(torch.as_tensor(x, dtype=torch.float64), dim=-1)


# Five specimens, two orders, three families, species missing for one, genus missing for another.
Z5 = unit(
    [
        [1.0, 0.2, 0.0],
        [0.9, 0.4, 0.1],
        [0.1, 1.0, 0.3],
        [0.0, 0.8, 0.9],
        [0.5, 0.5, 0.5],
    ]
)
Y5 = torch.tensor(
    [
        [0, 0, 0, 0],
        [0, 0, 0, 1],
        [0, 1, 1, -1],
        [1, 2, -1, -1],
        [0, 1, 1, 2],
    ]
)


# --------------------------------------------------------------------------- HiR
def test_hir_matches_reference_on_five_specimens():
    got = hir_loss(Z5, Y5, 0.5).item()
    assert got == pytest.approx(ref_hir(Z5, Y5, 0.5), abs=1e-6)
    # The value itself, so a shared mistake in both implementations cannot pass unnoticed:
    # computed once with the reference above and frozen here.
    assert got == pytest.approx(0.8613489, abs=1e-6)


def test_hir_hand_computed_two_ranks():
    """Four specimens, by hand. Order: {0,1,2} vs {3}; family: {0,1} vs {2}; τ = 1.

    Embeddings are orthonormal except s_01 = s_10 = 0.5 … so every dot product is known.
    """
    z = torch.tensor(
        [[1.0, 0.0, 0.0], [0.5, math.sqrt(0.75), 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]],
        dtype=torch.float64,
    )
    y = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 2]])
    s = z @ z.T
    e = torch.exp
    # Order rank: anchors 0,1,2 (all order 0), negatives {3}.
    l_order = {}
    for i in (0, 1, 2):
        for p in (0, 1, 2):
            if p != i:
                l_order[(i, p)] = -torch.log(e(s[i, p]) / (e(s[i, p]) + e(s[i, 3])))
    order_loss = sum(sum(v for (a, _), v in l_order.items() if a == i) / 2 for i in (0, 1, 2)) / 3
    m1 = max(l_order.values())
    # Family rank: positives only (0,1),(1,0); negatives of 0 and 1 are {2, 3}.
    l01 = -torch.log(e(s[0, 1]) / (e(s[0, 1]) + e(s[0, 2]) + e(s[0, 3])))
    l10 = -torch.log(e(s[1, 0]) / (e(s[1, 0]) + e(s[1, 2]) + e(s[1, 3])))
    family_loss = (torch.maximum(l01, m1) + torch.maximum(l10, m1)) / 2
    expected = (order_loss + family_loss) / 2
    assert hir_loss(z, y, 1.0).item() == pytest.approx(expected.item(), abs=1e-9)


def test_single_rank_equals_pair_form_supcon_without_other_positives():
    """L=1, no missing labels: each pair's denominator is that positive plus the negatives only."""
    torch.manual_seed(0)
    z = unit(torch.randn(7, 4))
    y = torch.tensor([[0], [0], [0], [1], [1], [2], [2]])
    tau = 0.3
    sim = z @ z.T / tau
    per_anchor = []
    for i in range(7):
        pos = [p for p in range(7) if p != i and y[p, 0] == y[i, 0]]
        neg = [j for j in range(7) if y[j, 0] != y[i, 0]]
        losses = [
            -(sim[i, p] - torch.logsumexp(torch.stack([sim[i, p], *[sim[i, j] for j in neg]]), 0))
            for p in pos
        ]
        per_anchor.append(torch.stack(losses).mean())
    expected = torch.stack(per_anchor).mean()
    assert hir_loss(z, y, tau).item() == pytest.approx(expected.item(), abs=1e-9)


def test_clamp_engages_exactly_when_finer_pair_is_below_coarser_max():
    """Genus pair (0,1) is tight; order pair (0,2)/(1,2) is loose → family/genus pairs clamp."""
    z = unit([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [-1.0, 0.0]])
    # order: {0,1,2} vs {3}; family (rank 1): {0,1} vs {2}
    y = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 2]])
    tau = 0.5
    sim = z @ z.T / tau

    def pl(i, p, negs):
        return -(
            sim[i, p] - torch.logsumexp(torch.stack([sim[i, p]] + [sim[i, j] for j in negs]), 0)
        )

    order_pairs = [pl(i, p, [3]) for i in (0, 1, 2) for p in (0, 1, 2) if p != i]
    m_order = torch.stack(order_pairs).max()
    fam_pairs = [pl(0, 1, [2, 3]), pl(1, 0, [2, 3])]
    assert all(f < m_order for f in fam_pairs)  # the clamp must engage here
    clamped = hir_loss(z, y, tau)
    order_only = hir_loss(z, y[:, :1], tau)  # L=1 → weight 1
    # With the clamp every family pair loss becomes m_order.
    assert clamped.item() == pytest.approx(0.5 * order_only.item() + 0.5 * m_order.item(), abs=1e-9)

    # Now make the family pair looser than every order pair: no clamp.
    z2 = unit([[1.0, 0.0], [0.0, 1.0], [1.0, 0.9], [-1.0, -1.0]])
    sim = z2 @ z2.T / tau
    order_pairs = [pl(i, p, [3]) for i in (0, 1, 2) for p in (0, 1, 2) if p != i]
    fam_pairs = [pl(0, 1, [2, 3]), pl(1, 0, [2, 3])]
    assert min(fam_pairs) > torch.stack(order_pairs).max()
    expected = 0.5 * hir_loss(z2, y[:, :1], tau) + 0.5 * torch.stack(fam_pairs).mean()
    assert hir_loss(z2, y, tau).item() == pytest.approx(expected.item(), abs=1e-9)


def test_clamp_gradient_reaches_the_coarser_pair():
    """The max is not detached: a clamped finer pair pushes on the coarser worst pair."""
    z = unit([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0], [-1.0, 0.0]]).requires_grad_(True)
    y = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 2]])
    with_clamp = torch.autograd.grad(hir_loss(z, y, 0.5), z)[0]
    order_only = torch.autograd.grad(hir_loss(z, y[:, :1], 0.5) * 0.5, z)[0]
    # Specimen 2 is in no family positive pair: extra gradient on it comes via the clamp.
    assert not torch.allclose(with_clamp[2], order_only[2])


def test_missing_labels_are_neither_positive_nor_negative():
    z = unit([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    y = torch.tensor([[0], [0], [-1]])
    # Specimen 2 is unlabelled: the pair (0,1) has no negatives → loss 0.
    assert hir_loss(z, y, 0.1).item() == pytest.approx(0.0, abs=1e-12)


def test_rank_without_anchor_contributes_zero_and_keeps_weight():
    z = unit([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    y = torch.tensor([[0, -1], [0, -1], [1, -1]])
    assert hir_loss(z, y, 0.2).item() == pytest.approx(0.5 * hir_loss(z, y[:, :1], 0.2).item())


def test_gradients_finite_with_duplicates_and_all_missing_ranks():
    z = unit([[1.0, 0.0, 0.0]] * 4 + [[0.0, 1.0, 0.0]]).requires_grad_(True)
    y = torch.tensor([[0, -1], [0, -1], [0, -1], [1, -1], [-1, -1]])
    loss = hir_loss(z, y, 0.1)
    (grad,) = torch.autograd.grad(loss, z)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    none = torch.full((5, 3), -1)
    loss = hir_loss(z, none, 0.1)
    (grad,) = torch.autograd.grad(loss, z, allow_unused=True)
    assert loss.item() == 0.0 and (grad is None or torch.isfinite(grad).all())


def test_hir_is_permutation_invariant():
    base = hir_loss(Z5, Y5, 0.3)
    for perm in list(permutations(range(5)))[::17]:
        idx = torch.tensor(perm)
        assert hir_loss(Z5[idx], Y5[idx], 0.3).item() == pytest.approx(base.item(), abs=1e-12)


def test_hir_random_batches_match_reference():
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        z = unit(torch.randn(9, 5, generator=gen))
        y = torch.randint(0, 3, (9, 3), generator=gen)
        y[:, 1] = y[:, 0] * 3 + torch.randint(0, 2, (9,), generator=gen)  # path-keyed ids
        y[:, 2] = y[:, 1] * 3 + torch.randint(0, 2, (9,), generator=gen)
        y[torch.rand(9, 3, generator=gen) < 0.2] = -1
        y[:, 2] = torch.where(y[:, 1] < 0, -1, y[:, 2])
        assert hir_loss(z, y, 0.4).item() == pytest.approx(ref_hir(z, y, 0.4), abs=1e-6)


def test_hir_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"hir_loss needs embeddings \[B, d\] and labels \[B, L\]"):
        hir_loss(Z5, Y5[:3], 0.1)


# --------------------------------------------------------------------------- contrastive
def test_info_nce_matches_hand_computation():
    a = unit([[1.0, 0.0], [0.0, 1.0]])
    b = unit([[1.0, 1.0], [0.0, 1.0]])
    s = torch.tensor(2.0, dtype=torch.float64)
    c = 1 / math.sqrt(2)
    l_ab = -0.5 * (
        math.log(math.exp(2 * c) / (math.exp(2 * c) + math.exp(0.0)))
        + math.log(math.exp(2.0) / (math.exp(2 * c) + math.exp(2.0)))
    )
    assert info_nce(a, b, s).item() == pytest.approx(l_ab, abs=1e-12)
    l_ba = -0.5 * (
        math.log(math.exp(2 * c) / (math.exp(2 * c) + math.exp(2 * c)))
        + math.log(math.exp(2.0) / (math.exp(0.0) + math.exp(2.0)))
    )
    assert symmetric_info_nce(a, b, s).item() == pytest.approx(0.5 * (l_ab + l_ba), abs=1e-12)


def test_contrastive_sums_three_pairs_and_masks_missing_modalities():
    torch.manual_seed(1)
    zi, zd, zt = (unit(torch.randn(6, 4)) for _ in range(3))
    s = torch.tensor(10.0)
    parts = ContrastiveLoss()(s, zi, zd, zt)
    expected = (
        symmetric_info_nce(zi, zd, s)
        + symmetric_info_nce(zi, zt, s)
        + symmetric_info_nce(zd, zt, s)
    )
    assert parts["con"].item() == pytest.approx(expected.item(), abs=1e-12)
    has_dna = torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool)
    parts = ContrastiveLoss()(s, zi, zd, zt, has_dna=has_dna)
    k = has_dna.nonzero().squeeze(1)
    expected = (
        symmetric_info_nce(zi[k], zd[k], s)
        + symmetric_info_nce(zi, zt, s)
        + symmetric_info_nce(zd[k], zt[k], s)
    )
    assert parts["con"].item() == pytest.approx(expected.item(), abs=1e-12)
    assert set(parts) == {"con_ID", "con_IT", "con_DT", "con"}


def test_fusion_prompt_ce_matches_per_rank_cross_entropy():
    torch.manual_seed(2)
    fused = unit(torch.randn(4, 3))
    bank = [unit(torch.randn(2, 3)), unit(torch.randn(3, 3))]
    labels = torch.tensor([[0, 0], [1, 2], [0, -1], [-1, -1]])
    s = torch.tensor(5.0)
    got = FusionLoss("prompt_ce")(fused, s, labels=labels, prompt_bank=bank)
    r0 = F.cross_entropy(s * fused[:3] @ bank[0].T, labels[:3, 0])
    r1 = F.cross_entropy(s * fused[:2] @ bank[1].T, labels[:2, 1])
    assert got.item() == pytest.approx((r0 + r1).item(), abs=1e-12)
    # specimens without all three modalities (mask False) are left out of every rank
    mask = torch.tensor([True, False, True, True])
    got = FusionLoss("prompt_ce")(fused, s, mask=mask, labels=labels, prompt_bank=bank)
    r0 = F.cross_entropy(s * fused[[0, 2]] @ bank[0].T, labels[[0, 2], 0])
    r1 = F.cross_entropy(s * fused[:1] @ bank[1].T, labels[:1, 1])
    assert got.item() == pytest.approx((r0 + r1).item(), abs=1e-12)


def test_objective_variants_combine_weights():
    torch.manual_seed(4)
    zi, zd, zt, zf = (unit(torch.randn(6, 4)) for _ in range(4))
    y = torch.tensor([[0, 0], [0, 0], [0, 1], [0, 1], [1, 2], [1, 2]])
    s = torch.tensor(3.0)
    clibd = HirObjective(LossWeights(hir=0.0, fusion=0.0))(s, zi, zd, zt, y, fused=zf)
    hir = HirObjective(LossWeights(hir=0.7, fusion=0.0, hir_temperature=0.2))(s, zi, zd, zt, y)
    fuse = HirObjective(LossWeights(hir=0.7, fusion=2.0, hir_temperature=0.2))(
        s, zi, zd, zt, y, fused=zf
    )
    assert clibd["loss"].item() == pytest.approx(clibd["con"].item())
    assert hir["loss"].item() == pytest.approx(
        clibd["con"].item() + 0.7 * hir_loss(zi, y, 0.2).item()
    )
    assert fuse["loss"].item() == pytest.approx(
        hir["loss"].item() + 2.0 * symmetric_info_nce(zf, zt, s).item()
    )


def test_objective_builds_known_positives_once_with_the_same_losses():
    """The objective hands one set of known positives to L_con and L_F: each term equals the
    loss module computing its own from labels and text ranks."""
    torch.manual_seed(5)
    zi, zd, zt, zf = (unit(torch.randn(6, 4)) for _ in range(4))
    y = torch.tensor([[0, 0], [0, 0], [0, 1], [0, 1], [1, 2], [1, 2]])
    levels = torch.tensor([0, 1, 1, 0, 1, 0])  # texts naming the order or the genus
    s = torch.tensor(3.0)
    parts = HirObjective(LossWeights(hir=0.0, fusion=1.0))(
        s, zi, zd, zt, y, fused=zf, text_levels=levels
    )
    con = ContrastiveLoss()(s, zi, zd, zt, labels=y, text_levels=levels)
    fusion = FusionLoss()(zf, s, zt, labels=y, text_levels=levels)
    assert parts["con"].item() == pytest.approx(con["con"].item())
    assert parts["fusion"].item() == pytest.approx(fusion.item())
    assert fusion.item() != pytest.approx(symmetric_info_nce(zf, zt, s).item())  # masks bite


# --------------------------------------------------------------------------- distributed
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank, world, port, zi, zd, zt, y, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        per = zi.shape[0] // world
        sl = slice(rank * per, (rank + 1) * per)
        local = [t[sl].clone().requires_grad_(True) for t in (zi, zd, zt)]
        obj = HirObjective(LossWeights(hir=0.5, fusion=0.0, hir_temperature=0.3))
        parts = obj(torch.tensor(4.0), *local, y[sl])
        parts["loss"].backward()
        out[rank] = (parts["loss"].item(), [t.grad.clone() for t in local])
    finally:
        dist.destroy_process_group()


def test_all_gather_two_process_gloo_equals_single_process():
    """The gathered global-batch loss equals one process's; gradients match after DDP's mean."""
    import torch.multiprocessing as mp

    torch.manual_seed(5)
    zi, zd, zt = (unit(torch.randn(8, 4)) for _ in range(3))
    y = torch.tensor([[0, 0], [0, 1], [0, 0], [1, 2], [1, 2], [0, 1], [1, 3], [1, 3]])
    ref = [t.clone().requires_grad_(True) for t in (zi, zd, zt)]
    parts = HirObjective(LossWeights(hir=0.5, fusion=0.0, hir_temperature=0.3))(
        torch.tensor(4.0), *ref, y
    )
    parts["loss"].backward()

    manager = mp.Manager()
    out = manager.dict()
    port = _free_port()
    mp.spawn(_ddp_worker, args=(2, port, zi, zd, zt, y, out), nprocs=2, join=True)
    for rank in range(2):
        loss, grads = out[rank]
        assert loss == pytest.approx(parts["loss"].item(), abs=1e-10)
        for g, r in zip(grads, ref):
            # all_gather's backward sums the identical grads of both ranks: world × local share;
            # DDP divides by world when it averages, giving exactly the single-process gradient.
            sl = slice(rank * 4, (rank + 1) * 4)
            assert torch.allclose(g / 2, r.grad[sl], atol=1e-10)


def test_known_duplicates_leave_the_denominator():
    """Two specimens of one species (group 7) are not negatives of each other."""
    torch.manual_seed(6)
    a, b = unit(torch.randn(4, 3)), unit(torch.randn(4, 3))
    s = torch.tensor(3.0, dtype=torch.float64)
    groups = torch.tensor([7, 7, -1, 2])
    logits = s * a @ b.T
    by_hand = 0.0
    for i in range(4):
        for mat in (logits, logits.T):
            keep = [j for j in range(4) if j == i or not (i < 2 and j < 2)]
            by_hand += -(mat[i, i] - torch.logsumexp(mat[i, keep], 0)) / 8
    got = symmetric_info_nce(a, b, s, same_group(groups))
    assert got.item() == pytest.approx(by_hand.item(), abs=1e-12)
    # Unique groups (or -1) change nothing.
    plain = symmetric_info_nce(a, b, s)
    none = same_group(torch.tensor([-1, -1, -1, -1]))
    assert symmetric_info_nce(a, b, s, none).item() == plain.item()
    unique = same_group(torch.arange(4))
    assert symmetric_info_nce(a, b, s, unique).item() == pytest.approx(plain.item())


def test_prompts_of_a_specimens_own_lineage_are_not_its_negatives():
    """Specimens 0 and 1 are two flies of one family, 2 a fly of another, 3 a beetle. Text 0
    is "Diptera" (order), text 1 is specimen 1's family, texts 2 and 3 their species."""
    labels = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 2, 2], [1, 2, 3, 3]])
    levels = torch.tensor([0, 1, 3, 3])
    members = lineage_members(labels, levels)
    expected = torch.tensor(
        [
            [1, 1, 0, 0],  # fly 0: in "Diptera" and in fly 1's family; not 2's or 3's species
            [1, 1, 0, 0],
            [1, 0, 1, 0],  # fly 2: in "Diptera" only (another family)
            [0, 0, 0, 1],  # the beetle: only its own text
        ],
        dtype=torch.bool,
    )
    assert torch.equal(members, expected)
    # The old rule masked only identical strings: 5 of the 6 off-diagonal member pairs above
    # were negatives. In the loss they now leave both denominators.
    torch.manual_seed(3)
    a, b = unit(torch.randn(4, 3)), unit(torch.randn(4, 3))
    s = torch.tensor(2.0, dtype=torch.float64)
    logits = s * a @ b.T
    by_hand = 0.0
    for i in range(4):
        keep_row = [j for j in range(4) if j == i or not expected[i, j]]
        keep_col = [j for j in range(4) if j == i or not expected[j, i]]
        by_hand += -(logits[i, i] - torch.logsumexp(logits[i, keep_row], 0)) / 8
        by_hand += -(logits[i, i] - torch.logsumexp(logits[keep_col, i], 0)) / 8
    got = symmetric_info_nce(a, b, s, members)
    assert got.item() == pytest.approx(by_hand.item(), abs=1e-12)
    # A specimen without a text (level -1) is nobody's positive.
    assert not lineage_members(labels, torch.tensor([-1, 1, 3, 3]))[:, 0].any()


def test_prompt_bank_loss_is_per_rank_cross_entropy_over_every_prompt():
    """Two ranks: order (2 taxa) and species (3 taxa, one a placeholder that is no answer)."""
    torch.manual_seed(4)
    z = unit(torch.randn(3, 4))
    bank = [unit(torch.randn(2, 4)), unit(torch.randn(3, 4))]
    candidates = [torch.tensor([True, True]), torch.tensor([True, False, True])]
    labels = torch.tensor([[0, 0], [1, 2], [1, -1]])
    s = torch.tensor(5.0, dtype=torch.float64)
    order = -torch.log_softmax(s * z @ bank[0].T, dim=1)[[0, 1, 2], [0, 1, 1]].mean()
    logits = (s * z[:2] @ bank[1].T)[:, [0, 2]]  # the placeholder is no candidate
    species = -torch.log_softmax(logits, dim=1)[[0, 1], [0, 1]].mean()
    got = prompt_bank_loss(z, labels, bank, candidates, s)
    assert got.item() == pytest.approx(((order + species) / 2).item(), abs=1e-10)
    # a specimen labelled with the placeholder is left out of that rank
    placeholder = torch.tensor([[0, 0], [1, 1], [1, -1]])
    only_first = -torch.log_softmax((s * z[:1] @ bank[1].T)[:, [0, 2]], dim=1)[0, 0]
    got = prompt_bank_loss(z, placeholder, bank, candidates, s)
    assert got.item() == pytest.approx(((order + only_first) / 2).item(), abs=1e-10)
    # a rank with a single candidate teaches nothing and is skipped
    single = [torch.tensor([True, False]), candidates[1]]
    assert prompt_bank_loss(z, labels, bank, single, s).item() == pytest.approx(species.item())


def test_prompt_smoothing_per_candidate_gives_every_rank_the_same_wrong_answer_mass():
    """Order: 2 answers; species: 4 answers and a placeholder. With ε = 0.3 spread per
    candidate, each wrong answer gets ε / (4 - 1) = 0.1 at both ranks: the order target is
    (0.9, 0.1), the species target (0.7, 0.1, 0.1, 0.1) over the answers, none on the
    placeholder. Per rank (PyTorch's smoothing) the order target would be (0.85, 0.15)."""
    torch.manual_seed(5)
    z = unit(torch.randn(2, 4).double())
    bank = [unit(torch.randn(2, 4).double()), unit(torch.randn(5, 4).double())]
    candidates = [torch.ones(2, dtype=torch.bool), torch.tensor([True, True, False, True, True])]
    labels = torch.tensor([[0, 1], [1, 4]])
    s = torch.tensor(5.0, dtype=torch.float64)
    log_order = torch.log_softmax(s * z @ bank[0].T, dim=1)
    order = -(0.9 * log_order[0, 0] + 0.1 * log_order[0, 1]) - (
        0.9 * log_order[1, 1] + 0.1 * log_order[1, 0]
    )
    log_species = torch.log_softmax((s * z @ bank[1].T)[:, [0, 1, 3, 4]], dim=1)
    species = -(0.7 * log_species[0, 1] + 0.1 * log_species[0, [0, 2, 3]].sum()) - (
        0.7 * log_species[1, 3] + 0.1 * log_species[1, [0, 1, 2]].sum()
    )
    expected = (order / 2 + species / 2) / 2
    got = prompt_bank_loss(z, labels, bank, candidates, s, 0.3, smoothing_scope="candidate")
    assert got.item() == pytest.approx(expected.item(), abs=1e-10)
    per_rank = prompt_bank_loss(z, labels, bank, candidates, s, 0.3)
    assert per_rank.item() != pytest.approx(expected.item(), abs=1e-3)
    with pytest.raises(ValueError, match="smoothing_scope must be 'rank' or 'candidate'"):
        prompt_bank_loss(z, labels, bank, candidates, s, 0.3, smoothing_scope="taxon")
