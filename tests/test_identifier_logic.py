"""The Identifier's answer logic with controlled embeddings (a stub backend, no ONNX):
placeholders, thresholds, rank caps, novelty and the evidence from reference specimens."""

from __future__ import annotations

import numpy as np
import pytest

from hir_edge.runtime.bundle import FORMAT, Bundle, Manifest, References
from hir_edge.runtime.identifier import Identifier, Specimen, prompt_cosines
from hir_edge.runtime.scoring import assign
from hir_edge.taxonomy import Taxonomy, fill_gaps

# Lepidoptera with one real family and one "incertae sedis" family (a genus known only to order).
LINEAGES = [
    fill_gaps(("Lep", None, "Abrostola", "Abrostola tripartita")),
    ("Lep", "Noctuidae", "Agrotis", "Agrotis ipsilon"),
    ("Lep", "Noctuidae", "Agrotis", "Agrotis segetum"),
    ("Dip", "Culicidae", "Aedes", "Aedes vexans"),
]
TAX = Taxonomy.from_lineages(LINEAGES)
D = 16


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def _banks():
    """One direction per real taxon; a placeholder's prompt is its order's text (as exported)."""
    rng = np.random.default_rng(0)
    return [np.stack([_unit(rng.normal(size=D)) for _ in TAX.paths(lv)]) for lv in range(4)]


BANKS = _banks()


def _query_for(lineage):
    """A query close to every real taxon along ``lineage`` (their prompts summed)."""
    ids = TAX.encode(lineage)
    vec = sum(BANKS[lv][i] for lv, i in enumerate(ids) if i >= 0)
    return _unit(vec)


class StubBackend:
    """Returns the embedding registered for each read; images are not used here."""

    name, precision = "stub", "fp32"

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table
        self.order: list[str] = []

    def embed_dna(self, ids, mask):
        return np.stack([self.table[s] for s in self.order[: len(ids)]])

    def embed_images(self, pixels):  # pragma: no cover - not used
        raise AssertionError

    def fuse(self, image, dna):  # pragma: no cover - not used
        raise AssertionError

    def describe(self):
        return "stub"


def _identifier(thresholds=0.5, references=None, novelty=-1.0, **kw):
    manifest = {
        "format": FORMAT,
        "files": {},
        "model": {"embed_dim": D},
        "preprocess": {"image_size": 32},
        "dna_tokenizer": {"kind": "kmer", "k": 3, "max_length": 20},
        "graphs": {},
        "scoring": {
            "temperatures": {m: [0.05] * 4 for m in ("image", "dna", "fused")},
            "thresholds": {m: [thresholds] * 4 for m in ("image", "dna", "fused")},
            "novelty": {m: novelty for m in ("image", "dna", "fused")},
            "reference_weight": {m: 1.0 for m in ("image", "dna", "fused")},
        },
    }
    bundle = Bundle(
        root=None,
        manifest=Manifest.from_dict(manifest),
        taxonomy=TAX,
        prompt_banks=BANKS,
        references=references,
    )
    return Identifier(bundle, StubBackend({}), **kw)


def _identify(identifier, queries: dict[str, np.ndarray]):
    identifier.backend.table = {name: q for name, q in queries.items()}
    identifier.backend.order = list(queries)
    specimens = [Specimen(name, sequence=name) for name in queries]
    return identifier.identify(specimens)


def test_a_genus_under_a_placeholder_is_reachable_and_the_placeholder_never_shown():
    ident = _identifier()
    (res,) = _identify(ident, {"ACGTACGTACGTACGTACGT": _query_for(LINEAGES[0])})
    assert res.assigned["rank"] == "species"
    assert res.assigned["taxon"] == "Abrostola tripartita"
    assert res.assigned["lineage"] == ["Lep", "Abrostola", "Abrostola tripartita"]
    assert all("incertae sedis" not in c["taxon"] for c in res.ranks["family"])


def test_an_answer_never_stops_at_a_placeholder():
    ident = _identifier(thresholds=0.999)
    lep = TAX.encode(("Lep", None, None, None))[0]
    # A query with the order's direction only: the placeholder family cannot be the answer.
    (res,) = _identify(ident, {"ACGTACGTACGTACGTACGT": BANKS[0][lep]})
    assert res.assigned["rank"] in ("order", None)
    assert res.assigned["taxon"] in ("Lep", None)


def test_placeholder_scores_are_their_best_childs():
    q = _query_for(LINEAGES[0])[None, :]
    masks = [TAX.label_mask(lv) for lv in range(4)]
    parents = [TAX.parents(lv) for lv in range(4)]
    cos = prompt_cosines(q, BANKS, masks, parents)
    holder = int(np.flatnonzero(~masks[1])[0])
    kids = TAX.children(1, holder)
    assert cos[1][0, holder] == pytest.approx(cos[2][0, kids].max())


def test_rank_cap_and_threshold_zero_never_name_an_ended_path():
    ident = _identifier(max_rank="genus")
    (res,) = _identify(ident, {"ACGTACGTACGTACGTACGT": _query_for(LINEAGES[1])})
    assert res.assigned["rank"] == "genus" and res.assigned["taxon"] == "Agrotis"
    # A path that ended (probability 0) never passes, even at a zero threshold.
    probs = np.array([[0.9, 0.6, 0.0, 0.0]])
    assert assign(probs, [0.0] * 4).tolist() == [1]


def test_novel_reads_are_not_named_below_genus():
    refs = References(
        ids=np.array(["r1", "r2"]),
        labels=np.array([TAX.encode(LINEAGES[1]), TAX.encode(LINEAGES[3])]),
        dna=np.stack([_query_for(LINEAGES[1]), _query_for(LINEAGES[3])]),
    )
    ident = _identifier(references=refs, novelty=0.999)
    (res,) = _identify(ident, {"ACGTACGTACGTACGTACGT": _query_for(LINEAGES[2])})
    assert res.novel
    assert res.assigned["rank"] in ("order", "family", "genus")
    assert res.nearest[0]["id"] == "r1" and res.nearest[0]["taxon"] == "Agrotis ipsilon"


def test_reference_votes_move_the_answer_to_the_neighbours_species():
    """Prompt evidence is ambiguous between two congeneric species; the references decide."""
    ambiguous = _unit(
        BANKS[3][TAX.encode(LINEAGES[1])[3]]
        + BANKS[3][TAX.encode(LINEAGES[2])[3]]
        + BANKS[2][TAX.encode(LINEAGES[1])[2]]
    )
    refs = References(
        ids=np.array(["r1"]),
        labels=np.array([TAX.encode(LINEAGES[2])]),
        dna=ambiguous[None, :],
    )
    (res,) = _identify(
        _identifier(references=refs, thresholds=0.1), {"ACGTACGTACGTACGTACGT": ambiguous}
    )
    assert res.ranks["species"][0]["taxon"] == "Agrotis segetum"
