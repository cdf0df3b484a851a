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
    params:
        code=get_code_version("metrics", "sequences"),
        metrics=get_metric_params,
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    conda:
        "../../envs/analysis.yaml"
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
    params:
        code=get_code_version("metrics"),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/metrics_summary.py"
