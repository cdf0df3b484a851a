# The FREEZE study on STS-B: probes on frozen per-layer activation shards of decoder LMs.
# Autoencoders are pretrained once per model, template, pooling and loss; each variant of the
# progression is one job over all seeds; the tables gather them.
localrules:
    sts_tables,


rule sts_autoencoders:
    input:
        shards=get_sts_pretrain_shards,
    output:
        model="results/sts/{model}/{template}/{position}/autoencoders_{ae_loss}.pt",
        curves="results/sts/{model}/{template}/{position}/autoencoders_{ae_loss}.tsv",
    log:
        "logs/sts/{model}/{template}/{position}/autoencoders_{ae_loss}.log",
    benchmark:
        "results/benchmarks/sts/{model}/{template}/{position}/autoencoders_{ae_loss}.tsv"
    conda:
        "../../envs/embeddings.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_model_resource("mem_mb", "sts_mem_mb"),
        runtime=get_model_resource("runtime", "sts_runtime"),
        gpu=get_model_resource("gpu", None),
    params:
        code=get_code_version("sts_autoencoders"),
        sts=get_sts_ae_params,
    script:
        "../scripts/sts_autoencoders.py"


rule sts_variant:
    input:
        unpack(get_sts_variant_input),
    output:
        result="results/sts/{model}/{template}/{position}/{variant}.json",
        probe="results/sts/{model}/{template}/{position}/{variant}.probe.pt",
    log:
        "logs/sts/{model}/{template}/{position}/{variant}.log",
    benchmark:
        "results/benchmarks/sts/{model}/{template}/{position}/{variant}.tsv"
    conda:
        "../../envs/embeddings.yaml"
    threads: config["resources"]["job_threads"]
    resources:
        mem_mb=get_model_resource("mem_mb", "sts_mem_mb"),
        runtime=get_model_resource("runtime", "sts_runtime"),
        gpu=get_model_resource("gpu", None),
    params:
        code=get_code_version("sts_variant"),
        sts=get_sts_variant_params,
    script:
        "../scripts/sts_variant.py"


rule sts_transfer:
    input:
        unpack(get_sts_transfer_input),
    output:
        "results/sts/{model}/{template}/{position}/transfer/{corpus}.json",
    log:
        "logs/sts/{model}/{template}/{position}/transfer/{corpus}.log",
    conda:
        "../../envs/embeddings.yaml"
    threads: 1
    resources:
        mem_mb=get_model_resource("mem_mb", "sts_mem_mb"),
        runtime=get_model_resource("runtime", "sts_runtime"),
    params:
        code=get_code_version("sts_transfer"),
    script:
        "../scripts/sts_transfer.py"


rule sts_tables:
    input:
        results=get_sts_results,
        transfer=get_sts_transfer_results,
        corpus=lambda w: corpus_artifact(config["sts"]["corpus"]),
    output:
        tsv="results/sts/progression.tsv",
        md=report(
            "results/sts/progression.md",
            caption="../report/sts_progression.rst",
            category="STS-B (FREEZE)",
            labels={"table": "progression"},
        ),
        worst_tsv="results/sts/worst_errors.tsv",
        worst_md=report(
            "results/sts/worst_errors.md",
            caption="../report/sts_worst.rst",
            category="STS-B (FREEZE)",
            labels={"table": "worst errors"},
        ),
        transfer_tsv="results/sts/transfer.tsv",
        transfer_md=report(
            "results/sts/transfer.md",
            caption="../report/sts_transfer.rst",
            category="STS-B (FREEZE)",
            labels={"table": "transfer"},
        ),
        zero_tsv="results/sts/zero_shot.tsv",
        zero_md=report(
            "results/sts/zero_shot.md",
            caption="../report/sts_zero_shot.rst",
            category="STS-B (FREEZE)",
            labels={"table": "zero-shot"},
        ),
    log:
        "logs/sts/tables.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        code=get_code_version("sts_tables"),
        order=STS_VARIANTS,
        templates=STS_TEMPLATES,
        k=config["sts"]["worst_errors"],
    script:
        "../scripts/sts_tables.py"
