"""The per-stage view of a validated config: what each stage runs over, and the parameters each job gets.

The rules (``workflow/rules/*.smk``) call these through thin ``get_…`` input functions; everything a job's output
depends on is in its params, a typed :mod:`repgeom.params` object handed to Snakemake as a canonical dict (keys
sorted) so that Snakemake's params trigger fires on a changed value and never on a reordered config file. Every function takes a config that :func:`repgeom.configure.config.validate_config`
has checked and filled with the schema's defaults, so no default is repeated here.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from ..params import (
    ActivationParams,
    EmbedParams,
    LoraParams,
    LoraTrain,
    MergingDataSpec,
    MergingScoresParams,
    MergingTrainParams,
    MergingVariantsParams,
    MetricParams,
    PlotParams,
    PrepareParams,
    SequenceSpec,
    SimilarityParams,
    StsAutoencoderParams,
    StsTrain,
    StsVariant,
    StsVariantParams,
    VariantGrid,
)

if TYPE_CHECKING:
    from ..activations.templates import Template


# ------------------------------------------------------------------ what each stage runs over
def enabled_models(config: dict) -> list[str]:
    return [n for n, m in config["models"].items() if m["enabled"]]


def embedding_models(config: dict) -> list[str]:
    """Models of the numeric-sequence embedding study."""
    return [n for n in enabled_models(config) if config["models"][n]["embed"]]


def embedding_datasets(config: dict) -> list[str]:
    return list(config["embeddings"]["datasets"] or config["sequences"])


def activation_models(config: dict) -> list[str]:
    """Decoders whose every layer is extracted: the named ones, else every enabled decoder."""
    if config["activations"]["models"]:
        return list(config["activations"]["models"])
    return [n for n in enabled_models(config) if config["models"][n]["runtime"] == "decoder"]


def activation_datasets(config: dict) -> list[str]:
    return list(config["activations"]["datasets"] or config["sequences"])


def sts_corpora(config: dict) -> dict[str, str]:
    """The corpora the STS study reads, by role (``corpus``, ``pretrain_corpus``, ``nli_corpus``)."""
    sts = config["sts"]
    pre = {v["pretrain"] for v in sts["variants"].values()}
    out = {"corpus": sts["corpus"]}
    if "autoencoder" in pre:
        out["pretrain_corpus"] = sts["pretrain_corpus"]
    if "snli" in pre:
        out["nli_corpus"] = sts["nli_corpus"]
    return out


def sts_transfer(config: dict) -> list[str]:
    """The similarity sets every saved probe is applied to, unchanged (``sts.transfer``; data entries)."""
    return list(config["sts"]["transfer"]) if sts_enabled(config) else []


def sts_enabled(config: dict) -> bool:
    """``true``, or ``auto`` with every corpus it reads configured."""
    if config["sts"]["enabled"] is False:
        return False
    return all(c in config["data"] for c in sts_corpora(config).values())


def sts_models(config: dict) -> list[str]:
    if not sts_enabled(config):
        return []
    return list(config["sts"]["models"] or activation_models(config))


def sts_templates(config: dict) -> dict[str, Template]:
    """The STS study's prompt templates by name (``sts.templates``), in config order."""
    from ..activations.templates import Template

    return {n: Template.from_params(n, spec) for n, spec in config["sts"]["templates"].items()}


def sts_runs(config: dict) -> list[tuple[str, str]]:
    """``(template, position)`` pairs the STS probes run on: each template at each of its poolings."""
    return [(n, p) for n, t in sts_templates(config).items() for p in t.positions]


def template_dataset(corpus: str, template: str) -> str:
    """The activation text set of ``corpus`` presented by ``template``: the corpus name for ``plain`` (the text
    alone, today's shards), else ``corpus@template``."""
    from ..activations.templates import PLAIN

    return corpus if template == PLAIN else f"{corpus}{TEMPLATE_SEP}{template}"


def split_dataset(dataset: str) -> tuple[str, str | None]:
    """``(text set, template or None)`` of an activation dataset name (:func:`template_dataset`'s inverse)."""
    base, sep, template = dataset.partition(TEMPLATE_SEP)
    return base, (template if sep else None)


#: joins a corpus and a template in an activation dataset name (``stsb@prompteol``)
TEMPLATE_SEP = "@"


