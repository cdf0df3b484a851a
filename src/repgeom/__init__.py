"""repgeom: representational geometry of language models.

The importable library behind the Snakemake workflow. Each workflow stage has
one module of the same name (``sequences``, ``models``, ``embeddings``,
``metrics``, ``plots``); ``artifacts`` holds what they share (atomic writes,
hashing, provenance-checked HDF5 I/O) and ``config`` the validation that runs
before any job. Heavy dependencies (torch, transformers) are imported lazily so
that the Snakefile and the tests of the light modules start fast.
"""

__version__ = "0.1.0"
