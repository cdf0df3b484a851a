# Shared by every stage: config validation (before any job), wildcard
# constraints, the experiment's tables and the get_… input/param functions.
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

#: the repository: the Snakefile is workflow/Snakefile (the Snakemake catalog's layout)
REPO = Path(workflow.basedir).parent
sys.path.insert(0, str(REPO / "src"))

from repgeom.configure import config as rgconfig  # noqa: E402
from repgeom import planning  # noqa: E402
from repgeom.configure import stages  # noqa: E402
from repgeom.params import canonical  # noqa: E402
from repgeom.codegraph import definitions_version  # noqa: E402

#: a corpus's artifact: rule corpora makes it, and every reader of a corpus names it through corpus_artifact
CORPUS_ARTIFACT = "resources/data/{corpus}.json"


def corpus_artifact(name):
    return CORPUS_ARTIFACT.format(corpus=name)


try:
    rgconfig.validate_config(config)
except rgconfig.ConfigError as e:
    raise WorkflowError(str(e)) from None

# a local corpus source's path, files and header columns, before any job (not in a job's own Snakemake, on a
# node that may not see the source; not for a corpus already made, whose source may be gone)
if workflow.is_main_process:
    from repgeom.corpora.preflight import source_problems

    _problems = [
        p
        for _name, _entry in config["data"].items()
        if not Path(corpus_artifact(_name)).exists()
        for p in source_problems(_name, _entry)
    ]
    if _problems:
        raise WorkflowError("a corpus cannot be read:\n  - " + "\n  - ".join(_problems))

for _w in rgconfig.remote_code_warnings(config):
    logger.warning(f"SECURITY WARNING: {_w}")
for _line in planning.plan_lines(config):
    logger.info(_line)

MODELS = stages.embedding_models(config)
SEQ_DATASETS = stages.embedding_datasets(config)
ACT_MODELS = stages.activation_models(config)
ACT_DATASETS = stages.activation_datasets(config)
STS_MODELS = stages.sts_models(config)
STS_DATASETS = stages.sts_datasets(config)
STS_TEMPLATES = list(stages.sts_templates(config)) if STS_MODELS else []
STS_RUNS = stages.sts_runs(config) if STS_MODELS else []  # (template, position)
STS_TRANSFER = stages.sts_transfer(config) if STS_MODELS else []
STS_VARIANTS = list(config["sts"]["variants"])
MERGING_MODELS = stages.merging_models(config)
SIM_DATASETS = stages.similarity_datasets(config)
SIM_MERGING_MODELS = stages.similarity_merging_models(config)
STS_AE_LOSSES = sorted({v["ae_loss"] for v in config["sts"]["variants"].values() if v["pretrain"] == "autoencoder"})


def alternation(names):
    """A wildcard constraint that admits exactly these names."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


#: the studies a run can be asked for by name (`snakemake --cores all sts`); `all` is every one the config enables
STUDIES = ("numbers", "layers", "sts", "merging", "similarity")


def get_study_output(study):
    """What one study of the current config produces: its tables, figures and reports' inputs."""
    out = []
    if study == "numbers":
        for ds in SEQ_DATASETS:
            out += [
                f"results/metrics/{ds}/summary.tsv",
                f"results/metrics/{ds}/summary.md",
                f"results/plots/{ds}/bars.png",
            ]
            out += [f"results/plots/{ds}/tsne/{m}.png" for m in MODELS]
    elif study == "layers":
        for ds in ACT_DATASETS if ACT_MODELS else []:
            out += [f"results/metrics/{ds}/layers.tsv", f"results/plots/{ds}/layers.png"]
            out += [f"results/plots/{ds}/layers_tsne/{m}.png" for m in ACT_MODELS]
    elif study == "sts":
        if STS_MODELS:
            out += [f"results/sts/{name}" for name in STS_TABLES]
            out += [f"results/plots/sts/{name}.png" for name in get_sts_figures()]
            if any(v["head"] == "best_layer" for v in config["sts"]["variants"].values()):
                out += [f"results/plots/sts/zero_shot/{m}.png" for m in STS_MODELS]
    elif study == "merging":
        for m in MERGING_MODELS:
            out += [f"results/merging/{m}/{name}" for name in ("summary.md", "verdict.md")]
            out += [f"results/plots/merging/{m}/{fig}.png" for fig in ("tradeoff", "tsne")]
    elif study == "similarity":
        for ds in SIM_DATASETS:
            out += [f"results/similarity/{ds}/{t}" for t in ("summary.md", "layers.tsv", "best_layers.tsv")]
            pairs = stages.similarity_pairs(config, ds)
            out += [f"results/plots/similarity/{ds}/{a}__{b}.png" for a, b in pairs]
            if any(a != b for a, b in pairs):
                out.append(f"results/plots/similarity/{ds}/models.png")
        for m in SIM_MERGING_MODELS:
            out += [f"results/similarity/merging/{m}.md", f"results/plots/similarity/merging/{m}.png"]
    else:
        raise ValueError(f"unknown study {study!r} (known: {', '.join(STUDIES)})")
    return out


