"""Placement of reads: the per-rank models, their thresholds and bands, and the open-set fit."""

from __future__ import annotations

import numpy as np
import pytest

from hir_edge.errors import BundleError
from hir_edge.export.open_set import (
    CLASSES,
    NO_TAXON,
    OutgroupTable,
    outgroup_class,
    outgroup_labels,
    queries,
    read_class,
)
from hir_edge.export.placement_fit import _thresholds, fit_network, fit_placement
from hir_edge.runtime.placement import (
    BASE_FEATURES,
    FEATURES,
    Placement,
    fit_logistic,
    nest,
    placement_features,
)
from hir_edge.taxonomy import Taxonomy

RANKS = ("order", "family", "genus", "species")


def _placement(**kw) -> Placement:
    f = len(FEATURES)
    values = {
        "ranks": RANKS,
        "mean": ((0.0,) * f,) * 4,
        "scale": ((1.0,) * f,) * 4,
        "weights": ((0.0, 1.0, *(0.0,) * (f - 1)),) * 4,  # P = sigmoid(log_odds)
        "thresholds": (0.9, 0.9, 0.9, 0.9),
        "bands": (0.70, 0.80, 0.88, 0.97),
    }
    return Placement(**{**values, **kw})


def test_probabilities_follow_the_weights_and_never_reach_one():
    placement = _placement()
    x = np.zeros((2, 4, len(FEATURES)))
    x[0, :, 0] = [3.0, 1.0, 0.0, 50.0]
    p = placement.probabilities(x)
    assert p[0, :3] == pytest.approx(1 / (1 + np.exp(-np.array([3.0, 1.0, 0.0]))))
    assert p[0, 3] == 0.999  # capped: no answer is claimed certain
    assert p[1] == pytest.approx([0.5] * 4)


def test_a_placement_fitted_on_the_base_features_reads_only_those():
    """Bundles exported before the second-order terms name 7 features: the model picks its
    columns out of the full feature array, by name."""
    f = len(BASE_FEATURES)
    old = Placement.from_dict(
        {
            **_placement().to_dict(),
            "features": list(BASE_FEATURES),
            "mean": [[0.0] * f] * 4,
            "scale": [[1.0] * f] * 4,
            "weights": [[0.0] * 6 + [2.0, 0.0]] * 4,  # P = sigmoid(2 * called)
        }
    )
    x = np.zeros((1, 4, len(FEATURES)))
    x[0, :, FEATURES.index("called")] = 0.5
    x[0, :, len(BASE_FEATURES) :] = 100.0  # columns this model does not read
    assert old.features == BASE_FEATURES
    assert old.probabilities(x)[0] == pytest.approx([1 / (1 + np.exp(-1.0))] * 4)
    assert old.to_dict()["features"] == list(BASE_FEATURES)


def test_the_answer_is_the_deepest_rank_whose_prefix_passes():
    placement = _placement(thresholds=(0.9, 0.8, 0.95, 0.99))
    probs = np.array(
        [
            [0.99, 0.85, 0.96, 0.995],  # all pass: species
            [0.99, 0.85, 0.90, 0.999],  # genus fails: family, whatever species says
            [0.80, 0.99, 0.99, 0.999],  # order fails: nothing
        ]
    )
    usable = np.ones_like(probs, dtype=bool)
    assert placement.assign(probs, usable).tolist() == [3, 1, -1]
    usable[0, 3] = False  # no species on the path
    assert placement.assign(probs, usable).tolist() == [2, 1, -1]


def test_absent_rank_is_the_coarsest_band_the_hit_misses():
    placement = _placement()
    assert placement.absent_rank(0.99) is None
    assert placement.absent_rank(0.95) == 3  # a species 5% away: the species is absent
    assert placement.absent_rank(0.85) == 2
    assert placement.absent_rank(0.60) == 0


def test_round_trip_and_a_foreign_feature_set_is_refused():
    placement = _placement()
    assert Placement.from_dict(placement.to_dict()) == placement
    other = {**placement.to_dict(), "features": ["identity"]}
    with pytest.raises(BundleError, match=r"placement model uses features \['identity'\]"):
        Placement.from_dict(other)


