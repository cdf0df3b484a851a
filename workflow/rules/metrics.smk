# Aggregation jobs are tiny: run them where Snakemake runs, never as cluster jobs.
localrules:
    metrics_summary,
    layer_metrics_summary,
    report_headlines,


rule metrics:
    input:
        dataset="results/sequences/{dataset}.json",
        embeddings="results/embeddings/{dataset}/{model}.h5",
    output:
        "results/metrics/{dataset}/models/{model}.json",
    log:
        "logs/metrics/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/metrics/{dataset}/{model}.tsv"
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    params:
        code=get_code_version("metrics"),
        metrics=get_metric_params,
    script:
        "../scripts/metrics.py"


rule metrics_summary:
    input:
        get_dataset_metrics,
    output:
        tsv=report(
            "results/metrics/{dataset}/summary.tsv",
            caption="../report/summary.rst",
            category="Numeric sequences",
            subcategory="{dataset}",
            labels={"figure": "score table", "dataset": "{dataset}"},
        ),
        md="results/metrics/{dataset}/summary.md",
    log:
        "logs/metrics/{dataset}/summary.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("metrics_summary"),
    script:
        "../scripts/metrics_summary.py"


rule layer_metrics:
    input:
        dataset="results/sequences/{dataset}.json",
        shards="results/activations/{model}/{dataset}",
    output:
        "results/metrics/{dataset}/layers/{model}.tsv",
    log:
        "logs/metrics/{dataset}/layers/{model}.log",
    benchmark:
        "results/benchmarks/metrics/{dataset}/layers/{model}.tsv"
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    params:
        code=get_code_version("layer_metrics"),
        metrics=get_layer_metric_params,
    script:
        "../scripts/layer_metrics.py"


rule layer_metrics_summary:
    input:
        get_dataset_layer_metrics,
    output:
        tsv=report(
            "results/metrics/{dataset}/layers.tsv",
            caption="../report/layers_table.rst",
            category="Layer by layer",
            subcategory="{dataset}",
            labels={"figure": "per-layer scores", "dataset": "{dataset}"},
        ),
        md="results/metrics/{dataset}/layers.md",
    log:
        "logs/metrics/{dataset}/layers.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("layer_metrics_summary"),
    script:
        "../scripts/layer_metrics_summary.py"


# One headline per study, read from the studies' own tables (the report's front matter).
rule report_headlines:
    input:
        lambda w: list(get_headline_tables().values()),
    output:
        report(
            "results/headlines.md",
            caption="../report/headlines.rst",
            category="Overview",
            labels={"table": "headlines"},
        ),
    log:
        "logs/headlines.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("report_headlines"),
        tables=lambda w: [[study, name, path] for (study, name), path in get_headline_tables().items()],
        label=config["label"],
        sts_limit=config["data"].get(config["sts"]["corpus"], {}).get("limit", {}) if STS_MODELS else {},
    script:
        "../scripts/report_headlines.py"