#: whether this invocation builds the report (``snakemake --report report.html``): then the default target holds the
#: studies that have been run, so that the report after ``snakemake numbers layers`` is those studies' report
REPORTING = any(a == "--report" or a.startswith("--report=") for a in sys.argv)


def get_final_output():
    """Everything a run of the current config should produce: every corpus and every enabled study. For a report,
    only the studies whose outputs are all there (and the corpora and headlines that are)."""
    out = [corpus_artifact(c) for c in config["data"]]
    if REPORTING:
        out = [f for f in out if Path(f).exists()]
        done, left = [], []
        for study in STUDIES:
            files = get_study_output(study)
            if files and all(Path(f).exists() for f in files):
                done.append(study)
                out += files
            elif files:
                left.append(study)
        if left:
            logger.warning(
                f"report: the studies run so far ({', '.join(done) or 'none'}); left out, not run yet: "
                f"{', '.join(left)} (snakemake --cores all {' '.join(left)} runs them)"
            )
        return out + [f for f in ["results/headlines.md"] if Path(f).exists()]
    for study in STUDIES:
        out += get_study_output(study)
    return out + ["results/headlines.md"]


def get_headline_tables(wildcards=None):
    """The studies' own tables the headlines read, by (study, name): ``numbers``/``layers`` per dataset, ``sts``
    progression and zero-shot, ``merging`` per model; for whichever studies the config runs."""
    out = {}
    for ds in SEQ_DATASETS if MODELS else []:
        out["numbers", ds] = f"results/metrics/{ds}/summary.tsv"
    for ds in ACT_DATASETS if ACT_MODELS else []:
        out["layers", ds] = f"results/metrics/{ds}/layers.tsv"
    if STS_MODELS:
        out["sts", "progression"] = "results/sts/progression.tsv"
        out["sts", "zero_shot"] = "results/sts/zero_shot.tsv"
    for m in MERGING_MODELS:
        out["merging", m] = f"results/merging/{m}/verdict.tsv"
    for ds in SIM_DATASETS:
        if any(a != b for a, b in stages.similarity_pairs(config, ds)):
            out["similarity", ds] = f"results/similarity/{ds}/models.tsv"
    for m in SIM_MERGING_MODELS:
        out["similarity_merging", m] = f"results/similarity/merging/{m}.summary.tsv"
    return out


STS_TABLES = (
    "progression.tsv",
    "progression.md",
    "worst_errors.tsv",
    "worst_errors.md",
    "zero_shot.tsv",
    "zero_shot.md",
    "transfer.tsv",
    "transfer.md",
)


def get_sts_figures():
    figs = ["scatter"]
    if any(v["head"] == "best_layer" for v in config["sts"]["variants"].values()):
        figs.append("layer_correlation")
    if STS_AE_LOSSES:
        figs.append("ae_loss")
    return figs


def get_activation_input(wildcards):
    """A sequences dataset, or a corpus whose distinct sentences the STS study needs (``corpus@template``: the
    corpus's, presented by a prompt template at extraction)."""
    if wildcards.dataset in config["sequences"]:
        return f"results/sequences/{wildcards.dataset}.json"
    return corpus_artifact(stages.split_dataset(wildcards.dataset)[0])


def get_activation_plan(wildcards):
    """The text set's row-parts (the activation_plan checkpoint's output, read once it exists)."""
    from repgeom.activations.parts import read_plan

    path = checkpoints.activation_plan.get(dataset=wildcards.dataset).output[0]
    return path, read_plan(path)


def get_activation_job_input(wildcards):
    """One part: the text set and the model (the job extracts); several: the plan and the parts (it gathers)."""
    path, plan = get_activation_plan(wildcards)
    if len(plan["parts"]) == 1:
        return {"dataset": get_activation_input(wildcards), "model": f"resources/models/{wildcards.model}"}
    pdir = f"results/activations/{wildcards.model}/{wildcards.dataset}.parts"
    return {"plan": path, "parts": [f"{pdir}/{p['name']}" for p in plan["parts"]]}


