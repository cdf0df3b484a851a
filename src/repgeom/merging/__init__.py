"""The LoRA → model soup vs SLERP study: does merging recover the base model's general structure?

The numeric-sequence paper claims that LoRA adaptation erodes an embedding model's general structure, that
model soups let the adapter dominate, and that SLERP merging recovers the base model's structure while keeping
most of the task gain. This package runs that experiment with controls:

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
   between base and merged tensors (:func:`geometry`), so a reader sees when SLERP cannot differ from linear.
4. **Scores** (:func:`score_variants`): the spine's clustering metrics (with bootstrap CIs) on the evaluation
   set and on the held-out split, and general ability as STS-B Spearman of cosine similarity.
5. **Tables** (:func:`write_summary`): mean ± std over seeds per variant and a verdict per claim of the paper.

Submodules, one concept each (torch, PEFT, sentence-transformers and pandas are imported lazily, inside the
functions; the public names below are exported lazily too, through ``_EXPORTS``, so that a wrapper's code
version covers only the submodules whose names it imports, see :mod:`repgeom.codeversion`):

:mod:`.errors`     :class:`MergeError`
:mod:`.methods`    the merge methods, one file each (mergekit's merge_methods layout), in one registry
                   :data:`METHODS` (``linear``, ``slerp``, ``tv_linear``, ``tv_slerp``), with the soup
                   (:func:`average`) and the LoRA merge (:func:`merged_state`); plain torch on state dicts
:mod:`.placement`  :func:`geometry`: where a variant sits between the base and the fine-tuned model
:mod:`.data`       the fine-tuning data and the evaluation windows' term ranges
:mod:`.model`      the prepared base model and its transformer module
:mod:`.training`   LoRA training and the adapters folder it writes
:mod:`.variants`   the merged variant folders of one seed, their recipes and ``variants.tsv``
:mod:`.eval_embeddings`  the evaluation-set embeddings file of one run (written by the scores, read by plots)
:mod:`.scores`     scores on the evaluation set, the held-out split and STS-B
:mod:`.claims`     a verdict per claim of the paper (:func:`verdicts`; the module is not named ``verdicts`` so
                   that this package's ``verdicts`` stays the function)
:mod:`.tables`     the long and summary tables, their markdown, :func:`write_summary`, :func:`best_merge`
"""

from __future__ import annotations

from ..lazy import lazy_exports

#: public name → the submodule that defines it (read by :mod:`repgeom.codeversion` without importing)
_EXPORTS = {
    "MergeError": "errors",
    "METHODS": "methods",
    "SLERP_THRESHOLD": "methods.slerp",
    "lerp": "methods.linear",
    "slerp": "methods.slerp",
    "merge_interpolate": "methods.interpolate",
    "task_vector": "methods.task_vector",
    "add_task_vector": "methods.task_vector",
    "merge_task_vectors": "methods.task_vector",
    "average": "methods.soup",
    "merged_state": "methods.lora_merge",
    "changed_keys": "methods.tensors",
    "geometry": "placement",
    "eval_ranges": "data",
    "training_windows": "data",
    "write_training_data": "data",
    "data_problems": "data",
    "load_training_data": "data",
    "load_base": "model",
    "transformer_module": "model",
    "set_transformer_module": "model",
    "train_lora": "training",
    "load_adapters": "training",
    "variant_plan": "variants",
    "build_variants": "variants",
    "base_recipe": "scores",
    "score_variants": "scores",
    "scores_for_run": "scores",
    "write_eval_embeddings": "eval_embeddings",
    "load_eval_embeddings": "eval_embeddings",
    "load_eval_layers": "eval_embeddings",
    "read_eval_file": "eval_embeddings",
    "TASKS": "claims",
    "verdicts": "claims",
    "SCORE_COLUMNS": "tables",
    "long_frame": "tables",
    "summary_frame": "tables",
    "summary_markdown": "tables",
    "verdict_markdown": "tables",
    "write_summary": "tables",
    "best_merge": "tables",
}
_SUBMODULES = (
    "errors",
    "methods",
    "placement",
    "data",
    "model",
    "training",
    "variants",
    "eval_embeddings",
    "scores",
    "claims",
    "tables",
)

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