def test_a_hidden_layer_by_hand_and_its_round_trip():
    """One unit per rank reading log_odds: P = sigmoid(b + w * tanh(2 * x + 0.5))."""
    f = len(FEATURES)
    unit = ((2.0,), *((0.0,),) * (f - 1))  # [feature][unit]
    placement = _placement(
        hidden_weights=(unit,) * 4,
        hidden_bias=((0.5,),) * 4,
        weights=((-1.0, 3.0),) * 4,
    )
    x = np.zeros((1, 4, f))
    x[0, :, 0] = [0.0, 1.0, -1.0, 0.25]
    expected = 1 / (1 + np.exp(-(-1.0 + 3.0 * np.tanh(2.0 * x[0, :, 0] + 0.5))))
    assert placement.probabilities(x)[0] == pytest.approx(expected)
    assert Placement.from_dict(placement.to_dict()) == placement
    assert "hidden_weights" not in _placement().to_dict()  # a logistic bundle's format
    half = {**placement.to_dict(), "hidden_bias": None}
    with pytest.raises(BundleError, match="has hidden_weights or hidden_bias, not both"):
        Placement.from_dict(half)


def test_the_network_learns_what_a_logistic_regression_cannot():
    """Right exactly when two signs differ (XOR): no linear boundary does much better than
    chance, four tanh units do."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2))
    x = np.concatenate([x, -x, x * [1, -1], x * [-1, 1]])  # symmetric: the best line is none
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(float)
    w1, b1, w = fit_network(x, y, np.ones(2000), units=4)
    hit = 1 / (1 + np.exp(-(w[0] + np.tanh(x @ w1 + b1) @ w[1:]))) > 0.5
    assert (hit == y).mean() > 0.85  # 0.90: the L2 penalty keeps the corners soft
    linear = fit_logistic(x, y)
    assert ((linear[0] + x @ linear[1:] > 0) == y).mean() == pytest.approx(0.5, abs=0.02)
    again = fit_network(x, y, np.ones(2000), units=4)
    assert all(np.array_equal(a, b) for a, b in zip(again, (w1, b1, w)))  # seeded


def _one_read(labels, identity, divergence, hit_labels, candidate_identity, called) -> dict:
    """Features by name of one read on path (0, 0) at P (0.9, 0.5), aligned to the first
    references of ``labels`` with ``candidate_identity``."""
    f = placement_features(
        path_probs=np.array([[0.9, 0.5]]),
        path_ids=np.array([[0, 0]]),
        identity=np.array([identity]),
        divergence=np.array([divergence]),
        hit_labels=np.array([hit_labels]),
        candidate_ids=[np.arange(len(candidate_identity))],
        candidate_identity=[np.array(candidate_identity)],
        candidate_labels=labels,
        called=np.array([called]),
    )[0]
    return dict(zip(FEATURES, f.T))


def test_features_by_hand():
    """One read, 2 ranks; three aligned references: two in the path's genus, one outside."""
    labels = np.array([[0, 0], [0, 0], [0, 1], [1, 2]])
    names = _one_read(labels, 0.97, 0.01, [0, 0], [0.97, 0.95, 0.90], called=325)
    assert names["log_odds"] == pytest.approx([np.log(9), 0.0])
    assert names["labelled_identity"].tolist() == [0.97, 0.97]
    assert names["divergence"].tolist() == [0.01, 0.01]
    # order: every candidate inside, the gap falls back to 0.1; genus: 0.97 - 0.90
    assert names["labelled_gap"] == pytest.approx([0.1, 0.07])
    assert names["labelled_hit_agrees"].tolist() == [1.0, 1.0]
    assert names["called"].tolist() == [0.5, 0.5]
    assert names["hit_unnamed"].tolist() == [0.0, 0.0]
    assert names["labelled_identity*divergence"] == pytest.approx([0.0097, 0.0097])
    assert names["divergence^2"] == pytest.approx([1e-4, 1e-4])
    assert names["labelled_identity^2"] == pytest.approx([0.9409, 0.9409])
    assert names["labelled_identity*called"] == pytest.approx([0.485, 0.485])
    assert names["labelled_gap*labelled_identity"] == pytest.approx([0.097, 0.0679])
    assert names["sqrt(divergence)"] == pytest.approx([0.1, 0.1])


