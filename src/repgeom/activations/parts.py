"""Row-parts: one text set's activations made by several jobs, then gathered into one virtual file per layer.

A text set of N rows is cut into contiguous parts of ``rows_per_part`` rows (:func:`plan_parts`, a whole number of
the length-sorting windows, so that each part forms the very batches one whole run would and the gathered arrays
equal it bit for bit). Each part is an ordinary extraction of its rows (:func:`extract_part`) into its own folder
``{dataset}.parts/rows_{start}-{stop}`` beside the text set's folder. :func:`gather` then writes, per layer and
position, the usual shard file in the text set's folder, whose ``activations`` is an HDF5 *virtual dataset* over the
parts' files (relative paths: the results folder can be moved), with ``ids`` and ``n_tokens`` copied (small) and
the parts listed in its provenance (file, rows, run and checksums). No activation is copied; tools that open the
file with h5py see one (N, d) dataset, and :func:`.reader.load_layer` reads the parts directly, verifying each.

The plan (:func:`write_plan`) records each part's texts' sha256, so a part whose rows did not change keeps its
parameters: when a corpus grows, only the parts whose rows changed (and the new ones) rerun.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..artifacts import ArtifactError, atomic_path, attr_value, fsync_dir, json_default, now_iso, texts_sha256
from .gathered import raw_layout
from .layout import FAST_CHECKSUM, SHARED_ATTRS, _sha_array, have_fast_checksum, list_layers, shard_path, window_rows
from .pooling import POSITIONS
from .reader import check_shard

log = logging.getLogger(__name__)

PARTS_SUFFIX = ".parts"
#: attributes every part of one gathered shard must share (beyond :data:`.layout.SHARED_ATTRS`' run-wide ones)
_PART_SHARED = tuple(k for k in SHARED_ATTRS if k not in ("texts_sha256", "ids_sha256", "n")) + (
    "layer",
    "layers_in_run",
    "format_version",
    "sort_window",
    "dataset",
)
#: per-part attributes a gathered shard does not carry (it has the whole set's, or sums)
_PER_PART = ("row_start", "row_stop", "sha256_activations", "xxh3_activations", "encode_seconds", "load_seconds")


def part_name(r0: int, r1: int) -> str:
    return f"rows_{r0:09d}-{r1:09d}"


def parts_dir(outdir: str | os.PathLike) -> Path:
    """The folder beside a text set's activation folder that holds its parts."""
    outdir = Path(outdir)
    return outdir.parent / f"{outdir.name}{PARTS_SUFFIX}"


