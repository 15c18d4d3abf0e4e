"""Taxonomy-aware batch sampler: positives per batch, determinism, DDP slices, resuming."""

from __future__ import annotations

import numpy as np
import pytest

from hir_edge.data.sampler import TaxonomyBatchSampler


def tree_labels(n_species: int = 5000, per_species: int = 4) -> np.ndarray:
    """order > family > genus > species ids, ``per_species`` specimens each."""
    species = np.repeat(np.arange(n_species), per_species)
    genus = species // 5
    family = genus // 10
    order = family // 20
    return np.stack([order, family, genus, species], axis=1)


def has_pair(labels: np.ndarray, batch) -> bool:
    values = labels[np.asarray(batch)]
    values = values[values >= 0]
    return len(np.unique(values)) < len(values)


def test_batches_hold_same_species_pairs_far_more_often_than_random():
    labels = tree_labels()
    sampler = TaxonomyBatchSampler(labels, 64, per_group=4, grouped_fraction=0.5, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 20000 // 64
    planted = np.mean([has_pair(labels[:, 3], b) for b in batches])
    rng = np.random.default_rng(0)
    random = np.mean([has_pair(labels[:, 3], rng.permutation(20000)[:64]) for _ in range(2000)])
    # Random batches: P(pair) = 1 - prod(1 - 3k/19999) ~ 0.26 for 64 of 5000 species x 4.
    assert 0.20 < random < 0.32
    assert planted == 1.0
    pairs = [
        sum(n * (n - 1) // 2 for n in np.unique(labels[b, 3], return_counts=True)[1])
        for b in batches
    ]
    assert min(pairs) >= 8 * 6  # 8 groups of 4 = 8 x C(4, 2) same-species pairs per batch
    for batch in batches:
        assert len(batch) == 64 and len(set(batch)) == 64
        assert all(0 <= i < 20000 for i in batch)


def test_real_bold_species_pairs(bold_1826sp):
    """On real labels (1-10 specimens per species) the share of batches with a pair jumps."""
    from hir_edge.data.metadata import read_metadata
    from hir_edge.taxonomy import Taxonomy

    rows = read_metadata(bold_1826sp)
    taxonomy = Taxonomy.from_lineages(r.lineage for r in rows)
    labels = taxonomy.encode_many(r.lineage for r in rows)
    sampler = TaxonomyBatchSampler(labels, 32, seed=0)
    planted = np.mean([has_pair(labels[:, 3], b) for b in sampler])
    rng = np.random.default_rng(0)
    n = len(labels)
    random = np.mean([has_pair(labels[:, 3], rng.permutation(n)[:32]) for _ in range(1000)])
    assert planted == 1.0
    assert random < 0.5


def test_deterministic_per_seed_and_epoch():
    labels = tree_labels(500)
    a = TaxonomyBatchSampler(labels, 40, seed=7)
    b = TaxonomyBatchSampler(labels, 40, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(TaxonomyBatchSampler(labels, 40, seed=8)) != first


def test_replica_slices_union_is_the_single_process_batch():
    labels = tree_labels(1000)
    single = list(TaxonomyBatchSampler(labels, 48, seed=5))
    replicas = [
        list(TaxonomyBatchSampler(labels, 48, seed=5, num_replicas=4, rank=r)) for r in range(4)
    ]
    assert all(len(r) == len(single) for r in replicas)
    for b, batch in enumerate(single):
        parts = [replicas[r][b] for r in range(4)]
        assert all(len(p) == 12 for p in parts)
        union = [i for p in parts for i in p]
        assert len(set(union)) == 48
        assert set(union) == set(batch)
        # Groups are kept whole inside a slice, so each replica sees its own pairs.
        assert all(has_pair(labels[:, 3], p) for p in parts)


def test_resume_mid_epoch_gives_the_remaining_batches():
    labels = tree_labels(800)
    sampler = TaxonomyBatchSampler(labels, 32, seed=2)
    sampler.set_epoch(3)
    full = list(sampler)
    sampler.set_epoch(3)
    iterator = iter(sampler)
    for _ in range(17):
        next(iterator)
    state = sampler.state_dict()
    assert state == {"epoch": 3, "batches_yielded": 17, "seed": 2}
    fresh = TaxonomyBatchSampler(labels, 32, seed=2)
    fresh.load_state_dict(state)
    fresh.set_epoch(3)  # a trainer calls this again at the top of the epoch: it must not reset
    assert list(fresh) == full[17:]
    fresh.set_epoch(4)
    assert len(list(fresh)) == len(full)


def test_specimens_without_the_group_rank_are_grouped_at_their_deepest_label():
    labels = np.array([[0, 0, -1, -1]] * 6 + [[0, 1, 2, -1]] * 2 + [[-1, -1, -1, -1]] * 8)
    sampler = TaxonomyBatchSampler(labels, 8, per_group=2, grouped_fraction=0.5, seed=0)
    members = sorted(sorted(m.tolist()) for m in sampler.groups[0])
    assert members == [[0, 1, 2, 3, 4, 5], [6, 7]]
    for batch in sampler:
        assert sum(i < 8 for i in batch) >= 4  # two groups of two, planted every batch


def test_drop_last_false_covers_the_tail():
    labels = tree_labels(25)  # 100 specimens
    assert len(TaxonomyBatchSampler(labels, 30)) == 3
    sampler = TaxonomyBatchSampler(labels, 30, drop_last=False)
    batches = list(sampler)
    assert len(batches) == 4 and all(len(b) == 30 for b in batches)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 30, "num_replicas": 4}, "batch_size 30 is not divisible by num_replicas 4"),
        ({"batch_size": 32, "per_group": 1}, "per_group must be at least 2"),
        ({"batch_size": 32, "grouped_fraction": 1.5}, r"grouped_fraction must be in \[0, 1\]"),
        ({"batch_size": 32, "num_replicas": 2, "rank": 2}, r"rank must be in 0..1, got 2"),
        ({"batch_size": 32, "group_rank": 4}, r"group_rank must be in -4..3, got 4"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"batch_size": 1000}, "100 specimens are fewer than one batch of 1000"),
    ],
)
def test_arguments_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaxonomyBatchSampler(tree_labels(25), **kwargs)


def test_unlabelled_specimens_fall_back_to_random_batches():
    labels = np.full((50, 4), -1)
    sampler = TaxonomyBatchSampler(labels, 10, seed=4)
    assert sampler.groups[0] == []
    batches = list(sampler)
    assert len(batches) == 5 and all(len(set(b)) == 10 for b in batches)
    assert len({i for b in batches for i in b}) == 50  # one permutation: every specimen once
