# Downloads are light and need the network: run them where Snakemake runs, and retry.
localrules:
    datasets,


rule datasets:
    output:
        "resources/data/{corpus}.json",
    log:
        "logs/datasets/{corpus}.log",
    params:
        code=get_code_version("datasets"),
        spec=get_corpus_params,
    retries: 2
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/datasets.py"
