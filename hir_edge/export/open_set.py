"""Open-set calibration: how far down the tree a read's evidence reaches, fitted on reads of
taxa taken out of the library.

A bundle's reference library never holds every species its users will meet. The placement
model (:mod:`hir_edge.runtime.placement`) must therefore learn what a read of a missing species,
genus or family looks like, and the only honest source at export is the library itself: each
validation read is asked again with its own species, genus or family hidden (its prompts, its
reference embeddings and its barcodes taken out), as if the library had never held them, and
training reads too for the hidden cases (their own record goes with their taxon). Every read is
asked clean, degraded with the calibration noise preset and with ``severe``, and cut to a
fragment. The read's class is the deepest rank of its lineage the reduced library still holds:
a read whose genus had one species is a read of an absent genus once that species is hidden.
Reads that belong nowhere join them: validation reads with their bases shuffled (the same base
composition, no homology), for which every answer is wrong — junk DNA, a contaminant, a
different gene must get no taxon.

Hiding taxa of the library itself teaches only the distances the library holds: a family hidden
from a library of 100 species still has its order's other families close by, so its reads look
placeable at order far more often than reads of a family no export ever held (the bundle's
model card lists both kinds of group). *Outgroups* close that gap: labelled barcodes of taxa
the library lacks (a BOLD export of a wider region, say), asked as they are, each in the class
of the coarsest rank of its lineage the library does not hold. They form groups of their own,
so the thresholds must hold for them too.

A taxon is hidden whole. Records that may be of it go with it: those named neither at its rank
nor below whose named ranks agree with it (a record named to its family alone may be of it).
When hiding a species leaves its genus without a record, the read is asked with the genus hidden
(its prompt too), as a read of a genus no export held would be.

The placement is fitted on these rows by :mod:`hir_edge.export.placement_fit`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from hir_edge.export.placement_fit import fit_placement
from hir_edge.runtime.barcodes import may_be_of
from hir_edge.runtime.placement import FEATURES, read_placement_features

CLASSES = (
    "known",
    "absent species",
    "absent genus",
    "absent family",
    "absent order",
    "unrelated DNA",
)
NO_TAXON = -2  # the label of an unrelated read at every rank: no taxon is right for it


OUTGROUP = "outgroups"  # the source of reads from outside the library


@dataclass
class Query:
    """One calibration read: its labels, the taxon hidden for it, its class, kind and source
    (``library``: a library read, perhaps with its taxon hidden; :data:`OUTGROUP`)."""

    read: str
    labels: np.ndarray
    hidden: tuple[int, int] | None
    klass: str
    kind: str
    source: str = "library"

    @property
    def group(self) -> str:
        """The calibration group the thresholds must hold for: class (and source) | kind."""
        klass = self.klass if self.source == "library" else f"{self.klass}, {self.source}"
        return f"{klass}|{self.kind}"


def read_class(labels: np.ndarray, hidden: tuple[int, int] | None, library: np.ndarray) -> str:
    """The deepest rank of ``labels`` the library still holds once ``hidden`` is taken out
    (with the records that may be of it: :func:`~hir_edge.runtime.barcodes.may_be_of`)."""
    if hidden is None:
        return CLASSES[0]
    level, _ = hidden
    kept = library[~may_be_of(library, hidden, labels[:level])]
    deepest = -1
    for lv in range(level):
        if labels[lv] >= 0 and (kept[:, lv] == labels[lv]).any():
            deepest = lv
        else:
            break
    # deepest present rank r: the read is "absent <rank r+1>"
    return CLASSES[len(labels) - 1 - deepest] if deepest < len(labels) - 1 else CLASSES[0]


def outgroup_labels(lineage, taxonomy) -> np.ndarray:
    """Label ids of an outgroup lineage: a named taxon the taxonomy lacks is :data:`NO_TAXON`
    (every answer at that rank is wrong), and an unnamed rank ends what can be judged (-1 from
    there down)."""
    from hir_edge.taxonomy import MISSING, is_placeholder

    names = tuple(lineage) + (None,) * (taxonomy.num_ranks - len(lineage))
    ids = np.array(taxonomy.encode(names[: taxonomy.num_ranks]), dtype=np.int64)
    named = True
    for level, name in enumerate(names[: taxonomy.num_ranks]):
        named = named and name is not None and not is_placeholder(name)
        if not named:
            ids[level] = MISSING
        elif ids[level] < 0:
            ids[level] = NO_TAXON
    return ids


def outgroup_class(labels: np.ndarray, library: np.ndarray) -> str | None:
    """The class of an outgroup read: "absent <rank>" for the coarsest rank whose taxon the
    library does not hold; None when it holds every judged rank (a known species) or the first
    rank is not judged."""
    levels = len(labels)
    for level, taxon in enumerate(labels):
        if taxon == -1:
            return None
        if taxon == NO_TAXON or not (library[:, level] == taxon).any():
            return CLASSES[levels - level]
    return None


def _outgroup_records(path, taxonomy, library: np.ndarray) -> Iterator[tuple[str, np.ndarray, str]]:
    """(read, labels, class) of each record of a labelled table (BOLD TSV, BIOSCAN metadata)
    whose lineage reaches a taxon the library lacks, in the table's order; records of library
    species, without a usable barcode or without an order are skipped."""
    from hir_edge.data.metadata import iter_metadata
    from hir_edge.export.library import cleaned_barcode

    for row in iter_metadata(path, problems=[]):
        labels = outgroup_labels(row.lineage, taxonomy)
        klass = outgroup_class(labels, library)
        read = cleaned_barcode(row.barcode) if klass is not None else ""
        if read:
            yield read, labels, klass


class OutgroupTable:
    """The outgroup records of a labelled table, read twice rather than held: a first pass keeps
    each usable record's class, and :meth:`fetch` reads back the records the calibration
    draws (at most a few hundred per class). A user's whole BOLD export of a wider region can
    be given without its reads filling memory."""

    def __init__(self, path, taxonomy, library: np.ndarray):
        self._args = (path, taxonomy, library)
        self.classes = [klass for _, _, klass in _outgroup_records(*self._args)]

    def fetch(self, positions: Iterable[int]) -> dict[int, tuple[str, np.ndarray]]:
        """(read, labels) of the usable records at ``positions`` (their order among them)."""
        wanted, out = set(positions), {}
        if not wanted:
            return out
        for pos, (read, labels, _) in enumerate(_outgroup_records(*self._args)):
            if len(out) == len(wanted):
                break
            if pos in wanted:
                out[pos] = (read, labels)
        return out


def queries(
    val_reads: list[str],
    val_labels: np.ndarray,
    train_reads: list[str],
    train_labels: np.ndarray,
    library: np.ndarray,
    kinds: dict,
    per_group: int = 250,
    seed: int = 0,
    outgroups: OutgroupTable | None = None,
) -> list[Query]:
    """Known reads (validation), hidden-taxon reads (validation and training) and outgroup
    reads, every kind.

    Args:
        kinds: read kind -> function (read, index) -> field copy of the read.
        per_group: at most this many reads per (class, source, kind), spread over the
            candidates.
        outgroups: records of taxa the library lacks (:class:`OutgroupTable`); per class, a
            seeded draw of them, made after the library's draws.
    """
    rng = np.random.default_rng(seed)
    pool: dict[str, list[tuple[str, np.ndarray, tuple[int, int] | None]]] = defaultdict(list)
    for read, labels in zip(val_reads, val_labels):
        if read:
            pool[CLASSES[0]].append((read, labels, None))
    for reads, labels_all in ((val_reads, val_labels), (train_reads, train_labels)):
        for read, labels in zip(reads, labels_all):
            if not read:
                continue
            for level in range(len(labels) - 1, 0, -1):
                if labels[level] < 0:
                    continue
                hidden = (level, int(labels[level]))
                klass = read_class(labels, hidden, library)
                # only whole taxa: a hidden species that takes its genus with it is asked as
                # its genus hidden (prompt included), at the next level up
                if klass == CLASSES[len(labels) - level]:
                    pool[klass].append((read, labels, hidden))
    for read, labels in zip(val_reads, val_labels):
        if read:
            bases = np.array(list(read))
            shuffled = "".join(bases[rng.permutation(len(bases))])
            pool[CLASSES[-1]].append((shuffled, np.full_like(labels, NO_TAXON), None))
    outside: dict[str, list[int]] = defaultdict(list)  # class -> positions in the table
    for pos, klass in enumerate(outgroups.classes if outgroups is not None else ()):
        outside[klass].append(pos)
    # the library's draws first, then the outgroups' (the order of the draws fixes the reads)
    drawn = [
        ("library", k, items, rng.permutation(len(items))[:per_group]) for k, items in pool.items()
    ]
    drawn_outside = [
        (OUTGROUP, k, at, rng.permutation(len(at))[:per_group]) for k, at in outside.items()
    ]
    wanted = [int(at[i]) for _, _, at, chosen in drawn_outside for i in chosen]
    fetched = outgroups.fetch(wanted) if outgroups is not None else {}
    drawn += drawn_outside
    out = []
    for source, klass, items, chosen in drawn:
        for kind, make in kinds.items():
            for n, i in enumerate(sorted(chosen)):
                if source == OUTGROUP:
                    (read, labels), hidden = fetched[items[i]], None
                else:
                    read, labels, hidden = items[i]
                out.append(Query(make(read, n), labels, hidden, klass, kind, source))
    return out


def calibrate_placement(
    out,
    options,
    precision: str,
    calib_path,
    val_reads: list[str],
    val_labels: np.ndarray,
    max_train: int = 1500,
) -> tuple[dict, dict]:
    """Fit the bundle's placement model through its own graphs and fitted scoring.

    ``val_reads`` and ``val_labels``: the validation specimens' cleaned, oriented reads ("" for
    none) and label ids, as the scoring's calibration read them (read once per export).

    Returns:
        The ``scoring.placement`` section and the open-set report (per class and read kind).
    """
    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import degrade_dna_seeded, fragment_seeded, get_preset
    from hir_edge.dna.align import min_called_bases
    from hir_edge.export.library import cleaned_barcode, spread_indices
    from hir_edge.runtime.backends import OnnxRuntimeBackend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier
    from hir_edge.runtime.schema import Specimen

    bundle = open_bundle(out)
    identifier = Identifier(bundle, OnnxRuntimeBackend(bundle, precision, device="cpu"))
    taxonomy = bundle.taxonomy

    def reads_of(split: str, count: int | None):
        store = SpecimenStore(calib_path, split)
        idx = spread_indices(len(store), count)
        barcodes, lineages = store.barcodes(), store.lineages()
        seqs = [cleaned_barcode(barcodes[int(i)]) for i in idx]
        return seqs, taxonomy.encode_many(lineages[int(i)] for i in idx)

    train_reads, train_labels = reads_of(options.reference_split or options.calib_split, max_train)
    needed = min_called_bases(identifier.scoring.kmer_k)
    noise = get_preset(options.calibration_noise or "paper").dna
    severe = get_preset("severe").dna
    kinds = {
        "clean": lambda r, i: r,
        options.calibration_noise or "paper": lambda r, i: degrade_dna_seeded(r, noise, 3, i),
        "severe": lambda r, i: degrade_dna_seeded(r, severe, 4, i),
    }
    for n, length in enumerate(options.calibration_fragments):
        kinds[f"{length} bp"] = lambda r, i, length=length, n=n: fragment_seeded(
            r, length, 5 + 10 * n, i, needed
        )
    refs = bundle.references
    library = refs.labels[[bool(b) for b in refs.barcodes]]
    outgroups = OutgroupTable(options.outgroups, taxonomy, library) if options.outgroups else None
    asked = queries(
        val_reads, val_labels, train_reads, train_labels, library, kinds, outgroups=outgroups
    )
    rows: dict[str, list] = {
        key: [] for key in ("features", "correct", "usable", "on_path", "identity", "present")
    }
    meta: list[Query] = []
    for start in range(0, len(asked), 64):
        chunk = asked[start : start + 64]
        specimens = [Specimen(str(start + k), q.read) for k, q in enumerate(chunk)]
        _, evidence = identifier.evidence(specimens, [q.hidden for q in chunk])
        kept = [(q, ev) for q, ev in zip(chunk, evidence) if ev is not None and ev.hit is not None]
        if not kept:
            continue
        evs = [ev for _, ev in kept]
        hidden = [q.hidden for q, _ in kept]
        rows["features"].append(
            read_placement_features(
                evs,
                [q.read for q, _ in kept],
                identifier.bundle.references,
                # radii of the library as the read meets it: its hidden taxon's barcodes gone
                lambda i, j, level, hidden=hidden: identifier.library.radius(j, level, hidden[i]),
            )
        )
        for q, ev in kept:
            truth = q.labels
            rows["correct"].append(ev.path == truth)
            rows["usable"].append((ev.path >= 0) & (truth != -1))
            rows["on_path"].append(ev.path >= 0)
            rows["identity"].append(ev.hit.identity)
            # ranks the reduced library still holds: all for known reads, down to the class's
            held = len(truth) - CLASSES.index(q.klass) if q.klass != CLASSES[-1] else 0
            rows["present"].append(np.arange(len(truth)) < held)
            meta.append(q)
    identifier.close()
    bundle.close()
    arrays = {
        "features": np.concatenate(rows["features"]),
        **{key: np.array(values) for key, values in rows.items() if key != "features"},
        "groups": np.array([q.group for q in meta]),
        "classes": np.array([f"{q.klass}|{q.source}" for q in meta]),
    }
    if options.placement_rows is not None:  # for study: the rows the fit saw
        np.savez_compressed(options.placement_rows, **arrays)
    placement, report = fit_placement(
        arrays["features"],
        arrays["correct"],
        arrays["usable"],
        arrays["identity"],
        arrays["present"],
        arrays["groups"].tolist(),
        arrays["classes"].tolist(),
        tuple(taxonomy.ranks),
        options.target_precision,
        on_path=arrays["on_path"],
    )
    return placement.to_dict(), report


__all__ = [
    "CLASSES",
    "FEATURES",
    "OutgroupTable",
    "Query",
    "calibrate_placement",
    "outgroup_class",
    "outgroup_labels",
    "queries",
    "read_class",
]
