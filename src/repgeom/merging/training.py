"""LoRA fine-tuning (PEFT + sentence-transformers): one adapter per seed, saved every ``checkpoint_every`` steps.

The adapter sits on the model's transformer and is trained with a contrastive (triplet) loss over family labels
by ``SentenceTransformerTrainer``; deterministic on the CPU for a seed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..artifacts import ArtifactError, atomic_dir, library_versions, now_iso, read_json
from ..devices import pick_device
from ..params import LoraParams, LoraTrain, MergingTrainParams
from .data import load_training_data
from .errors import MergeError
from .model import load_base, set_transformer_module, transformer_module

log = logging.getLogger(__name__)

#: ``merging.train.loss`` → the sentence-transformers loss class's name
LOSSES = {
    "batch_hard_soft_margin_triplet": "BatchHardSoftMarginTripletLoss",
    "batch_all_triplet": "BatchAllTripletLoss",
    "batch_hard_triplet": "BatchHardTripletLoss",
    "batch_semi_hard_triplet": "BatchSemiHardTripletLoss",
}


def triplet_loss(name: str, model: Any, margin: float | None) -> Any:
    """The sentence-transformers triplet loss ``name`` (a :data:`LOSSES` key), with ``margin`` where it takes one."""
    from sentence_transformers.sentence_transformer import losses

    if name not in LOSSES:
        raise MergeError(f"merging.train.loss = {name!r}: unknown (known: {', '.join(LOSSES)})")
    kind = getattr(losses, LOSSES[name])
    return kind(model) if margin is None or "soft_margin" in name else kind(model, margin=margin)


def _import_training_stack() -> None:
    """Import every library training uses before the seed is set, as one block: an import that drew random
    numbers after :func:`transformers.set_seed` would shift the seeded stream."""
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from sentence_transformers.sentence_transformer import trainer, training_args  # noqa: F401


def checkpoint_steps(train: LoraTrain) -> tuple[int, int, list[int]]:
    """``(steps, checkpoint_every, the steps a checkpoint is saved at)``; the final step always is one."""
    steps, every = int(train.steps), int(train.checkpoint_every)
    if every <= 0 or steps <= 0:
        raise MergeError("merging.train: steps and checkpoint_every must be positive")
    return steps, every, sorted({s for s in range(every, steps + 1, every)} | {steps})


def attach_lora(model: Any, lora: LoraParams) -> Any:
    """Wrap the model's transformer in a fresh LoRA adapter (PEFT), in place; returns the PEFT model."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=int(lora.r),
        lora_alpha=float(lora.alpha),
        lora_dropout=float(lora.dropout),
        target_modules=list(lora.target_modules),
        bias="none",
    )
    try:
        peft_model = get_peft_model(transformer_module(model), cfg)
    except ValueError as e:
        raise MergeError(f"merging.lora.target_modules = {list(lora.target_modules)}: {e}") from None
    set_transformer_module(model, peft_model)
    return peft_model


