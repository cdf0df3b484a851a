rule activations:
    input:
        dataset=get_activation_input,
        model="resources/models/{model}",
    output:
        directory("results/activations/{model}/{dataset}"),
    log:
        "logs/activations/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/activations/{model}/{dataset}.tsv"
    conda:
        "../../envs/embeddings.yaml"
    threads: 2
    resources:
        mem_mb=get_model_resource("mem_mb", "activations_mem_mb"),
        runtime=get_model_resource("runtime", "activations_runtime"),
        gpu=get_model_resource("gpu", None),
    params:
        code=get_code_version("activations"),
        act=get_activation_params,
    script:
        "../scripts/activations.py"
