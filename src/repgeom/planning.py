"""Memory, GPU and disk planning per model job, from the model's size, before anything runs.

The size comes from the prepared folder when it exists (the safetensors headers: exact parameter counts; its
``config.json``: width and depth), else from the entry's declared ``parameters`` (``config/paper.yaml`` declares
them, so a dry run on a fresh machine can plan before any download). A job needs the weights in its compute dtype
plus activations for one batch (a rough allowance: about 24 values of the model's width per token per layer in
flight, which is where transformers' forward peaks for decoders); host memory needs the weights once more while
loading. An activation job's disk is N texts × layers × positions × width in the store dtype. Estimates round up;
an entry's own ``resources`` always win.
"""

from __future__ import annotations

import functools
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
#: values of the model's width per token per layer held during a forward pass (attention and MLP intermediates)
ACTIVATION_FACTOR = 24
#: host memory beyond the weights: the interpreter, torch, tokenizers, buffers
HOST_OVERHEAD_MB = 2000
#: models from this size on get a GPU by default (a CPU job would take hours)
GPU_FROM_PARAMETERS = 1e9


@dataclass(frozen=True)
class ModelSize:
    parameters: float
    hidden_size: int | None
    num_layers: int | None
    source: str  # "prepared weights" or "declared parameters"
    vocab_size: int | None = None  # rows of the embedding matrix (a lookup: no FLOPs), where a config says

    def dimensions(self) -> tuple[int, int]:
        """``(width, depth)``: the config's, else estimated from the parameter count."""
        hidden = self.hidden_size or _width_from_parameters(self.parameters)
        return hidden, self.num_layers or max(1, round(self.parameters / (12 * hidden**2)))


@dataclass(frozen=True)
class Estimate:
    """One job's needs: host memory, GPU memory and count, and (activation jobs) disk."""

    size: ModelSize
    weights_gib: float
    activations_gib: float
    mem_mb: int
    gpu_gib: float
    gpus: int
    disk_mb: int | None = None

    def line(self, job: str) -> str:
        """One line for the dry run's plan."""
        disk = f", disk {self.disk_mb} MB" if self.disk_mb is not None else ""
        return (
            f"plan {job}: {self.size.parameters / 1e9:.3g}B parameters ({self.size.source}); weights "
            f"{self.weights_gib:.2f} GiB + activations {self.activations_gib:.2f} GiB per batch; host {self.mem_mb} MB, "
            f"GPUs {self.gpus}{disk}"
        )


def weights_parameters(folder: str | os.PathLike) -> int:
    """Parameter count of the safetensors weights under ``folder`` (0 where there are none), read from their
    headers, cached per file state (a dry run asks once per job and resource)."""
    files = sorted(Path(folder).rglob("*.safetensors"))
    return _parameters_of(tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))


@functools.lru_cache(maxsize=256)
def _parameters_of(files: tuple[tuple[str, int, int], ...]) -> int:
    return sum(_safetensors_parameters(Path(f)) for f, _, _ in files)


def _safetensors_parameters(path: Path) -> int:
    """Parameter count from a safetensors file's header, without reading its tensors."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def model_size(entry: dict, prepared: str | os.PathLike | None = None) -> ModelSize | None:
    """The model's size from its prepared folder, else its declared ``parameters``, else None."""
    folder = weights_folder(Path(prepared)) if prepared else None
    if folder is not None:
        n = float(weights_parameters(folder))
        if n:
            cfg = _config(folder)
            hidden = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
            layers = cfg.get("num_hidden_layers") or cfg.get("n_layer")
            return ModelSize(n, hidden, layers, "prepared weights", cfg.get("vocab_size"))
    if entry.get("parameters"):
        return ModelSize(float(entry["parameters"]), None, None, "declared parameters")
    return None


def weights_folder(prepared: Path) -> Path | None:
    """The folder a prepared model's weights sit in (its manifest may reference a folder elsewhere)."""
    man = prepared / "manifest.json"
    if not man.exists():
        return None
    path = json.loads(man.read_text()).get("model_path", "model")
    return Path(path) if os.path.isabs(path) else prepared / path


def _config(folder: Path) -> dict:
    for p in [folder / "config.json", *sorted(folder.glob("*/config.json"))]:
        if p.exists():
            return json.loads(p.read_text())
    return {}


def estimate(
    size: ModelSize,
    *,
    dtype: str,
    batch_size: int,
    max_length: int,
    n_texts: int | None = None,
    n_layers_stored: int | None = None,
    positions: int = 1,
    store_dtype: str = "float16",
) -> Estimate:
    """A job's needs for a model of ``size`` run at ``batch_size`` × ``max_length`` tokens in ``dtype``; with
    ``n_texts``, the disk an activation job writes."""
    b = BYTES.get(dtype, 4)
    weights = size.parameters * b / 2**30
    hidden, layers = size.dimensions()
    acts = batch_size * max_length * hidden * ACTIVATION_FACTOR * b / 2**30
    gpu = weights + acts
    disk = None
    if n_texts is not None:
        per = (n_layers_stored or layers) * positions * hidden * BYTES.get(store_dtype, 2)
        disk = math.ceil(n_texts * per * 1.05 / 2**20)  # + ids, checksums, HDF5 overhead
    return Estimate(
        size=size,
        weights_gib=round(weights, 2),
        activations_gib=round(acts, 2),
        mem_mb=math.ceil(2 * size.parameters * b / 2**20 + HOST_OVERHEAD_MB),
        gpu_gib=round(gpu, 2),
        gpus=1 if size.parameters >= GPU_FROM_PARAMETERS else 0,
        disk_mb=disk,
    )


def _width_from_parameters(n: float) -> int:
    """A decoder's width from its size when no config says it (L ≈ width / 128, n ≈ 12 L width²)."""
    return int(round((n * 128 / 12) ** (1 / 3) / 64) * 64) or 64


def job_estimate(config: dict, model: str, stage: str, dataset: str | None = None) -> Estimate | None:
    """The estimate of one ``embeddings`` or ``activations`` job of a validated config (None when the model's
    size is unknown: not prepared yet and no declared ``parameters``)."""
    from .configure import stages

    size = model_size(config["models"][model], Path("resources/models") / model)
    if size is None:
        return None
    if stage == "embeddings":
        p = stages.embed_params(config, model)
        return estimate(size, dtype=p.dtype, batch_size=p.batch_size, max_length=p.max_length or 512)
    a = stages.activation_params(config, model, dataset)
    n = None
    if dataset in config["sequences"]:
        spec = config["sequences"][dataset]
        n = spec["n_sequences"] * len(spec["families"])
    return estimate(
        size,
        dtype=a.dtype,
        batch_size=a.batch_size,
        max_length=a.max_length,
        n_texts=n,
        n_layers_stored=len(a.layers) or None,
        positions=len(a.positions),
        store_dtype=a.store_dtype,
    )


def plan_lines(config: dict) -> list[str]:
    """One line per model job whose size is known (the Snakefile logs them, so a dry run shows the plan)."""
    from .configure import stages

    out = []
    for m in stages.embedding_models(config):
        est = job_estimate(config, m, "embeddings")
        if est is not None:
            out.append(est.line(f"embeddings/{m}"))
    for m in stages.activation_models(config):
        for d in stages.activation_datasets(config):
            est = job_estimate(config, m, "activations", d)
            if est is not None:
                out.append(est.line(f"activations/{m}/{d}"))
    return out
