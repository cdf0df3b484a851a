"""Configuration-time code: what Snakemake runs while it builds the DAG, never inside a job.

- :mod:`.config`  loading a config and validating it against the schema (defaults filled), before any job
- :mod:`.checks`  what the schema cannot express (cross-references, settings that cannot work together)
- :mod:`.stages`  the per-stage view of a config: what each stage runs over, each job's typed params

No wrapper in ``workflow/scripts`` loads this package (``tests/test_codegraph.py`` checks), so no job's code version
covers it: rewording a configuration error reruns nothing. Jobs read their params through :mod:`repgeom.params`.
"""
