"""The LoRA → model soup vs SLERP study: does merging recover the base model's general structure?

The numeric-sequence paper claims that LoRA adaptation erodes an embedding model's general structure, that
model soups let the adapter dominate, and that SLERP merging recovers the base model's structure while keeping
most of the task gain. This module runs that experiment with controls:

1. **Data** (:func:`write_training_data`): windows of the same families from a term-index range *after* the
   evaluation dataset's windows (disjoint by construction, checked), with random lengths, split by window into
   ``train`` and ``heldout``.
2. **Fine-tuning** (:func:`train_lora`): a LoRA adapter (PEFT) on the model's transformer, trained with a
   sentence-transformers contrastive (triplet) loss over family labels by ``SentenceTransformerTrainer``, with
   the adapter saved every ``checkpoint_every`` steps; deterministic on the CPU for a seed.
3. **Variants** (:func:`build_variants`), each a loadable model folder (``model/`` + ``manifest.json``, the
   layout of a prepared model, so the embedding runtimes load it) with its ``recipe.json``: the final adapter
   merged (``merge_and_unload``), the soup (uniform average of every checkpoint's merged weights), linear
   interpolation base↔final (the control line), SLERP base↔final per tensor, and task vectors (fine-tuned −
   base) of two checkpoints or of two seeds combined by SLERP (and, as their control, linearly) and added back
   to the base. Each recipe records the variant's position along the fine-tuning direction and the cosine
   between base and merged tensors, so a reader sees when SLERP cannot differ from linear.
4. **Scores** (:func:`score_variants`): the spine's clustering metrics (with bootstrap CIs) on the evaluation
   set and on the held-out split, and general ability as STS-B Spearman of cosine similarity.
5. **Tables** (:func:`write_summary`): mean ± std over seeds per variant and a verdict per claim of the paper.

The merge arithmetic (:func:`lerp`, :func:`slerp`, :data:`METHODS`) is plain torch on state dicts.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .artifacts import (ArtifactError, library_versions, now_iso, read_h5, read_json, texts_sha256, write_h5,
                        write_json, write_text)

log = logging.getLogger(__name__)

#: SLERP falls back to linear interpolation when two tensors are this close to parallel (|cos| above it):
#: the usual threshold (mergekit's DOT_THRESHOLD)
SLERP_THRESHOLD = 0.9995


class MergeError(ValueError):
    """The inputs of a merge do not fit together (other base, other shapes, missing checkpoints)."""


# ------------------------------------------------------------------ merge arithmetic (torch, per tensor)
def _torch():
    import torch

    return torch


def lerp(a, b, t: float):
    """``(1 - t)·a + t·b``: returns ``a`` at t = 0 and ``b`` at t = 1 exactly."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    return (1 - t) * a + t * b


def slerp(a, b, t: float, threshold: float = SLERP_THRESHOLD):
    """Spherical interpolation of two tensors viewed as flat vectors, as mergekit does it.

    The angle comes from the normalised vectors; the weights ``sin((1-t)θ)/sin θ`` and ``sin(tθ)/sin θ`` are
    applied to the *unnormalised* tensors, so the result's norm interpolates smoothly between the two. When
    ``|cos θ| > threshold`` the tensors are nearly parallel, the formula is ill-conditioned and no different
    from a line: it falls back to :func:`lerp`. Returns ``(tensor, fell_back, cos)``; computed in float64.
    """
    torch = _torch()
    a64, b64 = a.double().flatten(), b.double().flatten()
    na, nb = torch.linalg.vector_norm(a64), torch.linalg.vector_norm(b64)
    if na == 0 or nb == 0:
        return lerp(a, b, t), True, float("nan")
    cos = float(torch.dot(a64 / na, b64 / nb).clamp(-1.0, 1.0))
    if abs(cos) > threshold:
        return lerp(a, b, t), True, cos
    theta = math.acos(cos)
    s = math.sin(theta)
    wa, wb = math.sin((1 - t) * theta) / s, math.sin(t * theta) / s
    out = (wa * a64 + wb * b64).reshape(a.shape).to(a.dtype)
    return out, False, cos


def _float_keys(sd: Mapping[str, Any]) -> list[str]:
    return [k for k, v in sd.items() if v.is_floating_point()]


def _check_same(names: Sequence[str], sds: Sequence[Mapping[str, Any]]) -> None:
    ref = sds[0]
    for name, sd in zip(names[1:], sds[1:]):
        if set(sd) != set(ref):
            diff = sorted(set(sd) ^ set(ref))[:5]
            raise MergeError(f"{name}: its tensors differ from {names[0]}'s (e.g. {diff}); merging needs models of "
                             "one architecture")
        bad = [k for k in ref if sd[k].shape != ref[k].shape][:5]
        if bad:
            raise MergeError(f"{name}: tensor shapes differ from {names[0]}'s for {bad}")


def changed_keys(base: Mapping[str, Any], *others: Mapping[str, Any]) -> list[str]:
    """Float tensors that differ from ``base`` in at least one of ``others``."""
    torch = _torch()
    return [k for k in _float_keys(base) if any(not torch.equal(base[k], o[k]) for o in others)]


def merge_interpolate(method: str, a: Mapping[str, Any], b: Mapping[str, Any], t: float,
                      threshold: float = SLERP_THRESHOLD) -> tuple[dict, dict]:
    """Interpolate two state dicts tensor by tensor (``linear`` or ``slerp``).

    Tensors equal in both are copied. Returns the state dict and counts: tensors interpolated and, for SLERP,
    how many fell back to linear (nearly parallel), with the cosines between the two inputs.
    """
    if method not in ("linear", "slerp"):
        raise MergeError(f"unknown interpolation {method!r} (linear, slerp)")
    _check_same(["a", "b"], [a, b])
    keys = set(changed_keys(a, b))
    out, cosines, fell = {}, [], 0
    for k, v in a.items():
        if k not in keys:
            out[k] = v.clone()
        elif method == "linear":
            out[k] = lerp(v, b[k], t)
        else:
            out[k], fb, c = slerp(v, b[k], t, threshold)
            fell += fb
            cosines.append(c)
    stats = {"n_tensors": len(a), "n_interpolated": len(keys)}
    if method == "slerp":
        stats.update(n_fallback=fell, slerp_threshold=threshold, input_cos=_quantiles(cosines))
    return out, stats