def test_a_reference_named_only_to_a_coarser_rank_says_nothing_about_the_finer_one():
    """The nearest reference (0.99) is named to order only: at genus, the nearest *named*
    reference decides identity, agreement and gap, as if the unnamed one were not there."""
    labels = np.array([[0, -1], [0, 0], [0, 1]])
    names = _one_read(labels, 0.99, 0.0, [0, -1], [0.99, 0.96, 0.90], called=650)
    assert names["labelled_identity"] == pytest.approx([0.99, 0.96])
    assert names["labelled_hit_agrees"].tolist() == [1.0, 1.0]  # the best hit alone: [1, 0]
    assert names["labelled_gap"] == pytest.approx([0.1, 0.06])  # counting it: [0.1, -0.03]
    assert names["hit_unnamed"].tolist() == [0.0, 1.0]


def test_the_margin_is_the_nearest_named_reference_against_its_own_radius():
    """The best hit (reference 0) is named at order only: at order its radius counts, at genus
    that of reference 1, the nearest named there; an unknown radius gives 0."""
    labels = np.array([[0, -1], [0, 0], [0, 1]])
    radii = np.array([[0.80, np.nan], [0.85, 0.93], [0.85, 0.93]])
    asked = []

    def radius_of(i, j, level):
        asked.append((i, j, level))
        return float(radii[j, level])

    f = placement_features(
        path_probs=np.array([[0.9, 0.5]]),
        path_ids=np.array([[0, 0]]),
        identity=np.array([0.99]),
        divergence=np.array([0.0]),
        hit_labels=np.array([[0, -1]]),
        candidate_ids=[np.arange(3)],
        candidate_identity=[np.array([0.99, 0.96, 0.90])],
        candidate_labels=labels,
        called=np.array([650]),
        hit_refs=np.array([0]),
        radius_of=radius_of,
    )[0]
    margin = f[:, FEATURES.index("labelled_margin")]
    assert margin == pytest.approx([0.99 - 0.80, 0.96 - 0.93])
    assert asked == [(0, 0, 0), (0, 1, 1)]
    radii[1, 1] = np.nan
    asked.clear()
    again = placement_features(
        np.array([[0.9, 0.5]]),
        np.array([[0, 0]]),
        np.array([0.99]),
        np.array([0.0]),
        np.array([[0, -1]]),
        [np.arange(3)],
        [np.array([0.99, 0.96, 0.90])],
        labels,
        np.array([650]),
        np.array([0]),
        radius_of,
    )[0]
    assert again[:, FEATURES.index("labelled_margin")].tolist() == [pytest.approx(0.19), 0.0]
    # without radii (older bundles) the feature is 0 and nothing else moves
    names = _one_read(labels, 0.99, 0.0, [0, -1], [0.99, 0.96, 0.90], called=650)
    assert names["labelled_margin"].tolist() == [0.0, 0.0]
    assert np.array_equal(
        np.delete(again, FEATURES.index("labelled_margin"), axis=1),
        np.delete(
            np.stack([names[n] for n in FEATURES], axis=1),
            FEATURES.index("labelled_margin"),
            axis=1,
        ),
    )


def test_logistic_fit_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 1))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.5 + 2.0 * x[:, 0])))).astype(float)
    w = fit_logistic(x, y, l2=0.0)
    assert w == pytest.approx([0.5, 2.0], abs=0.15)


def test_read_class_is_the_deepest_rank_left_in_the_library():
    library = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3]])
    read = np.array([0, 0, 0, 0])
    assert read_class(read, None, library) == "known"
    assert read_class(read, (3, 0), library) == "absent species"  # genus 0 keeps species 1
    assert read_class(np.array([0, 0, 1, 2]), (3, 2), library) == "absent genus"  # monotypic
    assert read_class(read, (1, 0), library) == "absent family"
    assert read_class(np.array([0, 1, 2, 3]), (1, 1), library) == "absent family"


def test_records_that_may_be_of_a_hidden_taxon_go_with_it():
    """A record named only to the hidden taxon's family (or order) may be of it: hidden, it
    takes the family with it when no other record names that family."""
    library = np.array([[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 2, 2], [0, 1, -1, -1]])
    assert read_class(np.array([0, 1, 2, 2]), (2, 2), library) == "absent family"
    assert read_class(np.array([0, 0, 1, 1]), (2, 1), library) == "absent genus"
    genus_only = np.array([[0, 0, 0, 0], [0, 0, 0, -1], [0, 0, 1, 1]])
    assert read_class(np.array([0, 0, 0, 0]), (3, 0), genus_only) == "absent genus"


