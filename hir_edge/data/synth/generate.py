"""Assemble a synthetic dataset: specimens, splits, label cuts, photos, files.

Output folder (built under a temporary name and moved into place when complete):

- ``specimens.h5``  CLIBD-layout HDF5, groups ``train``, ``val``, ``test`` (and
  ``test_unseen`` when species are held out);
- ``metadata.tsv``  one row per specimen: processid, sampleid, split, order, family, genus,
  species, nucleotides (a rank cut from the label is empty);
- ``taxonomy.json`` the training split's taxonomy;
- ``synth.json``    settings, source of taxonomy and DNA, counts per split and rank, and the
  ``config_hash`` that :func:`dataset_is_current` compares.

Everything is deterministic from the config: the same settings give a byte-identical
``metadata.tsv`` and identical photos.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hir_edge.data.synth.config import GENERATOR_VERSION, SynthConfig
from hir_edge.data.synth.world import is_stand_in
from hir_edge.errors import ConfigError
from hir_edge.taxonomy import RANKS, is_placeholder

FORMAT = "hir-edge-synth/1"
SPLITS = ("train", "val", "test", "test_unseen")
METADATA_COLUMNS = ("processid", "sampleid", "split", *RANKS, "nucleotides")

# Independent random streams, so that changing one part (e.g. the photos) leaves the others.
_STREAM_COUNTS, _STREAM_DNA, _STREAM_SPLIT, _STREAM_LABELS, _STREAM_PHOTO, _STREAM_ORDER = range(6)


@dataclass(frozen=True)
class SynthSummary:
    """What a run wrote.

    Attributes:
        out_dir: the dataset folder.
        source: "generated" or the BOLD file (with its sha256).
        counts: specimens per split.
        taxa: real taxa per rank that the records name (no stand-in, no placeholder).
        skipped: BOLD records skipped, per reason (none for a generated world).
        named_above_species: BOLD records kept with a label that stops above species.
        seconds: wall time of the run.
        photos_per_second: drawing + JPEG encoding throughput.
        config_hash: fingerprint stored in ``synth.json``.
    """

    out_dir: Path
    source: str
    counts: dict[str, int]
    taxa: dict[str, int]
    skipped: dict[str, int]
    seconds: float
    photos_per_second: float
    config_hash: str
    named_above_species: int = 0

    def line(self) -> str:
        splits = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        plural = {"order": "orders", "family": "families", "genus": "genera"}
        taxa = ", ".join(f"{v} {plural.get(k, k)}" for k, v in self.taxa.items())
        notes = ""
        if self.named_above_species:
            notes = (
                f"; {_records(self.named_above_species)} named above species, labelled only as far"
            )
        if self.skipped:
            why = ", ".join(f"{n} {reason}" for reason, n in self.skipped.items())
            notes += f"; skipped {_records(sum(self.skipped.values()))} ({why})"
        return (
            f"synth: wrote {sum(self.counts.values())} specimens ({splits}; {taxa}) to "
            f"{self.out_dir} in {self.seconds:.1f}s ({self.photos_per_second:.0f} photos/s); "
            f"taxonomy and DNA: {self.source}{notes}"
        )


def _records(n: int) -> str:
    return f"{n} record{'' if n == 1 else 's'}"


@dataclass
class _Row:
    processid: str
    sampleid: str
    species: tuple[str, str, str, str]  # its species (photo and DNA come from it), or a stand-in
    barcode: str
    index: int  # position in the world's specimen list: seeds the photo
    split: str = "train"
    depth: int = 4  # ranks kept in the label
    named: int = 4  # ranks the source names (a BOLD record named to genus: 3); depth <= named


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0xB10, stream])


def species_counts(n_species: int, config: SynthConfig) -> np.ndarray:
    """Specimens per species: ``min_per_species`` each, the rest dealt out along a Zipf tail.

    Which species is common is itself random (a seeded permutation), so abundance does not
    follow name order.
    """
    reserved = config.min_per_species * n_species
    if config.n_specimens < reserved:
        raise ConfigError(
            f"synth setting n_specimens={config.n_specimens} is too small: the world has "
            f"{n_species} species and min_per_species={config.min_per_species} needs at least "
            f"{reserved}; raise n_specimens or shrink the world"
        )
    rng = _rng(config.seed, _STREAM_COUNTS)
    rank = rng.permutation(n_species)
    weights = (rank + 1.0) ** -config.species_zipf
    extra = rng.multinomial(config.n_specimens - reserved, weights / weights.sum())
    return config.min_per_species + extra


def _choose_unseen(species: Sequence[tuple[str, ...]], frac: float, rng) -> set[int]:
    """Species held out whole; each genus keeps at least one species in train. Stand-ins (the
    species paths of records named above species) are never held out nor counted."""
    named = [path for path in species if not is_stand_in(path)]
    want = round(frac * len(named))
    if want == 0:
        return set()
    remaining: dict[tuple[str, ...], int] = {}
    for path in named:
        remaining[path[:3]] = remaining.get(path[:3], 0) + 1
    chosen: set[int] = set()
    for i in rng.permutation(len(species)):
        if len(chosen) >= want:
            break
        genus = species[i][:3]
        if not is_stand_in(species[i]) and remaining[genus] > 1:
            remaining[genus] -= 1
            chosen.add(int(i))
    return chosen


def assign_splits(
    rows: list[_Row], species: Sequence[tuple[str, ...]], config: SynthConfig
) -> None:
    """Closed-set split per species, plus whole held-out species in ``test_unseen``. Records
    named above species (a stand-in species) all train: they are references at the ranks they
    name, and calibration must not take them for held-out reads of known species."""
    rng = _rng(config.seed, _STREAM_SPLIT)
    index = {path: i for i, path in enumerate(species)}
    unseen = _choose_unseen(species, config.unseen_species_frac, rng)
    members: list[list[_Row]] = [[] for _ in species]
    for row in rows:
        members[index[row.species]].append(row)
    for i, group in enumerate(members):
        if i in unseen:
            for row in group:
                row.split = "test_unseen"
            continue
        n = len(group)
        if n < 3 or is_stand_in(species[i]):
            continue  # too rare to split, or not named to species: all of it trains
        n_test = max(1, round(n * config.test_frac)) if config.test_frac > 0 else 0
        n_val = max(1, round(n * config.val_frac)) if config.val_frac > 0 else 0
        while n - n_test - n_val < 1:
            if n_val > 0:
                n_val -= 1
            else:
                n_test -= 1
        order = rng.permutation(n)
        for k, j in enumerate(order):
            group[j].split = "test" if k < n_test else "val" if k < n_test + n_val else "train"


def cut_labels(rows: list[_Row], config: SynthConfig) -> None:
    """Cut a share of labels at order or family; every species keeps one full label in train.
    A label never goes deeper than its record is named (``_Row.named``)."""
    rng = _rng(config.seed, _STREAM_LABELS)
    u = rng.random(len(rows))
    for row, x in zip(rows, u):
        row.depth = row.named
        if x < config.label_only_order_frac:
            row.depth = min(1, row.named)
        elif x < config.label_only_order_frac + config.label_only_family_frac:
            row.depth = min(2, row.named)
    full_in_train: dict[tuple[str, ...], bool] = {}
    first_train: dict[tuple[str, ...], _Row] = {}
    for row in rows:
        if row.split == "train":
            first_train.setdefault(row.species, row)
            full = row.depth == row.named
            full_in_train[row.species] = full_in_train.get(row.species, False) or full
    for sp, has_full in full_in_train.items():
        if not has_full:
            first_train[sp].depth = first_train[sp].named


def _lineage(row: _Row) -> tuple[str | None, ...]:
    return tuple(n if level < row.depth else None for level, n in enumerate(row.species))


def _generated_rows(config: SynthConfig):
    from hir_edge.data.synth.evolve import evolve_tree, trim_reads
    from hir_edge.data.synth.world import generate_world

    world = generate_world(
        config.seed,
        config.n_orders,
        config.families_per_order,
        config.genera_per_family,
        config.species_per_genus,
    )
    counts = species_counts(len(world.species), config)
    rng = _rng(config.seed, _STREAM_DNA)
    seqs = evolve_tree(world.species, counts, config.divergence, config.barcode_length, rng)
    rows: list[_Row] = []
    for path, block in zip(world.species, seqs):
        for read in trim_reads(block, config.min_read_length, config.full_read_frac, rng):
            n = len(rows) + 1
            rows.append(_Row(f"SYN{n:06d}", f"SYNS{n:06d}", path, read, n - 1))
    return world, rows, {}


def _bold_rows(config: SynthConfig):
    from hir_edge.data.synth.bold import read_bold

    world, records, skipped = read_bold(str(config.barcodes), config.max_species, config.seed)
    rows = [
        _Row(r.processid, r.sampleid, r.species, r.nucleotides, i, named=r.named)
        for i, r in enumerate(records)
    ]
    return world, rows, skipped


class _Photos:
    """The specimens of one split, drawn lazily (a Sized iterable, so the bar has a total)."""

    def __init__(self, rows: list[_Row], traits, config: SynthConfig, timer: list[float]):
        self.rows, self.traits, self.config, self.timer = rows, traits, config, timer

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator:
        import time

        from hir_edge.data.hdf5 import Specimen

        for row in self.rows:
            start = time.perf_counter()
            image = photo_bytes(self.traits[row.species], self.config, row.index)
            self.timer[0] += time.perf_counter() - start
            yield Specimen(row.processid, _lineage(row), row.barcode, image, row.sampleid)


def photo_bytes(traits, config: SynthConfig, index: int) -> bytes:
    """The JPEG of specimen ``index`` (its generator depends only on the seed and the index).

    The JPEG comment names it a synthetic photo, so ``identify`` can tell drawn photos from real
    ones when a bundle's image branch only ever saw drawings.
    """
    from hir_edge.data.synth.draw import draw_specimen
    from hir_edge.images import SYNTHETIC_PHOTO_COMMENT

    rng = np.random.default_rng([config.seed, 0xB10, _STREAM_PHOTO, index])
    buffer = io.BytesIO()
    draw_specimen(traits, rng, config.image_size).save(
        buffer, format="JPEG", quality=config.jpeg_quality, comment=SYNTHETIC_PHOTO_COMMENT
    )
    return buffer.getvalue()


def _taxa(rows: list[_Row], level: int, reach: str) -> set[tuple[str, ...]]:
    """The real taxa at ``level`` of the rows named (``reach`` "named") or labelled ("depth")
    that far: "incertae sedis" placeholders are no taxon."""
    return {
        r.species[: level + 1]
        for r in rows
        if getattr(r, reach) > level and not is_placeholder(r.species[level])
    }


def _split_stats(rows: list[_Row]) -> dict:
    stats: dict[str, dict] = {}
    for split in SPLITS:
        part = [r for r in rows if r.split == split]
        if not part and split == "test_unseen":
            continue
        stats[split] = {
            "specimens": len(part),
            "labelled": {rank: sum(r.depth > lv for r in part) for lv, rank in enumerate(RANKS)},
            "taxa": {rank: len(_taxa(part, lv, "depth")) for lv, rank in enumerate(RANKS)},
        }
    return stats


def _metadata_tsv(rows: list[_Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(METADATA_COLUMNS)
    for row in rows:
        names = [n or "" for n in _lineage(row)]
        writer.writerow([row.processid, row.sampleid, row.split, *names, row.barcode])
    return buffer.getvalue()


def generate_dataset(
    config: SynthConfig, out_dir: str | Path, *, force: bool = False, quiet: bool = False
) -> SynthSummary:
    """Write a paired synthetic dataset (photos + barcodes + taxonomy) to ``out_dir``.

    Args:
        config: the settings (see :class:`SynthConfig`).
        out_dir: folder to create; refused if it exists, unless ``force``.
        force: replace an existing folder (only once the new one is complete).
        quiet: no progress bars and no summary line.

    Returns:
        A :class:`SynthSummary` of what was written.
    """
    from hir_edge.data.hdf5 import write_hdf5
    from hir_edge.data.synth.evolve import branch_lengths
    from hir_edge.data.synth.world import assign_traits
    from hir_edge.io import OutputExistsError, atomic_dir
    from hir_edge.progress import Stopwatch, summary
    from hir_edge.taxonomy import Taxonomy

    clock = Stopwatch()
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:  # refuse before any work is done
        raise OutputExistsError(out_dir)
    config_hash = config.config_hash()
    world, rows, skipped = _bold_rows(config) if config.barcodes else _generated_rows(config)
    assign_splits(rows, world.species, config)
    cut_labels(rows, config)
    # Specimens of a split are stored in a seeded random order, not grouped by species.
    order_rng = _rng(config.seed, _STREAM_ORDER)
    by_split = {s: [r for r in rows if r.split == s] for s in SPLITS}
    by_split = {
        s: [part[i] for i in order_rng.permutation(len(part))]
        for s, part in by_split.items()
        if part or s != "test_unseen"
    }
    rows = [r for part in by_split.values() for r in part]
    traits = assign_traits(world, config.seed)
    stats = _split_stats(rows)
    # taxa the records name (a stand-in below a record named to genus is none)
    taxa = {rank: len(_taxa(rows, lv, "named")) for lv, rank in enumerate(RANKS)}
    info = {
        "format": FORMAT,
        "generator_version": GENERATOR_VERSION,
        "config_hash": config_hash,
        "source": world.source,
        "skipped_records": sum(skipped.values()),
        "skipped_by_reason": skipped,
        "named_above_species": sum(r.named < len(RANKS) for r in rows),
        "config": config.to_dict(),
        "world_taxa": taxa,
        "branch_lengths": None
        if config.barcodes
        else [round(t, 6) for t in branch_lengths(config.divergence)],
        "splits": stats,
        "files": ["specimens.h5", "metadata.tsv", "taxonomy.json", "synth.json"],
    }
    timer = [0.0]
    with atomic_dir(out_dir, force=force) as tmp:
        splits = {s: _Photos(part, traits, config, timer) for s, part in by_split.items()}
        counts = write_hdf5(
            tmp / "specimens.h5",
            splits,
            quiet=quiet,
            attrs={"synth": {k: info[k] for k in ("format", "config_hash", "source")}},
        )
        (tmp / "metadata.tsv").write_text(_metadata_tsv(rows), encoding="utf-8")
        train = Taxonomy.from_lineages(_lineage(r) for r in by_split["train"])
        train.save(tmp / "taxonomy.json")
        (tmp / "synth.json").write_text(
            json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    result = SynthSummary(
        out_dir=out_dir,
        source=world.source,
        counts=dict(counts),
        taxa=taxa,
        skipped=skipped,
        named_above_species=info["named_above_species"],
        seconds=clock.seconds,
        photos_per_second=len(rows) / timer[0] if timer[0] > 0 else 0.0,
        config_hash=config_hash,
    )
    summary(result.line(), quiet=quiet)
    return result


def dataset_is_current(out_dir: str | Path, config: SynthConfig) -> bool:
    """True when ``out_dir`` holds a complete dataset generated from these settings."""
    out_dir = Path(out_dir)
    try:
        info = json.loads((out_dir / "synth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not all((out_dir / name).is_file() for name in ("specimens.h5", "metadata.tsv")):
        return False
    return isinstance(info, dict) and info.get("config_hash") == config.config_hash()
