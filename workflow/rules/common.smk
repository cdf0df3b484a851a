# Shared by every stage: config validation (before any job), wildcard
# constraints, the experiment's tables and the get_… input/param functions.
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from repgeom import config as rgconfig  # noqa: E402

try:
    rgconfig.validate_config(config)
except rgconfig.ConfigError as e:
    raise WorkflowError(str(e)) from None

for _w in rgconfig.remote_code_warnings(config):
    logger.warning(f"SECURITY WARNING: {_w}")

MODELS = rgconfig.embedding_models(config)
SEQ_DATASETS = rgconfig.embedding_datasets(config)
ACT_MODELS = rgconfig.activation_models(config)
ACT_DATASETS = rgconfig.activation_datasets(config)


def alternation(names):
    """A wildcard constraint that admits exactly these names."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def get_final_output():
    """Everything a run of the current config should produce."""
    out = [f"resources/data/{c}.json" for c in config["data"]]
    for ds in SEQ_DATASETS:
        out.append(f"results/metrics/{ds}/summary.tsv")
        out.append(f"results/metrics/{ds}/summary.md")
        out.append(f"results/plots/{ds}/bars.png")
        out += [f"results/plots/{ds}/tsne/{m}.png" for m in MODELS]
    for ds in ACT_DATASETS if ACT_MODELS else []:
        out.append(f"results/metrics/{ds}/layers.tsv")
        out.append(f"results/plots/{ds}/layers.png")
        out += [f"results/plots/{ds}/layers_tsne/{m}.png" for m in ACT_MODELS]
    return out


# Params are canonicalised (keys sorted) so that Snakemake's params rerun trigger fires on a
# changed value, never on a reordered config file.
canonical = rgconfig.canonical


def get_corpus_params(wildcards):
    return canonical(config["data"][wildcards.corpus])


def get_sequence_params(wildcards):
    return canonical(config["sequences"][wildcards.dataset])


def get_prepare_params(wildcards):
    return canonical(rgconfig.model_prepare_params(config, wildcards.model))


def get_embed_params(wildcards):
    return canonical(rgconfig.model_embed_params(config, wildcards.model))


def get_activation_params(wildcards):
    return canonical(rgconfig.activation_params(config, wildcards.model))


def get_layer_metric_params(wildcards):
    m = config["metrics"]
    return canonical({"bootstrap": config["layer_metrics"]["bootstrap"], "kmeans_n_init": m["kmeans_n_init"],
                      "ci": m["ci"], "silhouette_metric": m["silhouette_metric"], "seed": config["seed"]})


def get_dataset_layer_metrics(wildcards):
    return expand("results/metrics/{dataset}/layers/{model}.tsv", dataset=wildcards.dataset, model=ACT_MODELS)


def get_metric_params(wildcards):
    return canonical({**config["metrics"], "seed": config["seed"]})


def get_plot_params(wildcards):
    return canonical({**config["plots"], "seed": config["seed"]})


def get_dataset_metrics(wildcards):
    return expand("results/metrics/{dataset}/models/{model}.json", dataset=wildcards.dataset, model=MODELS)


def get_model_resource(name, default_key):
    """A model's own ``resources`` entry, else the config default; memory and time grow per attempt."""

    def _get(wildcards, attempt):
        own = config["models"][wildcards.model].get("resources", {})
        if name == "gpu":
            return own.get("gpu", 0) if config["resources"]["gpu_jobs_use_gpu"] else 0
        return own.get(name, config["resources"][default_key]) * attempt

    return _get


def get_code_version(*modules):
    """sha256 of the library modules behind a job, given as a params entry so that editing the library
    (not only the wrapper script, which Snakemake tracks itself) reruns the affected jobs."""
    import hashlib

    h = hashlib.sha256()
    for mod in ("artifacts", *modules):
        h.update((Path(workflow.basedir) / "src" / "repgeom" / f"{mod}.py").read_bytes())
    return h.hexdigest()[:16]


def get_resource(name):
    def _get(wildcards, attempt):
        base = config["resources"][name]
        return base * attempt if name.endswith("mem_mb") or name.endswith("runtime") else base

    return _get
