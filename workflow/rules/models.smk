rule models:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/models/{model}.log",
    benchmark:
        "results/benchmarks/models/{model}.tsv"
    params:
        code=get_code_version("models"),
        model=get_prepare_params,
    threads: 2
    resources:
        mem_mb=get_resource("prepare_mem_mb"),
        runtime=get_resource("prepare_runtime"),
    conda:
        "../../envs/models.yaml"
    script:
        "../scripts/models.py"