def test_a_taxon_is_hidden_whole():
    """A monotypic genus: its species hidden leaves the genus without a record, so the read
    is asked with the genus hidden (its prompt goes too), not with the species hidden."""
    library = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3]])
    asked = queries(
        [],
        library[:0],
        ["ACGT" * 50, "TTGA" * 50],
        library[[0, 2]],
        library,
        {"clean": lambda r, i: r},
    )
    hidden = sorted((q.klass, q.hidden) for q in asked if q.hidden is not None)
    assert hidden == [
        ("absent family", (1, 0)),
        ("absent family", (1, 0)),
        ("absent genus", (2, 0)),
        ("absent genus", (2, 1)),  # monotypic genus 1: hidden at genus, not (3, 2)
        ("absent species", (3, 0)),  # genus 0 keeps species 1
    ]


def _two_family_taxonomy() -> tuple[Taxonomy, np.ndarray]:
    taxonomy = Taxonomy.from_lineages(
        [
            ("Diptera", "Muscidae", "Musca", "Musca domestica"),
            ("Diptera", "Muscidae", "Musca", "Musca autumnalis"),
            ("Diptera", "Syrphidae", "Eristalis", "Eristalis tenax"),
        ]
    )
    # the library holds two of the three species: Musca autumnalis is in the taxonomy only
    library = taxonomy.encode_many(
        [
            ("Diptera", "Muscidae", "Musca", "Musca domestica"),
            ("Diptera", "Syrphidae", "Eristalis", "Eristalis tenax"),
        ]
    )
    return taxonomy, library


def test_outgroup_labels_mark_absent_taxa_wrong_and_unnamed_ranks_unjudged():
    taxonomy, library = _two_family_taxonomy()
    absent_genus = outgroup_labels(
        ("Diptera", "Muscidae", "Fannia", "Fannia canicularis"), taxonomy
    )
    assert absent_genus.tolist() == [0, 0, NO_TAXON, NO_TAXON]
    assert outgroup_class(absent_genus, library) == "absent genus"
    absent_family = outgroup_labels(("Diptera", "Tipulidae", None, None), taxonomy)
    assert absent_family.tolist() == [0, NO_TAXON, -1, -1]
    assert outgroup_class(absent_family, library) == "absent family"
    absent_order = outgroup_labels(("Coleoptera", "Carabidae", "Carabus", None), taxonomy)
    assert outgroup_class(absent_order, library) == "absent order"
    # in the taxonomy, not in the library: a species the library lacks
    unheld = outgroup_labels(("Diptera", "Muscidae", "Musca", "Musca autumnalis"), taxonomy)
    assert unheld.tolist() == list(
        taxonomy.encode(("Diptera", "Muscidae", "Musca", "Musca autumnalis"))
    )
    assert unheld[3] >= 0 and unheld[3] not in library[:, 3]
    assert outgroup_class(unheld, library) == "absent species"
    # a library species, and a record without an order, are not outgroups
    held = outgroup_labels(("Diptera", "Muscidae", "Musca", "Musca domestica"), taxonomy)
    assert outgroup_class(held, library) is None
    assert (
        outgroup_class(outgroup_labels((None, "Muscidae", None, None), taxonomy), library) is None
    )


def test_outgroups_are_read_from_a_bold_table_and_asked_in_groups_of_their_own(tmp_path):
    taxonomy, library = _two_family_taxonomy()
    read = "ACGT" * 100
    table = tmp_path / "outgroups.tsv"
    table.write_text(
        "processid\torder_name\tfamily_name\tgenus_name\tspecies_name\tnucleotides\n"
        f"A1\tDiptera\tMuscidae\tFannia\tFannia canicularis\t{read}\n"
        f"A2\tDiptera\tMuscidae\tMusca\tMusca domestica\t{read}\n"  # a library species
        f"A3\tDiptera\tTipulidae\tTipula\tTipula paludosa\t{read}\n"
        "A4\tDiptera\tTipulidae\tTipula\tTipula oleracea\t\n"  # no barcode
    )
    outgroups = OutgroupTable(table, taxonomy, library)
    assert outgroups.classes == ["absent genus", "absent family"]
    assert {pos: labels.tolist() for pos, (_, labels) in outgroups.fetch([0, 1]).items()} == {
        0: [0, 0, NO_TAXON, NO_TAXON],
        1: [0, NO_TAXON, NO_TAXON, NO_TAXON],
    }
    asked = queries(
        [read],
        library[:1],
        [],
        library[:0],
        library,
        {"clean": lambda r, i: r},
        outgroups=outgroups,
    )
    outside = sorted(q.group for q in asked if q.source == "outgroups")
    assert outside == ["absent family, outgroups|clean", "absent genus, outgroups|clean"]
    assert {q.group for q in asked if q.source == "library"} >= {"known|clean"}