def sts_datasets(config: dict) -> list[str]:
    """Activation text sets of the STS study: every corpus it reads (transfer sets too), presented by every
    template."""
    if not sts_enabled(config):
        return []
    corpora = dict.fromkeys([*sts_corpora(config).values(), *config["sts"]["transfer"]])
    return [template_dataset(c, t) for c in corpora for t in sts_templates(config)]


def merging_enabled(config: dict) -> bool:
    """``true``, or ``auto`` with its evaluation set, STS-B corpus and a model configured."""
    mg = config["merging"]
    if mg["enabled"] is False:
        return False
    return (
        mg["eval_dataset"] in config["sequences"]
        and mg["general_corpus"] in config["data"]
        and any(n in config["models"] for n in mg["models"])
    )


def merging_models(config: dict) -> list[str]:
    return list(config["merging"]["models"]) if merging_enabled(config) else []


def merging_partner(config: dict, seed: int | str) -> int | None:
    """The seed whose task vector the between-seeds merges of ``seed`` combine with (the next one, cyclically)."""
    seeds = [int(s) for s in config["merging"]["seeds"]]
    if len(seeds) < 2:
        return None
    return seeds[(seeds.index(int(seed)) + 1) % len(seeds)]


# ------------------------------------------------------------------ each job's parameters
def similarity_sources(config: dict, model: str, dataset: str) -> list[str]:
    """The files holding ``model``'s representations of ``dataset``: its activation shards' folder (a decoder of
    the layer study, or of the STS study for its text sets) and its embeddings file (a model of the embedding
    study on a sequence set); empty when it has none."""
    out = []
    if (model in activation_models(config) and dataset in activation_datasets(config)) or (
        model in sts_models(config) and dataset in sts_datasets(config)
    ):
        out.append(f"results/activations/{model}/{dataset}")
    if model in embedding_models(config) and dataset in embedding_datasets(config):
        out.append(f"results/embeddings/{dataset}/{model}.h5")
    return out


def similarity_models(config: dict, dataset: str) -> list[str]:
    """Models with representations of ``dataset`` (``similarity.models`` narrows them), in config order."""
    wanted = config["similarity"]["models"]
    return [m for m in config["models"] if (not wanted or m in wanted) and similarity_sources(config, m, dataset)]


def similarity_datasets(config: dict) -> list[str]:
    """Text sets the similarity stage compares models on: ``similarity.datasets``, else every sequence set with
    activations or embeddings; only those with representations from two models or more (none when disabled)."""
    sim = config["similarity"]
    if sim["enabled"] is False:
        return []
    named = sim["datasets"] or list(dict.fromkeys([*activation_datasets(config), *embedding_datasets(config)]))
    return [d for d in named if len(similarity_models(config, d)) >= 2]


def similarity_pairs(config: dict, dataset: str) -> list[tuple[str, str]]:
    """Model pairs compared on ``dataset``: every unordered pair in config order, and a model with itself where it
    has layers (its own layer × layer grid)."""
    ms = similarity_models(config, dataset)
    out = []
    for i, a in enumerate(ms):
        for b in ms[i:]:
            if a != b or any(not s.endswith(".h5") for s in similarity_sources(config, a, dataset)):
                out.append((a, b))
    return out


def similarity_merging_models(config: dict) -> list[str]:
    """Models whose merged variants are compared with their base and fine-tuned model."""
    return merging_models(config) if config["similarity"]["enabled"] is not False else []


def similarity_params(config: dict) -> SimilarityParams:
    return SimilarityParams.from_params({**{k: v for k, v in config["similarity"].items() if k not in
                                            ("enabled", "datasets", "models")}, "seed": config["seed"]})  # fmt: skip


def sequence_spec(config: dict, dataset: str) -> SequenceSpec:
    return SequenceSpec.from_params(config["sequences"][dataset])


def prepare_params(config: dict, model: str) -> PrepareParams:
    """Everything that decides a prepared model folder."""
    m = config["models"][model]
    return PrepareParams(
        name=model,
        runtime=m["runtime"],
        source=m["source"],
        trust_remote_code=m["trust_remote_code"],
        prepare_dtype=m["prepare_dtype"],
    )


