"""The action cache as one job uses it: look its key up before it works, enter its outputs after it succeeds.

:func:`repgeom.smk.job` calls :meth:`JobCache.restore` first: on a hit the outputs are back, verified and freshly
dated, the log says ``restored … from <key>``, and the wrapper ends there (:class:`Restored`, exit status 0), so
Snakemake records the job as done. On a miss the job computes, and :meth:`JobCache.insert` enters its outputs; a
store that cannot take them (read-only, a full disk) costs the entry, never the job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..artifacts import now_iso
from .key import Action, action_key, explain, memo_for
from .settings import CacheSettings
from .store import Store


class Restored(SystemExit):
    """Raised by a job whose outputs the cache restored: the wrapper's work is done (exit status 0)."""

    def __init__(self) -> None:
        super().__init__(0)


class JobCache:
    def __init__(self, action: Action, settings: CacheSettings, workdir: str | Path = "."):
        self.action = action
        self.settings = settings
        self.store = Store(settings.dir)
        self.memo = memo_for(workdir)
        self.parts: dict[str, Any] | None = None
        self.key: str | None = None
        self.t0 = time.time()

    @classmethod
    def for_job(cls, snakemake: Any) -> JobCache | None:
        """The cache of a Snakemake job, ``None`` when the config or ``REPGEOM_CACHE=off`` turns it off."""
        settings = CacheSettings.of(getattr(snakemake, "config", None))
        if not settings.enabled:
            return None
        script = getattr(sys.modules.get("__main__"), "__file__", None)  # the wrapper (Snakemake's preamble sets it)
        return cls(Action.of(snakemake, script if script and Path(script).is_file() else None), settings)

    def last_good(self) -> tuple[str, dict[str, Any]] | None:
        """``(key, entry)`` of the last outputs this job entered, if the store still has them."""
        try:
            key = self._last_file().read_text().strip()
        except OSError:
            return None
        entry = self.store.lookup(key)
        return (key, entry) if entry is not None else None

    def recovery_hint(self) -> str | None:
        """For a failed job: where its last good outputs are, and the command that puts them back."""
        try:
            last = self.last_good()
        except Exception:  # pragma: no cover - never mask the job's own error
            return None
        if last is None:
            return None
        key, entry = last
        store = f" --dir {self.store.root}" if self.store.root != CacheSettings.of(None).dir else ""
        return (
            f"the last good outputs of this job ({', '.join(self.action.outputs)}, made {entry.get('created', '?')}) "
            f"are kept in the action cache: python -m repgeom.actioncache{store} restore {key}"
        )

    def _job_id(self) -> str:
        a = self.action
        text = json.dumps([a.rule, sorted(a.wildcards.items()), list(a.outputs)])
        return hashlib.sha256(text.encode()).hexdigest()

    def _last_file(self) -> Path:
        j = self._job_id()
        return self.store.root / "jobs" / j[:2] / j

    def compute_key(self, log: logging.Logger) -> str:
        t = time.time()
        self.parts = self.action.parts(self.memo)
        self.key = action_key(self.parts)
        log.info("action cache: key %s (%.2f s) in %s", self.key, time.time() - t, self.store.root)
        return self.key

    def restore(self, log: logging.Logger) -> bool:
        """Compute the key; on a hit restore the outputs and say so. ``False``: compute (the log says why)."""
        t = time.time()
        self.compute_key(log)
        if self.store.restore(self.key, self.action.outputs):
            msg = f"restored {', '.join(self.action.outputs)} from {self.key} ({self.store.root})"
            log.info("action cache: %s in %.2f s", msg, time.time() - t)
            print(f"[repgeom] {self.action.rule}: {msg}", file=sys.__stderr__, flush=True)
            return True
        log.info("action cache: miss; %s", "; ".join(self._why_missed()[:8]) or "no earlier entry of this job")
        return False

    def _why_missed(self) -> list[str]:
        """What differs from the last entry this job made (its key parts), if the store still has it."""
        try:
            last = self._last_file().read_text().strip()
            entry = self.store.lookup(last)
        except OSError:
            return []
        if entry is None or "parts" not in entry or self.parts is None:
            return []
        return explain(entry["parts"], self.parts)

    def insert(self, log: logging.Logger) -> None:
        """Enter the finished outputs under the key; a failure is a warning (the job itself succeeded)."""
        if self.key is None or self.parts is None:
            return
        if not self.store.writable():
            log.warning(
                "action cache: %s is read-only for this user: this job computed and its outputs are not stored",
                self.store.root,
            )
            return
        t = time.time()
        meta = {
            "rule": self.action.rule,
            "wildcards": self.action.wildcards,
            "created": now_iso(),
            "job_seconds": round(t - self.t0, 3),
            "parts": self.parts,
        }
        try:
            self.store.insert(self.key, self.action.outputs, meta)
            last = self._last_file()
            last.parent.mkdir(parents=True, exist_ok=True)
            tmp = last.with_name(f".{last.name}.{os.getpid()}.tmp")
            tmp.write_text(self.key + "\n")
            tmp.replace(last)
        except OSError as e:
            log.warning("action cache: the outputs were not stored (%s); the job's outputs are fine", e)
            return
        log.info("action cache: stored the outputs under %s (%.2f s)", self.key, time.time() - t)
        try:
            rep = self.store.prune_if_due(int(self.settings.max_gb * 1e9))
        except OSError as e:  # pragma: no cover - a store emptied under us
            log.warning("action cache: pruning failed (%s)", e)
            return
        if rep is not None:
            log.info(
                "action cache: pruned to %.2f GB (max_gb %s): %d entries and %d blobs removed",
                rep.bytes / 1e9,
                self.settings.max_gb,
                len(rep.removed_entries),
                rep.removed_blobs,
            )