def test_an_outgroup_table_read_twice_draws_per_class_after_the_library(tmp_path):
    """The export reads a user's outgroup table twice (classes, then the records drawn) rather
    than holding it. Per class in the order first met, a seeded draw of 3 of its 12 usable
    records (records of no outgroup class between them: no barcode, a library species), made
    after the library's draws: with no library reads, the draws are the seed's first."""
    from hir_edge.export.library import cleaned_barcode

    taxonomy, library = _two_family_taxonomy()
    rng = np.random.default_rng(3)
    lines = ["processid\torder_name\tfamily_name\tgenus_name\tspecies_name\tnucleotides"]
    reads = []
    for n in range(36):
        reads.append("".join(rng.choice(list("ACGT"), 300)))
        genus = ("Muscidae\tFannia", "Tipulidae\tTipula", "Muscidae\tMusca")[n % 3]
        lines.append(f"R{n}\tDiptera\t{genus}\t{genus.split(chr(9))[1]} sp{n}\t{reads[-1]}")
        if n % 5 == 0:
            lines.append(f"N{n}\tDiptera\tTipulidae\tTipula\tTipula sp{n}\t")
            lines.append(f"L{n}\tDiptera\tMuscidae\tMusca\tMusca domestica\t{reads[-1]}")
    table = tmp_path / "outgroups.tsv"
    table.write_text("\n".join(lines) + "\n")
    outgroups = OutgroupTable(table, taxonomy, library)
    classes = ["absent genus", "absent family", "absent species"]  # Fannia, Tipula, Musca sp
    assert outgroups.classes == classes * 12
    kinds = {"clean": lambda r, i: r}
    asked = queries([], library[:0], [], library[:0], library, kinds, 3, 7, outgroups)
    draw = np.random.default_rng(7)
    positions = []  # the class's i-th record is the table's usable record 3 i + c
    for c in range(3):
        positions += [(3 * int(i) + c, classes[c]) for i in sorted(draw.permutation(12)[:3])]
    every = outgroups.fetch(range(36))  # cleaned and oriented as the export asks them
    assert [every[p][0] == cleaned_barcode(reads[p]) for p in range(36)] == [True] * 36
    expected = [(every[p][0], klass) for p, klass in positions]
    assert [(q.read, q.klass) for q in asked] == expected
    assert all(q.source == "outgroups" and q.hidden is None for q in asked)
    # with library reads, their draws come first: the outgroups' draw moves on
    val = "".join(rng.choice(list("ACGT"), 300))
    after = queries([val], library[:1], [], library[:0], library, kinds, 3, 7, outgroups)
    outside = [(q.read, q.klass) for q in after if q.source == "outgroups"]
    assert len(outside) == 9 and outside != expected
    assert outgroups.fetch([]) == {}


def test_thresholds_keep_every_group_precise():
    """Group a is right whenever P > 0.7; group b only when P > 0.9: the rank's threshold
    rises until both groups' answers are 95% right."""
    p = np.concatenate([np.linspace(0.5, 1.0, 200), np.linspace(0.5, 1.0, 200)])
    correct = np.concatenate([p[:200] > 0.7, p[200:] > 0.9])
    groups = ["a"] * 200 + ["b"] * 200
    thresholds = _thresholds(
        p[:, None], correct[:, None], np.ones((400, 1), bool), groups, target=0.95
    )
    assert 0.88 <= thresholds[0] <= 0.91


