rule sequences:
    output:
        "results/sequences/{dataset}.json",
    log:
        "logs/sequences/{dataset}.log",
    params:
        code=get_code_version("sequences"),
        spec=get_sequence_params,
    resources:
        mem_mb=get_resource("cpu_mem_mb"),
        runtime=get_resource("cpu_runtime"),
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/sequences.py"
