"""A job's action key: what decides its outputs, hashed before it runs.

The key is the sha256 of a canonical JSON of:

- the rule, its wildcards and its output paths;
- its params (each rule's ``code`` param among them: the library code its wrapper runs) and the wrapper's own code;
- every input, by its name in the rule, its path and its content digest (:func:`.digest.content_digest`);
- the software and hardware that shape the numbers (:func:`environment`): Python, the versions of the numeric
  libraries, the device kind (GPU models, or the CPU's native-bf16 flags that ``dtype: auto`` looks at).

Threads, resources, log paths and absolute folders are not in it: they do not change what a job writes, and
leaving them out lets several clones and cluster nodes share entries.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata as md
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .digest import DigestMemo, content_digest, hash_bytes

#: bump to disown every entry made before (a change of what a key means)
SCHEMA = 1

#: distributions whose versions are in every key: what turns inputs into numbers, tables and figures
DISTRIBUTIONS = (
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "h5py",
    "torch",
    "transformers",
    "sentence-transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "peft",
    "gguf",
    "datasets",
    "huggingface-hub",
    "matplotlib",
    "rsatoolbox",
)


@cache
def environment() -> dict[str, Any]:
    """Python, the versions of :data:`DISTRIBUTIONS` (``None`` where absent) and :func:`device_kind`."""
    versions = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": platform.machine(),
        "distributions": versions,
        "device": device_kind(),
    }


def device_kind() -> str:
    """``cuda:<model>,…`` for the GPUs this job sees, else ``cpu`` with the CPU's native-bf16 flags (``dtype:
    auto`` takes bfloat16 only on such a CPU). torch is asked only on a machine with an NVIDIA driver."""
    from ..cpuinfo import cpu_bf16_flags

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible not in ("", "-1") and (glob.glob("/proc/driver/nvidia/gpus/*") or os.path.exists("/dev/nvidia0")):
        try:
            import torch

            if torch.cuda.is_available():
                return "cuda:" + ",".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        except Exception:  # pragma: no cover - a broken driver: the job will say so itself
            pass
    flags = cpu_bf16_flags()
    return "cpu" + (f"+{'+'.join(flags)}" if flags else "")


def _jsonable(v: Any) -> Any:
    """Params as plain JSON (Snakemake's named lists as lists, paths as strings)."""
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return repr(v)


def _named(seq) -> list[tuple[str, Any]]:
    """``(name, item)`` for each item of a Snakemake named list (``""`` for an unnamed one), in order."""
    items = list(seq)
    names = [""] * len(items)
    for name, (start, end) in getattr(seq, "_names", {}).items():
        for i in range(start, start + 1 if end is None else end):
            names[i] = name
    return list(zip(names, items))


@dataclass(frozen=True)
class Action:
    """One job, as the key sees it. ``inputs``: ``(name in the rule, path)``; paths relative to the working
    folder."""

    rule: str
    wildcards: dict[str, str]
    params: dict[str, Any]
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[str, ...]
    script: str | None = None

    @classmethod
    def of(cls, snakemake: Any, script: str | None = None) -> Action:
        """The action of a Snakemake ``script:`` job (``script``: the wrapper's path, to hash its code)."""
        wc = dict(snakemake.wildcards.items()) if hasattr(snakemake.wildcards, "items") else {}
        params = dict(snakemake.params.items()) if hasattr(snakemake.params, "items") else {}
        return cls(
            rule=str(getattr(snakemake, "rule", "")),
            wildcards={str(k): str(v) for k, v in wc.items()},
            params=_jsonable(params),
            inputs=tuple((n, str(p)) for n, p in _named(snakemake.input)),
            outputs=tuple(str(p) for p in snakemake.output),
            script=script,
        )

    def parts(self, memo: DigestMemo | None = None) -> dict[str, Any]:
        """What the key hashes, as a JSON-ready dict (inputs digested now)."""
        code = None
        if self.script:
            from ..codeversion import code_of

            code = hash_bytes(code_of(self.script))
        return {
            "schema": SCHEMA,
            "rule": self.rule,
            "wildcards": dict(sorted(self.wildcards.items())),
            "params": self.params,
            "script": code,
            "inputs": [[n, p, content_digest(p, memo)] for n, p in self.inputs],
            "outputs": list(self.outputs),
            "environment": environment(),
        }


def action_key(parts: Mapping[str, Any]) -> str:
    """The sha256 (hex) of ``parts`` as canonical JSON."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def explain(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The differences between two keys' parts, one line each (``inputs[2]: …``): why a job missed."""
    out = []
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b), key=str):
            out += explain(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            out += explain(x, y, f"{prefix}[{i}]")
    elif a != b:
        out.append(f"{prefix}: {json.dumps(a, default=str)[:120]} -> {json.dumps(b, default=str)[:120]}")
    return out


def memo_for(workdir: str | os.PathLike = ".") -> DigestMemo:
    """The digest memo of a working folder (``.snakemake/repgeom/digests``)."""
    return DigestMemo(Path(workdir) / ".snakemake" / "repgeom" / "digests")
