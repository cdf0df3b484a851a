# Cross-model × cross-layer representational similarity: one job per model pair and text set (every layer of one
# against every layer of the other, read one at a time through the verified reading API), gathered into tables and
# figures; and how far each merged variant of the merging study sits from its base and fine-tuned model.
localrules:
    similarity_summary,
    plots_similarity_models,


rule similarity_pair:
    input:
        unpack(get_similarity_pair_input),
    output:
        "results/similarity/{dataset}/pairs/{model_a}__{model_b}.json",
    log:
        "logs/similarity/{dataset}/pairs/{model_a}__{model_b}.log",
    benchmark:
        "results/benchmarks/similarity/{dataset}/{model_a}__{model_b}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_similarity_mem_mb,
        runtime=get_resource("cpu_runtime"),
    params:
        code=get_code_version("similarity_pair"),
        similarity=get_similarity_params,
    script:
        "../scripts/similarity_pair.py"


rule similarity_summary:
    input:
        get_similarity_pair_files,
    output:
        layers="results/similarity/{dataset}/layers.tsv",
        models="results/similarity/{dataset}/models.tsv",
        best_layers="results/similarity/{dataset}/best_layers.tsv",
        best_pairs="results/similarity/{dataset}/best_pairs.tsv",
        md=report(
            "results/similarity/{dataset}/summary.md",
            caption="../report/similarity_table.rst",
            category="Representational similarity",
            subcategory="{dataset}",
            labels={"table": "model pairs", "dataset": "{dataset}"},
        ),
    log:
        "logs/similarity/{dataset}/summary.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("similarity_summary"),
        similarity=get_similarity_params,
    script:
        "../scripts/similarity_summary.py"


rule plots_similarity_pair:
    input:
        "results/similarity/{dataset}/pairs/{model_a}__{model_b}.json",
    output:
        report(
            "results/plots/similarity/{dataset}/{model_a}__{model_b}.png",
            caption="../report/similarity_heatmap.rst",
            category="Representational similarity",
            subcategory="{dataset}",
            labels={"figure": "layer × layer", "pair": "{model_a} × {model_b}"},
        ),
    log:
        "logs/plots/similarity/{dataset}/{model_a}__{model_b}.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    params:
        code=get_code_version("plots_similarity_pair"),
        plots=get_plot_params,
    script:
        "../scripts/plots_similarity_pair.py"


rule plots_similarity_models:
    input:
        "results/similarity/{dataset}/models.tsv",
    output:
        report(
            "results/plots/similarity/{dataset}/models.png",
            caption="../report/similarity_models.rst",
            category="Representational similarity",
            subcategory="{dataset}",
            labels={"figure": "model × model", "dataset": "{dataset}"},
        ),
    log:
        "logs/plots/similarity/{dataset}/models.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("plots_similarity_models"),
        plots=get_plot_params,
        models=lambda w: stages.similarity_models(config, w.dataset),
    script:
        "../scripts/plots_similarity_models.py"


rule similarity_merging:
    input:
        base="results/merging/{model}/base/embeddings.h5",
        seeds=lambda w: [f"results/merging/{w.model}/seed_{s}/embeddings.h5" for s in config["merging"]["seeds"]],
    output:
        tsv="results/similarity/merging/{model}.tsv",
        summary="results/similarity/merging/{model}.summary.tsv",
        layers="results/similarity/merging/{model}.layers.tsv",
        md=report(
            "results/similarity/merging/{model}.md",
            caption="../report/similarity_merging.rst",
            category="LoRA and merging",
            subcategory="{model}",
            labels={"table": "similarity to base and fine-tuned", "model": "{model}"},
        ),
        png=report(
            "results/plots/similarity/merging/{model}.png",
            caption="../report/similarity_merging.rst",
            category="LoRA and merging",
            subcategory="{model}",
            labels={"figure": "similarity to base and fine-tuned", "model": "{model}"},
        ),
        layers_png=report(
            "results/plots/similarity/merging/{model}.layers.png",
            caption="../report/similarity_merging_layers.rst",
            category="LoRA and merging",
            subcategory="{model}",
            labels={"figure": "similarity to base and fine-tuned per layer", "model": "{model}"},
        ),
    log:
        "logs/similarity/merging/{model}.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    params:
        code=get_code_version("similarity_merging"),
        similarity=get_similarity_params,
        plots=get_plot_params,
        runs=lambda w: [f"seed_{s}" for s in config["merging"]["seeds"]],
    script:
        "../scripts/similarity_merging.py"
