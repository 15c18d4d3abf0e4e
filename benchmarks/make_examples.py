"""Write examples/ for the demo bundle: held-out generated specimens a user can identify.

Takes the first fully labelled test specimen of each of four different orders (test specimens
were never seen in training or calibration), writes their reads to examples/reads.fa — the last
one degraded with the ``paper`` preset, as a field read might be — and their photos to
examples/photos/<id>.jpg, with the truth in examples/expected.tsv. Then it identifies them with
the bundle and fails if any answer contradicts the truth.

    python benchmarks/make_examples.py --data .cache/hir-edge/synth-demo/specimens.h5 \
        --bundle benchmarks/work/demo/demo.bundle --out examples --force
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from hir_edge.data.hdf5 import SpecimenStore
    from hir_edge.degrade import degrade_dna_seeded, get_preset
    from hir_edge.dna.qc import clean_read
    from hir_edge.runtime.backends import select_backend
    from hir_edge.runtime.bundle import open_bundle
    from hir_edge.runtime.identifier import Identifier, Specimen

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "examples")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if args.out.exists():
        if not args.force:
            sys.exit(f"{args.out} exists; pass --force to replace it")
        shutil.rmtree(args.out)
    (args.out / "photos").mkdir(parents=True)
    store = SpecimenStore(args.data, "test")
    chosen, orders = [], set()
    for i in range(len(store)):
        sp = store[i]
        if all(sp.lineage) and sp.lineage[0] not in orders and sp.image is not None:
            chosen.append((i, sp))
            orders.add(sp.lineage[0])
        if len(chosen) == args.count:
            break
    preset = get_preset("paper")
    fasta, expected, specimens = [], ["id\torder\tfamily\tgenus\tspecies\tread"], []
    for n, (index, sp) in enumerate(chosen):
        seq, _ = clean_read(sp.barcode)
        note = "clean"
        if n == len(chosen) - 1:
            seq = degrade_dna_seeded(seq, preset.dna, 0, index)
            note = f"degraded ({preset.describe()}, seed 0)"
        fasta += [f">{sp.processid}", seq]
        (args.out / "photos" / f"{sp.processid}.jpg").write_bytes(sp.image)
        expected.append("\t".join([sp.processid, *sp.lineage, note]))
        seq_clean, qc = clean_read(seq, orient=True)
        specimens.append(
            Specimen(sp.processid, seq_clean, qc, args.out / "photos" / f"{sp.processid}.jpg")
        )
    (args.out / "reads.fa").write_text("\n".join(fasta) + "\n")
    (args.out / "expected.tsv").write_text("\n".join(expected) + "\n")

    bundle = open_bundle(args.bundle)
    results = Identifier(bundle, select_backend(bundle)).identify(specimens)
    wrong = 0
    for (_, sp), r in zip(chosen, results):
        level = bundle.taxonomy.ranks.index(r.assigned["rank"]) if r.assigned["rank"] else -1
        ok = level >= 0 and r.assigned["lineage"] == list(sp.lineage[: level + 1])
        wrong += not ok
        print(
            f"{sp.processid}: {r.assigned['rank']} {r.assigned['taxon']} "
            f"({r.assigned['confidence']:.2f}); truth {sp.lineage}: {'right' if ok else 'WRONG'}"
        )
    if wrong:
        sys.exit(f"{wrong} example(s) identified wrongly: not writing a demo that fails")


if __name__ == "__main__":
    main()
