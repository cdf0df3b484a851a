rule plots_tsne:
    input:
        embeddings="results/embeddings/{dataset}/{model}.h5",
    output:
        report(
            "results/plots/{dataset}/tsne/{model}.png",
            caption="../report/tsne.rst",
            category="Numeric sequences",
            subcategory="{dataset}",
            labels={"figure": "t-SNE", "model": "{model}"},
        ),
    log:
        "logs/plots/{dataset}/tsne/{model}.log",
    params:
        code=get_code_version("plots"),
        plots=get_plot_params,
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plots_tsne.py"


rule plots_bars:
    input:
        "results/metrics/{dataset}/summary.tsv",
    output:
        report(
            "results/plots/{dataset}/bars.png",
            caption="../report/bars.rst",
            category="Numeric sequences",
            subcategory="{dataset}",
            labels={"figure": "scores across models", "dataset": "{dataset}"},
        ),
    log:
        "logs/plots/{dataset}/bars.log",
    params:
        code=get_code_version("plots"),
        plots=get_plot_params,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/plots_bars.py"