def plan_parts(n: int, rows_per_part: int, sort_window: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` row ranges covering ``n`` rows; ``rows_per_part`` must be a whole number of
    sorting windows (else the parts would batch texts differently from one whole run)."""
    w = window_rows(sort_window)
    if rows_per_part < 1 or rows_per_part % w:
        raise ValueError(
            f"rows_per_part = {rows_per_part} is not a whole number of length-sorting windows ({w} rows): parts "
            f"would batch texts differently from one whole run; use a multiple of {w}"
        )
    return [(r0, min(r0 + rows_per_part, n)) for r0 in range(0, n, rows_per_part)]


def make_plan(ids: Sequence[str], texts: Sequence[str], rows_per_part: int, sort_window: int) -> dict:
    """The plan of a text set: its parts' rows and each part's texts' and ids' sha256."""
    parts = [
        {
            "name": part_name(r0, r1),
            "row_start": r0,
            "row_stop": r1,
            "texts_sha256": texts_sha256(texts[r0:r1]),
            "ids_sha256": texts_sha256(ids[r0:r1]),
        }
        for r0, r1 in plan_parts(len(texts), rows_per_part, sort_window)
    ]
    return {
        "kind": "activation_plan",
        "n": len(texts),
        "rows_per_part": rows_per_part,
        "sort_window": window_rows(sort_window),
        "texts_sha256": texts_sha256(texts),
        "ids_sha256": texts_sha256(ids),
        "parts": parts,
    }


def write_plan(
    dataset_path: str | os.PathLike,
    out: str | os.PathLike,
    rows_per_part: int,
    sort_window: int,
) -> dict:
    """The text set's row-parts with each part's texts' and ids' sha256 (what decides whether a part reruns)."""
    from ..artifacts import write_json
    from .extraction import load_texts

    ids, texts = load_texts(dataset_path)
    plan = make_plan(ids, texts, rows_per_part, sort_window)
    parts = plan["parts"]
    write_json(out, plan)
    log.info("%s: %d texts in %d part(s) of up to %d rows", dataset_path, len(texts), len(parts), rows_per_part)
    return plan


#: plans parsed by :func:`read_plan`: path → (the file's inode, size and mtime, the plan)
_PLANS: dict[str, tuple[tuple, dict]] = {}


def read_plan(path: str | os.PathLike) -> dict:
    """The plan in ``path``, parsed once per version of the file. The workflow asks for it once per part job and
    per input, param and resource function (O(parts²) JSON parsing for a big plan otherwise); a file replaced
    since (new inode, size or mtime) is read again. Treat the result as read-only: it is shared."""
    from ..artifacts import read_json

    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _PLANS.get(str(path))
    if hit is None or hit[0] != key:
        hit = _PLANS[str(path)] = (key, read_json(path))
    return hit[1]


def _check_part(attrs: dict, entry: dict, first: dict | None, label: Path) -> None:
    """A part's shard against the plan (its rows and their texts) and against the first part (same run)."""
    if (attrs.get("row_start"), attrs.get("row_stop")) != (entry["row_start"], entry["row_stop"]):
        raise ArtifactError(
            f"{label}: holds rows {attrs.get('row_start')}–{attrs.get('row_stop')}, the plan's part is "
            f"{entry['row_start']}–{entry['row_stop']} (a part of another rows_per_part?); rerun the workflow"
        )
    for k in ("texts_sha256", "ids_sha256"):
        if attrs.get(k) != entry[k]:
            raise ArtifactError(f"{label}: its texts are not the plan's rows ({k} differs); rerun the workflow")
    if first is not None:
        bad = [k for k in _PART_SHARED if attrs.get(k) != first.get(k)]
        if bad:
            raise ArtifactError(
                f"{label}: a part of another run ({', '.join(f'{k}={attrs.get(k)!r} vs {first.get(k)!r}' for k in bad)}"
                "); rerun the workflow"
            )


def _gathered_attrs(part_attrs: list[dict], plan: dict, files: list[str], raws: list[dict | None]) -> dict:
    """A gathered shard's attributes: the parts' shared ones, the whole set's sizes and sums, the parts' list
    (with where each part's rows lie in its file, :func:`.gathered.raw_layout`, so that reads need not open it)."""
    first = part_attrs[0]
    attrs = {k: v for k, v in first.items() if k not in _PER_PART and k not in ("complete", "created")}
    sums = ("n_truncated", "n_nonfinite_rows", "oom_halvings") + (
        ("n_tokens_total",) if "n_tokens_total" in first else ()
    )
    attrs.update({k: int(sum(a.get(k, 0) for a in part_attrs)) for k in sums})
    # the rows each part fills in the gathered dataset: its texts, or (all-token shards) its tokens
    sizes = [a.get("n_tokens_total", a["row_stop"] - a["row_start"]) for a in part_attrs]
    slots = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    attrs.update(
        n=plan["n"],
        texts_sha256=plan["texts_sha256"],
        ids_sha256=plan["ids_sha256"],
        run_id=hashlib.sha256(  # from what it gathers (the parts' own ids), not from when: see extraction.run_id
            json.dumps([plan["texts_sha256"], plan["ids_sha256"], files, [a["run_id"] for a in part_attrs]]).encode()
        ).hexdigest()[:16],
        gathered=True,
        parts=[
            {
                "file": f,
                "row_start": a["row_start"],
                "row_stop": a["row_stop"],
                "slot_start": int(slots[i]),
                "slot_stop": int(slots[i + 1]),
                "run_id": a["run_id"],
                **{k: a[k] for k in ("sha256_activations", "xxh3_activations") if k in a},
                **({"raw": raws[i]} if raws[i] else {}),
            }
            for i, (f, a) in enumerate(zip(files, part_attrs))
        ],
        created=now_iso(),
    )
    return attrs


def _write_gathered(final: Path, attrs: dict, part_paths: list[Path], part_attrs: list[dict]) -> None:
    """One gathered shard: a virtual ``activations`` over the parts, ``ids`` and ``n_tokens`` copied; atomic,
    checked (every part's identity, not its rows: the gather verified those) before the rename."""
    import h5py

    n, d = attrs["n"], attrs["d"]
    dtype = np.dtype(attrs["store_dtype"])
    layout = h5py.VirtualLayout(shape=(attrs.get("n_tokens_total", n), d), dtype=dtype)
    ids, ntok, extra = [], [], {"token_ids": [], "row_start": []}
    for p, e in zip(part_paths, attrs["parts"]):
        s0, s1 = e["slot_start"], e["slot_stop"]
        layout[s0:s1] = h5py.VirtualSource(e["file"], "activations", shape=(s1 - s0, d), dtype=dtype)
        with h5py.File(p, "r", locking=False) as f:
            ids.append(f["ids"][()])
            ntok.append(f["n_tokens"][()])
            if "token_ids" in f:  # an all-token shard: its index, shifted to the part's first token
                extra["token_ids"].append(f["token_ids"][()])
                extra["row_start"].append(f["row_start"][()] + s0)
    width = max(x.dtype.itemsize for x in ids)
    all_ids = np.concatenate(ids).astype(h5py.string_dtype("utf-8", width))
    attrs.pop("ids_xxh3", None)  # the parts' own: the gathered ids' bytes differ
    if have_fast_checksum():
        attrs["ids_xxh3"] = _sha_array(all_ids, FAST_CHECKSUM)
    with atomic_path(final) as tmp:
        with h5py.File(tmp, "w", libver="latest", locking=False) as f:
            f.create_virtual_dataset("activations", layout, fillvalue=np.nan)
            f.create_dataset("ids", data=all_ids)
            f.create_dataset("n_tokens", data=np.concatenate(ntok))
            for name, arrays in extra.items():
                if arrays:
                    f.create_dataset(name, data=np.concatenate(arrays))
            for k, v in attrs.items():
                if k != "parts":
                    f.attrs[k] = attr_value(v)
            f.attrs["provenance"] = json.dumps(attrs, sort_keys=True, default=json_default)
            f.attrs["complete"] = True
        check_shard(tmp, {"run_id": attrs["run_id"], "n": n, "d": d}, verify=False, _label=final)


def gather(plan: dict | str | os.PathLike, outdir: str | os.PathLike, positions: Sequence[str] | None = None) -> dict:
    """Gather the parts of ``plan`` (in :func:`parts_dir` of ``outdir``) into one virtual shard per layer and
    position in ``outdir``. Every part is verified (checksums included) and checked against the plan and the
    first part; part folders the plan does not name (another ``rows_per_part``) are removed."""
    from ..artifacts import read_json

    plan = read_json(plan) if not isinstance(plan, dict) else plan
    outdir, pdir = Path(outdir), parts_dir(outdir)
    names = [e["name"] for e in plan["parts"]]
    positions = [p for p in (positions or POSITIONS) if list_layers(pdir / names[0], p)]
    layers = {p: list_layers(pdir / names[0], p) for p in positions}
    if not positions:
        raise ArtifactError(f"{pdir / names[0]}: no activation shards to gather")
    written = []
    for p in positions:
        for L in layers[p]:
            paths = [shard_path(pdir / nm, L, p) for nm in names]
            part_attrs, raws, first = [], [], None
            for path, entry in zip(paths, plan["parts"]):
                a = check_shard(path, verify=True)
                _check_part(a, entry, first, path)
                first = first or a
                part_attrs.append(a)
                raws.append(raw_layout(path))
            final = shard_path(outdir, L, p)
            final.parent.mkdir(parents=True, exist_ok=True)
            files = [os.path.relpath(path, final.parent) for path in paths]
            _write_gathered(final, _gathered_attrs(part_attrs, plan, files, raws), paths, part_attrs)
            written.append(str(final))
    for d_ in {shard_path(outdir, 0, p).parent for p in positions}:
        fsync_dir(d_)
    _remove_stale_parts(pdir, set(names))
    log.info("gathered %d part(s) into %d shard(s) in %s", len(names), len(written), outdir)
    return {"n": plan["n"], "parts": names, "files": written}


def _remove_stale_parts(pdir: Path, keep: set[str]) -> None:
    for d in pdir.glob("rows_*"):
        if d.is_dir() and d.name not in keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(d)
                log.info("removed %s: a part of an earlier plan (another rows_per_part or text set)", d)