def average(sds: Sequence[Mapping[str, Any]]) -> dict:
    """Uniform average of state dicts (the model soup); non-float tensors are taken from the first."""
    if not sds:
        raise MergeError("a soup needs at least one model")
    _check_same([f"model {i}" for i in range(len(sds))], sds)
    out = {}
    for k, v in sds[0].items():
        if v.is_floating_point():
            acc = sum(sd[k].double() for sd in sds) / len(sds)
            out[k] = acc.to(v.dtype)
        else:
            out[k] = v.clone()
    return out


def task_vector(base: Mapping[str, Any], tuned: Mapping[str, Any]) -> dict:
    """``tuned − base`` for float tensors (zero where unchanged)."""
    _check_same(["base", "tuned"], [base, tuned])
    return {k: tuned[k] - base[k] for k in _float_keys(base)}


def add_task_vector(base: Mapping[str, Any], tv: Mapping[str, Any]) -> dict:
    return {k: (v + tv[k] if k in tv else v.clone()) for k, v in base.items()}


def merge_task_vectors(method: str, base: Mapping[str, Any], a: Mapping[str, Any], b: Mapping[str, Any], t: float,
                       threshold: float = SLERP_THRESHOLD) -> tuple[dict, dict]:
    """``base + interp(a − base, b − base, t)``: task vectors combined linearly or by SLERP, added back."""
    tva, tvb = task_vector(base, a), task_vector(base, b)
    torch = _torch()
    nz = {k for k in tva if bool(torch.any(tva[k] != 0)) or bool(torch.any(tvb[k] != 0))}
    mixed, stats = merge_interpolate(method, {k: tva[k] for k in nz}, {k: tvb[k] for k in nz}, t, threshold)
    stats["n_tensors"] = len(base)
    stats["task_vector_cos"] = _global_cos([tva[k] for k in nz], [tvb[k] for k in nz])
    return add_task_vector(base, mixed), stats


def _global_cos(xs, ys) -> float:
    dot = sum(float((x.double() * y.double()).sum()) for x, y in zip(xs, ys))
    nx = math.sqrt(sum(float((x.double() ** 2).sum()) for x in xs))
    ny = math.sqrt(sum(float((y.double() ** 2).sum()) for y in ys))
    return dot / (nx * ny) if nx and ny else float("nan")


def _quantiles(values: Sequence[float]) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"n": 0}
    q = np.quantile(v, [0.0, 0.05, 0.5, 0.95, 1.0])
    return {"n": int(len(v)), "min": float(q[0]), "q05": float(q[1]), "median": float(q[2]), "q95": float(q[3]),
            "max": float(q[4])}


def geometry(base: Mapping[str, Any], final: Mapping[str, Any], variant: Mapping[str, Any]) -> dict:
    """Where a variant sits relative to the base and the fine-tuned model.

    ``position``: the projection of (variant − base) on the fine-tuning direction (final − base), summed over
    all tensors, in units of that direction: 0 is the base, 1 the fine-tuned model; a linear interpolation at
    ``t`` sits at exactly ``t``. ``off_direction``: the norm of what is left of (variant − base) after that
    projection, relative to ``‖final − base‖`` (0 on the line). ``base_cos``: quantiles of the cosine between
    each changed base tensor and the variant's; ``relative_change``: ‖variant − base‖ / ‖base‖ over the changed
    tensors. When the changes are this small, the angle between base and merged tensors is tiny and SLERP
    cannot differ from linear interpolation.
    """
    keys = changed_keys(base, final, variant)
    dot = dd = vv = bb = 0.0
    cos = []
    for k in keys:
        b0 = base[k].double()
        d = final[k].double() - b0
        v = variant[k].double() - b0
        dot += float((v * d).sum())
        dd += float((d * d).sum())
        vv += float((v * v).sum())
        bb += float((b0 * b0).sum())
        vk = variant[k].double().flatten()
        nb, nv = float(b0.norm()), float(vk.norm())
        if nb and nv:
            cos.append(float((b0.flatten() @ vk) / (nb * nv)))
    pos = dot / dd if dd else float("nan")
    off = math.sqrt(max(vv - (dot * dot / dd if dd else 0.0), 0.0)) / math.sqrt(dd) if dd else float("nan")
    return {"n_changed": len(keys), "position": pos, "off_direction": off,
            "relative_change": math.sqrt(vv / bb) if bb else float("nan"),
            "finetune_relative_change": math.sqrt(dd / bb) if bb else float("nan"),
            "base_cos": _quantiles(cos)}


#: the merge methods a variant can name (mergekit's shape: one small function per method behind a registry)
METHODS: dict[str, Callable[..., tuple[dict, dict]]] = {
    "linear": lambda base, final, t, threshold: merge_interpolate("linear", base, final, t),
    "slerp": lambda base, final, t, threshold: merge_interpolate("slerp", base, final, t, threshold),
    "tv_linear": lambda base, a, b, t, threshold: merge_task_vectors("linear", base, a, b, t),
    "tv_slerp": lambda base, a, b, t, threshold: merge_task_vectors("slerp", base, a, b, t, threshold),
}