def get_activation_part(wildcards):
    """The plan's entry of one part (its rows and their texts' sha256: a part reruns when they change, not when
    the plan is remade). Read from the plan file, not through the checkpoint: a part job exists only once the
    activations job has read the plan (a checkpoint input would rerun every part whenever the plan is remade)."""
    from repgeom.activations.parts import read_plan

    path = Path(f"results/activation_plans/{wildcards.dataset}.json")
    if not path.exists():
        raise WorkflowError(
            f"{wildcards.part} of {wildcards.dataset}: the text set has no row plan yet ({path}); ask for the "
            f"activations (results/activations/{wildcards.model}/{wildcards.dataset}), which plan the parts first"
        )
    for p in read_plan(path)["parts"]:
        if p["name"] == wildcards.part:
            return p
    raise WorkflowError(f"{wildcards.part}: not a part of the current plan for {wildcards.dataset} ({path})")


def get_sts_variant_input(wildcards):
    v = config["sts"]["variants"][wildcards.variant]
    roles = stages.sts_corpora(config)
    acts = f"results/activations/{wildcards.model}"
    out = {
        "corpus": corpus_artifact(roles["corpus"]),
        "shards": f"{acts}/{stages.template_dataset(roles['corpus'], wildcards.template)}",
    }
    if v["pretrain"] == "autoencoder":
        w = wildcards
        out["autoencoder"] = f"results/sts/{w.model}/{w.template}/{w.position}/autoencoders_{v['ae_loss']}.pt"
    elif v["pretrain"] == "snli":
        out["nli_corpus"] = corpus_artifact(roles["nli_corpus"])
        out["nli_shards"] = f"{acts}/{stages.template_dataset(roles['nli_corpus'], wildcards.template)}"
    return out


def get_sts_pretrain_shards(wildcards):
    corpus = stages.sts_corpora(config)["pretrain_corpus"]
    return f"results/activations/{wildcards.model}/{stages.template_dataset(corpus, wildcards.template)}"


def get_sts_variant_params(wildcards):
    return stages.sts_variant_params(config, wildcards.variant).params()


def get_sts_ae_params(wildcards):
    return stages.sts_autoencoder_params(config).params()


def get_sts_results(wildcards=None):
    """Every probe's result: model × (template, its poolings) × variant."""
    return [f"results/sts/{m}/{t}/{p}/{v}.json" for m in STS_MODELS for t, p in STS_RUNS for v in STS_VARIANTS]


def get_sts_transfer_input(wildcards):
    """One model × template × pooling on one transfer set: every variant's saved probe, the set and its shards."""
    w = wildcards
    return {
        "probes": [f"results/sts/{w.model}/{w.template}/{w.position}/{v}.probe.pt" for v in STS_VARIANTS],
        "corpus": corpus_artifact(w.corpus),
        "shards": f"results/activations/{w.model}/{stages.template_dataset(w.corpus, w.template)}",
    }


def get_sts_transfer_results(wildcards=None):
    return [f"results/sts/{m}/{t}/{p}/transfer/{c}.json" for m in STS_MODELS for t, p in STS_RUNS for c in STS_TRANSFER]


def get_sts_ae_tables(wildcards=None):
    return [
        f"results/sts/{m}/{t}/{p}/autoencoders_{loss}.tsv"
        for m in STS_MODELS
        for t, p in STS_RUNS
        for loss in STS_AE_LOSSES
    ]


# Params are the typed repgeom.params objects as dicts with sorted keys (.params()), so that
# Snakemake's params rerun trigger fires on a changed value, never on a reordered config file.
def get_corpus_params(wildcards):
    return canonical(config["data"][wildcards.corpus])


def get_sequence_params(wildcards):
    return stages.sequence_spec(config, wildcards.dataset).params()


def get_prepare_params(wildcards):
    return stages.prepare_params(config, wildcards.model).params()


def get_embed_params(wildcards):
    return stages.embed_params(config, wildcards.model).params()


def get_activation_params(wildcards):
    return stages.activation_params(config, wildcards.model, wildcards.dataset).params()


def get_layer_metric_params(wildcards):
    return stages.layer_metric_params(config).params()


def get_dataset_layer_metrics(wildcards):
    return expand("results/metrics/{dataset}/layers/{model}.tsv", dataset=wildcards.dataset, model=ACT_MODELS)


def get_metric_params(wildcards):
    return stages.metric_params(config).params()


def get_plot_params(wildcards):
    return stages.plot_params(config).params()


def get_dataset_metrics(wildcards):
    return expand("results/metrics/{dataset}/models/{model}.json", dataset=wildcards.dataset, model=MODELS)


def get_model_resource(name, default_key):
    """A model's own ``resources`` entry, else for models from 1B parameters on planned from their size
    (repgeom.planning: a GPU, memory for the weights), else the config default; memory and time grow per
    attempt."""

    def _get(wildcards, attempt):
        own = config["models"][wildcards.model].get("resources", {})
        stage = "embeddings" if default_key == "embed_mem_mb" or default_key == "embed_runtime" else "activations"
        est = planning.job_estimate(config, wildcards.model, stage, wildcards.get("dataset"))
        if name == "gpu":
            if not config["resources"]["gpu_jobs_use_gpu"]:
                return 0
            return own.get("gpu", est.gpus if est else 0)
        base = config["resources"][default_key]
        if name == "mem_mb" and est is not None and est.gpus:  # big models: the default would not hold them
            base = max(base, est.mem_mb)
        return own.get(name, base) * attempt

    return _get


