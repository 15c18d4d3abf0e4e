"""Taxonomic ranks, taxa and integer label ids.

A taxon is keyed by its *path* from order down to its own rank, not by its name alone: a
species epithet or genus name that appears under two parents is two taxa (homonyms are
common in BOLD exports and in interim names such as "Chalarus sp. ON3"). Label ids are
dense per rank, with ``MISSING = -1`` where a specimen is not identified that deep.

This module is on the edge path: it imports only the standard library and numpy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RANKS: tuple[str, ...] = ("order", "family", "genus", "species")
MISSING = -1
FORMAT = "hir-edge-taxonomy/1"

# Values that BOLD, BIOSCAN-1M/5M and spreadsheets use for "not identified at this rank".
_MISSING_NAMES = frozenset({"", "na", "n/a", "nan", "none", "null", "not_classified", "unknown"})

Lineage = tuple["str | None", ...]

# A rank that is unknown while a finer one is known (EU-Moths gives genus and species but no
# family) is filled with the taxonomists' "incertae sedis" placeholder, so the tree stays
# connected. A placeholder is a node of the tree but never a label: it encodes as MISSING and
# is left out of prompt text and of the candidates a query is ranked against.
PLACEHOLDER_SUFFIX = " incertae sedis"


def clean_name(value: object) -> str | None:
    """Return a taxon name with whitespace normalised, or None when the value means missing."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return None if text.lower() in _MISSING_NAMES else text


def lineage_of(record: Mapping[str, object] | Sequence[object]) -> Lineage:
    """Read a lineage (one name or None per rank) from a mapping or a sequence.

    A mapping may use the plain rank names (``order``) or BOLD's (``order_name``).
    """
    if isinstance(record, Mapping):
        values = []
        for rank in RANKS:
            value = record.get(rank, record.get(f"{rank}_name"))
            values.append(clean_name(value))
        return tuple(values)
    if len(record) != len(RANKS):
        raise ValueError(
            f"a lineage needs {len(RANKS)} names ({', '.join(RANKS)}), got {len(record)}"
        )
    return tuple(clean_name(v) for v in record)


def is_placeholder(name: str | None) -> bool:
    """True for an "incertae sedis" filler written by :func:`fill_gaps`."""
    return name is not None and name.endswith(PLACEHOLDER_SUFFIX)


def fill_gaps(lineage: Lineage) -> Lineage:
    """Replace missing ranks that sit above a known one by "<parent> incertae sedis" fillers."""
    deepest = max((i for i, n in enumerate(lineage) if n is not None), default=-1)
    out: list[str | None] = []
    for level, name in enumerate(lineage):
        if name is None and level < deepest:
            parent = next((n for n in reversed(out) if n is not None), "Unplaced")
            parent = parent.removesuffix(PLACEHOLDER_SUFFIX)
            name = f"{parent}{PLACEHOLDER_SUFFIX}"
        out.append(name)
    return tuple(out)


def truncate_at_gap(lineage: Lineage) -> Lineage:
    """Cut a lineage at its first missing rank: nothing below a gap is kept."""
    out: list[str | None] = []
    for name in lineage:
        if name is None or (out and out[-1] is None):
            out.append(None)
        else:
            out.append(name)
    return tuple(out)


def depth(lineage: Lineage) -> int:
    """Number of leading ranks that are known (0 = not even the order)."""
    n = 0
    for name in lineage:
        if name is None:
            break
        n += 1
    return n


def prompt_text(path: Sequence[str]) -> str:
    """CLIBD-style text of a taxon: its names from order down to its own rank, space separated.

    Placeholder ranks ("incertae sedis") are left out: they carry no words worth embedding.
    """
    return " ".join(name for name in path if not is_placeholder(name))


@dataclass(frozen=True)
class Inconsistency:
    """A record whose ranks do not fit the tree."""

    index: int
    record_id: str
    rank: str
    message: str

    def __str__(self) -> str:
        return f"record {self.record_id!r}: {self.message}"