def test_a_small_group_answered_wrongly_every_time_holds_the_threshold_up():
    """Five reads of an absent order, all placed at order with P 0.92 and all wrong: too few
    to measure a precision, but five wrong in five is not a 95% group (one wrong in 20 is)."""
    p = np.concatenate([np.linspace(0.5, 1.0, 200), np.full(5, 0.92)])
    correct = np.concatenate([np.ones(200, bool), np.zeros(5, bool)])
    groups = ["known"] * 200 + ["absent order"] * 5
    thresholds = _thresholds(
        p[:, None], correct[:, None], np.ones((205, 1), bool), groups, target=0.95
    )
    assert thresholds[0] == pytest.approx(0.95)  # the first grid step above 0.92
    one_wrong = np.concatenate([np.ones(200, bool), [False, True, True, True, True]])
    thresholds = _thresholds(
        p[:, None], one_wrong[:, None], np.ones((205, 1), bool), groups, target=0.95
    )
    assert thresholds[0] == pytest.approx(0.5)


def test_fit_placement_separates_near_from_far_reads():
    """Known reads (identity ~0.99) are right at every rank; reads of absent genera (identity
    ~0.85) are right at family only: the genus answer needs a near hit, and the genus band
    sits below the known reads."""
    rng = np.random.default_rng(1)
    n = 400
    identity = np.concatenate([rng.uniform(0.97, 1.0, n), rng.uniform(0.80, 0.90, n)])
    features = np.zeros((2 * n, 4, len(FEATURES)))
    features[..., 1] = identity[:, None]
    features[..., 0] = rng.normal(size=(2 * n, 4))
    correct = np.ones((2 * n, 4), bool)
    correct[n:, 2:] = False
    present = np.ones((2 * n, 4), bool)
    present[n:, 2:] = False
    classes = ["known"] * n + ["absent genus"] * n
    placement, report = fit_placement(
        features,
        correct,
        np.ones_like(correct),
        identity,
        present,
        [f"{c}|clean" for c in classes],
        classes,
        RANKS,
    )
    level = placement.assign(
        placement.probabilities(features, np.ones_like(correct)), np.ones_like(correct)
    )
    assert (level[:n] == 3).mean() > 0.95
    assert (level[n:] == 1).mean() > 0.9
    assert placement.bands[2] > 0.95
    assert report["absent genus|clean"]["precision_%"] >= 95.0
    assert CLASSES[2] == "absent genus"
    assert placement.nested and placement.to_dict()["nested"] is True


def test_the_table_says_ranks_below_the_answer_are_not_placed():
    """A read placed at order: its genus line shows the calibrated chance, never the library's
    100% ranking of its nearest genus."""
    from hir_edge.runtime.report import table_block
    from hir_edge.runtime.schema import Identification

    lineage = ("Lepidoptera", "Gelechiidae", "Dichomeris", "Dichomeris ochripalpella")
    item = Identification(
        id="r1",
        assigned={"rank": "order", "taxon": "Lepidoptera", "confidence": 0.95, "lineage": []},
        ranks={r: [{"taxon": t, "probability": 1.0}] for r, t in zip(RANKS, lineage)},
        modalities=["dna"],
        gate=None,
        qc=None,
        novel={"rank": "genus", "reason": "far"},
        placement={
            r: {"taxon": t, "p_right": p} for r, t, p in zip(RANKS, lineage, (0.95, 0.6, 0.3, 0))
        },
    )
    lines = table_block(item, top_k=3).splitlines()
    assert lines[0] == "r1: Order Lepidoptera (95%), genus not in the library"
    assert lines[2] == "  order    Lepidoptera 100%"
    assert lines[3] == (
        "  family   not placed (nearest in the library: Gelechiidae, right 60% of the time)"
    )
    assert lines[4] == (
        "  genus    not placed (nearest in the library: Dichomeris, right 30% of the time)"
    )
    assert item.to_dict()["placement"]["genus"] == {"taxon": "Dichomeris", "p_right": 0.3}


def _far_read(identity: float, order_p: float, order_named: bool = True) -> tuple:
    """Rules with the ``_placement`` bands and bold100's thresholds, and a read whose best hit
    is ``identity`` identical (11% diverged: its species is novel) and whose order is right
    ``order_p`` of the time by the placement model."""
    from dataclasses import replace

    from hir_edge.dna.align import Hit
    from hir_edge.runtime.answer import Evidence
    from hir_edge.runtime.decide import AnswerRules
    from hir_edge.runtime.scoring import ScoringSettings

    scoring = replace(
        ScoringSettings.from_section({}, 4),
        placement=_placement(thresholds=(0.99, 0.965, 0.99, 0.5)),
    )
    masks = [np.array([order_named])] + [np.array([True])] * 3  # False: "incertae sedis"
    rules = AnswerRules(RANKS, masks, scoring, 3)
    hit = Hit(0, identity, 574, (13, 2, 51), 5, 0.108)
    path = np.zeros(4, dtype=np.int64)
    reach = np.array([order_p, 0.13, 0.06, 0.0])
    ev = Evidence("dna", [np.ones(1)] * 4, path, np.ones(4), 3, None, None, hit, None, reach)
    return rules, ev


