"""``hir-edge eval``: every protocol on one trained model, with embeddings cached per condition.

Settings (METHOD.md §6): IT (image→text), DT (DNA→text), I+DT Avg (normalised mean of z_I and
z_D), I+DT Fusion (GatedFusion). Conditions: Clean, Noisy I, Noisy D, Noisy I+D, with a named
degradation preset and seed. Three embedding passes suffice — clean, noisy photos, noisy reads
— because the I+D combinations are formed from them with the fusion head alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hir_edge.data.hdf5 import SpecimenStore, list_splits
from hir_edge.degrade import DegradationPreset, get_preset
from hir_edge.errors import ConfigError
from hir_edge.evaluation.embed import (
    CONDITIONS,
    SplitEmbeddings,
    embed_split,
    fuse_embeddings,
    prompt_banks,
)
from hir_edge.evaluation.hierarchy import consistency, mistake_severity, top1_per_rank
from hir_edge.evaluation.knn import clibd_protocol
from hir_edge.evaluation.protocol import GLOBAL_DEFINITION, paper_protocol
from hir_edge.io import sha256_file
from hir_edge.runtime.scoring import (
    assign,
    choose_thresholds,
    expected_calibration_error,
    fit_temperatures,
    greedy_paths,
    tree_probabilities,
)
from hir_edge.taxonomy import Taxonomy

CACHE_FORMAT = "hir-edge-embeddings/2"

# setting -> conditions reported (a setting is unaffected by the other modality's noise)
SETTING_CONDITIONS = {
    "IT": ("clean", "noisy_i"),
    "DT": ("clean", "noisy_d"),
    "I+DT Avg": ("clean", "noisy_i", "noisy_d", "noisy_id"),
    "I+DT Fusion": ("clean", "noisy_i", "noisy_d", "noisy_id"),
}


@dataclass
class EvalOptions:
    """What to evaluate and how.

    Attributes:
        split: the query split (test).
        val_split: split used to fit temperatures and thresholds (None: skip calibration).
        keys_split: labelled reference set of the CLIBD protocol (None: skip it).
        unseen_split: extra query split of species absent from training (open-set report).
        preset: degradation preset, or its name (``hir_edge.degrade.PRESETS``).
        seed: degradation seed.
        max_specimens: evaluate an evenly spaced subset (quick checks).
        batch_size, device, workers: embedding passes.
        cache_dir: where embeddings are cached (None: no cache).
        target_precision: per-rank precision the abstention thresholds aim for.
        quiet: no progress bars.
    """

    split: str = "test"
    val_split: str | None = "val"
    keys_split: str | None = "train"
    unseen_split: str | None = None
    preset: str | DegradationPreset = "paper"
    seed: int = 0
    max_specimens: int | None = None
    batch_size: int = 64
    device: str = "cpu"
    workers: int = 2
    cache_dir: str | None = None
    target_precision: float = 0.95
    quiet: bool = True
    ks: tuple[int, ...] = field(default=(1, 5))


def _file_identity(path: Path) -> str:
    """Cheap identity of a (possibly huge) data file: size, mtime and the first/last MiB."""
    stat = path.stat()
    digest = hashlib.sha256(f"{stat.st_size}:{int(stat.st_mtime)}".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        if stat.st_size > 1 << 20:
            handle.seek(-(1 << 20), 2)
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


class Evaluator:
    """Embeds splits once per condition (with an on-disk cache) and runs every protocol."""

    def __init__(self, checkpoint: str | Path, data: str | Path, options: EvalOptions):
        from hir_edge.models import load_model

        self.checkpoint = Path(checkpoint)
        self.data = Path(data)
        self.options = options
        if options.keys_split and options.keys_split in (options.split, options.val_split):
            raise ConfigError(
                f"--keys-split {options.keys_split!r} is also a query split: every query would "
                "find itself as its nearest key"
            )
        self.model = load_model(self.checkpoint).to(options.device).eval()
        self.taxonomy = Taxonomy.load(self.checkpoint / "taxonomy.json")
        self.preset = get_preset(options.preset)
        self.model_hash = sha256_file(self.checkpoint / "model.safetensors")[:16]
        # What the cached embeddings depend on besides the weights: architecture, preprocessing
        # and tokenizer (model_config.json), label ids (taxonomy.json), and this code's version.
        self.cache_salt = [
            CACHE_FORMAT,
            sha256_file(self.checkpoint / "model_config.json")[:16],
            sha256_file(self.checkpoint / "taxonomy.json")[:16],
        ]
        self.data_hash = _file_identity(self.data)
        self.banks = prompt_banks(self.model, self.taxonomy)
        self.masks = [self.taxonomy.label_mask(lv) for lv in range(self.taxonomy.num_ranks)]
        self.parents = [self.taxonomy.parents(lv) for lv in range(self.taxonomy.num_ranks)]

    # ------------------------------------------------------------------ embeddings
    def _indices(self, store: SpecimenStore, split: str) -> np.ndarray | None:
        """All specimens, or for the query split an evenly spaced subset (--max-specimens);
        reference and validation splits are always whole."""
        limit = self.options.max_specimens if split == self.options.split else None
        if limit is None or limit >= len(store):
            return None
        return np.linspace(0, len(store) - 1, limit).round().astype(np.int64)

    def embeddings(
        self, split: str, condition: str, modalities: tuple[str, ...]
    ) -> SplitEmbeddings:
        opts = self.options
        store = SpecimenStore(self.data, split)
        indices = self._indices(store, split)
        key = hashlib.sha256(
            json.dumps(
                [
                    *self.cache_salt,
                    self.model_hash,
                    self.data_hash,
                    split,
                    condition,
                    self.preset.to_dict(),
                    opts.seed,
                    modalities,
                    None if indices is None else len(indices),
                ]
            ).encode()
        ).hexdigest()[:20]
        cache = Path(opts.cache_dir) / f"{key}.npz" if opts.cache_dir else None
        if cache is not None and cache.is_file():
            return SplitEmbeddings.load(cache)
        emb = embed_split(
            self.model,
            store,
            self.taxonomy,
            condition=CONDITIONS[condition],
            preset=self.preset,
            seed=opts.seed,
            indices=indices,
            batch_size=opts.batch_size,
            device=opts.device,
            quiet=opts.quiet,
            workers=opts.workers,
            modalities=modalities,
        )
        store.close()
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            emb.save(cache)
        return emb

    def conditions(self, split: str) -> dict[str, dict[str, np.ndarray]]:
        """Per condition: image, dna, avg, fused query embeddings and validity masks."""
        clean = self.embeddings(split, "clean", ("image", "dna"))
        noisy_i = self.embeddings(split, "noisy_i", ("image",))
        noisy_d = self.embeddings(split, "noisy_d", ("dna",))
        out = {}
        for name, img, dna in (
            ("clean", clean, clean),
            ("noisy_i", noisy_i, clean),
            ("noisy_d", clean, noisy_d),
            ("noisy_id", noisy_i, noisy_d),
        ):
            both = img.has_image & dna.has_dna
            fused, gate = fuse_embeddings(self.model, img.image, dna.dna)
            avg = img.image + dna.dna
            avg /= np.maximum(np.linalg.norm(avg, axis=1, keepdims=True), 1e-12)
            out[name] = {
                "image": img.image,
                "dna": dna.dna,
                "avg": avg.astype(np.float32),
                "fused": fused if self.model.fusion is not None else None,
                "gate": gate,
                "has_image": img.has_image,
                "has_dna": dna.has_dna,
                "both": both,
                "labels": clean.labels,
            }
        return out

    # ------------------------------------------------------------------ protocols
    def _scores(self, queries: np.ndarray) -> list[np.ndarray]:
        """Prompt cosines as the runtime computes them (placeholders take their children's)."""
        from hir_edge.runtime.scoring import prompt_cosines

        return prompt_cosines(queries, self.banks, self.masks, self.parents)

    def paper(self, conds: dict) -> dict:
        ranks = self.taxonomy.ranks
        out: dict[str, dict] = {}
        for setting, names in SETTING_CONDITIONS.items():
            key, valid_key = {
                "IT": ("image", "has_image"),
                "DT": ("dna", "has_dna"),
                "I+DT Avg": ("avg", "both"),
                "I+DT Fusion": ("fused", "both"),
            }[setting]
            out[setting] = {}
            for name in names:
                c = conds[name]
                if c[key] is None:
                    continue
                result = paper_protocol(
                    c[key],
                    self.banks,
                    c["labels"],
                    ranks,
                    ks=self.options.ks,
                    candidate_masks=self.masks,
                    valid=c[valid_key],
                )
                out[setting][name] = result.to_dict()
            if not out[setting]:
                del out[setting]
        return out

    def hierarchy(self, conds: dict) -> dict:
        out: dict[str, dict] = {}
        for setting, key, valid in (
            ("IT", "image", "has_image"),
            ("DT", "dna", "has_dna"),
            ("I+DT", "joint", "both"),
        ):
            out[setting] = {}
            for name in ("clean", "noisy_id"):
                c = conds[name]
                queries = (
                    c["fused"]
                    if key == "joint" and c["fused"] is not None
                    else (c["avg"] if key == "joint" else c[key])
                )
                q, labels = queries[c[valid]], c["labels"][c[valid]]
                pred = top1_per_rank(self._scores(q), self.masks)
                out[setting][name] = {
                    "consistency": consistency(pred, self.taxonomy),
                    "severity": mistake_severity(pred, labels, self.taxonomy),
                }
        return out

    def _joint(self, c: dict) -> np.ndarray:
        return c["fused"] if c["fused"] is not None else c["avg"]

    def calibration(self, conds: dict, val: dict) -> dict:
        """Temperature fitting on validation; ECE per rank before/after; abstention curves."""
        parents = [self.taxonomy.parents(lv) for lv in range(self.taxonomy.num_ranks)]
        ranks = self.taxonomy.ranks
        vc = val["clean"]
        v_scores = self._scores(self._joint(vc)[vc["both"]])
        temps = fit_temperatures(v_scores, parents, vc["labels"][vc["both"]])
        raw_t = [1.0 / float(self.model.scale().item())] * len(ranks)
        v_probs = tree_probabilities(v_scores, parents, temps)
        v_ids, v_p = greedy_paths(v_probs, parents)
        thresholds = choose_thresholds(
            v_ids, v_p, vc["labels"][vc["both"]], self.options.target_precision
        )
        out = {
            "temperatures": temps,
            "raw_temperature": raw_t[0],
            "thresholds": thresholds,
            "target_precision": self.options.target_precision,
            "ece": {},
            "abstention": {},
        }
        for name in ("clean", "noisy_id"):
            c = conds[name]
            q, labels = self._joint(c)[c["both"]], c["labels"][c["both"]]
            scores = self._scores(q)
            out["ece"][name] = {}
            for label, t in (("before", raw_t), ("after", temps)):
                probs = tree_probabilities(scores, parents, t)
                for lv, rank in enumerate(ranks):
                    keep = labels[:, lv] >= 0
                    conf = probs[lv][keep].max(axis=1)
                    correct = probs[lv][keep].argmax(axis=1) == labels[keep, lv]
                    out["ece"][name].setdefault(rank, {})[label] = 100 * expected_calibration_error(
                        conf, correct
                    )
            probs = tree_probabilities(scores, parents, temps)
            ids, p = greedy_paths(probs, parents)
            out["abstention"][name] = abstention_curve(ids, p, labels, thresholds, ranks)
        return out

    def clibd(self, conds: dict, keys: dict | None, unseen: dict | None) -> dict:
        """Nearest key (train) for test queries, and for the open-set split when there is one."""
        if keys is None:
            return {}
        ranks = self.taxonomy.ranks
        c, k = conds["clean"], keys["clean"]
        pairs = {"I→I": ("image", "image"), "D→D": ("dna", "dna"), "I→D": ("image", "dna")}
        has = {"image": "has_image", "dna": "has_dna"}
        out = {}
        for name, (q_mod, k_mod) in pairs.items():
            queries, labels, valid = c[q_mod], c["labels"], c[has[q_mod]]
            is_unseen = np.zeros(len(queries), bool)
            if unseen is not None:
                u = unseen["clean"]
                queries = np.concatenate([queries, u[q_mod]])
                labels = np.concatenate([labels, u["labels"]])
                valid = np.concatenate([valid, u[has[q_mod]]])
                is_unseen = np.concatenate([is_unseen, np.ones(len(u[q_mod]), bool)])
            out[name] = clibd_protocol(
                queries,
                labels,
                k[k_mod],
                k["labels"],
                ranks,
                valid=valid,
                key_valid=k[has[k_mod]],
                unseen=is_unseen,
            )
        return out

    def run(self) -> dict:
        opts = self.options
        splits = list_splits(self.data)
        conds = self.conditions(opts.split)
        results = {
            "settings": {
                "checkpoint": str(self.checkpoint),
                "model_sha256_16": self.model_hash,
                "preset": self.model.config.preset,
                "data": str(self.data),
                "data_id": self.data_hash,
                "split": opts.split,
                "degradation": self.preset.to_dict(),
                "degradation_line": self.preset.describe(),
                "seed": opts.seed,
                "max_specimens": opts.max_specimens,
                "global_definition": GLOBAL_DEFINITION,
                "taxa": self.taxonomy.sizes(),
            },
            "paper": self.paper(conds),
            "hierarchy": self.hierarchy(conds),
        }
        if opts.val_split and opts.val_split in splits:
            val = {"clean": self.conditions_clean(opts.val_split)}
            results["calibration"] = self.calibration(conds, val)
        keys = (
            {"clean": self.conditions_clean(opts.keys_split)} if opts.keys_split in splits else None
        )
        unseen = (
            {"clean": self.conditions_clean(opts.unseen_split)}
            if opts.unseen_split and opts.unseen_split in splits
            else None
        )
        results["clibd"] = self.clibd(conds, keys, unseen)
        results["options"] = asdict(opts)
        return results

    def conditions_clean(self, split: str) -> dict:
        emb = self.embeddings(split, "clean", ("image", "dna"))
        both = emb.has_image & emb.has_dna
        fused, _ = fuse_embeddings(self.model, emb.image, emb.dna)
        return {
            "image": emb.image,
            "dna": emb.dna,
            "avg": emb.average(),
            "fused": fused if self.model.fusion is not None else None,
            "has_image": emb.has_image,
            "has_dna": emb.has_dna,
            "both": both,
            "labels": emb.labels,
        }


def abstention_curve(
    ids: np.ndarray, probs: np.ndarray, labels: np.ndarray, fitted: list[float], ranks
) -> dict:
    """Accuracy vs coverage of assignments, for uniform thresholds and for the fitted ones."""

    def summarise(thresholds) -> dict:
        level = assign(probs, thresholds)
        n = len(level)
        assigned = level >= 0
        rows = np.arange(n)
        taxon = ids[rows, np.maximum(level, 0)]
        truth = labels[rows, np.maximum(level, 0)]
        judged = assigned & (truth >= 0)
        correct = judged & (taxon == truth)
        return {
            "thresholds": [float(t) for t in thresholds],
            "accuracy": 100.0 * float(correct.sum() / max(judged.sum(), 1)),
            "mean_depth": float((level + 1).mean()) if n else 0.0,
            "share_at": {r: 100.0 * float((level == lv).mean()) for lv, r in enumerate(ranks)},
            "none": 100.0 * float((~assigned).mean()),
        }

    curve = [summarise([t] * len(ranks)) for t in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)]
    return {"uniform": curve, "fitted": summarise(fitted)}