def _checkpoint_callback(
    peft_model: Any, stage: Path, save_at: Sequence[int], history: list[dict], t_start: float
) -> Any:
    """A trainer callback that saves the adapter at the ``save_at`` steps and appends each logged loss to
    ``history``."""
    from transformers import TrainerCallback

    class Checkpoints(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step in save_at:
                peft_model.save_pretrained(stage / f"step_{state.global_step:05d}")
                log.info("step %d: adapter saved (%.1f s)", state.global_step, time.time() - t_start)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                history.append(
                    {
                        "step": state.global_step,
                        "loss": float(logs["loss"]),
                        "learning_rate": float(logs.get("learning_rate", float("nan"))),
                        "seconds": round(time.time() - t_start, 2),
                    }
                )

    return Checkpoints()


def _training_args(
    stage: Path, train: LoraTrain, *, steps: int, every: int, seed: int, device: str, progress: bool
) -> Any:
    """The trainer's arguments: batches grouped by label (the triplet losses need several per family), no
    checkpoints of its own (the callback saves the adapters), no reports."""
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    return SentenceTransformerTrainingArguments(
        output_dir=str(stage / ".trainer"),
        max_steps=steps,
        per_device_train_batch_size=int(train.batch_size),
        learning_rate=float(train.lr),
        warmup_steps=int(train.warmup_steps),
        weight_decay=float(train.weight_decay),
        lr_scheduler_type=train.scheduler,
        seed=seed,
        data_seed=seed,
        batch_sampler=BatchSamplers.GROUP_BY_LABEL,
        save_strategy="no",
        logging_steps=max(1, min(10, every)),
        report_to=[],
        use_cpu=device == "cpu",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )


def parameter_counts(peft_model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameters of a PEFT model."""
    n_train = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in peft_model.parameters())
    return n_train, n_all


def _adapter_recipe(
    manifest: Mapping[str, Any],
    meta: Mapping[str, Any],
    n_rows: int,
    *,
    seed: int,
    params: MergingTrainParams,
    device: str,
    save_at: Sequence[int],
    counts: tuple[int, int],
    seconds: float,
    history: Sequence[Mapping[str, Any]],
) -> dict:
    """The adapters folder's ``recipe.json``: every parameter, the data's and base model's hashes, timings."""
    import torch

    steps = int(params.train.steps)
    return {
        "kind": "lora-adapters",
        "model": manifest["name"],
        "base_fingerprint": manifest["fingerprint"],
        "seed": seed,
        "lora": params.lora.params(),
        "train": params.train.params(),
        "device": device,
        "data_sha256": meta["texts_sha256"],
        "n_train": n_rows,
        "families": meta["families"],
        "checkpoints": [f"step_{s:05d}" for s in save_at],
        "trainable_parameters": counts[0],
        "total_parameters": counts[1],
        "train_seconds": round(seconds, 2),
        "steps_per_second": round(steps / seconds, 4),
        "final_loss": history[-1]["loss"] if history else None,
        "torch_threads": torch.get_num_threads(),
        "versions": library_versions(("torch", "transformers", "sentence_transformers", "peft")),
        "created": now_iso(),
    }


def _finish_stage(stage: Path, save_at: Sequence[int], history: list[dict]) -> None:
    """Drop the trainer's scratch folder, check every checkpoint was saved and write ``train_log.tsv``."""
    import pandas as pd

    shutil.rmtree(stage / ".trainer", ignore_errors=True)
    missing = [s for s in save_at if not (stage / f"step_{s:05d}").is_dir()]
    if missing:
        raise MergeError(f"training stopped before the checkpoints at steps {missing}")
    pd.DataFrame(history, columns=["step", "loss", "learning_rate", "seconds"]).to_csv(
        stage / "train_log.tsv", sep="\t", index=False
    )


def _run_trainer(model: Any, args: Any, dataset: Any, loss: Any, callback: Any) -> float:
    """Train with sentence-transformers' trainer; returns the seconds it took."""
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[callback])
    t0 = time.time()
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its loss dicts: into the job's log
        trainer.train()
    return time.time() - t0


def train_lora(
    model_dir: str | os.PathLike,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    seed: int,
    params: MergingTrainParams,
    progress: bool = True,
) -> dict:
    """Fine-tune one LoRA adapter and save it every ``checkpoint_every`` steps (PEFT adapter folders).

    ``out_dir`` gets ``step_{NNNNN}/`` per checkpoint (the last one is the final adapter), ``train_log.tsv``
    (loss per logged step) and ``recipe.json`` (every parameter, the data's and base model's hashes, timings).
    """
    _import_training_stack()
    import transformers
    from datasets import Dataset

    meta, records = load_training_data(data_path)
    rows = [r for r in records if r["split"] == "train"]
    labels = {f: i for i, f in enumerate(meta["families"])}
    lora, train = params.lora, params.train
    dev = pick_device(params.device)
    steps, every, save_at = checkpoint_steps(train)
    transformers.set_seed(seed)
    model, manifest = load_base(model_dir, dev)
    peft_model = attach_lora(model, lora)
    n_train, n_all = parameter_counts(peft_model)
    log.info(
        "LoRA r=%s alpha=%s on %s: %d trainable of %d parameters (%.2f%%), %d steps, checkpoints at %s, device %s",
        *(lora.r, lora.alpha, list(lora.target_modules), n_train, n_all, 100 * n_train / n_all),
        *(steps, save_at, dev),
    )
    ds = Dataset.from_dict({"text": [r["text"] for r in rows], "label": [labels[r["family"]] for r in rows]})
    history: list[dict] = []
    t_start = time.time()
    with atomic_dir(out_dir) as stage:
        args = _training_args(stage, train, steps=steps, every=every, seed=seed, device=dev, progress=progress)
        callback = _checkpoint_callback(peft_model, stage, save_at, history, t_start)
        seconds = _run_trainer(model, args, ds, triplet_loss(train.loss, model, train.margin), callback)
        _finish_stage(stage, save_at, history)
        recipe = _adapter_recipe(
            manifest,
            meta,
            len(rows),
            seed=seed,
            params=params,
            device=dev,
            save_at=save_at,
            counts=(n_train, n_all),
            seconds=seconds,
            history=history,
        )
        (stage / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    log.info(
        "trained %d steps in %.1f s (%.3f steps/s), final loss %s",
        steps,
        seconds,
        steps / seconds,
        recipe["final_loss"],
    )
    return recipe


def load_adapters(path: str | os.PathLike, base_fingerprint: str | None = None) -> dict:
    """An adapters folder's recipe, refusing one trained on another base model or left incomplete."""
    path = Path(path)
    recipe = read_json(path / "recipe.json")
    if recipe.get("kind") != "lora-adapters":
        raise ArtifactError(f"{path}: not a LoRA adapters folder")
    if base_fingerprint is not None and recipe["base_fingerprint"] != base_fingerprint:
        raise ArtifactError(
            f"{path}: adapters were trained on another base model (fingerprint "
            f"{recipe['base_fingerprint'][:12]}…, expected {base_fingerprint[:12]}…); rerun training"
        )
    missing = [c for c in recipe["checkpoints"] if not (path / c / "adapter_config.json").exists()]
    if missing:
        raise ArtifactError(f"{path}: checkpoints {missing} are missing")
    return recipe