def test_a_near_read_held_back_by_the_threshold_is_not_called_too_far():
    """The Eupithecia read of identify_bold.md: 87.6% to its best hit, above the library's
    order band, order right 97% of the time, under the 0.99 order threshold. It is placed
    nowhere because of the threshold, and the warning says so; "too far" is kept for a hit
    farther than the library's orders are apart."""
    rules, ev = _far_read(0.876, 0.97)
    decision = rules.decide(ev)
    assert decision.level == -1 and decision.confidence == 0.0
    assert decision.novel["rank"] == "genus"  # 87.6% < the 88% genus band
    assert decision.warnings[-1] == (
        "not placed at any rank: its order is right 97% of the time by the placement model, "
        "under the 99% an answer at order needs (best barcode hit 87.6% identical)"
    )
    rules, ev = _far_read(0.876, 0.987)  # whole percentages would read "99% under 99%"
    assert "right 98.7% of the time" in rules.decide(ev).warnings[-1]
    assert "under the 99.0% an answer" in rules.decide(ev).warnings[-1]
    # an order that passes its threshold but is a placeholder: no real taxon to answer with
    rules, ev = _far_read(0.876, 0.995, order_named=False)
    placeholder = rules.decide(ev)
    assert placeholder.level == -1
    assert placeholder.warnings[-1] == "not placed at any rank (best barcode hit 87.6% identical)"
    rules, ev = _far_read(0.65, 0.97)  # under the 70% order band: its order is absent
    far = rules.decide(ev)
    assert far.novel["rank"] == "order"
    assert far.warnings[-1] == (
        "no close reference: the best barcode hit is 65.0% identical, too far to place the "
        "read at any rank"
    )


def _unplaced(novel: dict | None, identity: float, warnings: tuple[str, ...] = ()) -> str:
    """The table's answer line for a read placed at no rank, with a best hit ``identity``
    identical and a placement."""
    from hir_edge.runtime.report import table_block
    from hir_edge.runtime.schema import Identification

    item = Identification(
        id="r1",
        assigned={"rank": None, "taxon": None, "confidence": 0.0, "lineage": []},
        ranks={},
        modalities=["dna"],
        gate=None,
        qc=None,
        novel=novel,
        placement={r: {"taxon": "x", "p_right": 0.5} for r in RANKS},
        best_hit={
            "id": "h",
            "taxon": "x",
            "identity": identity,
            "aligned_bases": 574,
            "mismatches_by_codon_position": [0, 0, 0],
            "gaps": 0,
            "divergence": None,
        },
        warnings=list(warnings),
    )
    return table_block(item, top_k=3).splitlines()[0]


def test_the_table_names_a_read_held_back_by_the_threshold_not_placed():
    assert _unplaced({"rank": "species", "reason": "far"}, 0.876) == (
        "r1: not placed at any rank (best hit 87.6% identical), species not in the library"
    )
    assert _unplaced({"rank": "order", "reason": "far"}, 0.876) == (
        "r1: no close reference (best hit 87.6% identical), order not in the library"
    )


def test_nest_lifts_a_coarser_rank_to_its_finest_likely_rank_on_the_path():
    """By hand: a species 0.95 likely lifts its genus (0.60) to 0.95, and a family 0.97 likely
    lifts its order (0.80) to 0.97; a rank without a taxon on the path lifts nothing."""
    probs = np.array([[0.80, 0.97, 0.60, 0.95], [0.50, 0.40, 0.30, 0.90]])
    on_path = np.array([[True, True, True, True], [True, True, True, False]])
    assert nest(probs, on_path) == pytest.approx(
        np.array([[0.97, 0.97, 0.95, 0.95], [0.50, 0.40, 0.30, 0.90]])
    )
    # monotone down the path wherever every rank has a taxon
    rng = np.random.default_rng(0)
    p = nest(rng.uniform(size=(50, 4)), np.ones((50, 4), bool))
    assert (np.diff(p, axis=1) <= 0).all()