def embed_params(config: dict, model: str) -> EmbedParams:
    """Everything that decides a model's embeddings (and nothing else); a model's own batch size and dtype win."""
    m, emb = config["models"][model], config["embeddings"]
    return EmbedParams(
        runtime=m["runtime"],
        batch_size=m.get("batch_size", emb["batch_size"]),  # optional per model: inherits
        max_length=m.get("max_length"),  # optional: the model's own limit
        pooling=m["pooling"],
        normalize=m.get("normalize"),  # optional: the runtime's native choice
        dtype=m.get("dtype", emb["dtype"]),  # optional per model: inherits
        store_dtype=emb["store_dtype"],
        prompt=m["prompt"],
        prompt_name=m["prompt_name"],
        include_prompt=m.get("include_prompt"),  # optional: the runtime's own
        attention=m["attention"],
        e5_mode=m["e5_mode"],
        trust_remote_code=m["trust_remote_code"],
        device=config["device"],
    )


def activation_params(config: dict, model: str, dataset: str | None = None) -> ActivationParams:
    """Everything that decides a model's activation shards for ``dataset``.

    Corpus sentences for the STS study take every block (no embedding output) at their template's positions,
    presented by the template (``corpus@template``; the corpus alone: ``plain``); the other extraction settings (batch size, dtypes, padding, compression) are shared.
    """
    a = {k: v for k, v in config["activations"].items() if k not in ("models", "datasets", "rows_per_part")}
    a.update(device=config["device"], template={})
    corpus, template = split_dataset(dataset) if dataset is not None else (None, None)
    if corpus is not None and corpus in config["data"]:
        from ..activations.templates import KNOWN, PLAIN

        t = sts_templates(config).get(template or PLAIN) or KNOWN[PLAIN]
        a.update(layers=[], include_embeddings=False, positions=list(t.positions))
        if not t.is_plain:
            a["template"] = t.params()
    return ActivationParams.from_params(a)


def activation_plan_params(config: dict) -> dict:
    """What decides a text set's row-parts (:func:`repgeom.activations.parts.write_plan`)."""
    a = config["activations"]
    return {"rows_per_part": a["rows_per_part"], "sort_window": a["sort_window"]}


def metric_params(config: dict) -> MetricParams:
    return MetricParams.from_params({**config["metrics"], "seed": config["seed"]})


def layer_metric_params(config: dict) -> MetricParams:
    """The model metrics' settings with the per-layer bootstrap count."""
    return metric_params(config).replace(bootstrap=config["layer_metrics"]["bootstrap"])


def plot_params(config: dict) -> PlotParams:
    return PlotParams.from_params({**config["plots"], "seed": config["seed"]})


def sts_train_params(config: dict, variant: str | None = None) -> StsTrain:
    """``sts.train``, overridden by a variant's own hyper-parameters."""
    hp = dict(config["sts"]["train"])
    if variant is not None:
        spec = {f.name for f in fields(StsVariant)}
        hp.update({k: x for k, x in config["sts"]["variants"][variant].items() if k not in spec})
    return StsTrain.from_params(hp)


def sts_variant_params(config: dict, variant: str) -> StsVariantParams:
    v = config["sts"]["variants"][variant]
    return StsVariantParams(
        variant=StsVariant(**{f.name: v.get(f.name) for f in fields(StsVariant)}),  # description is optional
        train=sts_train_params(config, variant),
        seeds=list(config["sts"]["seeds"]),
        device=config["device"],
    )


def sts_autoencoder_params(config: dict) -> StsAutoencoderParams:
    return StsAutoencoderParams(
        train=sts_train_params(config), seeds=list(config["sts"]["seeds"]), device=config["device"]
    )


def merging_data_spec(config: dict) -> MergingDataSpec:
    return MergingDataSpec.from_params(config["merging"]["data"])


def merging_train_params(config: dict) -> MergingTrainParams:
    mg = config["merging"]
    return MergingTrainParams(
        lora=LoraParams.from_params(mg["lora"]), train=LoraTrain.from_params(mg["train"]), device=config["device"]
    )


def merging_variants_params(config: dict, seed: int | str) -> MergingVariantsParams:
    return MergingVariantsParams(
        variants=VariantGrid.from_params(config["merging"]["variants"]), partner=merging_partner(config, seed)
    )


def merging_scores_params(config: dict, model: str) -> MergingScoresParams:
    mg = config["merging"]
    return MergingScoresParams(
        sts_split=mg["sts_split"],
        sts_max_pairs=mg["sts_max_pairs"],
        embed=embed_params(config, model).replace(batch_size=mg["batch_size"]),
        metrics=metric_params(config).replace(bootstrap=mg["bootstrap"]),
    )


def merging_effects(config: dict) -> dict:
    """The smallest differences a merging verdict counts."""
    mg = config["merging"]
    return {"min_sts": mg["min_effect_sts"], "min_sil": mg["min_effect_silhouette"]}
