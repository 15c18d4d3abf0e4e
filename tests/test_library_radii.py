"""How far each reference's taxa reach in its library: radii by hand, with a taxon hidden."""

from __future__ import annotations

import numpy as np
import pytest

from hir_edge.errors import BundleError
from hir_edge.runtime.barcodes import LibraryBarcodes, may_be_of
from hir_edge.runtime.bundle import References, open_bundle
from hir_edge.runtime.scoring import ScoringSettings

LENGTH = 420


def _library(unnamed_copy: bool = False) -> LibraryBarcodes:
    """Four barcodes differing from a base only by substitutions at disjoint interior sites:
    r1 at 21 sites, r2 at 63, r3 at 42; so r0-r1 are 95% identical, r0-r3 90%, r0-r2 and
    r1-r3 85%, r1-r2 80%, r2-r3 75%. Families {r0, r1} and {r2, r3}; four genera.
    ``unnamed_copy``: a fifth record, r3's barcode named only to its family."""
    rng = np.random.default_rng(7)
    base = rng.choice(list("ACGT"), LENGTH)
    sites = rng.permutation(np.arange(20, LENGTH - 20))
    seqs = [base.copy()]
    for used in (sites[:21], sites[21:84], sites[84:126]):
        s = base.copy()
        s[used] = [{"A": "C", "C": "G", "G": "T", "T": "A"}[b] for b in s[used]]
        seqs.append(s)
    labels = np.array([[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 2, 2], [0, 1, 3, 3]])
    if unnamed_copy:
        seqs.append(seqs[3].copy())
        labels = np.vstack([labels, [0, 1, -1, -1]])
    refs = References(
        np.array([f"r{i}" for i in range(len(seqs))]),
        labels,
        None,
        barcodes=np.array(["".join(s).encode("ascii") for s in seqs]),
    )
    return LibraryBarcodes(refs, ScoringSettings.from_section({}, 4))


def test_radii_are_each_references_nearest_barcode_of_another_taxon():
    library = _library()
    radii = library.radii()
    assert np.isnan(radii[:, 0]).all()  # one order: nothing of another order to be near
    assert radii[:, 1] == pytest.approx([0.90, 0.85, 0.85, 0.90])
    assert radii[:, 2] == pytest.approx([0.95, 0.95, 0.85, 0.90])
    assert radii[:, 3] == pytest.approx(radii[:, 2])
    assert library.references.radii is radii  # aligned once, then kept


def test_a_hidden_taxon_is_not_there_to_be_nearest():
    library = _library()
    assert library.radius(0, 1, (2, 3)) == pytest.approx(0.85)  # r3's genus gone: r2 is nearest
    assert library.radius(0, 2, (2, 1)) == pytest.approx(0.90)  # r1 gone: r3
    assert library.radius(0, 2, (2, 2)) == pytest.approx(0.95)  # r2 was not nearest anyway
    assert np.isnan(library.radius(0, 1, (1, 1)))  # the other family gone: nothing beyond r0's
    assert library.radius(0, 1, None) == pytest.approx(0.90)


def test_records_that_may_be_of_a_hidden_taxon_are_hidden_with_it():
    labels = np.array(
        [[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 2, 2], [0, 1, -1, -1], [0, -1, -1, -1], [1, -1, -1, -1]]
    )
    assert may_be_of(labels, (2, 2)).tolist() == [False, False, True, True, True, False]
    assert may_be_of(labels, (2, 0)).tolist() == [True, False, False, False, True, False]
    assert may_be_of(labels, (0, 1)).tolist() == [False] * 5 + [True]
    assert not may_be_of(labels, (3, 7)).any()  # a taxon the library does not name ...
    given = may_be_of(labels, (3, 7), lineage=np.array([0, 1, 2]))  # ... unless its lineage is
    assert given.tolist() == [False, False, False, True, True, False]


def test_a_record_under_incertae_sedis_is_not_taken_for_a_hidden_taxon_of_that_rank():
    """[0, -1, 4, 4]: family "incertae sedis" (encoded -1), genus 4 named: not of family 1.
    A genus of an unknown family may be of any family of its order."""
    labels = np.array([[0, 1, 2, 2], [0, -1, 4, 4], [0, 1, -1, -1], [0, 3, -1, -1]])
    assert may_be_of(labels, (1, 1)).tolist() == [True, False, True, False]
    assert may_be_of(labels, (2, 4)).tolist() == [False, True, True, True]


def test_a_hidden_genus_takes_its_unnamed_records_out_of_the_search():
    """r3's genus hidden: its copy named only to the family is not there to be found either
    (it was, at 100% identity: a read of an 'absent' genus found its own genus)."""
    library = _library(unnamed_copy=True)
    read = library.references.barcodes[3].decode()
    _, hits = library.barcode_alignments([read], [(2, 3)])
    assert hits[0].reference == 0 and hits[0].identity == pytest.approx(0.90)  # r0, 90%
    _, hits = library.barcode_alignments([read], None)
    assert hits[0].identity == pytest.approx(1.0)
    assert library.radius(0, 1, (2, 3)) == pytest.approx(0.85)  # r3 and its copy gone: r2


def test_hidden_taxa_leave_a_bundles_own_radii_as_they_are():
    """A bundle's radii (aligned over its whole library) stay what radii() returns; the
    hidden-taxon radii come from this library's own alignment."""
    library = _library()
    shipped = np.full((4, 4), 0.5, dtype=np.float32)
    library.references.radii = shipped
    assert library.radius(0, 1, (2, 3)) == pytest.approx(0.85)
    assert library.radius(0, 2, (2, 2)) == pytest.approx(0.95)  # its own, not the shipped 0.5
    assert library.radii() is shipped and (shipped == 0.5).all()
    assert library.radius(0, 1, None) == 0.5


def test_a_subset_keeps_its_rows_radii():
    library = _library()
    radii = library.radii()
    subset = library.references.subset(np.array([True, False, True, True]))
    assert np.array_equal(subset.radii, radii[[0, 2, 3]], equal_nan=True)


def test_the_shipped_radii_load_and_a_wrong_shape_is_refused(tiny_bundle, tmp_path):
    import shutil

    bundle = open_bundle(tiny_bundle)
    assert bundle.references.radii.shape == bundle.references.labels.shape
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    with np.load(copy / "references.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["radii"] = arrays["radii"][:3]
    np.savez_compressed(copy / "references.npz", **arrays)
    n, ranks = bundle.references.labels.shape
    with pytest.raises(
        BundleError, match=rf"reference radii are \(3, {ranks}\), labels \({n}, {ranks}\)"
    ):
        open_bundle(copy, verify=False)