def test_a_nested_placement_answers_a_read_sure_of_its_species_at_species():
    """A read whose order model says 0.9 (under the 0.95 order threshold) and whose species
    model says 0.99: un-nested, it is placed nowhere; nested, at species with 0.99. Bundles
    exported before keep their answers: ``nested`` is absent from their manifest."""
    x = np.zeros((1, 4, len(FEATURES)))
    x[0, :, 0] = np.log(np.array([0.9, 0.99, 0.99, 0.99]) / (1 - np.array([0.9, 0.99, 0.99, 0.99])))
    usable = np.ones((1, 4), bool)
    old = _placement(thresholds=(0.95, 0.95, 0.95, 0.95))
    assert old.assign(old.probabilities(x), usable)[0] == -1
    assert "nested" not in old.to_dict()
    new = Placement.from_dict({**old.to_dict(), "nested": True})
    reach = new.probabilities(x, usable)
    assert new.assign(reach, usable)[0] == 3
    assert reach[0] == pytest.approx([0.99] * 4)
    assert Placement.from_dict(new.to_dict()) == new
    # the order is lifted only by a finer rank with a taxon on the path
    no_species = np.array([[True, True, False, False]])
    assert new.probabilities(x, no_species)[0, 0] == pytest.approx(0.99)  # by the family
    assert new.probabilities(x, np.array([[True, False, False, False]]))[0, 0] == pytest.approx(0.9)


def test_the_table_says_a_read_that_is_not_coi_is_not_recognisably_coi():
    """A random read gets no novel rank (no taxon is claimed absent) and its own warning: its
    answer line says what the warning says, not "not placed" as for a near read."""
    from hir_edge.runtime.chance import not_coi

    assert _unplaced(None, 0.55, (not_coi(0.55, 0.56),)) == (
        "r1: not recognisably COI (best hit 55.0% identical)"
    )


def test_a_nested_placement_refuses_to_guess_which_ranks_are_on_the_path():
    from hir_edge.runtime.decide import _percent_pair

    nested = Placement.from_dict({**_placement().to_dict(), "nested": True})
    with pytest.raises(ValueError, match="a nested placement needs on_path"):
        nested.probabilities(np.zeros((1, 4, len(FEATURES))))
    with pytest.raises(BundleError, match="nested must be true or false, not 'false'"):
        Placement.from_dict({**_placement().to_dict(), "nested": "false"})
    assert _percent_pair(0.98996, 0.99) == ("98.996", "99.000")
    assert _percent_pair(0.97, 0.99) == ("97", "99")


def test_the_fit_chooses_thresholds_and_reports_on_the_nested_probabilities():
    """Two ranks; each rank's network sees only its own evidence. At order, reads of known
    species and of an absent group look alike (order log-odds uniform on [-1, 3]) and the
    absent reads are right only above 2, so the order model alone cannot clear a known read
    below 2. At species the known reads are plainly right (log-odds 4) and the absent plainly
    not (-4). Nested, a known read is as sure of its order as of its species: it is answered
    at species, while the absent reads' order answers stay 95% right."""
    rng = np.random.default_rng(5)
    n = 300
    features = np.zeros((2 * n, 2, len(FEATURES)))
    features[:, 0, 0] = rng.uniform(-1, 3, 2 * n)
    features[:n, 1, 0], features[n:, 1, 0] = 4.0, -4.0
    correct = np.ones((2 * n, 2), bool)
    correct[n:, 0] = features[n:, 0, 0] > 2
    correct[n:, 1] = False
    classes = ["known"] * n + ["absent species"] * n
    usable = np.ones_like(correct)
    placement, report = fit_placement(
        features,
        correct,
        usable,
        np.ones(2 * n),
        usable,
        [f"{c}|clean" for c in classes],
        classes,
        ("order", "species"),
    )
    assert report["known|clean"]["answered_at"]["species"] >= 0.95 * n
    assert report["absent species|clean"]["precision_%"] >= 95.0
    # the same model un-nested answers few known reads at all: the order model holds them
    alone = Placement(**{**placement.__dict__, "nested": False})
    level = alone.assign(alone.probabilities(features), usable)
    assert (level[:n] == 1).sum() < 0.6 * n
