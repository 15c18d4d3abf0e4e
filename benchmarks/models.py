"""Parameter counts and CPU forward latency per buildable preset, and the HiR loss cost.

    python benchmarks/models.py    # prints a table; writes benchmarks/results/models.{md,json}

Presets that need hub weights (paper-*, clibd) cannot be built offline and are listed as such.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hir_edge.losses import hir_loss  # noqa: E402
from hir_edge.models import create_model, get_preset_config, list_presets  # noqa: E402

SEQ = "AACTTTATATTTTATTTTTGGGGCCTGATCTGGAATAGTAGGTACATCTCTTAGTATTTTAATTCGAGCAGAATTAGGTCACCC" * 8


def timed(fn, repeat: int = 5) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def preset_rows() -> list[dict]:
    rows = []
    for name in list_presets():
        cfg = get_preset_config(name)
        offline = (
            cfg.clip.name is None
            and cfg.dna.pretrained is None
            and not (
                cfg.clip.config
                and cfg.clip.config.get("vision_cfg", {}).get("timm_model_pretrained")
            )
        )
        if not offline:
            rows.append({"preset": name, "role": cfg.role, "built": False})
            continue
        model = create_model(name, **({"embed_dim": 128} if cfg.embed_dim is None else {})).eval()
        counts = model.num_parameters()
        size = model.preprocess.image_size
        row = {"preset": name, "role": cfg.role, "built": True, "params": counts}
        for batch in (1, 32):
            images = torch.randn(batch, 3, size, size)
            ids, mask = model.tokenize_dna([SEQ[:658]] * batch)
            with torch.no_grad():
                row[f"image_ms_b{batch}"] = timed(lambda m=model, x=images: m.encode_image(x))
                row[f"dna_ms_b{batch}"] = timed(lambda m=model, i=ids, k=mask: m.encode_dna(i, k))
        rows.append(row)
    return rows


def hir_rows() -> list[dict]:
    rows = []
    for batch in (32, 128, 512):
        z = torch.nn.functional.normalize(torch.randn(batch, 512), dim=-1).requires_grad_(True)
        labels = torch.randint(0, 4, (batch, 1))
        labels = torch.cat(
            [
                labels,
                labels * 8 + torch.randint(0, 8, (batch, 1)),
                labels * 64 + torch.randint(0, 16, (batch, 1)),
                labels * 1024 + torch.randint(0, 32, (batch, 1)),
            ],
            dim=1,
        )

        def step(z=z, labels=labels):
            loss = hir_loss(z, labels, 0.1)
            loss.backward()
            z.grad = None

        fwd = timed(lambda z=z, labels=labels: hir_loss(z.detach(), labels, 0.1))
        rows.append({"batch": batch, "forward_ms": fwd, "forward_backward_ms": timed(step)})
    return rows


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    presets, hir = preset_rows(), hir_rows()
    lines = [
        "# Model presets and HiR cost (CPU)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}. "
        "Latency = best of 5 runs, ms per batch, fp32, eval mode.",
        "",
        "| preset | role | image params | DNA params | text params | fusion params | "
        "image b1 | image b32 | DNA b1 | DNA b32 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in presets:
        if not row["built"]:
            lines.append(
                f"| {row['preset']} | {row['role']} | needs hub weights (not built offline) |"
                " | | | | | | |"
            )
            continue
        p = row["params"]
        lines.append(
            f"| {row['preset']} | {row['role']} | {p['image'] / 1e6:.2f}M | "
            f"{p['dna'] / 1e6:.2f}M | {p['text'] / 1e6:.2f}M | {p['fusion'] / 1e3:.1f}k | "
            f"{row['image_ms_b1']:.1f} | "
            f"{row['image_ms_b32']:.1f} | {row['dna_ms_b1']:.1f} | {row['dna_ms_b32']:.1f} |"
        )
    lines += [
        "",
        "HiR loss (d = 512, 4 ranks), ms:",
        "",
        "| B | forward | forward + backward |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {r['batch']} | {r['forward_ms']:.2f} | {r['forward_backward_ms']:.2f} |" for r in hir
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "models.md").write_text(text)
    (out / "models.json").write_text(json.dumps({"presets": presets, "hir": hir}, indent=1))


if __name__ == "__main__":
    main()
