rule models:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/models/{model}.log",
    benchmark:
        "results/benchmarks/models/{model}.tsv"
    conda:
        "../../envs/models.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_resource("prepare_mem_mb"),
        runtime=get_resource("prepare_runtime"),
    params:
        code=get_code_version("models"),
        model=get_prepare_params,
    script:
        "../scripts/models.py"
