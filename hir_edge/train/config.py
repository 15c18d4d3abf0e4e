"""Typed training configuration, loaded from a YAML recipe with ``--set key=value`` overrides.

Every section is a dataclass; an unknown key anywhere is an error naming the key and the
allowed ones (CLIBD's 87 ``hasattr`` probes are what this replaces). The resolved config is
saved in every run folder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hir_edge.config_loader import from_mapping
from hir_edge.degrade import get_preset
from hir_edge.errors import ConfigError

VARIANTS = ("clibd", "hir", "hir-fuse")


@dataclass
class ModelSection:
    """Which model: a preset (``hir_edge.models.list_presets()``) and dotted overrides."""

    preset: str = "tiny"
    overrides: dict = field(default_factory=dict)

    def dotted_overrides(self) -> dict[str, Any]:
        """Overrides as dotted keys, whether the recipe nested them or wrote ``a.b: v``."""
        flat: dict[str, Any] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict) and node:
                for key, value in node.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), value)
            elif prefix:
                flat[prefix] = node

        walk("", self.overrides)
        return flat


@dataclass
class SynthSection:
    """Generate the dataset with ``hir-edge data synth`` when ``data.path`` is absent.

    ``out`` is the cache folder; ``settings`` are SynthConfig fields. A ``barcodes`` file that
    does not exist is an error, unless the recipe says ``barcodes_optional: true``: then a
    generated world is used instead, with a warning.
    """

    out: str = ".cache/hir-edge/synth"
    barcodes_optional: bool = False
    settings: dict = field(default_factory=dict)


@dataclass
class AugmentSection:
    """Training-time image augmentation (CLIBD's crop, flips and rotation by default).

    ``brightness``, ``contrast`` and ``saturation`` scale each by a factor drawn from
    [1 − v, 1 + v] (0 = off): flash, trap lamps and sheet colour vary between photos of one
    species, while hue is left alone because wing colour is a character. Degradations (blur,
    noisy reads) are never used here: METHOD.md §5 keeps them for evaluation.
    """

    random_resized_crop_scale: tuple[float, float] = (0.8, 1.0)
    hflip: float = 0.5
    vflip: float = 0.0
    rotation_degrees: float = 15.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    enabled: bool = True
    # Train on crops of this side (None: the model's input size). Smaller training crops than
    # the evaluation size are faster and, with random-resized crops, match the apparent object
    # size of a centre-cropped evaluation image better (Touvron et al. 2019, "FixRes").
    image_size: int | None = None


@dataclass
class ReadAugmentSection:
    """Training-time read degradation — a declared deviation from METHOD.md §5, which keeps the
    degradation models for evaluation only. A tower that never saw a noisy or partial read
    learns features that a field read does not have (measured in dna_encodings.md).

    Each training read is, independently: cut to a random window of ``window`` bases with
    probability ``window_prob``; degraded with the ``preset``'s operators at a severity drawn
    uniformly from ``severity`` (× the preset's rates) with probability ``degrade_prob``;
    reverse-complemented with probability ``reverse_complement_prob``. Evaluation seeds are
    never reused (the draws come from the run's seed, epoch and specimen).
    """

    degrade_prob: float = 0.0
    preset: str = "paper"
    severity: tuple[float, float] = (0.5, 1.5)
    window_prob: float = 0.0
    window: tuple[int, int] = (100, 400)
    reverse_complement_prob: float = 0.0


@dataclass
class DataSection:
    """The HDF5 dataset (CLIBD/BIOSCAN layout) and how it is read."""

    path: str = ""
    train_split: str = "train"
    val_split: str = "val"
    synth: SynthSection | None = None
    num_workers: int = 0
    augment: AugmentSection = field(default_factory=AugmentSection)
    read_augment: ReadAugmentSection = field(default_factory=ReadAugmentSection)
    max_val_specimens: int = 2000
    text_coarsen_prob: float = 0.0  # see hir_edge.train.augment.SeededDataset


@dataclass
class LossSection:
    """The objective: variant sets which terms are on; weights and τ_h are settings.

    ``clibd``: L_con. ``hir``: L_con + λ_HiR·L_HiR (Algo 1). ``hir-fuse``: + λ_F·L_F (Algo 2).
    """

    variant: str = "hir-fuse"
    hir_weight: float = 1.0
    fusion_weight: float = 1.0
    hir_temperature: float = 0.1
    fusion_mode: str = "contrastive"
    # λ_P: per-rank cross-entropy of the image and DNA embeddings against every taxon's prompt
    # (hir_edge.losses.prompt_bank_loss), beside L_con's batch-level InfoNCE. 0: the paper's
    # objective. It needs the text tower's embeddings of all prompts at each step.
    prompt_weight: float = 0.0
    prompt_label_smoothing: float = 0.0
    # "rank": that smoothing at every rank; "candidate": the same target mass on every wrong
    # answer at every rank, so 14 orders are trained to about the margin of 100 species
    # (hir_edge.losses.prompt_bank_loss).
    prompt_label_smoothing_scope: str = "rank"
    # Leave known positives out of the InfoNCE denominators instead of treating them as
    # negatives: two specimens of one species, and a specimen with a prompt of its own lineage
    # ("Diptera" for every fly; hir_edge.losses.lineage_members).
    mask_known_positives: bool = True


@dataclass
class SamplerSection:
    """Taxonomy-aware batches (METHOD.md §2): groups of ``per_group`` same-taxon specimens
    fill ``grouped_fraction`` of each global batch; ``grouped_fraction: 0`` is plain random."""

    per_group: int = 4
    grouped_fraction: float = 0.5


@dataclass
class TrainSection:
    """Optimisation, scale-out and checkpointing.

    ``batch_size`` is per process (the paper: 30 per GPU); the global batch is
    batch_size × processes × grad_accum. The OneCycle peak LR is ``lr`` × global batch /
    ``lr_reference_batch`` (CLIBD: 5e-5 per 500 samples).
    """

    mode: str = "joint"  # joint | fusion-only (post-hoc head on frozen encoders)
    init_from: str | None = None  # a saved model folder to start from (fusion-only needs one)
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 30
    grad_accum: int = 1
    lr: float = 5e-5
    lr_reference_batch: int = 500
    image_lr_scale: float = 1.0  # LR multiplier of the image backbone (a pretrained one: < 1)
    # LP-FT: steps fitting the image projection, text tower and scale on the frozen pretrained
    # backbone's features before fine-tuning (hir_edge.train.head_warmup); 0: none.
    head_warmup_steps: int = 0
    pct_start: float = 0.3
    weight_decay: float = 0.2
    grad_clip: float = 1.0
    precision: str = "auto"  # auto (bf16 where native: CUDA, AVX512-BF16/AMX CPUs) | bf16 | fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 2
    eval_every_epochs: int = 1
    log_every_steps: int = 10
    sampler: SamplerSection = field(default_factory=SamplerSection)


@dataclass
class TrainConfig:
    """A whole recipe."""

    name: str = "run"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)

    def validate(self) -> TrainConfig:
        """Cross-field checks, with what is allowed."""
        if self.loss.variant not in VARIANTS:
            raise ConfigError(
                f"loss.variant: {self.loss.variant!r}; choose one of {', '.join(VARIANTS)}"
            )
        if self.train.mode not in ("joint", "fusion-only"):
            raise ConfigError(f"train.mode: {self.train.mode!r}; choose 'joint' or 'fusion-only'")
        if self.train.mode == "fusion-only" and not self.train.init_from:
            raise ConfigError(
                "train.mode=fusion-only trains a head on frozen encoders: set train.init_from"
            )
        if self.loss.prompt_label_smoothing_scope not in ("rank", "candidate"):
            raise ConfigError(
                f"loss.prompt_label_smoothing_scope: {self.loss.prompt_label_smoothing_scope!r};"
                " choose 'rank' or 'candidate'"
            )
        if self.train.precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(
                f"train.precision: {self.train.precision!r}; choose auto, bf16 or fp32"
            )
        for name in ("batch_size", "grad_accum", "epochs", "lr_reference_batch"):
            if getattr(self.train, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self.train, name)}")
        reads = self.data.read_augment
        for name in ("degrade_prob", "window_prob", "reverse_complement_prob"):
            if not 0.0 <= getattr(reads, name) <= 1.0:
                raise ConfigError(
                    f"data.read_augment.{name} must be in [0, 1], got {getattr(reads, name)}"
                )
        low, high = reads.window
        if not 1 <= low <= high:
            raise ConfigError(
                f"data.read_augment.window must be 1 <= min <= max, got {reads.window}"
            )
        if not 0.0 <= reads.severity[0] <= reads.severity[1]:
            raise ConfigError(
                f"data.read_augment.severity must be 0 <= low <= high, got {reads.severity}"
            )
        try:
            get_preset(reads.preset)
        except ValueError as err:
            raise ConfigError(f"data.read_augment.preset: {err}") from None
        if not self.data.path and self.data.synth is None:
            raise ConfigError(
                "data.path is empty and there is no data.synth section to generate it"
            )
        return self

    @property
    def hir_weight(self) -> float:
        return 0.0 if self.loss.variant == "clibd" else self.loss.hir_weight

    @property
    def fusion_weight(self) -> float:
        return self.loss.fusion_weight if self.loss.variant == "hir-fuse" else 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- loading
def parse_value(text: str) -> Any:
    """``--set`` values are YAML scalars: 3 → int, 1e-4 → float, true → bool, null → None."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(data: dict, key: str, value: Any) -> None:
    """Set a dotted key in the raw recipe dict; free-form dicts accept new keys."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
    node[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML recipe and apply ``key=value`` overrides (validated after merging)."""
    import yaml

    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: recipe not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from None
        data.setdefault("name", path.stem)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.epochs=3")
        key, text = item.split("=", 1)
        apply_override(data, key.strip(), parse_value(text))
    where = str(path) if path is not None else "config"
    return from_mapping(TrainConfig, data, where).validate()


def save_config(config: TrainConfig, path: str | Path) -> None:
    import yaml

    from hir_edge.io import atomic_write_text

    atomic_write_text(
        path, yaml.safe_dump(json.loads(json.dumps(config.to_dict())), sort_keys=False)
    )
