"""Where torch runs and in which dtype: one helper for every stage that loads a model."""

from __future__ import annotations

import os

from .cpuinfo import cpu_bf16_flags

DEVICES = ("auto", "cpu", "cuda")


def pick_device(device: str = "auto") -> str:
    """``"cuda"`` or ``"cpu"``: ``auto`` takes the GPU when torch sees one; ``cuda`` without one is an error that
    shows ``CUDA_VISIBLE_DEVICES``. Without torch (a job in the analysis env under ``--sdm conda``: the similarity
    products run in numpy) ``auto`` is the CPU."""
    try:
        import torch
    except ImportError:
        if device == "cuda":
            raise RuntimeError("device: cuda was asked for, but this job's environment has no torch") from None
        return "cpu"

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device: cuda was asked for, but torch sees no GPU "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        )
    return device


#: the mean cosine a calibration batch must reach in bfloat16 against float32 for ``auto`` to take bfloat16
CALIBRATION_MIN_COSINE = 0.999
#: texts of the calibration batch (numbers as the workflow renders them, and prose)
CALIBRATION_TEXTS = (
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
    "2, 3, 5, 7, 11, 13, 17, 19, 23, 29",
    "A man is playing a guitar on the street.",
    "The committee postponed its decision until next spring.",
)


def auto_dtype(device: str) -> tuple[str, str, bool]:
    """``(dtype, reason, needs_calibration)`` for ``dtype: auto``: bfloat16 on a GPU that supports it, float16 on
    an older one; on a CPU bfloat16 only where it has native bf16 matmul, and then only if a calibration batch
    agrees with float32 (``needs_calibration``), else float32."""
    import torch

    if device == "cuda":
        name = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported():
            return "bfloat16", f"GPU {name} supports bfloat16", False
        return "float16", f"GPU {name} has no bfloat16", False
    flags = cpu_bf16_flags()
    if not flags:
        return "float32", "CPU without native bf16 matmul (no amx_bf16 or avx512_bf16 in /proc/cpuinfo)", False
    return "bfloat16", f"CPU with native bf16 matmul ({', '.join(flags)})", True


def calibrated(reason: str, cosine: float) -> tuple[str, str]:
    """The dtype a CPU calibration gives: bfloat16 when its mean cosine against float32 is high enough."""
    verdict = "≥" if cosine >= CALIBRATION_MIN_COSINE else "<"
    text = f"{reason}; calibration batch bf16 vs fp32 mean cosine {cosine:.5f} {verdict} {CALIBRATION_MIN_COSINE}"
    return ("bfloat16" if cosine >= CALIBRATION_MIN_COSINE else "float32"), text


#: GPU memory a model's weights may take of one device's free memory before it is spread over several
ONE_DEVICE_SHARE = 0.8


def spread_over_gpus(weight_bytes: int, free_bytes: list[int]) -> bool:
    """Whether weights of ``weight_bytes`` must be spread over several GPUs (``free_bytes`` per GPU): only when
    they do not fit ``ONE_DEVICE_SHARE`` of the first GPU's free memory and there is more than one GPU."""
    return len(free_bytes) > 1 and weight_bytes > ONE_DEVICE_SHARE * free_bytes[0]


def device_map(model_path: str | os.PathLike, device: str, dtype: str) -> str | None:
    """``"auto"`` (accelerate places the layers over every visible GPU) for a model whose weights do not fit one
    GPU when several are visible, else ``None`` (the whole model on ``device``)."""
    import torch

    if device != "cuda" or torch.cuda.device_count() < 2:
        return None
    from .planning import BYTES, weights_parameters

    weight_bytes = weights_parameters(model_path) * BYTES[dtype]
    free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
    return "auto" if spread_over_gpus(weight_bytes, free) else None
