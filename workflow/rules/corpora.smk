# Downloads are light and need the network: run them where Snakemake runs, and retry.
localrules:
    corpora,


rule corpora:
    output:
        "resources/data/{corpus}.json",
    log:
        "logs/corpora/{corpus}.log",
    retries: 2
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("corpora"),
        spec=get_corpus_params,
    script:
        "../scripts/corpora.py"
