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
    params:
        embed=get_embed_params,
    threads: 2
    resources:
        mem_mb=get_resource("embed_mem_mb"),
        runtime=get_resource("embed_runtime"),
    conda:
        "../../envs/embeddings.yaml"
    script:
        "../scripts/embeddings.py"
