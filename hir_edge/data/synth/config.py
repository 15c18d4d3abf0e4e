"""Settings of the synthetic data generator, as one typed dataclass.

Every setting that changes the output is here, so a dataset can be rebuilt (or recognised as
current) from its ``synth.json`` alone. Defaults give a ~100-species world and a run that takes
well under a minute on two CPU cores.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hir_edge.errors import ConfigError

# Bumped whenever the generator's output for a given config changes, so cached datasets built
# by an older generator are not mistaken for current ones.
# 2: photos carry the synthetic-photo JPEG comment. 3: from a BOLD export, records named above
# species are kept, labelled only as far as named, and a rank missing above a named one is
# placed from the file's other records (both were skipped); records of another marker than
# COI-5P are skipped.
GENERATOR_VERSION = 3

_RANGE_FIELDS = ("families_per_order", "genera_per_family", "species_per_genus")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Ranges are inclusive ``(min, max)``; fractions are in [0, 1].

    Attributes:
        seed: seeds everything (names, traits, DNA, photos, splits).
        barcodes: a BOLD export (:func:`~hir_edge.data.synth.bold.read_bold`; a relative path is
            taken from the working directory); when set, its real taxonomy and real DNA are
            used, one specimen per record, and the generated-world settings (tree shape,
            ``n_specimens``, abundance, read lengths, ``divergence``) are ignored.
        max_species: with ``barcodes``, keep a seeded random subset of this many species named
            in full, and the records named above species that fall in their taxa.
        n_orders, families_per_order, genera_per_family, species_per_genus: shape of the
            generated tree.
        n_specimens: specimens in a generated world.
        species_zipf: exponent of the long tail: the k-th most common species gets a share
            proportional to ``k ** -species_zipf`` (0 = uniform).
        min_per_species: specimens every species gets before the long tail is dealt out.
        label_only_order_frac, label_only_family_frac: share of specimens whose labels stop at
            order / family (deeper ranks stored as missing; photo and DNA stay those of the
            true species).
        image_size: side of the stored square photo, in pixels.
        jpeg_quality: JPEG quality of the stored photos.
        barcode_length: full length of a generated barcode (COI-5P Folmer region: 658 bp).
        min_read_length: shortest read after per-read end trimming.
        full_read_frac: share of reads kept at full length (the others are trimmed).
        divergence: target mean p-distance between two specimens whose lineages part at order,
            family, genus, species, and within one species (generated DNA only).
        train_frac, val_frac, test_frac: per-species split of the specimens (closed set: each
            species with at least 3 specimens keeps one or more in train; rarer ones go to
            train whole).
        unseen_species_frac: share of species held out entirely into ``test_unseen`` (only
            species whose genus keeps another species in train are eligible).
    """

    seed: int = 0
    barcodes: str | None = None
    max_species: int | None = None
    n_orders: int = 5
    families_per_order: tuple[int, int] = (2, 3)
    genera_per_family: tuple[int, int] = (2, 3)
    species_per_genus: tuple[int, int] = (2, 4)
    n_specimens: int = 4000
    species_zipf: float = 1.0
    min_per_species: int = 3
    label_only_order_frac: float = 0.05
    label_only_family_frac: float = 0.10
    image_size: int = 128
    jpeg_quality: int = 90
    barcode_length: int = 658
    min_read_length: int = 500
    full_read_frac: float = 0.5
    divergence: tuple[float, float, float, float, float] = (0.22, 0.15, 0.10, 0.05, 0.008)
    train_frac: float = 0.7
    val_frac: float = 0.1
    test_frac: float = 0.2
    unseen_species_frac: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first setting that is out of range."""

        def bad(name: str, value: object, allowed: str) -> ConfigError:
            return ConfigError(f"synth setting {name}={value!r} is invalid: {allowed}")

        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise bad("seed", self.seed, "expected an integer >= 0")
        positive = (
            "n_orders", "n_specimens", "min_per_species", "image_size", "jpeg_quality",
            "barcode_length", "min_read_length",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, value, "expected an integer >= 1")
        if self.max_species is not None and (
            not isinstance(self.max_species, int) or self.max_species < 1
        ):
            raise bad("max_species", self.max_species, "expected an integer >= 1 or null")
        for name in _RANGE_FIELDS:
            lo, hi = getattr(self, name)
            if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
                raise bad(name, [lo, hi], "expected [min, max] integers with 1 <= min <= max")
        fractions = (
            "label_only_order_frac", "label_only_family_frac", "full_read_frac",
            "train_frac", "val_frac", "test_frac", "unseen_species_frac",
        )  # fmt: skip
        for name in fractions:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise bad(name, value, "expected a number in [0, 1]")
        if self.label_only_order_frac + self.label_only_family_frac > 1.0:
            raise bad(
                "label_only_family_frac",
                self.label_only_family_frac,
                "label_only_order_frac + label_only_family_frac must not exceed 1",
            )
        if abs(self.train_frac + self.val_frac + self.test_frac - 1.0) > 1e-6:
            total = self.train_frac + self.val_frac + self.test_frac
            raise bad("train_frac", self.train_frac, f"train+val+test must sum to 1, got {total:g}")
        if self.train_frac <= 0:
            raise bad("train_frac", self.train_frac, "a closed-set split needs train_frac > 0")
        if not isinstance(self.species_zipf, (int, float)) or self.species_zipf < 0:
            raise bad("species_zipf", self.species_zipf, "expected a number >= 0")
        if not 1 <= self.jpeg_quality <= 100:
            raise bad("jpeg_quality", self.jpeg_quality, "expected an integer in 1..100")
        if self.image_size < 16:
            raise bad("image_size", self.image_size, "expected at least 16 pixels")
        if self.min_read_length > self.barcode_length:
            raise bad(
                "min_read_length",
                self.min_read_length,
                f"must not exceed barcode_length={self.barcode_length}",
            )
        if self.barcode_length < 30:
            raise bad("barcode_length", self.barcode_length, "expected at least 30 bp")
        div = self.divergence
        if len(div) != 5 or not all(isinstance(d, (int, float)) and 0 < d < 0.5 for d in div):
            raise bad("divergence", list(div), "expected 5 numbers in (0, 0.5)")
        if any(a <= b for a, b in itertools.pairwise(div)):
            raise bad(
                "divergence",
                list(div),
                "expected decreasing values (order > family > genus > species > within species)",
            )

    # ----------------------------------------------------------------- (de)serialisation
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthConfig:
        """Build a config from plain data (YAML/JSON); unknown keys raise, naming the key."""
        from hir_edge.config_loader import from_mapping

        if not isinstance(data, Mapping):
            raise ConfigError(f"synth settings: expected a mapping, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in _RANGE_FIELDS or key == "divergence":
                if not isinstance(value, (list, tuple)):
                    raise ConfigError(f"synth setting {key}={value!r} is invalid: expected a list")
                value = tuple(value)
                if key in _RANGE_FIELDS and len(value) != 2:
                    raise ConfigError(
                        f"synth setting {key}={list(value)!r} is invalid: expected [min, max]"
                    )
            if key == "barcodes" and value is not None:
                value = str(value)
            values[key] = value
        return from_mapping(cls, values, "synth settings")

    @classmethod
    def from_file(cls, path: str | Path) -> SynthConfig:
        """Read settings from a YAML or JSON file (a top-level ``synth:`` key is accepted)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"{path}: cannot read synth settings ({err.strerror})") from None
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as err:  # any parse error becomes one line
            raise ConfigError(f"{path}: not valid YAML/JSON ({err})") from None
        data = data or {}
        if isinstance(data, Mapping) and set(data) == {"synth"}:
            data = data["synth"]
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready settings (tuples as lists); ``from_dict(to_dict())`` round-trips."""
        out = asdict(self)
        for key in (*_RANGE_FIELDS, "divergence"):
            out[key] = list(out[key])
        return out

    def replace(self, **changes: Any) -> SynthConfig:
        """A copy with some settings changed (validated)."""
        return SynthConfig.from_dict({**self.to_dict(), **changes})

    def config_hash(self) -> str:
        """Fingerprint of everything that shapes the output.

        A BOLD file enters by its content (sha256), not its path, so moving the file keeps a
        cached dataset current while editing it does not. The generator version is included.
        """
        data = self.to_dict()
        if self.barcodes is not None:
            from hir_edge.io import sha256_file

            path = Path(self.barcodes)
            data["barcodes"] = f"sha256:{sha256_file(path)}" if path.is_file() else str(path)
        else:
            # Settings that only matter for real barcodes do not change a generated world.
            data["max_species"] = None
        data["generator_version"] = GENERATOR_VERSION
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
