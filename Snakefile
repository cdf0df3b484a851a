# Representational geometry of language models: numeric-sequence embedding geometry and
# frozen decoder-LM features for semantic similarity (the FREEZE study on STS-B). This file
# is wiring only: the stages live in workflow/rules/, their code in src/repgeom/.
from snakemake.utils import min_version

min_version("9.0")


# The default config, unless --configfile names others: those replace it rather than being merged
# into it (a merge would add the default models to every other config's model table).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset=alternation(list(config["sequences"]) + STS_DATASETS),
    model=alternation(list(config["models"])),
    corpus=alternation(list(config["data"])),
    position="last|mean",
    part=r"rows_\d+-\d+",
    variant=alternation(STS_VARIANTS),
    template=alternation(STS_TEMPLATES),
    ae_loss="mse|logvar",
    seed=r"\d+",
    run=r"base|seed_\d+",
    model_a=alternation(list(config["models"])),
    model_b=alternation(list(config["models"])),


include: "workflow/rules/corpora.smk"
include: "workflow/rules/sequences.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/embeddings.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/sts.smk"
include: "workflow/rules/merging.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/plots.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


# one study by name: snakemake --cores all numbers | layers | sts | merging | similarity
rule numbers:
    input:
        get_study_output("numbers"),


rule layers:
    input:
        get_study_output("layers"),


rule sts:
    input:
        get_study_output("sts"),


rule merging:
    input:
        get_study_output("merging"),


rule similarity:
    input:
        get_study_output("similarity"),