class Taxonomy:
    """The tree of taxa seen in a labelled set, with dense ids per rank.

    Args:
        paths: for each rank (coarse to fine), the list of taxon paths at that rank; a path at
            rank ``r`` has ``r + 1`` names and its parent path must be listed at rank ``r - 1``.
        ranks: rank names, coarse to fine.
    """

    def __init__(self, paths: Sequence[Sequence[Sequence[str]]], ranks: Sequence[str] = RANKS):
        if len(paths) != len(ranks):
            raise ValueError(f"expected paths for {len(ranks)} ranks, got {len(paths)}")
        self.ranks: tuple[str, ...] = tuple(ranks)
        self._paths: list[list[tuple[str, ...]]] = []
        self._index: list[dict[tuple[str, ...], int]] = []
        self._parents: list[np.ndarray] = []
        for level, level_paths in enumerate(paths):
            tuples = [tuple(p) for p in level_paths]
            index: dict[tuple[str, ...], int] = {}
            parents = np.full(len(tuples), MISSING, dtype=np.int64)
            for i, path in enumerate(tuples):
                if len(path) != level + 1:
                    raise ValueError(
                        f"taxon {path!r} at rank {self.ranks[level]!r} needs {level + 1} names"
                    )
                if path in index:
                    raise ValueError(f"taxon {prompt_text(path)!r} is listed twice")
                index[path] = i
                if level > 0:
                    parent = self._index[level - 1].get(path[:-1])
                    if parent is None:
                        raise ValueError(
                            f"taxon {prompt_text(path)!r} has no parent at rank "
                            f"{self.ranks[level - 1]!r}"
                        )
                    parents[i] = parent
            self._paths.append(tuples)
            self._index.append(index)
            self._parents.append(parents)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_lineages(cls, lineages: Iterable[Sequence[str | None]]) -> Taxonomy:
        """Build the tree from lineages (missing ranks allowed); taxa are sorted by path."""
        seen: list[set[tuple[str, ...]]] = [set() for _ in RANKS]
        for lineage in lineages:
            lin = truncate_at_gap(tuple(lineage))
            for level in range(depth(lin)):
                seen[level].add(tuple(lin[: level + 1]))  # type: ignore[arg-type]
        return cls([sorted(s) for s in seen])

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object] | Sequence[object]]) -> Taxonomy:
        """Build the tree from records holding rank columns (``order`` or ``order_name`` …)."""
        return cls.from_lineages(lineage_of(r) for r in records)

    # ----------------------------------------------------------------- queries
    @property
    def num_ranks(self) -> int:
        return len(self.ranks)

    def size(self, rank: int | str) -> int:
        """Number of taxa at a rank."""
        return len(self._paths[self.level(rank)])

    def sizes(self) -> dict[str, int]:
        return {r: len(p) for r, p in zip(self.ranks, self._paths)}

    def level(self, rank: int | str) -> int:
        """Index of a rank given by name or index; unknown names list the allowed ones."""
        if isinstance(rank, int):
            if not 0 <= rank < len(self.ranks):
                raise ValueError(f"rank index {rank} is out of range 0..{len(self.ranks) - 1}")
            return rank
        try:
            return self.ranks.index(rank)
        except ValueError:
            raise ValueError(
                f"unknown rank {rank!r}; choose one of: {', '.join(self.ranks)}"
            ) from None

    def path(self, rank: int | str, taxon_id: int) -> tuple[str, ...]:
        return self._paths[self.level(rank)][taxon_id]

    def paths(self, rank: int | str) -> list[tuple[str, ...]]:
        return list(self._paths[self.level(rank)])

    def name(self, rank: int | str, taxon_id: int) -> str:
        return self._paths[self.level(rank)][taxon_id][-1]

    def names(self, rank: int | str) -> list[str]:
        return [p[-1] for p in self._paths[self.level(rank)]]

    def prompt(self, rank: int | str, taxon_id: int) -> str:
        return prompt_text(self.path(rank, taxon_id))

    def prompts(self, rank: int | str) -> list[str]:
        return [prompt_text(p) for p in self._paths[self.level(rank)]]

    def parents(self, rank: int | str) -> np.ndarray:
        """Parent id (at the next coarser rank) of every taxon at ``rank``; -1 at the top rank."""
        return self._parents[self.level(rank)].copy()

    def parent(self, rank: int | str, taxon_id: int) -> int:
        return int(self._parents[self.level(rank)][taxon_id])

    def children(self, rank: int | str, taxon_id: int) -> np.ndarray:
        """Ids at the next finer rank whose parent is ``taxon_id``."""
        level = self.level(rank)
        if level + 1 >= self.num_ranks:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self._parents[level + 1] == taxon_id)

    def ancestor(self, rank: int | str, taxon_id: int, to_rank: int | str) -> int:
        """Id of the ancestor at a coarser (or the same) rank."""
        level, target = self.level(rank), self.level(to_rank)
        if target > level:
            raise ValueError(f"{self.ranks[target]!r} is not coarser than {self.ranks[level]!r}")
        while level > target:
            taxon_id = int(self._parents[level][taxon_id])
            level -= 1
        return taxon_id

    def ancestor_matrix(self, rank: int | str) -> np.ndarray:
        """[n_taxa(rank), level+1] ids of every taxon's ancestors, coarse to fine (itself last)."""
        level = self.level(rank)
        out = np.empty((len(self._paths[level]), level + 1), dtype=np.int64)
        out[:, level] = np.arange(len(self._paths[level]))
        for lv in range(level, 0, -1):
            out[:, lv - 1] = self._parents[lv][out[:, lv]]
        return out

    def label_mask(self, rank: int | str) -> np.ndarray:
        """Boolean mask of the taxa at ``rank`` that are real labels (not placeholders)."""
        return np.array([not is_placeholder(p[-1]) for p in self._paths[self.level(rank)]], bool)

    def find(self, rank: int | str, name: str) -> list[int]:
        """Ids of every taxon at ``rank`` whose own name is ``name`` (homonyms give several)."""
        level = self.level(rank)
        return [i for i, p in enumerate(self._paths[level]) if p[-1] == name]

    def encode(self, lineage: Sequence[str | None]) -> tuple[int, ...]:
        """Label ids for a lineage; unknown or missing ranks (and all ranks below them) are -1."""
        lin = truncate_at_gap(
            lineage_of(lineage) if isinstance(lineage, Mapping) else tuple(lineage)
        )
        ids: list[int] = []
        known = True
        for level in range(self.num_ranks):
            name = lin[level] if level < len(lin) else None
            if not known or name is None:
                ids.append(MISSING)
                known = False
                continue
            taxon = self._index[level].get(tuple(lin[: level + 1]))  # type: ignore[arg-type]
            if taxon is None:
                known = False
                ids.append(MISSING)
            else:
                ids.append(MISSING if is_placeholder(name) else taxon)
        return tuple(ids)

    def encode_many(self, lineages: Iterable[Sequence[str | None]]) -> np.ndarray:
        """[N, ranks] int64 label matrix (-1 for missing)."""
        rows = [self.encode(lin) for lin in lineages]
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), self.num_ranks)

    def decode(self, ids: Sequence[int]) -> Lineage:
        """Names per rank for label ids (None where -1)."""
        return tuple(
            None if int(i) == MISSING else self._paths[level][int(i)][-1]
            for level, i in enumerate(ids)
        )

    def lineage(self, rank: int | str, taxon_id: int) -> Lineage:
        """Full lineage (padded with None) of a taxon."""
        path = self.path(rank, taxon_id)
        return tuple(path) + (None,) * (self.num_ranks - len(path))

    def tree_distance(self, rank: int | str, a: int, b: int) -> int:
        """Edges between two taxa of the same rank through their deepest common ancestor."""
        level = self.level(rank)
        pa, pb = self._paths[level][a], self._paths[level][b]
        common = 0
        for x, y in zip(pa, pb):
            if x != y:
                break
            common += 1
        return 2 * (level + 1 - common)

    # ----------------------------------------------------------------- checks
    def check(
        self,
        records: Iterable[Mapping[str, object] | Sequence[object]],
        ids: Iterable[str] | None = None,
    ) -> list[Inconsistency]:
        """Report records whose ranks contradict this tree.

        Three kinds are reported: a gap (a rank filled below a missing one), a name placed under
        a different parent than the tree has (e.g. genus *Aedes* under Culicidae in the tree but
        Chironomidae in the record), and a name the tree does not know at all at that rank.
        """
        id_iter = iter(ids) if ids is not None else None
        problems: list[Inconsistency] = []
        for index, record in enumerate(records):
            rid = next(id_iter) if id_iter is not None else str(index)
            lin = lineage_of(record)
            gap_rank = None
            for level in range(1, self.num_ranks):
                if lin[level] is not None and any(n is None for n in lin[:level]):
                    gap_rank = level
                    break
            if gap_rank is not None:
                missing = next(r for r, n in zip(self.ranks, lin) if n is None)
                problems.append(
                    Inconsistency(
                        index,
                        rid,
                        self.ranks[gap_rank],
                        f"{self.ranks[gap_rank]} {lin[gap_rank]!r} is given "
                        f"but {missing} is missing",
                    )
                )
                continue
            for level in range(depth(lin)):
                path = tuple(lin[: level + 1])
                if path in self._index[level]:
                    continue
                rank = self.ranks[level]
                elsewhere = self.find(level, lin[level])  # type: ignore[arg-type]
                if elsewhere and level > 0:
                    where = ", ".join(repr(self._paths[level][i][-2]) for i in elsewhere)
                    msg = (
                        f"{rank} {lin[level]!r} is under {self.ranks[level - 1]} "
                        f"{lin[level - 1]!r} here but under {where} in the taxonomy"
                    )
                else:
                    msg = f"{rank} {lin[level]!r} is not in the taxonomy"
                problems.append(Inconsistency(index, rid, rank, msg))
                break
        return problems

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "ranks": list(self.ranks),
            "taxa": {r: [list(p) for p in paths] for r, paths in zip(self.ranks, self._paths)},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Taxonomy:
        fmt = data.get("format")
        if fmt != FORMAT:
            raise ValueError(f"unsupported taxonomy format {fmt!r}; expected {FORMAT!r}")
        ranks = list(data["ranks"])
        return cls([data["taxa"][r] for r in ranks], ranks=ranks)

    def save(self, path: str | Path) -> None:
        """Write the taxonomy as JSON (atomically)."""
        from hir_edge.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a taxonomy JSON file ({err})") from None
        try:
            return cls.from_dict(data)
        except (KeyError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Taxonomy) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:  # pragma: no cover - taxonomies are not dict keys
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{r}={n}" for r, n in self.sizes().items())
        return f"Taxonomy({sizes})"
