localrules:
    activation_plan,


# The text set's row-parts (activations.rows_per_part): one part → the activations job extracts the whole set;
# several → one activation_part job each, then the activations job gathers them into virtual files per layer.
checkpoint activation_plan:
    input:
        get_activation_input,
    output:
        "results/activation_plans/{dataset}.json",
    log:
        "logs/activation_plans/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("activation_plan"),
        plan=stages.activation_plan_params(config),
    script:
        "../scripts/activation_plan.py"


rule activation_part:
    input:
        # ancient: a part reruns when its own rows change (its params hold their sha256), not when the set grows
        dataset=ancient(get_activation_input),
        model="resources/models/{model}",
    output:
        directory("results/activations/{model}/{dataset}.parts/{part}"),
    log:
        "logs/activations/{model}/{dataset}.parts/{part}.log",
    benchmark:
        "results/benchmarks/activations/{model}/{dataset}.parts/{part}.tsv"
    conda:
        "../../envs/embeddings.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_model_resource("mem_mb", "activations_mem_mb"),
        runtime=get_model_resource("runtime", "activations_runtime"),
        gpu=get_model_resource("gpu", None),
    params:
        code=get_code_version("activations"),
        act=get_activation_params,
        part=get_activation_part,
    script:
        "../scripts/activations.py"


rule activations:
    input:
        unpack(get_activation_job_input),
    output:
        directory("results/activations/{model}/{dataset}"),
    log:
        "logs/activations/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/activations/{model}/{dataset}.tsv"
    conda:
        "../../envs/embeddings.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_activation_resource("mem_mb", "activations_mem_mb"),
        runtime=get_activation_resource("runtime", "activations_runtime"),
        gpu=get_activation_resource("gpu", None),
    params:
        code=get_code_version("activations"),
        act=get_activation_params,
    script:
        "../scripts/activations.py"
