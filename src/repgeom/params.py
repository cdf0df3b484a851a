"""Typed per-stage parameters: what each library entry point takes whole.

:mod:`repgeom.configure.stages` builds them from a config that :func:`repgeom.configure.config.validate_config` has checked and filled
with the schema's defaults, so no field here repeats a default. Snakemake gets them as plain dicts with sorted keys
(:meth:`StageParams.params`, the rerun trigger: a changed value reruns, a reordered config file does not); the job
rebuilds them with :meth:`StageParams.from_params`, which refuses a missing or unknown key by name. The entries a
user writes once per dataset (:class:`SequenceSpec`, :class:`CorpusSpec`, :class:`MergingDataSpec`) can also be
built from a partial mapping with :meth:`SchemaSpec.of`, which fills the rest from the same schema.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="StageParams")


class StageParamsError(ValueError):
    """A stage's parameters lack a key or carry one the stage does not know."""


def canonical(obj: Any) -> Any:
    """A copy with every mapping's keys sorted (stable params for rerun triggers)."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    return obj


def _nested(tp: Any) -> type[StageParams] | None:
    """The :class:`StageParams` class a field holds, if it holds one."""
    return tp if isinstance(tp, type) and issubclass(tp, StageParams) else None


@dataclass(frozen=True)
class StageParams:
    """Base of every stage's parameters: a frozen dataclass that round-trips through a canonical dict."""

    @classmethod
    def from_params(cls: type[T], params: Mapping[str, Any] | T) -> T:
        """Rebuild from :meth:`params` (a Snakemake ``params`` entry); nested parameter groups are rebuilt too."""
        if isinstance(params, cls):
            return params
        if not isinstance(params, Mapping):
            raise StageParamsError(f"{cls.__name__}: expected a mapping, got {type(params).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in params]
        unknown = sorted(set(params) - set(names))
        if missing or unknown:
            raise StageParamsError(
                f"{cls.__name__}: missing {missing}, unknown {unknown}; build them with repgeom.configure.stages from a "
                "validated config (the schema fills every default)"
            )
        hints = typing.get_type_hints(cls)
        kw = {}
        for n in names:
            sub = _nested(hints[n])
            kw[n] = sub.from_params(params[n]) if sub is not None else params[n]
        return cls(**kw)

    def params(self) -> dict:
        """A plain dict with sorted keys: what Snakemake compares for its params rerun trigger."""
        return canonical(asdict(self))

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes`` applied (tests and benchmarks vary one setting)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class SchemaSpec(StageParams):
    """Parameters that are one entry of the config as the user writes it; :meth:`of` fills the schema's defaults."""

    #: JSON pointer of the entry's schema inside ``config.schema.yaml``
    SCHEMA: ClassVar[str] = ""

    @classmethod
    def of(cls: type[T], entry: Mapping[str, Any] | T) -> T:
        """From a (partial) config entry: the schema validates it and fills what it leaves out."""
        if isinstance(entry, cls):
            return entry
        from .schema import fill_entry_defaults

        full = fill_entry_defaults(dict(entry), cls.SCHEMA)
        return cls.from_params({**{f.name: None for f in fields(cls)}, **full})


# ------------------------------------------------------------------ models and embeddings
@dataclass(frozen=True)
class PrepareParams(StageParams):
    """Everything that decides a prepared model folder."""

    name: str
    runtime: str
    source: dict
    trust_remote_code: bool
    prepare_dtype: str


@dataclass(frozen=True)
class EmbedParams(StageParams):
    """Everything that decides a model's embeddings (a model's own batch size and dtype already applied)."""

    runtime: str
    batch_size: int
    max_length: int | None  # None: the model's own limit
    pooling: str
    normalize: bool | None  # None: the runtime's native choice
    dtype: str
    store_dtype: str
    prompt: str
    prompt_name: str  # sentence-transformers: one of the model's named prompts
    include_prompt: bool | None  # None: the model's own (sentence-transformers) or True (decoder)
    attention: str  # decoder: causal or bidirectional
    e5_mode: str
    trust_remote_code: bool
    device: str


@dataclass(frozen=True)
class ActivationParams(StageParams):
    """Everything that decides a model's activation shards for one text set."""

    layers: list  # empty: every block
    include_embeddings: bool
    positions: list
    batch_size: int
    max_length: int
    dtype: str
    store_dtype: str
    padding_side: str
    compression: str
    sort_window: int  # rows sorted by length together (rounded up to whole 256-row chunks)
    max_token_gb: float  # the all-token shards' cap (position "tokens")
    device: str
    template: dict  # a prompt template's params (activations.templates.Template.params), {} for the text alone


# ------------------------------------------------------------------ metrics and plots
@dataclass(frozen=True)
class MetricParams(StageParams):
    """Clustering metrics with bootstrap intervals (per model, per layer, per merged variant)."""

    kmeans_n_init: int
    bootstrap: int
    ci: float
    silhouette_metric: str
    seed: int

    def cluster_kwargs(self) -> dict:
        """The keyword arguments of :func:`repgeom.metrics.cluster_metrics`."""
        return {
            "n_init": self.kmeans_n_init,
            "seed": self.seed,
            "bootstrap": self.bootstrap,
            "ci": self.ci,
            "metric": self.silhouette_metric,
        }


@dataclass(frozen=True)
class PlotParams(StageParams):
    """Figures: the t-SNE settings (the paper's perplexity rule) and the resolution."""

    tsne_perplexity: float
    tsne_small_perplexity: float
    tsne_small_below: int
    tsne_max_iter: int
    dpi: int
    seed: int


@dataclass(frozen=True)
class SimilarityParams(StageParams):
    """Cross-model × cross-layer similarity (``similarity``): which measures, their sizes, the uncertainty."""

    measures: list
    knn_k: int
    max_texts: int
    rsa_distance: str
    bootstrap: int
    permutations: int
    ci: float
    wide_ci: float
    cache_mb: int
    device: str  # where the products run: auto (a GPU when torch sees one), cpu, cuda
    seed: int


# ------------------------------------------------------------------ the STS study
@dataclass(frozen=True)
class StsTrain(StageParams):
    """``sts.train`` with a variant's own overrides applied."""

    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    patience: int
    loss: str
    head_hidden: int
    bottleneck: int
    bottleneck_late: int
    activation: str
    mlp_epochs: int
    mlp_lr: float
    mlp_patience: int
    ae_epochs: int
    ae_lr: float
    ae_batch_size: int
    snli_epochs: int
    layers: list  # empty: every layer


@dataclass(frozen=True)
class StsVariant(StageParams):
    """What a variant is (its hyper-parameter overrides live in :class:`StsTrain`)."""

    head: str
    pretrain: str
    ae_loss: str
    standardize: bool
    description: str | None
    grid: dict | None  # hyper-parameter → values tried; the best mean dev Pearson wins (None: no search)


@dataclass(frozen=True)
class StsVariantParams(StageParams):
    variant: StsVariant
    train: StsTrain
    seeds: list
    device: str


@dataclass(frozen=True)
class StsAutoencoderParams(StageParams):
    train: StsTrain
    seeds: list
    device: str


# ------------------------------------------------------------------ the merging study
@dataclass(frozen=True)
class LoraParams(StageParams):
    r: int
    alpha: float
    dropout: float
    target_modules: list


@dataclass(frozen=True)
class LoraTrain(StageParams):
    loss: str
    margin: float | None  # None: the loss's own
    steps: int
    checkpoint_every: int
    batch_size: int
    lr: float
    warmup_steps: int
    weight_decay: float
    scheduler: str


@dataclass(frozen=True)
class MergingTrainParams(StageParams):
    lora: LoraParams
    train: LoraTrain
    device: str


@dataclass(frozen=True)
class VariantGrid(StageParams):
    """``merging.variants``: the merge settings built for every seed."""

    linear_t: list
    slerp_t: list
    slerp_threshold: float
    task_vector_t: float


@dataclass(frozen=True)
class MergingVariantsParams(StageParams):
    variants: VariantGrid
    partner: int | None  # the seed whose task vector the between-seeds merges combine with


@dataclass(frozen=True)
class MergingScoresParams(StageParams):
    """How the base model and every variant are embedded (the base model's own settings, the study's batch size)
    and scored."""

    sts_split: str
    sts_max_pairs: int | None  # None: every pair of the split
    embed: EmbedParams
    metrics: MetricParams


@dataclass(frozen=True)
class MergingDataSpec(SchemaSpec):
    """``merging.data``: the fine-tuning windows, disjoint from the evaluation set."""

    SCHEMA: ClassVar[str] = "/properties/merging/properties/data"

    start_offset: int | None  # None: right after the evaluation windows
    n_sequences: int
    min_length: int
    max_length: int
    heldout_fraction: float
    max_chars: int
    seed: int


# ------------------------------------------------------------------ text sets
@dataclass(frozen=True)
class SequenceSpec(SchemaSpec):
    """One ``sequences`` entry: which families, how many windows of how many terms, where they start."""

    SCHEMA: ClassVar[str] = "/$defs/sequence_dataset"

    families: list
    n_sequences: int
    length: int
    max_chars: int
    start_offset: int
    gap: int
    family_offsets: dict
    separator: str


@dataclass(frozen=True)
class CorpusSpec(SchemaSpec):
    """One ``data`` entry: a corpus kind, where to get it, how to treat bad rows and how much to keep."""

    SCHEMA: ClassVar[str] = "/$defs/corpus"

    kind: str | None  # None: the entry's name
    source: dict
    on_bad_row: str
    max_bad_fraction: float  # on_bad_row: skip refuses a corpus with more bad rows than this share
    on_duplicate: str  # keep | drop | error: a pair repeated in a split (exactly, swapped, or with another score)
    verify_rows: bool
    max_rows: int | None
    files: str | None  # None: the kind's own pattern
    limit: dict
    limit_seed: int | None  # None: the first ``limit`` rows; else a seeded random sample of them, in file order

    #: keys added after corpora were made, left out of a corpus's recorded params at these (their defaults) values:
    #: a corpus made before the key existed then keeps its content, so nothing downstream of it recomputes
    UNRECORDED_DEFAULTS: ClassVar[dict] = {"limit_seed": None}

    def recorded_params(self) -> dict:
        """:meth:`params` as the corpus artifact records them (without :data:`UNRECORDED_DEFAULTS` at their values)."""
        return {
            k: v
            for k, v in self.params().items()
            if k not in self.UNRECORDED_DEFAULTS or v != self.UNRECORDED_DEFAULTS[k]
        }

    format: dict  # pairs: delimiter, header, quoting
    columns: dict  # pairs: sentence1, sentence2, score (and split): a header name or a 0-based index
    score_range: list | None  # pairs: the scores' scale, mapped to 0–5
    labels: dict  # pairs: a text score → its number on score_range (an NLI table's gold labels), {}: scores are numbers
    splits: dict  # pairs: split → file glob, or → the split column's value
