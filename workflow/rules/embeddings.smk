rule embeddings:
    input:
        dataset="results/sequences/{dataset}.json",
        model="resources/models/{model}",
    output:
        "results/embeddings/{dataset}/{model}.h5",
    log:
        "logs/embeddings/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/embeddings/{dataset}/{model}.tsv"
    conda:
        "../../envs/embeddings.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_model_resource("mem_mb", "embed_mem_mb"),
        runtime=get_model_resource("runtime", "embed_runtime"),
        gpu=get_model_resource("gpu", None),
    params:
        code=get_code_version("embeddings"),
        embed=get_embed_params,
    script:
        "../scripts/embeddings.py"
