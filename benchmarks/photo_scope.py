"""Which photos a photo bundle refuses as unlike its references: two rules side by side.

    python benchmarks/photo_scope.py --bundle OUT/eu_moths.bundle --data OUT/eu_moths.h5
    # benchmarks/build_moth_bundle.sh runs this

A bundle trained on moths embeds a photo of a beetle among its moths, and names it. ``identify``
gives no answer for a photo alone that is unlike the bundle's reference photos. Compared here,
each at the limit the export set on the validation photos (all but 1% of them kept):

* the similarity of the nearest reference photo (bundles exported before the distance rule);
* the Mahalanobis distance to the nearest species, each species a Gaussian over its reference
  photos with one shared, Ledoit-Wolf-shrunk covariance (:mod:`hir_edge.runtime.photo_scope`).

Photos: the EU-Moths test split (in scope: a refusal is a moth lost), clean, blurred (the
``paper`` preset's 5×5 box) and recompressed as JPEG q30; photos of no moth: drawn specimens
of the other orders of bold_coi_100sp.tsv (`hir-edge data synth`'s drawings, 3 per species),
the 17 BIOSCAN photos of other orders and the 5 unlabelled BIOSCAN crops. The library is the
training photos, the one the limits were set with (the bundle ships every photo it was given).

Writes benchmarks/results/photo_scope.md and .json.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = ROOT.parent / "shared" / "data"

from results_file import write_results  # noqa: E402


def _jpeg(image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _png(image) -> bytes:  # as moths.py passes its blurred photos
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def drawn_other_orders(per_species: int = 3, size: int = 256) -> list[bytes]:
    """Drawn specimens of every species of bold_coi_100sp.tsv that is not a moth, seeded."""
    from hir_edge.data.synth.bold import read_bold
    from hir_edge.data.synth.draw import draw_specimen
    from hir_edge.data.synth.world import assign_traits

    world, _, _ = read_bold(SHARED / "bold_coi" / "bold_coi_100sp.tsv", None, 0)
    traits = assign_traits(world, 0)
    photos = []
    for k, path in enumerate(sorted(traits)):
        if path[0] == "Lepidoptera":
            continue
        for j in range(per_species):
            photos.append(_jpeg(draw_specimen(traits[path], np.random.default_rng([k, j]), size)))
    return photos


def photo_sets(data: Path) -> dict[str, list[bytes]]:
    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import blur_image, get_preset
    from hir_edge.images import load_image

    test = SpecimenStore(data, "test")
    clean = [test.image_bytes(i) for i in range(len(test))]
    kernel = get_preset("paper").blur_kernel
    bioscan = sorted((SHARED / "bioscan_photos").glob("*.jpg"))
    return {
        "EU-Moths test, clean": clean,
        "EU-Moths test, blurred": [_png(blur_image(load_image(p), kernel)) for p in clean],
        "EU-Moths test, JPEG q30": [_jpeg(load_image(p), 30) for p in clean],
        "drawn, other orders": drawn_other_orders(),
        "BIOSCAN, other orders": [
            p.read_bytes()
            for p in bioscan
            if p.stem != "Lepidoptera" and not p.stem.startswith("cropped_")
        ],
        "BIOSCAN crops (unlabelled)": [
            p.read_bytes() for p in bioscan if p.stem.startswith("cropped_")
        ],
    }


def measure(bundle_path: Path, data: Path) -> dict:
    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.runtime.backends import select_backend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier

    bundle = open_bundle(bundle_path)
    train = set(SpecimenStore(data, "train").processids())
    bundle.references = bundle.references.subset(
        np.array([str(i) in train for i in bundle.references.ids])
    )
    identifier = Identifier(bundle, select_backend(bundle, "onnxruntime", "int8", "cpu"))
    similarity_limit = identifier.scoring.scope["image"]
    distance_limit = identifier.scoring.scope_distance["image"]
    scope = identifier.photo_scope
    if scope is None:
        sys.exit(f"{bundle_path}: no photo distance limit (exported before it): re-export it")
    refs = bundle.references.image
    rows = []
    for name, photos in photo_sets(data).items():
        emb = np.concatenate(
            [
                identifier.backend.embed_images(
                    np.stack([identifier.decode_photo(p).pixels for p in photos[a : a + 32]])
                )
                for a in range(0, len(photos), 32)
            ]
        )
        nearest = (emb @ refs.T).max(axis=1)
        distance = scope.distances(emb)
        rows.append(
            {
                "photos": name,
                "n": len(photos),
                "refused_similarity_%": 100.0 * float((nearest < similarity_limit).mean()),
                "refused_distance_%": 100.0 * float((distance > distance_limit).mean()),
                "distance_median": float(np.median(distance)),
            }
        )
        print(rows[-1])
    return {
        "bundle": str(bundle_path),
        "library": f"{len(refs)} training photos",
        "similarity_limit": similarity_limit,
        "distance_limit": distance_limit,
        "shrinkage": scope.shrinkage,
        "species": len(scope.means),
        "rows": rows,
    }


def write(out: Path, r: dict) -> None:
    lines = [
        "# Photos unlike the bundle's references: refused by similarity or by distance",
        "",
        f"Bundle {r['bundle']}; library: its {r['library']} (the limits were set with them). "
        f"Limits, each keeping all but 1% of the validation photos: nearest-reference "
        f"similarity {r['similarity_limit']:.3f}; Mahalanobis distance to the nearest of "
        f"{r['species']} species {r['distance_limit']:.2f} (Ledoit-Wolf shrinkage "
        f"{r['shrinkage']:.3f}). A refused photo gets no answer.",
        "",
        "| Photos | n | refused: nearest similarity (before) | refused: distance (now) | median distance |",
        "|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['photos']} | {row['n']} | {row['refused_similarity_%']:.1f}% | "
            f"{row['refused_distance_%']:.1f}% | {row['distance_median']:.2f} |"
        )
    write_results(out, "\n".join(lines) + "\n", r)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/photo_scope")
    args = parser.parse_args()
    write(args.out, measure(args.bundle, args.data))


if __name__ == "__main__":
    main()
