"""Typed per-stage parameters: built from every shipped config, round-tripped through Snakemake's dicts, and
kept in step with the schema (a key the schema gains without a field, or the reverse, fails here)."""

import inspect
import json
from dataclasses import fields

import pytest
from conftest import ROOT

from repgeom import params as P
from repgeom.configure import stages
from repgeom.configure.config import ConfigError, load_schema, load_yaml, one_model_config, validate_config

CONFIGS = ["config/config.yaml", "config/paper.yaml"] + sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "configs").glob("*.yaml")
)


def _names(cls) -> set[str]:
    return {f.name for f in fields(cls)}


def _schema_props(*path: str) -> set[str]:
    node = load_schema()
    for part in path:
        node = node[part]
    return set(node["properties"])


def _every_stage_params(config: dict) -> list[P.StageParams]:
    out = [stages.sequence_spec(config, d) for d in config["sequences"]]
    out += [stages.prepare_params(config, m) for m in config["models"]]
    out += [stages.embed_params(config, m) for m in stages.embedding_models(config)]
    out += [
        stages.activation_params(config, m, d) for m in stages.activation_models(config) for d in config["sequences"]
    ]
    out += [
        stages.activation_params(config, m, d) for m in stages.sts_models(config) for d in stages.sts_datasets(config)
    ]
    out += [stages.metric_params(config), stages.layer_metric_params(config), stages.plot_params(config)]
    if stages.sts_enabled(config):
        out += [stages.sts_variant_params(config, v) for v in config["sts"]["variants"]]
        out.append(stages.sts_autoencoder_params(config))
    if stages.merging_enabled(config):
        out += [stages.merging_data_spec(config), stages.merging_train_params(config)]
        out += [stages.merging_variants_params(config, s) for s in config["merging"]["seeds"]]
        out += [stages.merging_scores_params(config, m) for m in stages.merging_models(config) if m in config["models"]]
    return out


@pytest.mark.parametrize("path", CONFIGS)
def test_every_stage_params_round_trip_through_snakemake_dicts(path):
    config = validate_config(load_yaml(ROOT / path))
    built = _every_stage_params(config)
    assert len(built) > 5
    for p in built:
        d = p.params()
        assert list(d) == sorted(d), type(p).__name__  # canonical: a reordered config does not rerun
        assert json.loads(json.dumps(d)) == d  # plain data, as Snakemake stores params
        assert type(p).from_params(d) == p


def test_missing_and_unknown_keys_are_named():
    d = stages.metric_params(validate_config({})).params()
    d.pop("ci")
    d["cii"] = 0.9
    with pytest.raises(P.StageParamsError, match=r"MetricParams: missing \['ci'\], unknown \['cii'\]"):
        P.MetricParams.from_params(d)
    bad = stages.merging_train_params(validate_config({})).params()
    del bad["lora"]["r"]
    with pytest.raises(P.StageParamsError, match=r"LoraParams: missing \['r'\]"):
        P.MergingTrainParams.from_params(bad)


def test_partial_entries_get_the_workflows_defaults():
    model = {"runtime": "decoder", "source": {"type": "local", "path": "/x"}}
    cfg = one_model_config("m", model, sequences={"d": {"n_sequences": 7}}, merging={"data": {"seed": 3}})
    assert P.SequenceSpec.of({"n_sequences": 7}) == stages.sequence_spec(cfg, "d")
    assert P.MergingDataSpec.of({"seed": 3}) == stages.merging_data_spec(cfg)
    spec = P.CorpusSpec.of({"source": {"type": "local", "path": "/x"}})
    assert (spec.on_bad_row, spec.verify_rows, spec.limit, spec.kind) == ("error", True, {}, None)
    with pytest.raises(ConfigError, match="'length' = 0"):
        P.SequenceSpec.of({"length": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        P.CorpusSpec.of({"source": {"type": "local", "path": "/x"}, "verify_row": False})


def test_fields_mirror_the_schema():
    assert _names(P.StsTrain) == _schema_props("properties", "sts", "properties", "train")
    assert _names(P.StsVariant) | _names(P.StsTrain) - {"ae_epochs", "ae_lr", "ae_batch_size", "layers"} == (
        _schema_props("$defs", "sts_variant")
    )
    assert _names(P.LoraParams) == _schema_props("properties", "merging", "properties", "lora")
    assert _names(P.LoraTrain) == _schema_props("properties", "merging", "properties", "train")
    assert _names(P.VariantGrid) == _schema_props("properties", "merging", "properties", "variants")
    assert _names(P.MergingDataSpec) == _schema_props("properties", "merging", "properties", "data")
    assert _names(P.SequenceSpec) == _schema_props("$defs", "sequence_dataset")
    assert _names(P.CorpusSpec) == _schema_props("$defs", "corpus")
    assert _names(P.MetricParams) == _schema_props("properties", "metrics") | {"seed"}
    assert _names(P.PlotParams) == _schema_props("properties", "plots") | {"seed"}
    acts = _schema_props("properties", "activations") - {"models", "datasets", "rows_per_part"}  # the plan's
    assert _names(P.ActivationParams) == acts | {"device", "template"}  # the template: sts.templates, per text set


def test_extract_keyword_defaults_are_the_schemas():
    """``activations.extract`` keeps a keyword API for direct use; its defaults must be the workflow's."""
    from repgeom.activations import extract

    defaults = stages.activation_params(validate_config({}), "m")
    sig = inspect.signature(extract).parameters
    for name in ("positions", "include_embeddings", "batch_size", "max_length", "dtype", "store_dtype", "padding_side"):
        assert list(sig[name].default) if name == "positions" else sig[name].default == getattr(defaults, name)
    assert (sig["device"].default, sig["compression"].default) == (defaults.device, None)
    assert defaults.compression == "none"


@pytest.mark.parametrize("fn,builder", [("cluster_metrics", "metric_params"), ("layer_metrics", "layer_metric_params")])
def test_metric_keyword_defaults_are_the_schemas(fn, builder):
    """The clustering functions keep a keyword API for direct use; their defaults must be the workflow's."""
    from repgeom import metrics

    sig = inspect.signature(getattr(metrics, fn)).parameters
    want = getattr(stages, builder)(validate_config({})).cluster_kwargs()
    assert {k: sig[k].default for k in want} == want
