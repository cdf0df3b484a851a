"""Glue between Snakemake ``script:`` wrappers and the library.

``with job(snakemake):`` sends logging, warnings and stderr (progress bars)
to the rule's log file and records the failure there before re-raising, so
every job leaves a readable log whatever happens. A job that asks for GPUs on a
multi-GPU machine (not under SLURM) holds its own devices for its duration
(:mod:`repgeom.devicepool`).

Before the job works it looks its action key up in the action cache (:mod:`repgeom.actioncache`): on a hit its
outputs are restored and the wrapper ends there, with exit status 0 (the block does not run); after the block
succeeds its outputs are entered into the store. ``lookup=False`` is for jobs that read what their key cannot see
(a corpus's source file), which therefore always compute, their outputs stored all the same; ``cache=False``
leaves the cache out entirely (a model's download: a folder of gigabytes). When a job fails, the error says where
its last good outputs are kept and the command that puts them back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import retry
from .actioncache.job import JobCache, Restored
from .devicepool import claim_gpus

if TYPE_CHECKING:
    from snakemake.script import Snakemake


@contextlib.contextmanager
def job(
    snakemake: Snakemake, name: str | None = None, cache: bool = True, lookup: bool = True
) -> Iterator[logging.Logger]:
    log_path = snakemake.log[0] if len(snakemake.log) else None
    name = name or getattr(snakemake, "rule", "job")
    retry.refuse_repeat(snakemake, name)  # a retry of a deterministic failure: one line, exit 1
    handlers: list[logging.Handler] = []
    stream = None
    old_stderr = sys.stderr
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        stream = open(log_path, "w", buffering=1, encoding="utf-8")
        sys.stderr = stream
        handlers.append(logging.StreamHandler(stream))
    else:  # pragma: no cover - every rule has a log
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=logging.INFO, handlers=handlers, force=True, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.captureWarnings(True)
    log = logging.getLogger("repgeom")
    wc = dict(snakemake.wildcards.items()) if hasattr(snakemake.wildcards, "items") else {}
    log.info("rule %s %s started", name, wc)
    t0 = time.time()
    cached = None
    try:
        cached = _cache_of(snakemake, log) if cache else None
        if cached is not None and lookup and _restored(cached, log):
            raise Restored()
        if cached is not None and not lookup:
            _keyed(cached, log)
        with claim_gpus(int(getattr(snakemake.resources, "gpu", 0) or 0)):
            yield log
        if cached is not None:
            cached.insert(log)
    except Restored:
        log.info("rule %s restored in %.1f s", name, time.time() - t0)
        raise
    except BaseException as e:
        log.error("rule %s failed after %.1f s:\n%s", name, time.time() - t0, traceback.format_exc())
        hint = cached.recovery_hint() if cached is not None else None
        if hint:
            log.error("%s", hint)
            print(f"[repgeom] {name}: {hint}", file=sys.__stderr__, flush=True)
        retry.record(snakemake, e, name)  # a data, configuration or code error: kept for the retry
        raise
    else:
        log.info("rule %s finished in %.1f s", name, time.time() - t0)
    finally:
        sys.stderr = old_stderr
        if stream:
            stream.flush()
            stream.close()


def _cache_of(snakemake: Snakemake, log: logging.Logger) -> JobCache | None:
    try:
        return JobCache.for_job(snakemake)
    except Exception as e:  # the cache must never cost the job: compute
        log.warning("action cache: not used for this job (%s: %s)", type(e).__name__, e)
        return None


def _keyed(cached: JobCache, log: logging.Logger) -> None:
    try:
        cached.compute_key(log)
    except Exception as e:
        log.warning("action cache: no key (%s: %s); the outputs will not be stored", type(e).__name__, e)
        cached.key = None


def _restored(cached: JobCache, log: logging.Logger) -> bool:
    try:
        return cached.restore(log)
    except Exception as e:
        log.warning("action cache: lookup failed (%s: %s); computing", type(e).__name__, e)
        cached.key = None  # nothing is entered after a failed lookup
        return False
