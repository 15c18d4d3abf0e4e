"""The training data of a recipe: find the HDF5 file, or generate it with ``data synth``."""

from __future__ import annotations

import logging
from pathlib import Path

from hir_edge.errors import ConfigError
from hir_edge.train.config import TrainConfig
from hir_edge.train.distributed import DistEnv

log = logging.getLogger(__name__)

SPECIMENS_FILE = "specimens.h5"


def synth_config_of(config: TrainConfig):
    """The SynthConfig a recipe asks for; a missing optional barcode file falls back to a
    generated world (so a recipe that prefers real BOLD barcodes still runs without them)."""
    from hir_edge.data.synth import SynthConfig

    settings = dict(config.data.synth.settings)  # type: ignore[union-attr]
    barcodes = settings.get("barcodes")
    if barcodes and not Path(barcodes).is_file():
        if not config.data.synth.barcodes_optional:  # type: ignore[union-attr]
            raise ConfigError(f"data.synth.settings.barcodes: {barcodes} not found")
        log.warning("%s is absent: generating a synthetic world instead of real barcodes", barcodes)
        settings["barcodes"] = None
    return SynthConfig.from_dict(settings)


def dataset_path(config: TrainConfig, env: DistEnv, quiet: bool = False) -> Path:
    """The HDF5 file to train on, generating (and caching) it first when the recipe says how.

    Only rank 0 generates; the other processes wait for it.
    """
    if config.data.path:  # a file named: train on it or on nothing, never on stand-in data
        if not Path(config.data.path).is_file():
            raise ConfigError(f"data.path {config.data.path}: no such file")
        return Path(config.data.path)
    if config.data.synth is None:
        raise ConfigError("data.path is empty and the recipe has no data.synth section")
    from hir_edge.data.synth import dataset_is_current, generate_dataset

    out = Path(config.data.synth.out)
    synth = synth_config_of(config)
    if env.is_main and not dataset_is_current(out, synth):
        source = synth.barcodes or "a generated world"
        if not quiet:
            import sys

            print(f"dataset {out} is absent or stale: generating it from {source}", file=sys.stderr)
        generate_dataset(synth, out, force=out.exists(), quiet=quiet)
    env.barrier()
    return out / SPECIMENS_FILE