def get_activation_resource(name, default_key):
    """The activations job's resources: a model job's when it extracts, none of a GPU's when it gathers parts."""
    extracting = get_model_resource(name, default_key)

    def _get(wildcards, attempt):
        try:
            gathers = len(get_activation_plan(wildcards)[1]["parts"]) > 1
        except Exception:  # the plan is not made yet: size the job as an extraction
            gathers = False
        if not gathers:
            return extracting(wildcards, attempt)
        return 0 if name == "gpu" else config["resources"][default_key] * attempt

    return _get


def get_code_version(script):
    """Hash of the library definitions that ``workflow/scripts/{script}.py`` can reach (repgeom.codegraph: static
    name resolution from its statements), given as a params entry so that editing the library (not only the
    wrapper, which Snakemake tracks itself) reruns exactly the jobs that can run the edited code."""
    return definitions_version(REPO / "workflow" / "scripts" / f"{script}.py", REPO / "src")


def get_resource(name):
    def _get(wildcards, attempt):
        base = config["resources"][name]
        return base * attempt if name.endswith("mem_mb") or name.endswith("runtime") else base

    return _get


# ------------------------------------------------------------------ the merging study
def get_merging_eval_dataset(wildcards):
    return f"results/sequences/{config['merging']['eval_dataset']}.json"


def get_merging_data_params(wildcards):
    return stages.merging_data_spec(config).params()


def get_merging_train_params(wildcards):
    return stages.merging_train_params(config).params()


def get_merging_variants_input(wildcards):
    out = {
        "model": f"resources/models/{wildcards.model}",
        "adapters": f"results/merging/{wildcards.model}/seed_{wildcards.seed}/adapters",
    }
    partner = stages.merging_partner(config, wildcards.seed)
    if partner is not None:
        out["partner"] = f"results/merging/{wildcards.model}/seed_{partner}/adapters"
    return out


def get_merging_variants_params(wildcards):
    return stages.merging_variants_params(config, wildcards.seed).params()


def get_merging_scores_input(wildcards):
    mg = config["merging"]
    out = {
        "data": "results/merging/data.json",
        "eval": f"results/sequences/{mg['eval_dataset']}.json",
        "corpus": corpus_artifact(mg["general_corpus"]),
    }
    if wildcards.run == "base":
        out["models"] = f"resources/models/{wildcards.model}"
    else:
        out["models"] = f"results/merging/{wildcards.model}/{wildcards.run}/variants"
    return out


def get_merging_scores_params(wildcards):
    return stages.merging_scores_params(config, wildcards.model).params()


def get_merging_score_files(wildcards):
    runs = ["base"] + [f"seed_{s}" for s in config["merging"]["seeds"]]
    return [f"results/merging/{wildcards.model}/{r}/scores.json" for r in runs]


def get_merging_effects(wildcards):
    return stages.merging_effects(config)


def get_merging_first_seed_embeddings(wildcards):
    return f"results/merging/{wildcards.model}/seed_{config['merging']['seeds'][0]}/embeddings.h5"


# ------------------------------------------------------------------ the similarity stage
def get_similarity_params(wildcards):
    return stages.similarity_params(config).params()


def get_similarity_pair_input(wildcards):
    """The two models' representation files (shards' folders, embeddings files) for one text set."""
    pairs = stages.similarity_pairs(config, wildcards.dataset)
    if (wildcards.model_a, wildcards.model_b) not in pairs:
        raise WorkflowError(
            f"similarity: {wildcards.model_a} × {wildcards.model_b} on {wildcards.dataset} is not a compared pair "
            f"(pairs: {', '.join(f'{a}__{b}' for a, b in pairs) or 'none'})"
        )
    return {
        "a": stages.similarity_sources(config, wildcards.model_a, wildcards.dataset),
        "b": stages.similarity_sources(config, wildcards.model_b, wildcards.dataset),
    }


def get_similarity_pair_files(wildcards):
    return [
        f"results/similarity/{wildcards.dataset}/pairs/{a}__{b}.json"
        for a, b in stages.similarity_pairs(config, wildcards.dataset)
    ]


def get_similarity_mem_mb(wildcards, attempt):
    """The layers a pair job may hold (similarity.cache_mb) plus two layers and the job's own needs."""
    return (config["similarity"]["cache_mb"] + config["resources"]["cpu_mem_mb"]) * attempt
