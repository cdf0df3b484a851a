# Downloads are light and need the network: run them where Snakemake runs, and retry. A download retries its own
# transient faults (corpus_source: retries, backoff); a job retry is for the rest of the network's failures, and
# a retry of a job that failed on its data or configuration fails at once, naming the first attempt's log
# (repgeom.retry, which reads the `attempt` resource).
localrules:
    corpora,


rule corpora:
    output:
        CORPUS_ARTIFACT,
    log:
        "logs/corpora/{corpus}.log",
    retries: 2
    conda:
        "../../envs/analysis.yaml"
    resources:
        attempt=lambda wildcards, attempt: attempt,
    params:
        code=get_code_version("corpora"),
        spec=get_corpus_params,
    script:
        "../scripts/corpora.py"
