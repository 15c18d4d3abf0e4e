"""The synthetic data generator: determinism, trait hierarchy, DNA model, splits, files, CLI."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from hir_edge.data.hdf5 import SpecimenStore, list_splits, read_attrs
from hir_edge.data.synth import SynthConfig, dataset_is_current, evolve, generate_dataset
from hir_edge.data.synth.draw import draw_specimen
from hir_edge.data.synth.generate import species_counts
from hir_edge.data.synth.world import PLANS, assign_traits, generate_world
from hir_edge.errors import ConfigError
from hir_edge.io import OutputExistsError
from hir_edge.taxonomy import RANKS, Taxonomy

SMALL = {
    "seed": 7,
    "n_orders": 3,
    "families_per_order": [2, 2],
    "genera_per_family": [2, 2],
    "species_per_genus": [2, 3],
    "n_specimens": 150,
    "image_size": 24,
}


def _metadata(folder: Path) -> list[dict[str, str]]:
    with (folder / "metadata.tsv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _images(folder: Path) -> dict[str, list[bytes]]:
    path = folder / "specimens.h5"
    out = {}
    for split in list_splits(path):
        with SpecimenStore(path, split) as store:
            out[split] = [store.image_bytes(i) for i in range(len(store))]
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, SynthConfig]:
    """A small world with held-out species and generous label cuts, tiny photos."""
    config = SynthConfig.from_dict(
        {
            **SMALL,
            "n_specimens": 1500,
            "image_size": 16,
            "unseen_species_frac": 0.25,
            "label_only_order_frac": 0.1,
            "label_only_family_frac": 0.2,
            "species_zipf": 1.2,
            "min_per_species": 2,
        }
    )
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate_dataset(config, out, quiet=True)
    return out, config


# --------------------------------------------------------------------------- settings
def test_unknown_setting_is_named():
    with pytest.raises(ConfigError) as err:
        SynthConfig.from_dict({"n_specimen": 10})
    assert str(err.value).startswith(
        "synth settings: unknown key 'n_specimen'; did you mean 'n_specimens'? (allowed: "
    )


def test_invalid_settings_are_explained():
    with pytest.raises(ConfigError, match=r"train\+val\+test must sum to 1, got 1.1"):
        SynthConfig(train_frac=0.8)
    with pytest.raises(ConfigError, match=r"species_per_genus=\[3, 2\] is invalid"):
        SynthConfig.from_dict({"species_per_genus": [3, 2]})
    with pytest.raises(ConfigError, match="expected decreasing values"):
        SynthConfig.from_dict({"divergence": [0.1, 0.15, 0.1, 0.05, 0.01]})


def test_settings_round_trip_and_file(tmp_path):
    config = SynthConfig.from_dict({**SMALL, "unseen_species_frac": 0.1})
    assert SynthConfig.from_dict(config.to_dict()) == config
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()
    path = tmp_path / "synth.yaml"
    path.write_text("synth:\n  seed: 7\n  n_orders: 3\n  species_per_genus: [2, 3]\n")
    loaded = SynthConfig.from_file(path)
    assert (loaded.seed, loaded.n_orders, loaded.species_per_genus) == (7, 3, (2, 3))
    path.write_text("seed: 1\nimage_sise: 64\n")
    with pytest.raises(
        ConfigError,
        match=r"synth.yaml: synth settings: unknown key 'image_sise'; did you mean 'image_size'",
    ):
        SynthConfig.from_file(path)


def test_too_few_specimens_for_the_world():
    config = SynthConfig.from_dict({**SMALL, "n_specimens": 10})
    with pytest.raises(ConfigError, match="n_specimens=10 is too small: the world has"):
        species_counts(20, config)


# --------------------------------------------------------------------------- world
def test_demo_names_are_unique_and_marked():
    world = generate_world(3, 6, (2, 4), (2, 3), (2, 4))
    for level, rank in enumerate(RANKS):
        names = [p[-1] for p in world.taxa(level)]
        assert all(n.startswith("Demo") for n in names), rank
        assert len(set(names)) == len(names), f"duplicate {rank} names"
    assert all(p[0].endswith("ptera") for p in world.taxa(0))
    assert all(p[1].endswith("idae") for p in world.taxa(1))
    assert all(s.startswith(g + " ") and " " not in s[len(g) + 1 :] for _, _, g, s in world.species)
    assert generate_world(3, 6, (2, 4), (2, 3), (2, 4)) == world
    assert generate_world(4, 6, (2, 4), (2, 3), (2, 4)).species != world.species


def test_traits_follow_the_hierarchy():
    world = generate_world(11, 5, (3, 3), (3, 3), (3, 3))
    traits = assign_traits(world, 11)

    def by(level: int) -> dict[tuple[str, ...], set]:
        return {
            key: {traits[p] for p in world.species if p[: level + 1] == key}
            for key in world.taxa(level)
        }

    # Everything a rank decides is shared by all species under that taxon ...
    for group in by(0).values():
        assert len({t.order for t in group}) == 1
    for group in by(1).values():
        assert len({t.palette for t in group}) == 1
    for group in by(2).values():
        assert len({t.pattern for t in group}) == 1
    # ... and sister taxa differ in it.
    plans = [
        traits[next(p for p in world.species if p[0] == o[0])].order.plan for o in world.taxa(0)
    ]
    assert len(set(plans)) == len(plans) == 5 and set(plans) <= set(PLANS)
    for level, get in ((1, "palette"), (2, "pattern"), (3, "detail")):
        parents: dict[tuple, list] = {}
        for key in world.taxa(level):
            species = next(p for p in world.species if p[: level + 1] == key)
            parents.setdefault(key[:-1], []).append(getattr(traits[species], get))
        for sisters in parents.values():
            if get == "palette":
                hues = sorted(s.hue for s in sisters)
                gaps = [b - a for a, b in itertools.pairwise(hues)] + [360 - hues[-1] + hues[0]]
                assert min(gaps) >= 40
            elif get == "pattern":
                assert len({(s.kind, s.count) for s in sisters}) == len(sisters)
            else:
                assert len({(s.kind, s.count) for s in sisters}) == len(sisters)
    # Same seed, same look; another seed, another look.
    assert assign_traits(world, 11) == traits
    other = assign_traits(world, 12)
    assert sum(other[p].palette != traits[p].palette for p in world.species) > 0.9 * len(traits)


def test_photos_are_deterministic_and_sized():
    world = generate_world(0, 2, (1, 1), (1, 1), (2, 2))
    traits = assign_traits(world, 0)[world.species[0]]
    a = draw_specimen(traits, np.random.default_rng(5), 96)
    b = draw_specimen(traits, np.random.default_rng(5), 96)
    c = draw_specimen(traits, np.random.default_rng(6), 96)
    assert a.size == (96, 96) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def _blur_ratio(pairs, traits, seeds) -> tuple[float, float]:
    """RMS difference of paired photos (same nuisance) at 64 px, raw and after a k=5 blur.

    RMS, not mean |diff|: a box blur spreads a one-signed mark without changing its sum, so the
    mean absolute difference hides what the blur does to how visible the mark is.
    """
    raw, blurred = [], []
    for a, b in pairs:
        for seed in seeds:
            x, y = (
                draw_specimen(traits[s], np.random.default_rng(seed), 128).resize(
                    (64, 64), Image.BILINEAR
                )
                for s in (a, b)
            )
            raw.append(np.sqrt(((np.asarray(x, float) - np.asarray(y, float)) ** 2).mean()))
            xb, yb = (im.filter(ImageFilter.BoxBlur(2)) for im in (x, y))  # 5x5 box
            blurred.append(np.sqrt(((np.asarray(xb, float) - np.asarray(yb, float)) ** 2).mean()))
    return float(np.mean(raw)), float(np.mean(blurred))


def test_blur_wipes_species_detail_but_not_genus_pattern():
    world = generate_world(5, 4, (2, 2), (2, 2), (2, 2))
    traits = assign_traits(world, 5)
    species_pairs, genus_pairs = [], []
    for genus in world.taxa(2):
        a, b = [p for p in world.species if p[:3] == genus][:2]
        species_pairs.append((a, b))
    for family in world.taxa(1):
        g1, g2 = [g for g in world.taxa(2) if g[:2] == family][:2]
        first = lambda g: next(p for p in world.species if p[:3] == g)  # noqa: E731
        genus_pairs.append((first(g1), first(g2)))
    seeds = range(3)
    sp_raw, sp_blur = _blur_ratio(species_pairs, traits, seeds)
    ge_raw, ge_blur = _blur_ratio(genus_pairs, traits, seeds)
    print(
        f"RMS diff at 64 px: species pairs {sp_raw:.2f} -> {sp_blur:.2f} after k=5 blur "
        f"({sp_blur / sp_raw:.0%} kept); genus pairs {ge_raw:.2f} -> {ge_blur:.2f} "
        f"({ge_blur / ge_raw:.0%} kept)"
    )
    assert sp_raw > 1.0  # the detail is there at full resolution
    assert ge_raw > 3 * sp_raw  # genus patterns are much larger marks
    assert sp_blur / sp_raw < 0.45 < 0.5 < ge_blur / ge_raw
    assert sp_blur / sp_raw < 0.7 * (ge_blur / ge_raw)


# --------------------------------------------------------------------------- DNA
def _pair_distances(seed: int = 1):
    world = generate_world(seed, 4, (3, 3), (2, 2), (3, 3))
    counts = [8] * len(world.species)
    divergence = SynthConfig().divergence
    seqs = evolve.evolve_tree(world.species, counts, divergence, 658, np.random.default_rng(seed))
    x = np.concatenate(seqs)
    paths = np.array([p for p, n in zip(world.species, counts) for _ in range(n)])
    rng = np.random.default_rng(0)
    i, j = rng.integers(len(x), size=(2, 30000))
    keep = i != j
    i, j = i[keep], j[keep]
    shared = (paths[i] == paths[j]).cumprod(axis=1).sum(axis=1)  # ranks in common
    d = evolve.p_distances(x[i], x[j])
    return x, i, j, shared, d, divergence


def test_barcode_divergence_follows_the_tree():
    x, i, j, shared, d, target = _pair_distances()
    # shared = 0: different orders ... 4: same species
    means = [float(d[shared == k].mean()) for k in range(5)]
    names = ["between orders", "between families", "between genera", "between species",
             "within species"]  # fmt: skip
    print("mean p-distance: " + ", ".join(f"{n} {m:.3f}" for n, m in zip(names, means)))
    assert means == sorted(means, reverse=True)
    for measured, wanted in zip(means, target):
        assert abs(measured - wanted) < 0.3 * wanted
    # Codon position 3 changes far more than 1, which changes more than 2; transitions dominate.
    diff = x[i] != x[j]
    per_pos = [float(diff[:, k::3].mean()) for k in range(3)]
    assert per_pos[2] > 3 * per_pos[0] > 3 * per_pos[1]
    close = diff[shared == 3]
    ts = ((x[i][shared == 3] ^ x[j][shared == 3]) == 2) & close
    assert ts.sum() > 0.55 * close.sum()


def test_barcodes_are_coding_at_rich_and_trimmed():
    x, *_ = _pair_distances(2)
    assert not evolve.stop_codons(x).any()
    freqs = {b: float((x == k).mean()) for k, b in enumerate("ACGT")}
    assert 0.33 < freqs["T"] < 0.43 and 0.25 < freqs["A"] < 0.35
    assert 0.12 < freqs["C"] < 0.21 and 0.12 < freqs["G"] < 0.21
    reads = evolve.trim_reads(x, 500, 0.5, np.random.default_rng(0))
    lengths = np.array([len(r) for r in reads])
    assert lengths.min() >= 500 and lengths.max() == 658
    assert 0.4 < (lengths == 658).mean() < 0.6
    # Each trimmed read is a substring of its barcode, so one of its frames is stop-free.
    for read, full in zip(reads[:200], x[:200]):
        assert read in evolve.decode(full)
        codes = evolve.encode(read)
        assert any(not evolve.stop_codons(codes, frame).any() for frame in range(3))


def test_expected_distance_inverts():
    lengths = evolve.branch_lengths((0.22, 0.15, 0.10, 0.05, 0.008))
    assert all(t > 0 for t in lengths)
    depth = sum(lengths)
    assert evolve.expected_p_distance(2 * depth) == pytest.approx(0.22, abs=1e-6)
    assert evolve.expected_p_distance(2 * lengths[-1]) == pytest.approx(0.008, abs=1e-6)


# --------------------------------------------------------------------------- dataset
def test_dataset_files_agree(dataset):
    out, config = dataset
    rows = _metadata(out)
    info = json.loads((out / "synth.json").read_text())
    assert list(rows[0]) == ["processid", "sampleid", "split", *RANKS, "nucleotides"]
    assert len(rows) == config.n_specimens
    assert info["config_hash"] == config.config_hash() and info["source"] == "generated"
    assert read_attrs(out / "specimens.h5")["synth"]["config_hash"] == config.config_hash()
    assert set(list_splits(out / "specimens.h5")) == {"train", "val", "test", "test_unseen"}
    for split in ("train", "val", "test", "test_unseen"):
        part = [r for r in rows if r["split"] == split]
        assert info["splits"][split]["specimens"] == len(part)
        with SpecimenStore(out / "specimens.h5", split) as store:
            assert store.column("processid") == [r["processid"] for r in part]
            assert store.column("barcode") == [r["nucleotides"] for r in part]
            lineages = [tuple(r[k] or None for k in RANKS) for r in part]
            assert store.lineages() == lineages
            img = Image.open(io.BytesIO(store.image_bytes(0)))
            assert img.size == (16, 16) and img.format == "JPEG"
    train = [tuple(r[k] or None for k in RANKS) for r in rows if r["split"] == "train"]
    assert Taxonomy.load(out / "taxonomy.json") == Taxonomy.from_lineages(train)
    assert all(500 <= len(r["nucleotides"]) <= 658 for r in rows)


def test_split_is_closed_set_with_unseen_species(dataset):
    out, _ = dataset
    rows = _metadata(out)
    full = [r for r in rows if r["species"]]
    train_species = {r["species"] for r in full if r["split"] == "train"}
    train_genera = {r["genus"] for r in rows if r["split"] == "train" and r["genus"]}
    for r in full:
        if r["split"] in ("val", "test"):
            assert r["species"] in train_species
    unseen = {r["species"] for r in full if r["split"] == "test_unseen"}
    n_species = len({r["species"] for r in full})
    assert len(unseen) == round(0.25 * n_species)
    assert not unseen & train_species
    assert {s.split(" ")[0] for s in unseen} <= train_genera
    assert len({r["processid"] for r in rows}) == len(rows)


def test_rare_species_train_whole_and_splits_are_proportional():
    from hir_edge.data.synth.generate import _Row, assign_splits

    config = SynthConfig.from_dict({**SMALL, "n_specimens": 500})
    species = [("o", "f", "g", f"g s{k}") for k in range(5)]
    sizes = [1, 2, 3, 10, 100]
    rows = [_Row(f"p{k}-{i}", "", species[k], "", 0) for k, n in enumerate(sizes) for i in range(n)]
    assign_splits(rows, species, config)
    splits = {k: Counter(r.split for r in rows if r.species == species[k]) for k in range(5)}
    assert splits[0] == {"train": 1} and splits[1] == {"train": 2}
    assert splits[2] == {"train": 1, "val": 1, "test": 1}
    assert splits[3] == {"train": 7, "val": 1, "test": 2}
    assert splits[4] == {"train": 70, "val": 10, "test": 20}


def test_label_only_shares(dataset):
    out, config = dataset
    rows = _metadata(out)
    n = len(rows)
    order_only = sum(bool(r["order"]) and not r["family"] for r in rows) / n
    family_only = sum(bool(r["family"]) and not r["genus"] for r in rows) / n
    assert abs(order_only - config.label_only_order_frac) < 0.025
    assert abs(family_only - config.label_only_family_frac) < 0.03
    assert all(r["order"] for r in rows)
    assert all(bool(r["genus"]) == bool(r["species"]) for r in rows)


def test_long_tail():
    config = SynthConfig()
    counts = species_counts(100, config)
    assert counts.sum() == config.n_specimens and counts.min() >= config.min_per_species
    assert counts.max() >= 20 * counts.min()
    top10 = np.sort(counts)[::-1][:10].sum() / counts.sum()
    assert top10 > 0.35  # a tenth of the species hold over a third of the specimens


def test_same_seed_same_dataset_other_seed_differs(tmp_path):
    config = SynthConfig.from_dict(SMALL)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_dataset(config, a, quiet=True)
    generate_dataset(config, b, quiet=True)
    generate_dataset(config.replace(seed=8), c, quiet=True)
    assert (a / "metadata.tsv").read_bytes() == (b / "metadata.tsv").read_bytes()
    assert (a / "synth.json").read_bytes() == (b / "synth.json").read_bytes()
    assert (a / "taxonomy.json").read_bytes() == (b / "taxonomy.json").read_bytes()
    assert _images(a) == _images(b)
    assert (a / "metadata.tsv").read_bytes() != (c / "metadata.tsv").read_bytes()
    assert _images(a)["train"] != _images(c)["train"]
    assert dataset_is_current(a, config)
    assert not dataset_is_current(a, config.replace(seed=8))
    assert not dataset_is_current(tmp_path / "missing", config)
    with pytest.raises(OutputExistsError):
        generate_dataset(config, a, quiet=True)
    generate_dataset(config.replace(seed=8), a, force=True, quiet=True)
    assert (a / "metadata.tsv").read_bytes() == (c / "metadata.tsv").read_bytes()


# --------------------------------------------------------------------------- real barcodes
@pytest.mark.realdata
def test_real_barcodes_keep_real_taxonomy_and_dna(bold_100sp, tmp_path):
    config = SynthConfig.from_dict(
        {"barcodes": str(bold_100sp), "max_species": 10, "image_size": 16, "seed": 3}
    )
    summary = generate_dataset(config, tmp_path / "bold", quiet=True)
    with bold_100sp.open(newline="", encoding="utf-8") as handle:
        source = {r["processid"]: r for r in csv.DictReader(handle, delimiter="\t")}
    rows = _metadata(tmp_path / "bold")
    assert len({tuple(source[r["processid"]][f"{k}_name"] for k in RANKS) for r in rows}) == 10
    assert len(rows) == 500 and summary.taxa["species"] == 10
    for r in rows:
        real = source[r["processid"]]
        assert r["nucleotides"] == real["nucleotides"]
        assert r["sampleid"] == real["sampleid"]
        for k in RANKS:
            assert r[k] in ("", real[f"{k}_name"])
    assert "BOLD file" in summary.source and "sha256" in summary.source
    assert dataset_is_current(tmp_path / "bold", config)
    assert not any(r["species"].startswith("Demo") for r in rows)


# --------------------------------------------------------------------------- CLI
def test_cli_config_file_and_overrides(tmp_path):
    from hir_edge.cli.data_synth import synth

    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({**SMALL, "seed": 2}))
    runner = CliRunner()
    result = runner.invoke(
        synth, ["-o", str(tmp_path / "out"), "--config", str(settings), "--seed", "5", "-q"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "out" / "synth.json").read_text())
    assert info["config"]["seed"] == 5 and info["config"]["n_orders"] == 3
    assert info["config"]["image_size"] == 24  # from the file, not the option's default
    again = runner.invoke(synth, ["-o", str(tmp_path / "out"), "--config", str(settings)])
    assert isinstance(again.exception, OutputExistsError)
    missing = runner.invoke(synth, ["-o", str(tmp_path / "x"), "--barcodes", "nope.tsv"])
    assert missing.exit_code == 2
    assert "'--barcodes': File 'nope.tsv' does not exist" in missing.output
