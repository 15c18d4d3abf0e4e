"""Taxonomy-aware batches, so that HiR (METHOD.md §2) sees positive pairs.

A random batch of 120 BIOSCAN specimens rarely holds two of one species, and HiR's loss at a
rank is zero without a pair sharing that rank's label. This sampler fills about
``grouped_fraction`` of every global batch with groups of ``per_group`` specimens that share
their taxon at ``group_rank`` (a specimen not labelled that deep joins the group of its deepest
known label), and the rest with specimens drawn uniformly without replacement through the epoch.

The global batch is a function of (seed, epoch, batch number) only, never of the number of
processes: with DDP each replica takes its own contiguous slice of it, so the union over the
replicas is exactly the batch one process would train on. Groups are placed whole into the
slices where they fit, so a replica computing a local loss still sees its pairs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from hir_edge.taxonomy import MISSING


class TaxonomyBatchSampler:
    """Batch sampler (``DataLoader(batch_sampler=...)``) that plants same-taxon groups.

    Args:
        labels: [N, L] label ids per rank, coarse to fine, -1 = missing.
        batch_size: the GLOBAL batch size (all replicas together).
        per_group: specimens drawn together from one taxon (>= 2); a taxon with fewer
            specimens gives all it has.
        grouped_fraction: share of each batch filled with groups, in [0, 1].
        group_rank: rank (index into L, negative counts from the finest) whose taxa form
            the groups.
        seed: base seed; batches depend only on (seed, epoch).
        num_replicas: DDP world size; ``batch_size`` must divide evenly.
        rank: this replica's index.
        drop_last: N // batch_size batches per epoch when True; ceil(N / batch_size) when
            False (the last batch is filled up with further random specimens).
    """

    def __init__(
        self,
        labels: np.ndarray,
        batch_size: int,
        *,
        per_group: int = 4,
        grouped_fraction: float = 0.5,
        group_rank: int = -1,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = True,
    ):
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.shape[1] == 0:
            raise ValueError(f"labels must be a 2-D array [N, ranks], got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integer ids (-1 = missing), got dtype {labels.dtype}")
        n, n_ranks = labels.shape
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be at least 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in 0..{num_replicas - 1}, got {rank}")
        if batch_size % num_replicas:
            raise ValueError(
                f"batch_size {batch_size} is not divisible by num_replicas {num_replicas}; "
                f"use a multiple of {num_replicas}"
            )
        if per_group < 2:
            raise ValueError(f"per_group must be at least 2 (a pair), got {per_group}")
        if not 0.0 <= grouped_fraction <= 1.0:
            raise ValueError(f"grouped_fraction must be in [0, 1], got {grouped_fraction}")
        if not -n_ranks <= group_rank < n_ranks:
            raise ValueError(f"group_rank must be in {-n_ranks}..{n_ranks - 1}, got {group_rank}")
        if n < batch_size:
            raise ValueError(f"{n} specimens are fewer than one batch of {batch_size}")
        self.n = n
        self.batch_size = batch_size
        self.per_group = per_group
        self.grouped_fraction = grouped_fraction
        self.group_rank = group_rank % n_ranks
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        self._resume_from = 0  # batches of the current epoch already consumed (after a resume)
        self._yielded = 0
        self.groups = _groups(labels, self.group_rank)
        self._cache: tuple[int, np.ndarray] | None = None

    # -- sizes
    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    @property
    def groups_per_batch(self) -> int:
        """Number of groups planted in each global batch."""
        return round(self.grouped_fraction * self.batch_size / self.per_group)

    # -- epochs and resuming
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's batches (call before each epoch, as with DistributedSampler)."""
        if epoch != self.epoch:
            self._resume_from = 0
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        """Epoch and batches handed out so far in it.

        A DataLoader draws batches ahead of training (prefetch); a trainer that checkpoints
        mid-epoch should store the number of steps it actually trained as ``batches_yielded``.
        """
        return {"epoch": self.epoch, "batches_yielded": self._yielded, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume: the next iteration continues the epoch with batch ``batches_yielded``."""
        if "seed" in state and int(state["seed"]) != self.seed:
            raise ValueError(f"state was saved with seed {state['seed']}, sampler has {self.seed}")
        done = int(state["batches_yielded"])
        if not 0 <= done <= len(self):
            raise ValueError(f"batches_yielded must be in 0..{len(self)}, got {done}")
        self.epoch = int(state["epoch"])
        self._resume_from = done
        self._yielded = done

    # -- batches
    def global_batches(self, epoch: int | None = None) -> np.ndarray:
        """[len(self), batch_size] every global batch of an epoch, slices in replica order."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._build(epoch))
        return self._cache[1]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches()
        per_replica = self.batch_size // self.num_replicas
        lo, hi = self.rank * per_replica, (self.rank + 1) * per_replica
        start, self._resume_from = self._resume_from, 0
        self._yielded = start
        for b in range(start, len(batches)):
            self._yielded = b + 1
            yield batches[b, lo:hi].tolist()

    def _build(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        n_batches, size = len(self), self.batch_size
        out = np.empty((n_batches, size), dtype=np.int64)
        # The random part walks one permutation and skips whatever this epoch already drew
        # (in a group or earlier), so an epoch covers as many distinct specimens as it can.
        order = rng.permutation(self.n)
        cursor = 0
        seen = np.zeros(self.n, dtype=bool)
        members, sizes = self.groups
        pools = [rng.permutation(m) for m in members]
        pool_pos = np.zeros(len(members), dtype=np.int64)
        n_groups = min(self.groups_per_batch, len(members)) if len(members) else 0
        # Groups are drawn in proportion to their size, so the grouped part follows the data's
        # own taxon distribution instead of over-sampling rare taxa.
        weights = sizes / sizes.sum() if len(members) else None
        for b in range(n_batches):
            units: list[np.ndarray] = []
            if n_groups:
                chosen = rng.choice(len(members), size=n_groups, replace=False, p=weights)
                for g in chosen:
                    take = min(self.per_group, len(pools[g]))
                    if pool_pos[g] + take > len(pools[g]):
                        pools[g] = rng.permutation(members[g])
                        pool_pos[g] = 0
                    units.append(pools[g][pool_pos[g] : pool_pos[g] + take])
                    pool_pos[g] += take
            grouped = np.concatenate(units) if units else np.zeros(0, dtype=np.int64)
            seen[grouped] = True
            in_batch = set(grouped.tolist())
            singles: list[int] = []
            while len(in_batch) < size:
                if cursor >= len(order):  # permutation used up: start another, keep this batch
                    order, cursor = rng.permutation(self.n), 0
                    seen[:] = False
                    seen[list(in_batch)] = True
                candidate = int(order[cursor])
                cursor += 1
                if not seen[candidate]:
                    seen[candidate] = True
                    in_batch.add(candidate)
                    singles.append(candidate)
            out[b] = _arrange(units, singles, size, self.num_replicas)
        return out


def _groups(labels: np.ndarray, group_rank: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Members of each taxon with at least two specimens, keyed by (rank, id) of the label used.

    A specimen labelled at ``group_rank`` is grouped there; one labelled only coarser is grouped
    at its deepest label; one with no label at all joins no group.
    """
    known = labels[:, : group_rank + 1] != MISSING
    has_any = known.any(axis=1)
    deepest = np.where(has_any, group_rank - np.argmax(known[:, ::-1], axis=1), -1)
    rows = np.flatnonzero(has_any)
    levels = deepest[rows]
    ids = labels[rows, levels]
    keys = levels.astype(np.int64) * (int(labels.max()) + 2) + ids
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
    members = [rows[order[s:e]] for s, e in zip(np.r_[0, bounds], np.r_[bounds, len(order)])]
    members = [m for m in members if len(m) >= 2]
    sizes = np.asarray([len(m) for m in members], dtype=np.float64)
    return members, sizes


def _arrange(units: list[np.ndarray], singles: list[int], size: int, replicas: int) -> np.ndarray:
    """Lay a global batch out as ``replicas`` contiguous slices.

    Each group goes whole into the slice with the most room left (when it fits anywhere); a
    group larger than every slice's room is spread over slices; random singles fill the rest.
    With one replica this is simply the groups followed by the singles.
    """
    per = size // replicas
    slices: list[list[int]] = [[] for _ in range(replicas)]
    for unit in units:
        room = [per - len(s) for s in slices]
        best = int(np.argmax(room))
        if len(unit) <= room[best]:
            slices[best].extend(unit.tolist())
            continue
        rest = unit.tolist()
        for s in sorted(range(replicas), key=lambda i: -room[i]):
            take, rest = rest[: per - len(slices[s])], rest[per - len(slices[s]) :]
            slices[s].extend(take)
    it = iter(singles)
    for s in slices:
        s.extend(next(it) for _ in range(per - len(s)))
    return np.asarray([i for s in slices for i in s], dtype=np.int64)
