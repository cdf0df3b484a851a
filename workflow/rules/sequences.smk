rule sequences:
    output:
        "results/sequences/{dataset}.json",
    log:
        "logs/sequences/{dataset}.log",
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    params:
        code=get_code_version("sequences"),
        spec=get_sequence_params,
    script:
        "../scripts/sequences.py"
