"""The action cache: jobs keyed by what decides their outputs, outputs kept in a content-addressed store.

A job's key (:mod:`.key`) hashes its rule, wildcards, params and code, the content digests of its inputs
(:mod:`.digest`) and the software and device that shape its numbers. Before a job works it looks its key up in the
store (:mod:`.store`); on a hit it restores its outputs instead of computing them (:mod:`.job`). Because inputs are
keyed by content, a job that Snakemake schedules only because an upstream output was rewritten with the same
content restores (early cutoff). ``python -m repgeom.actioncache`` lists, verifies and prunes a store.
"""
