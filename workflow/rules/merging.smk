# The LoRA → model soup vs SLERP study: fine-tune LoRA adapters on the number families (one job per model ×
# seed), build the merged variants of each seed as loadable model folders, score every variant on the task
# and on STS-B, then gather a table and a verdict per claim of the paper.
localrules:
    merging_summary,


rule merging_data:
    input:
        eval=get_merging_eval_dataset,
    output:
        "results/merging/data.json",
    log:
        "logs/merging/data.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("merging_data"),
        data=get_merging_data_params,
    script:
        "../scripts/merging_data.py"


rule merging_train:
    input:
        data="results/merging/data.json",
        model="resources/models/{model}",
    output:
        directory("results/merging/{model}/seed_{seed}/adapters"),
    log:
        "logs/merging/{model}/seed_{seed}/train.log",
    benchmark:
        "results/benchmarks/merging/{model}/seed_{seed}/train.tsv"
    conda:
        "../../envs/embeddings.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_model_resource("mem_mb", "merging_mem_mb"),
        runtime=get_model_resource("runtime", "merging_runtime"),
        gpu=get_model_resource("gpu", None),
    params:
        code=get_code_version("merging_train"),
        train=get_merging_train_params,
    script:
        "../scripts/merging_train.py"


rule merging_variants:
    input:
        unpack(get_merging_variants_input),
    output:
        directory("results/merging/{model}/seed_{seed}/variants"),
    log:
        "logs/merging/{model}/seed_{seed}/variants.log",
    benchmark:
        "results/benchmarks/merging/{model}/seed_{seed}/variants.tsv"
    conda:
        "../../envs/embeddings.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_model_resource("mem_mb", "merging_mem_mb"),
        runtime=get_model_resource("runtime", "merging_runtime"),
    params:
        code=get_code_version("merging_variants"),
        variants=get_merging_variants_params,
    script:
        "../scripts/merging_variants.py"


rule merging_scores:
    input:
        unpack(get_merging_scores_input),
    output:
        json="results/merging/{model}/{run}/scores.json",
        h5="results/merging/{model}/{run}/embeddings.h5",
    log:
        "logs/merging/{model}/{run}/scores.log",
    benchmark:
        "results/benchmarks/merging/{model}/{run}/scores.tsv"
    conda:
        "../../envs/embeddings.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_model_resource("mem_mb", "merging_mem_mb"),
        runtime=get_model_resource("runtime", "merging_runtime"),
        gpu=get_model_resource("gpu", None),
    params:
        code=get_code_version("merging_scores"),
        scores=get_merging_scores_params,
    script:
        "../scripts/merging_scores.py"


rule merging_summary:
    input:
        get_merging_score_files,
    output:
        tsv="results/merging/{model}/summary.tsv",
        md=report(
            "results/merging/{model}/summary.md",
            caption="../report/merging_summary.rst",
            category="LoRA and merging",
            subcategory="{model}",
            labels={"table": "variants", "model": "{model}"},
        ),
        long="results/merging/{model}/scores.tsv",
        verdict_tsv="results/merging/{model}/verdict.tsv",
        verdict_md=report(
            "results/merging/{model}/verdict.md",
            caption="../report/merging_verdict.rst",
            category="LoRA and merging",
            subcategory="{model}",
            labels={"table": "verdict", "model": "{model}"},
        ),
    log:
        "logs/merging/{model}/summary.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("merging_summary"),
        effects=get_merging_effects,
    script:
        "../scripts/merging_summary.py"
