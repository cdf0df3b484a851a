# Figures of aggregate tables are tiny: run them where Snakemake runs.
localrules:
    plots_bars,
    plots_layers,
    plots_sts,


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
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    params:
        code=get_code_version("plots_tsne"),
        plots=get_plot_params,
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
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("plots_bars"),
        plots=get_plot_params,
    script:
        "../scripts/plots_bars.py"


rule plots_layers:
    input:
        "results/metrics/{dataset}/layers.tsv",
    output:
        report(
            "results/plots/{dataset}/layers.png",
            caption="../report/layers.rst",
            category="Layer by layer",
            subcategory="{dataset}",
            labels={"figure": "scores across depth", "dataset": "{dataset}"},
        ),
    log:
        "logs/plots/{dataset}/layers.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("plots_layers"),
        plots=get_plot_params,
    script:
        "../scripts/plots_layers.py"


rule plots_layer_tsne:
    input:
        dataset="results/sequences/{dataset}.json",
        table="results/metrics/{dataset}/layers/{model}.tsv",
        shards="results/activations/{model}/{dataset}",
    output:
        report(
            "results/plots/{dataset}/layers_tsne/{model}.png",
            caption="../report/layers_tsne.rst",
            category="Layer by layer",
            subcategory="{dataset}",
            labels={"figure": "t-SNE best and last layer", "model": "{model}"},
        ),
    log:
        "logs/plots/{dataset}/layers_tsne/{model}.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    params:
        code=get_code_version("plots_layer_tsne"),
        plots=get_plot_params,
    script:
        "../scripts/plots_layer_tsne.py"


rule plots_sts:
    input:
        results=get_sts_results,
        ae=get_sts_ae_tables,
    output:
        report(
            "results/plots/sts/{figure}.png",
            caption="../report/sts_figures.rst",
            category="STS-B (FREEZE)",
            labels={"figure": "{figure}"},
        ),
    log:
        "logs/plots/sts/{figure}.log",
    wildcard_constraints:
        figure="layer_correlation|ae_loss|scatter",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("plots_sts"),
        plots=get_plot_params,
    script:
        "../scripts/plots_sts.py"


rule plots_sts_zero_shot:
    input:
        results=get_sts_results,
    output:
        report(
            "results/plots/sts/zero_shot/{model}.png",
            caption="../report/sts_zero_shot_figure.rst",
            category="STS-B (FREEZE)",
            labels={"figure": "zero-shot {model}"},
        ),
    log:
        "logs/plots/sts/zero_shot/{model}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("plots_sts_zero_shot"),
        plots=get_plot_params,
    script:
        "../scripts/plots_sts_zero_shot.py"


rule plots_merging:
    input:
        summary="results/merging/{model}/summary.tsv",
        base="results/merging/{model}/base/embeddings.h5",
        seed=get_merging_first_seed_embeddings,
    output:
        report(
            "results/plots/merging/{model}/{figure}.png",
            caption="../report/merging_figures.rst",
            category="LoRA and merging",
            subcategory="{model}",
            labels={"figure": "{figure}", "model": "{model}"},
        ),
    log:
        "logs/plots/merging/{model}/{figure}.log",
    wildcard_constraints:
        figure="tradeoff|tsne",
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    params:
        code=get_code_version("plots_merging"),
        plots=get_plot_params,
    script:
        "../scripts/plots_merging.py"