# ------------------------------------------------------------------ training data
def eval_ranges(eval_meta: Mapping[str, Any], eval_records: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Per family, the term-index range ``[first, end)`` the evaluation windows cover."""
    out: dict[str, list[int]] = {}
    for r in eval_records:
        lo, hi = r["first_index"], r["first_index"] + eval_meta["params"]["length"]
        cur = out.setdefault(r["family"], [lo, hi])
        cur[0], cur[1] = min(cur[0], lo), max(cur[1], hi)
    return out


def training_windows(families: Sequence[str], spec: Mapping[str, Any], avoid: Mapping[str, Sequence[int]]) -> list[dict]:
    """Windows of random length from a term-index range disjoint from ``avoid`` (the evaluation windows).

    Per family, windows are consecutive and non-overlapping from ``start_offset`` (default: the end of that
    family's evaluation range), lengths drawn uniformly from ``[min_length, max_length]`` with ``data_seed``; a
    ``heldout_fraction`` of each family's windows, drawn at random, forms the held-out split.
    """
    from .sequences import FAMILIES, render

    rng = np.random.default_rng(spec.get("seed", 0))
    lo_len, hi_len = spec["min_length"], spec["max_length"]
    if not 1 <= lo_len <= hi_len:
        raise MergeError(f"merging.data: min_length {lo_len} and max_length {hi_len} must satisfy 1 <= min <= max")
    n = spec["n_sequences"]
    n_held = int(round(n * spec["heldout_fraction"]))
    if n_held < 2 or n - n_held < 2:
        raise MergeError(f"merging.data: {n} windows per family with heldout_fraction {spec['heldout_fraction']} "
                         f"leave {n - n_held} train and {n_held} held-out windows; each split needs at least 2")
    records = []
    for fam in families:
        start = spec.get("start_offset")
        ev = avoid.get(fam)
        if start is None:
            start = ev[1] if ev else 0
        lengths = rng.integers(lo_len, hi_len + 1, size=n)
        end = start + int(lengths.sum())
        if ev and start < ev[1] and ev[0] < end:
            raise MergeError(f"merging.data.start_offset = {start}: training windows of {fam!r} would cover term "
                             f"indices [{start}, {end}), which overlap the evaluation windows [{ev[0]}, {ev[1]}); "
                             "start after the evaluation range (leave start_offset unset for that)")
        held = set(rng.choice(n, size=n_held, replace=False).tolist())
        terms = FAMILIES[fam].terms(end - start, start)
        pos = 0
        for j, L in enumerate(lengths.tolist()):
            text, n_terms, cut = render(terms[pos: pos + L], spec["max_chars"])
            records.append({"id": f"{fam}_train_{j:03d}", "family": fam, "split": "heldout" if j in held else "train",
                            "window": j, "first_index": start + pos, "n_terms": n_terms, "truncated": cut,
                            "text": text})
            pos += L
    return records


def write_training_data(eval_path, spec: Mapping[str, Any], out_path) -> dict:
    """The fine-tuning data beside its evaluation set: ``{"meta", "records"}`` with a ``split`` per record."""
    from .sequences import load_dataset

    eval_meta, eval_records = load_dataset(eval_path)
    families = list(eval_meta["families"])
    ranges = eval_ranges(eval_meta, eval_records)
    records = training_windows(families, spec, ranges)
    counts = {s: sum(r["split"] == s for r in records) for s in ("train", "heldout")}
    train_ranges = {f: [min(r["first_index"] for r in records if r["family"] == f),
                        max(r["first_index"] + r["n_terms"] for r in records if r["family"] == f)] for f in families}
    meta = {
        "kind": "merging-data", "families": families, "params": dict(spec), "n": len(records), "counts": counts,
        "eval_dataset": eval_meta["dataset"], "eval_texts_sha256": eval_meta["texts_sha256"],
        "eval_term_ranges": ranges, "train_term_ranges": train_ranges,
        "split": (f"per family, {spec['n_sequences']} consecutive windows of {spec['min_length']}-{spec['max_length']} "
                  f"terms from the term-index range after the evaluation windows ({eval_meta['dataset']}: "
                  f"{eval_meta['params']['length']} terms each); {counts['heldout']} windows drawn at random are "
                  f"held out, {counts['train']} train the adapters; the evaluation set is the spine's dataset"),
        "texts_sha256": texts_sha256([r["text"] for r in records]),
        "created": now_iso(),
    }
    write_json(out_path, {"meta": meta, "records": records})
    log.info("merging data: %s", meta["split"])
    return meta


def load_training_data(path) -> tuple[dict, list[dict]]:
    obj = read_json(path)
    meta, records = obj.get("meta", {}), obj.get("records")
    if meta.get("kind") != "merging-data" or records is None:
        raise ArtifactError(f"{path}: not a merging data artifact")
    if texts_sha256([r["text"] for r in records]) != meta.get("texts_sha256"):
        raise ArtifactError(f"{path}: texts do not match the recorded sha256 (edited or corrupt)")
    return meta, records


# ------------------------------------------------------------------ fine-tuning (PEFT + sentence-transformers)
def _loss(name: str, model, margin: float | None):
    from sentence_transformers.sentence_transformer import losses

    kinds = {"batch_hard_soft_margin_triplet": losses.BatchHardSoftMarginTripletLoss,
             "batch_all_triplet": losses.BatchAllTripletLoss,
             "batch_hard_triplet": losses.BatchHardTripletLoss,
             "batch_semi_hard_triplet": losses.BatchSemiHardTripletLoss}
    if name not in kinds:
        raise MergeError(f"merging.train.loss = {name!r}: unknown (known: {', '.join(kinds)})")
    return kinds[name](model) if margin is None or "soft_margin" in name else kinds[name](model, margin=margin)


def _device(device: str) -> str:
    from .devices import pick_device

    return pick_device(device)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike):
    """Yield a dot-named staging folder beside ``final``; it replaces ``final`` only when the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):  # left by a killed job
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield stage
        os.chmod(stage, 0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def load_base(model_dir, device: str = "cpu"):
    """The prepared sentence-transformers model, its manifest and the transformer module's state dict."""
    from sentence_transformers import SentenceTransformer

    from .models import load_manifest, resolve_model_path

    manifest = load_manifest(model_dir)
    if manifest["runtime"] != "sentence-transformers":
        raise MergeError(f"model {manifest['name']!r}: the merging study fine-tunes sentence-transformers models, "
                         f"not runtime {manifest['runtime']!r}")
    model = SentenceTransformer(str(resolve_model_path(model_dir, manifest)), device=device, local_files_only=True,
                                trust_remote_code=manifest.get("trust_remote_code", False))
    return model, manifest


def _transformer(model):
    return model[0].auto_model


def _set_transformer(model, module) -> None:
    model[0].auto_model = module


def train_lora(model_dir, data_path, out_dir, *, seed: int, lora: Mapping[str, Any], train: Mapping[str, Any],
               device: str = "auto", progress: bool = True) -> dict:
    """Fine-tune one LoRA adapter and save it every ``checkpoint_every`` steps (PEFT adapter folders).

    ``out_dir`` gets ``step_{NNNNN}/`` per checkpoint (the last one is the final adapter), ``train_log.tsv``
    (loss per logged step) and ``recipe.json`` (every parameter, the data's and base model's hashes, timings).
    """
    import torch
    import transformers
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (BatchSamplers,
                                                                         SentenceTransformerTrainingArguments)
    from transformers import TrainerCallback

    meta, records = load_training_data(data_path)
    rows = [r for r in records if r["split"] == "train"]
    labels = {f: i for i, f in enumerate(meta["families"])}
    dev = _device(device)
    steps, every = int(train["steps"]), int(train["checkpoint_every"])
    if every <= 0 or steps <= 0:
        raise MergeError("merging.train: steps and checkpoint_every must be positive")
    save_at = sorted({s for s in range(every, steps + 1, every)} | {steps})
    transformers.set_seed(seed)
    model, manifest = load_base(model_dir, dev)
    cfg = LoraConfig(r=int(lora["r"]), lora_alpha=float(lora["alpha"]), lora_dropout=float(lora["dropout"]),
                     target_modules=list(lora["target_modules"]), bias="none")
    try:
        peft_model = get_peft_model(_transformer(model), cfg)
    except ValueError as e:
        raise MergeError(f"merging.lora.target_modules = {list(lora['target_modules'])}: {e}") from None
    _set_transformer(model, peft_model)
    n_train = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in peft_model.parameters())
    log.info("LoRA r=%s alpha=%s on %s: %d trainable of %d parameters (%.2f%%), %d steps, checkpoints at %s, "
             "device %s", lora["r"], lora["alpha"], list(lora["target_modules"]), n_train, n_all,
             100 * n_train / n_all, steps, save_at, dev)
    ds = Dataset.from_dict({"text": [r["text"] for r in rows], "label": [labels[r["family"]] for r in rows]})
    history: list[dict] = []
    t_start = time.time()

    with atomic_dir(out_dir) as stage:
        class Checkpoints(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step in save_at:
                    peft_model.save_pretrained(stage / f"step_{state.global_step:05d}")
                    log.info("step %d: adapter saved (%.1f s)", state.global_step, time.time() - t_start)

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "loss" in logs:
                    history.append({"step": state.global_step, "loss": float(logs["loss"]),
                                    "learning_rate": float(logs.get("learning_rate", float("nan"))),
                                    "seconds": round(time.time() - t_start, 2)})

        args = SentenceTransformerTrainingArguments(
            output_dir=str(stage / ".trainer"), max_steps=steps, per_device_train_batch_size=int(train["batch_size"]),
            learning_rate=float(train["lr"]), warmup_steps=int(train.get("warmup_steps", 0)),
            weight_decay=float(train.get("weight_decay", 0.0)), lr_scheduler_type=train.get("scheduler", "linear"),
            seed=seed, data_seed=seed, batch_sampler=BatchSamplers.GROUP_BY_LABEL, save_strategy="no",
            logging_steps=max(1, min(10, every)), report_to=[], use_cpu=dev == "cpu", disable_tqdm=not progress,
            dataloader_num_workers=0)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds,
                                             loss=_loss(train["loss"], model, train.get("margin")),
                                             callbacks=[Checkpoints()])
        t0 = time.time()
        with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its loss dicts: into the job's log
            trainer.train()
        seconds = time.time() - t0
        shutil.rmtree(stage / ".trainer", ignore_errors=True)
        missing = [s for s in save_at if not (stage / f"step_{s:05d}").is_dir()]
        if missing:
            raise MergeError(f"training stopped before the checkpoints at steps {missing}")
        import pandas as pd

        pd.DataFrame(history, columns=["step", "loss", "learning_rate", "seconds"]).to_csv(
            stage / "train_log.tsv", sep="\t", index=False)
        recipe = {
            "kind": "lora-adapters", "model": manifest["name"], "base_fingerprint": manifest["fingerprint"],
            "seed": seed, "lora": dict(lora), "train": dict(train), "device": dev,
            "data_sha256": meta["texts_sha256"], "n_train": len(rows), "families": meta["families"],
            "checkpoints": [f"step_{s:05d}" for s in save_at], "trainable_parameters": n_train,
            "total_parameters": n_all, "train_seconds": round(seconds, 2),
            "steps_per_second": round(steps / seconds, 4), "final_loss": history[-1]["loss"] if history else None,
            "torch_threads": torch.get_num_threads(), "versions": library_versions(("torch", "transformers",
                                                                                     "sentence_transformers", "peft")),
            "created": now_iso(),
        }
        (stage / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    log.info("trained %d steps in %.1f s (%.3f steps/s), final loss %s", steps, seconds, steps / seconds,
             recipe["final_loss"])
    return recipe


def load_adapters(path, base_fingerprint: str | None = None) -> dict:
    """An adapters folder's recipe, refusing one trained on another base model or left incomplete."""
    path = Path(path)
    recipe = read_json(path / "recipe.json")
    if recipe.get("kind") != "lora-adapters":
        raise ArtifactError(f"{path}: not a LoRA adapters folder")
    if base_fingerprint is not None and recipe["base_fingerprint"] != base_fingerprint:
        raise ArtifactError(f"{path}: adapters were trained on another base model (fingerprint "
                            f"{recipe['base_fingerprint'][:12]}…, expected {base_fingerprint[:12]}…); rerun training")
    missing = [c for c in recipe["checkpoints"] if not (path / c / "adapter_config.json").exists()]
    if missing:
        raise ArtifactError(f"{path}: checkpoints {missing} are missing")
    return recipe


# ------------------------------------------------------------------ variants
def variant_plan(variants: Mapping[str, Any], checkpoints: Sequence[str], partner: str | None) -> list[dict]:
    """The recipes of one seed's variants, in table order; ``partner`` is the seed whose task vector the
    between-seeds merges combine with this one's (None with a single seed: those variants are left out)."""
    final, mid = checkpoints[-1], checkpoints[max(0, len(checkpoints) // 2 - 1)]
    plan = [{"name": "final", "method": "lora_merge", "checkpoint": final,
             "what": "the final adapter merged into the base (merge_and_unload)"},
            {"name": "soup", "method": "soup", "checkpoints": list(checkpoints),
             "what": f"uniform average of the merged weights of {len(checkpoints)} checkpoints"}]
    for t in variants["linear_t"]:
        plan.append({"name": f"linear_{t:g}", "method": "linear", "t": float(t),
                     "what": f"(1 − t)·base + t·final, t = {t:g} (the control line)"})
    for t in variants["slerp_t"]:
        plan.append({"name": f"slerp_{t:g}", "method": "slerp", "t": float(t),
                     "what": f"SLERP base → final per tensor, t = {t:g}"})
    t = float(variants["task_vector_t"])
    if len(checkpoints) >= 2 and mid != final:
        for how in ("slerp", "linear"):
            plan.append({"name": f"tv_{how}_ckpt", "method": f"tv_{how}", "t": t, "a": ["self", mid],
                         "b": ["self", final], "what": f"base + {how} of the task vectors of checkpoints {mid} and "
                                                       f"{final}, t = {t:g}"})
    if partner is not None:
        for how in ("slerp", "linear"):
            plan.append({"name": f"tv_{how}_seeds", "method": f"tv_{how}", "t": t, "a": ["self", final],
                         "b": ["partner", final], "partner": partner,
                         "what": f"base + {how} of this seed's and {partner}'s final task vectors, t = {t:g}"})
    return plan


def merged_state(base_module, adapter_dir) -> dict:
    """The transformer's state dict with one PEFT adapter merged in (``merge_and_unload``)."""
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(copy.deepcopy(base_module), str(adapter_dir))
    merged = peft_model.merge_and_unload()
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}


def _save_variant(model, state: Mapping[str, Any], folder: Path, recipe: dict, base_manifest: dict) -> None:
    from .models import MANIFEST, files_sha256, fingerprint

    _transformer(model).load_state_dict(state, strict=True)
    model.save(str(folder / "model"))
    manifest = {"name": f"{base_manifest['name']}:{recipe['name']}", "runtime": "sentence-transformers",
                "source": {"type": "merge", "base_fingerprint": base_manifest["fingerprint"],
                           "recipe": {k: v for k, v in recipe.items() if k not in ("geometry", "stats")}},
                "trust_remote_code": base_manifest.get("trust_remote_code", False), "model_path": "model",
                "files": files_sha256(folder), "prepared": now_iso()}
    manifest["fingerprint"] = fingerprint(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / "recipe.json").write_text(json.dumps(recipe, indent=2, default=float) + "\n")


def build_variants(model_dir, adapters_dir, out_dir, *, variants: Mapping[str, Any], seed: int,
                   partner_dir=None, partner_seed: int | None = None) -> list[dict]:
    """Build every variant of one seed as a loadable model folder under ``out_dir/{variant}/``.

    Also writes ``out_dir/variants.tsv``: one row per variant with its recipe and geometry.
    """
    import pandas as pd

    model, manifest = load_base(model_dir, "cpu")
    base_module = copy.deepcopy(_transformer(model))
    base = {k: v.detach().clone() for k, v in base_module.state_dict().items()}
    own = load_adapters(adapters_dir, manifest["fingerprint"])
    ckpts = own["checkpoints"]
    states = {("self", c): merged_state(base_module, Path(adapters_dir) / c) for c in ckpts}
    partner = None
    if partner_dir is not None:
        prec = load_adapters(partner_dir, manifest["fingerprint"])
        partner = f"seed {partner_seed}"
        states[("partner", ckpts[-1])] = merged_state(base_module, Path(partner_dir) / prec["checkpoints"][-1])
    final = states[("self", ckpts[-1])]
    threshold = float(variants.get("slerp_threshold", SLERP_THRESHOLD))
    plan = variant_plan(variants, ckpts, partner)
    rows = []
    with atomic_dir(out_dir) as stage:
        for recipe in plan:
            t0 = time.time()
            m = recipe["method"]
            stats: dict = {}
            if m == "lora_merge":
                state = final
            elif m == "soup":
                state = average([states[("self", c)] for c in recipe["checkpoints"]])
            elif m in ("linear", "slerp"):
                state, stats = METHODS[m](base, final, recipe["t"], threshold)
            else:
                state, stats = METHODS[m](base, states[tuple(recipe["a"])], states[tuple(recipe["b"])], recipe["t"],
                                          threshold)
            recipe = {**recipe, "seed": seed, "lora": own["lora"], "train": own["train"],
                      "stats": stats, "geometry": geometry(base, final, state)}
            _save_variant(model, state, stage / recipe["name"], recipe, manifest)
            g = recipe["geometry"]
            log.info("variant %-16s position %.3f off-direction %.3f, base-cos median %.6f%s (%.1f s)", recipe["name"],
                     g["position"], g["off_direction"], g["base_cos"].get("median", float("nan")),
                     f", SLERP fell back to linear on {stats['n_fallback']}/{stats['n_interpolated']} tensors"
                     if "n_fallback" in stats else "", time.time() - t0)
            rows.append(_variant_row(recipe))
        pd.DataFrame(rows).to_csv(stage / "variants.tsv", sep="\t", index=False)
    return rows


def _variant_row(recipe: Mapping[str, Any]) -> dict:
    g, s = recipe.get("geometry", {}), recipe.get("stats", {})
    return {"variant": recipe["name"], "method": recipe["method"], "t": recipe.get("t"),
            "position": g.get("position"), "off_direction": g.get("off_direction"),
            "relative_change": g.get("relative_change"), "base_cos_min": g.get("base_cos", {}).get("min"),
            "base_cos_median": g.get("base_cos", {}).get("median"), "n_changed": g.get("n_changed"),
            "n_interpolated": s.get("n_interpolated"), "n_fallback": s.get("n_fallback"),
            "input_cos_max": s.get("input_cos", {}).get("max"), "task_vector_cos": s.get("task_vector_cos")}


def base_recipe() -> dict:
    return {"name": "base", "method": "base", "what": "the prepared model, untouched",
            "geometry": {"position": 0.0, "off_direction": 0.0, "relative_change": 0.0}}


# ------------------------------------------------------------------ scores
def score_variants(folders: Sequence[tuple[dict, Path]], *, data_path, eval_path, corpus_path, out_h5,
                   run: str, sts_split: str = "dev", sts_max_pairs: int | None = None, batch_size: int = 64,
                   device: str = "auto", metrics: Mapping[str, Any], seed: int = 0, progress: bool = True) -> dict:
    """Embed the evaluation set, the held-out split and the STS pairs with every variant and score them.

    ``folders`` = [(recipe, model folder)]. Returns every score; writes ``out_h5`` (the evaluation set's
    embeddings per variant, for the t-SNE maps). ``seed`` seeds KMeans and the bootstrap.
    """
    from .embeddings import load_runtime
    from .metrics import cluster_metrics
    from .sequences import load_dataset
    from .corpora import stsb_pairs
    from .metrics import correlations

    eval_meta, eval_records = load_dataset(eval_path)
    dmeta, drecords = load_training_data(data_path)
    if dmeta["eval_texts_sha256"] != eval_meta["texts_sha256"]:
        raise ArtifactError(f"{data_path}: made beside another evaluation set than {eval_path}; rerun merging_data")
    held = [r for r in drecords if r["split"] == "heldout"]
    pairs = stsb_pairs(corpus_path, splits=(sts_split,))[sts_split]
    n_pairs = len(pairs["y"]) if not sts_max_pairs else min(sts_max_pairs, len(pairs["y"]))
    s1, s2, gold = pairs["s1"][:n_pairs], pairs["s2"][:n_pairs], pairs["y"][:n_pairs]
    sentences = list(dict.fromkeys(s1 + s2))
    row = {s: i for i, s in enumerate(sentences)}
    r1, r2 = np.array([row[s] for s in s1]), np.array([row[s] for s in s2])
    eval_texts, eval_labels = [r["text"] for r in eval_records], [r["family"] for r in eval_records]
    held_texts, held_labels = [r["text"] for r in held], [r["family"] for r in held]
    mkw = {"n_init": metrics["kmeans_n_init"], "seed": seed, "bootstrap": metrics["bootstrap"], "ci": metrics["ci"],
           "metric": metrics["silhouette_metric"]}
    out, eval_emb = [], []
    t_all = time.time()
    for recipe, folder in folders:
        t0 = time.time()
        rt = load_runtime(folder, {"runtime": "sentence-transformers", "device": device})
        t_load = time.time() - t0
        X = rt.encode(eval_texts, batch_size, progress=False)
        H = rt.encode(held_texts, batch_size, progress=False)
        S = rt.encode(sentences, batch_size, progress=progress)
        Sn = S / np.maximum(np.linalg.norm(S, axis=1, keepdims=True), 1e-12)
        cos = np.einsum("nd,nd->n", Sn[r1], Sn[r2])
        pearson, spearman = correlations(cos, gold)
        res = {"variant": recipe["name"], "recipe": recipe, "fingerprint": rt.manifest["fingerprint"],
               "eval": cluster_metrics(X, eval_labels, **mkw), "heldout": cluster_metrics(H, held_labels, **mkw),
               "sts": {"split": sts_split, "n_pairs": n_pairs, "pearson": pearson, "spearman": spearman},
               "seconds": {"load": round(t_load, 2), "total": round(time.time() - t0, 2)}}
        log.info("%s %-16s eval silhouette %.3f, held-out silhouette %.3f, STS-B %s Spearman %.2f (%.1f s)", run,
                 recipe["name"], res["eval"]["silhouette_true"], res["heldout"]["silhouette_true"], sts_split, spearman,
                 res["seconds"]["total"])
        out.append(res)
        eval_emb.append(X)
        del rt
    blob = {"kind": "merging-scores", "run": run, "eval_dataset": eval_meta["dataset"],
            "eval_texts_sha256": eval_meta["texts_sha256"], "data_texts_sha256": dmeta["texts_sha256"],
            "split": dmeta["split"], "n_eval": len(eval_texts), "n_heldout": len(held_texts),
            "n_sts_sentences": len(sentences), "variants": out, "seconds": round(time.time() - t_all, 2),
            "versions": library_versions()}
    write_h5(out_h5, {"embeddings": np.stack(eval_emb).astype(np.float32),
                      "variants": np.array([r["variant"] for r in out], dtype=object),
                      "ids": np.array([r["id"] for r in eval_records], dtype=object),
                      "labels": np.array(eval_labels, dtype=object)},
             {"kind": "merging-embeddings", "run": run, "texts_sha256": eval_meta["texts_sha256"]},
             checksum=("embeddings",))
    return blob


# ------------------------------------------------------------------ tables and verdicts
#: per-variant columns of the long table (one row per variant × run)
SCORE_COLUMNS = ["eval_silhouette", "eval_dbi", "eval_silhouette_kmeans", "eval_ari", "heldout_silhouette",
                 "heldout_dbi", "sts_spearman", "sts_pearson", "position", "off_direction"]


def long_frame(score_blobs: Sequence[Mapping[str, Any]]):
    """One row per (variant, run) with its scores, CIs and geometry."""
    import pandas as pd

    rows = []
    for blob in score_blobs:
        for v in blob["variants"]:
            rec, e, h = v["recipe"], v["eval"], v["heldout"]
            g, s = rec.get("geometry", {}), rec.get("stats", {})
            rows.append({
                "variant": v["variant"], "method": rec["method"], "t": rec.get("t"), "run": blob["run"],
                "seed": blob["seed"] if blob["run"] != "base" else None,
                "eval_silhouette": e["silhouette_true"], "eval_silhouette_lo": e.get("silhouette_true_lo"),
                "eval_silhouette_hi": e.get("silhouette_true_hi"), "eval_dbi": e["dbi_true"],
                "eval_dbi_lo": e.get("dbi_true_lo"), "eval_dbi_hi": e.get("dbi_true_hi"),
                "eval_silhouette_kmeans": e["silhouette_kmeans"], "eval_ari": e["ari"],
                "heldout_silhouette": h["silhouette_true"], "heldout_silhouette_lo": h.get("silhouette_true_lo"),
                "heldout_silhouette_hi": h.get("silhouette_true_hi"), "heldout_dbi": h["dbi_true"],
                "sts_spearman": v["sts"]["spearman"], "sts_pearson": v["sts"]["pearson"],
                "position": g.get("position"), "off_direction": g.get("off_direction"),
                "relative_change": g.get("relative_change"), "base_cos_median": g.get("base_cos", {}).get("median"),
                "n_interpolated": s.get("n_interpolated"), "n_fallback": s.get("n_fallback"),
                "task_vector_cos": s.get("task_vector_cos"), "seconds": v["seconds"]["total"]})
    return pd.DataFrame(rows)


def summary_frame(long):
    """Mean ± std over seeds per variant, with gains relative to the base (task gain = silhouette change on the
    evaluation set; general-ability loss = base STS Spearman − variant's)."""
    import pandas as pd

    base = long[long.variant == "base"]
    if base.empty:
        raise MergeError("no scores of the base model")
    b = base.iloc[0]
    long = long.assign(task_gain=long.eval_silhouette - b.eval_silhouette,
                       heldout_gain=long.heldout_silhouette - b.heldout_silhouette,
                       sts_loss=b.sts_spearman - long.sts_spearman)
    order = list(dict.fromkeys(long.variant))
    out = []
    for name in order:
        g = long[long.variant == name]
        row = {"variant": name, "method": g.method.iloc[0], "t": g.t.iloc[0], "n_seeds": len(g)}
        for col in SCORE_COLUMNS + ["task_gain", "heldout_gain", "sts_loss"]:
            vals = g[col].astype(float)
            row[col] = vals.mean()
            row[f"{col}_std"] = vals.std(ddof=1) if len(vals) > 1 else 0.0
        for col in ("eval_silhouette_lo", "eval_silhouette_hi", "heldout_silhouette_lo", "heldout_silhouette_hi"):
            row[col] = g[col].astype(float).mean()
        row["n_fallback"] = g.n_fallback.max() if g.n_fallback.notna().any() else None
        row["n_interpolated"] = g.n_interpolated.max() if g.n_interpolated.notna().any() else None
        row["base_cos_median"] = g.base_cos_median.astype(float).mean()
        row["task_vector_cos"] = g.task_vector_cos.astype(float).mean()
        out.append(row)
    return pd.DataFrame(out), long


def _paired(long, a: str, b: str, col: str) -> tuple[float, float, int]:
    """Mean and std over seeds of ``a − b`` for ``col`` (paired by seed; the base is the same in every seed)."""
    la = long[long.variant == a].set_index("seed")[col].astype(float)
    if b == "base":
        diff = la - float(long[long.variant == "base"][col].iloc[0])
    else:
        diff = la - long[long.variant == b].set_index("seed")[col].astype(float)
    diff = diff.dropna()
    return float(diff.mean()), float(diff.std(ddof=1)) if len(diff) > 1 else float("nan"), len(diff)


def _beyond_noise(mean: float, std: float, n: int, min_effect: float) -> bool:
    """A paired difference counts when it exceeds ``min_effect`` and two standard errors over seeds."""
    if not np.isfinite(mean) or abs(mean) < min_effect:
        return False
    return n < 2 or not np.isfinite(std) or abs(mean) > 2 * std / math.sqrt(n)


def _pm(m: float, s: float, n: int, digits: int = 2) -> str:
    return f"{m:+.{digits}f}" + (f" ± {s:.{digits}f}" if n > 1 and np.isfinite(s) else "")


#: the task measures the verdicts read: the paper's evaluation windows and held-out windows of the training range
TASKS = (("evaluation-set", "eval_silhouette"), ("held-out", "heldout_silhouette"))


def verdicts(summary, long, *, min_sts: float = 1.0, min_sil: float = 0.02) -> list[dict]:
    """What this run shows for each claim of the paper, with the numbers (paired over seeds: mean ± std).

    A difference counts only when it exceeds ``min_sts`` Spearman points (×100) or ``min_sil`` silhouette and two
    standard errors over seeds. The task gain is read on both the evaluation set and the held-out windows; shares
    ("keeps 80% of the gain") are given only for an effect of the fine-tuned model that counts.
    """
    idx = summary.set_index("variant")
    if "final" not in idx.index:
        return []
    n = int(idx.loc["final", "n_seeds"])
    rows = []
    dl, sl, _ = _paired(long, "final", "base", "sts_spearman")
    erodes = _beyond_noise(dl, sl, n, min_sts) and dl < 0
    gain = {}
    for label, col in TASKS:
        d, sd, _ = _paired(long, "final", "base", col)
        gain[col] = (d, sd, _beyond_noise(d, sd, n, min_sil) and d > 0, label)
    gained = [c for c, g in gain.items() if g[2]]
    rows.append({"claim": "LoRA adaptation erodes the base model's general structure",
                 "evidence": f"final − base over {n} seeds: STS-B Spearman {_pm(dl, sl, n)}; "
                             + ", ".join(f"{g[3]} silhouette {_pm(g[0], g[1], n, 3)}" for g in gain.values()),
                 "verdict": ("supported: the fine-tuned model loses STS-B Spearman beyond seed noise" if erodes else
                             "not supported: no STS-B loss beyond seed noise")
                            + ("; the adapter raised the " + " and ".join(gain[c][3] for c in gained) + " silhouette"
                               if gained else "; the adapter raised neither silhouette beyond noise")})
    has_effect = erodes or bool(gained)
    untestable = ("not testable in this run: the fine-tuned model itself differs from the base by no more than "
                  "seed noise on every score")

    def shares(variant: str) -> tuple[str, list[float]]:
        """What ``variant`` keeps of final's task gains and of its STS change, as text and as numbers."""
        ds, ss, _ = _paired(long, variant, "base", "sts_spearman")
        parts = [f"STS-B Spearman − base {_pm(ds, ss, n)}" + (f" ({ds / dl:.0%} of final's loss)" if erodes else "")]
        vals = [ds / dl] if erodes else []
        for col, (d, sd, ok, label) in gain.items():
            dv, sv, _ = _paired(long, variant, "base", col)
            parts.append(f"{label} silhouette − base {_pm(dv, sv, n, 3)}" + (f" ({dv / d:.0%} of final's gain)" if ok
                                                                             else ""))
            if ok:
                vals.append(dv / d)
        return "; ".join(parts), vals

    if "soup" in idx.index:
        pos = float(idx.loc["soup", "position"])
        text, vals = shares("soup")
        dominates = pos > 0.5 and bool(vals) and min(vals) > 0.5
        rows.append({"claim": "a model soup lets the adapter dominate",
                     "evidence": f"the soup (uniform average of one run's checkpoints) sits at position {pos:.2f} along "
                                 f"base → final; {text}",
                     "verdict": untestable if not has_effect else
                     ("supported: the soup keeps most of the fine-tuned model's change, loss and gain alike"
                      if dominates else "not supported: the soup keeps less than half of some of the fine-tuned "
                                        "model's changes")})
    slerps = [v for v in idx.index if idx.loc[v, "method"] == "slerp"]
    if slerps:
        parts, better = [], []
        for v in slerps:
            t = float(idx.loc[v, "t"])
            lin = f"linear_{t:g}"
            if lin not in idx.index:
                continue
            diffs = []
            for col, label, eff, digits in (("sts_spearman", "STS", min_sts, 2), *((c, g[3], min_sil, 3)
                                                                                  for c, g in gain.items())):
                d, sd, _ = _paired(long, v, lin, col)
                diffs.append(f"{label} {_pm(d, sd, n, digits)}")
                better.append(_beyond_noise(d, sd, n, eff) and d > 0)
            fb, ni = idx.loc[v, "n_fallback"], idx.loc[v, "n_interpolated"]
            parts.append(f"t={t:g}: SLERP − linear " + ", ".join(diffs) +
                         f" ({int(fb) if fb == fb else 0}/{int(ni) if ni == ni else 0} tensors fell back to linear; "
                         f"position {float(idx.loc[v, 'position']):.3f})")
        half = min(slerps, key=lambda v: abs(float(idx.loc[v, "t"]) - 0.5))
        text, _ = shares(half)
        rows.append({"claim": "SLERP recovers the base model's structure and keeps the task gain",
                     "evidence": f"{half}: {text}. Against the linear control at the same t: " + "; ".join(parts),
                     "verdict": ("supported beyond the linear control" if any(better) else
                                 "not supported beyond the linear control: SLERP and linear interpolation at the same "
                                 "t score alike (within noise); whatever a SLERP merge recovers or keeps, the straight "
                                 "line does as well") + ("" if has_effect else f"; {untestable}")})
    for v in ("tv_slerp_seeds", "tv_slerp_ckpt"):
        lin = v.replace("slerp", "linear")
        if v not in idx.index or lin not in idx.index:
            continue
        diffs, differs = [], False
        for col, label, eff, digits in (("sts_spearman", "STS-B Spearman", min_sts, 2), *((c, g[3] + " silhouette",
                                                                                          min_sil, 3)
                                                                                         for c, g in gain.items())):
            d, sd, _ = _paired(long, v, lin, col)
            diffs.append(f"{label} {_pm(d, sd, n, digits)}")
            differs |= _beyond_noise(d, sd, n, eff)
        rows.append({"claim": f"SLERP of task vectors ({'between seeds' if 'seeds' in v else 'between checkpoints'}) "
                              "beats their linear average",
                     "evidence": f"cos between the task vectors {float(idx.loc[v, 'task_vector_cos']):.3f}; positions "
                                 f"{float(idx.loc[v, 'position']):.2f} vs {float(idx.loc[lin, 'position']):.2f}; "
                                 f"{v} − {lin}: " + ", ".join(diffs),
                     "verdict": ("the two differ beyond noise (SLERP keeps the task vectors' length where a linear "
                                 "average of dissimilar vectors shrinks it: compare the positions)" if differs else
                                 "no difference beyond noise")})
    return rows


def _fmt(m, s, n, digits):
    if m is None or not np.isfinite(m):
        return "—"
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if n > 1 and np.isfinite(s) else "")


def summary_markdown(summary, meta: Mapping[str, Any]) -> str:
    lines = [f"Variants of {meta['model']} (mean ± std over {meta['n_seeds']} seeds; task gain = evaluation-set "
             "silhouette − base's; STS loss = base's STS-B Spearman − variant's; position 0 = base, 1 = fine-tuned)",
             "",
             "| variant | position | eval silhouette ↑ | task gain ↑ | eval DBI ↓ | held-out silhouette ↑ | held-out gain ↑ "
             "| STS-B Spearman ↑ | STS loss ↓ | base·variant cos (median tensor) | SLERP fallbacks |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in summary.iterrows():
        n = int(r.n_seeds)
        fb = "" if r.n_fallback is None or r.n_fallback != r.n_fallback else \
            f"{int(r.n_fallback)}/{int(r.n_interpolated)}"
        lines.append(f"| {r.variant} | {_fmt(r.position, r.position_std, n, 3)} "
                     f"| {_fmt(r.eval_silhouette, r.eval_silhouette_std, n, 3)} | {_fmt(r.task_gain, r.task_gain_std, n, 3)} "
                     f"| {_fmt(r.eval_dbi, r.eval_dbi_std, n, 2)} "
                     f"| {_fmt(r.heldout_silhouette, r.heldout_silhouette_std, n, 3)} "
                     f"| {_fmt(r.heldout_gain, r.heldout_gain_std, n, 3)} "
                     f"| {_fmt(r.sts_spearman, r.sts_spearman_std, n, 2)} | {_fmt(r.sts_loss, r.sts_loss_std, n, 2)} "
                     f"| {'—' if r.variant == 'base' else f'{r.base_cos_median:.6f}'} | {fb} |")
    lines += ["", f"Data: {meta['split']}.", ""]
    return "\n".join(lines)


def verdict_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    lines = ["| claim of the paper | what this run shows | verdict |", "|---|---|---|"]
    lines += [f"| {r['claim']} | {r['evidence']} | {r['verdict']} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_summary(score_paths: Sequence[str | os.PathLike], *, model: str, tsv, md, long_tsv, verdict_tsv,
                  verdict_md, min_sts: float = 1.0, min_sil: float = 0.02) -> dict:
    import pandas as pd

    blobs = [read_json(p) for p in score_paths]
    for p, b in zip(score_paths, blobs):
        if b.get("kind") != "merging-scores":
            raise ArtifactError(f"{p}: not a merging scores file")
    hashes = {b["eval_texts_sha256"] for b in blobs} | {None}
    if len(hashes) > 2:
        raise ArtifactError(f"scores of {model} were made on different evaluation sets: rerun merging_scores")
    long = long_frame(blobs)
    summary, long = summary_frame(long)
    n_seeds = int(summary.set_index("variant").loc["final", "n_seeds"]) if "final" in set(summary.variant) else 0
    meta = {"model": model, "n_seeds": n_seeds, "split": blobs[0]["split"]}
    rows = verdicts(summary, long, min_sts=min_sts, min_sil=min_sil)
    for frame, path in ((summary, tsv), (long, long_tsv), (pd.DataFrame(rows), verdict_tsv)):
        write_text(path, frame.to_csv(sep="\t", index=False))
    write_text(md, summary_markdown(summary, meta))
    write_text(verdict_md, verdict_markdown(rows))
    return {"summary": summary, "long": long, "verdicts": rows}


def best_merge(summary) -> str:
    """The merge (not base, not final) with the largest evaluation-set + held-out silhouette gain − STS-B loss/100
    (all relative to the base, mean over seeds)."""
    merges = summary[~summary.variant.isin(["base", "final"])]
    if merges.empty:
        return "final"
    score = merges.task_gain + merges.heldout_gain - merges.sts_loss / 100.0
    return str(merges.loc[score.idxmax(), "variant"])


def load_eval_embeddings(path, expect: Mapping[str, Any] | None = None) -> tuple[dict, list[str]]:
    data, attrs = read_h5(path, expect=expect)
    names = [str(v) for v in data["variants"]]
    return {n: data["embeddings"][i] for i, n in enumerate(names)}, [str(x) for x in data["labels"]]


def scores_for_run(run: str, models, **kw) -> dict:
    """Score the base model (``run`` = "base", ``models`` = its prepared folder) or every variant folder of one
    seed (``run`` = "seed_N", ``models`` = the variants folder), in the order the variants were built."""
    models = Path(models)
    if run == "base":
        folders = [(base_recipe(), models)]
        seed = None
    else:
        order = [line.split("\t")[0] for line in (models / "variants.tsv").read_text().splitlines()[1:]]
        folders = [(read_json(models / v / "recipe.json"), models / v) for v in order]
        seed = int(run.split("_", 1)[1])
    out_json = kw.pop("out_json")
    blob = score_variants(folders, run=run, **kw)
    blob["seed"] = seed
    write_json(out_json, blob)
    return blob
