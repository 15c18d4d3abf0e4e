"""What this machine can run a bundle with (for ``hir-edge info`` and ``bench``)."""

from __future__ import annotations

from hir_edge.runtime.bundle import Bundle


def available_backends(bundle: Bundle) -> list[str]:
    """One line per usable backend/precision, in the order ``--backend auto`` tries them."""
    import onnxruntime as ort

    from hir_edge.runtime.backends import engine_files, tensorrt_available

    out = []
    if tensorrt_available() and bundle.manifest.get("engines"):
        try:
            precision = bundle.manifest["model"].get("default_precision", "fp32")
            if engine_files(bundle, precision):
                out.append(f"tensorrt ({precision} engines match this GPU)")
        except Exception as err:  # a mismatching engine: say why it will not run
            out.append(f"tensorrt: not usable ({err})")
    providers = ort.get_available_providers()
    precisions = sorted(
        {p for part in ("image", "dna") for p in bundle.precisions(part)} - {"int8-trt"}
    )
    for provider in providers:
        if provider in ("CUDAExecutionProvider", "CPUExecutionProvider"):
            device = "CUDA" if provider.startswith("CUDA") else "CPU"
            out.append(f"onnxruntime {ort.__version__} on {device} ({', '.join(precisions)})")
    return out
