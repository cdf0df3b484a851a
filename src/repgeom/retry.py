"""Retries only for what a retry can change.

Snakemake's ``retries:`` (and ``--retries``, which the SLURM profile sets for every rule so that a job killed for
memory runs again with more) reruns a failed job whatever went wrong: it cannot see the error. A bad row in a
corpus, a configuration error or a bug then ran once per attempt, and its traceback was printed twice per attempt
(the job's own, then its log shown by ``show-failed-logs``). So the job wrapper (:func:`repgeom.smk.job`) tells
the two kinds apart itself:

* :func:`deterministic` classifies the exception. Deterministic: ``ValueError`` (every data and configuration
  error of this library is one: ``DataError``, ``ConfigError``, ``StageParamsError``, ``STSError``, …, and parse
  errors), ``LookupError`` (``KeyError``, ``IndexError``) and the errors of code itself (``TypeError``,
  ``AttributeError``, ``NameError``, ``AssertionError``, ``ArithmeticError``). Retryable: ``OSError`` (network,
  ``URLError``, a timeout, a file not there yet on a shared filesystem), ``MemoryError`` and every out-of-memory
  error (torch's, :class:`repgeom.activations.backoff.OutOfMemoryError`), what is not an ``Exception``
  (``KeyboardInterrupt``, ``SystemExit``: a signal turned into an exception), an error raised from or while
  handling one of those, and every other exception (unknown: retried, as before). An exception's own
  ``retryable`` attribute, when it is a bool, decides first (a ``DataError`` for a download that failed on the
  network sets it). A job killed outright (SIGKILL, a preempted or cancelled cluster job, the node lost) records
  nothing, so its retry computes.
* :func:`record`, called where the wrapper logs the failure: for a deterministic error, the console gets one line
  (the error's type and the log's path) instead of the traceback, so that the message and traceback are printed
  once, in the log (which ``show-failed-logs``, set in both profiles, prints); and the failure is recorded beside
  the log (``.{log name}.failed.json``: the attempt, the error, and a key of the rule, its wildcards, params,
  inputs' sizes and mtimes, and outputs).
* :func:`refuse_repeat`, called first, before the log is opened: a retry (attempt ≥ 2) of a job whose previous
  attempt recorded a deterministic failure under the same key does not run again. It keeps that attempt's log as
  ``{log stem}.attempt{N}{suffix}`` (the traceback, printed once), writes one line to the log pointing at it, says
  the same line on the console and exits with status 1, in well under a second.

The attempt comes from the job's ``attempt`` resource (``resources: attempt=lambda wildcards, attempt: attempt``
in a rule, or ``default-resources: attempt: attempt`` in a profile): the value Snakemake gives each try, also to a
cluster job (``--attempt``). Attempt 1 always computes and removes what an earlier run recorded, so a fixed input
is read again on the next run, even one the key cannot see (a corpus's source file); without the resource nothing
is recorded and every attempt computes, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: errors a retry of the same job on the same inputs cannot change: bad data or configuration, and code errors
DETERMINISTIC: tuple[type[BaseException], ...] = (
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    NameError,
    AssertionError,
    ArithmeticError,
)
#: errors a retry can pass: the network, the filesystem, memory
RETRYABLE: tuple[type[BaseException], ...] = (OSError, MemoryError)


def _oom(exc: BaseException) -> bool:
    """An out-of-memory error by its type's name or torch's message ("CUDA out of memory", "MPS backend out of
    memory"), without importing torch."""
    if "OutOfMemory" in type(exc).__name__:
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _retryable_itself(exc: BaseException) -> bool | None:
    flag = getattr(exc, "retryable", None)
    if isinstance(flag, bool):
        return flag
    if not isinstance(exc, Exception) or isinstance(exc, RETRYABLE) or _oom(exc):
        return True
    return None


def deterministic(exc: BaseException) -> bool:
    """Whether a retry of the same job on the same inputs would fail with the same error (see the module)."""
    flag = _retryable_itself(exc)
    if flag is not None:
        return not flag
    seen, link = {id(exc)}, exc
    while True:  # raised from (or while handling) a network, filesystem or memory error: retry
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
        if link is None or id(link) in seen:
            break
        seen.add(id(link))
        if _retryable_itself(link):
            return False
    return isinstance(exc, DETERMINISTIC)


def attempt_of(snakemake: Any) -> int | None:
    """The job's attempt (1, 2, …) from its ``attempt`` resource; ``None`` when the rule does not have it."""
    value = getattr(getattr(snakemake, "resources", None), "attempt", None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def marker_path(log_path: str | os.PathLike) -> Path:
    """Where a job's deterministic failure is recorded: ``.{log name}.failed.json`` beside its log."""
    p = Path(log_path)
    return p.with_name(f".{p.name}.failed.json")


def attempt_log(log_path: str | os.PathLike, attempt: int) -> Path:
    """Where attempt ``attempt``'s log is kept when a retry refuses to repeat it: ``{stem}.attempt{N}{suffix}``."""
    p = Path(log_path)
    return p.with_name(f"{p.stem}.attempt{attempt}{p.suffix}")


def _held_log(log_path: str | os.PathLike) -> Path:
    """A second name for a failed attempt's log (Snakemake deletes a job's log before each attempt)."""
    p = Path(log_path)
    return p.with_name(f".{p.name}.failed.log")


def job_key(snakemake: Any) -> str:
    """The job's identity for :func:`refuse_repeat`: rule, wildcards, params, outputs and inputs' size and mtime."""

    def items(nl: Any) -> list:
        if nl is None:
            return []
        named = sorted((str(k), repr(v)) for k, v in nl.items()) if hasattr(nl, "items") else []
        return named or [repr(v) for v in nl]

    def files(nl: Any) -> list:
        out = []
        for f in list(nl or []):
            for one in f if isinstance(f, (list, tuple)) else [f]:
                try:
                    st = os.stat(one)
                    out.append([str(one), st.st_size, st.st_mtime_ns])
                except OSError:
                    out.append([str(one), None, None])
        return out

    payload = {
        "rule": str(getattr(snakemake, "rule", "")),
        "wildcards": items(getattr(snakemake, "wildcards", None)),
        "params": items(getattr(snakemake, "params", None)),
        "output": [str(o) for o in list(getattr(snakemake, "output", None) or [])],
        "input": files(getattr(snakemake, "input", None)),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()


def _log_path(snakemake: Any) -> str | None:
    log = getattr(snakemake, "log", None)
    return str(log[0]) if log is not None and len(log) else None


def refuse_repeat(snakemake: Any, name: str | None = None) -> None:
    """Call first in the job wrapper, before its log is opened. On attempt 1 (or without an ``attempt`` resource)
    it removes what an earlier run recorded and returns. On a retry whose previous attempt recorded a
    deterministic failure of this very job (same key), it keeps that log as ``{stem}.attempt{N}{suffix}``, writes
    one line to the log and the console and raises ``SystemExit(1)``: the job fails at once, computing nothing."""
    try:
        message = _repeat_message(snakemake, name or str(getattr(snakemake, "rule", "job")))
    except Exception as e:  # noqa: BLE001 - the bookkeeping must never cost the job: compute
        logging.getLogger("repgeom").debug("retry: not checked (%s: %s)", type(e).__name__, e)
        return
    if message is None:
        return
    print(message, file=sys.__stderr__, flush=True)
    raise SystemExit(1)


def _repeat_message(snakemake: Any, name: str) -> str | None:
    log_path, attempt = _log_path(snakemake), attempt_of(snakemake)
    if log_path is None:
        return None
    marker = marker_path(log_path)
    if attempt is None or attempt == 1:
        _forget(log_path)
        return None
    try:
        rec = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if rec.get("attempt") != attempt - 1 or rec.get("key") != job_key(snakemake):
        _forget(log_path, keep_attempt_logs=True)  # another job's, or its inputs changed: compute
        return None
    first = int(rec["first_attempt"])
    kept = attempt_log(log_path, first)
    held = _held_log(log_path)
    if held.exists():  # the failed attempt's log, which Snakemake removed from its own name before this attempt
        os.replace(held, kept)
    message = (
        f"{name}: attempt {attempt} not run: attempt {first} failed with {rec['type']}, an error in the data, the "
        f"configuration or the code, which a retry cannot change; its error and traceback: {kept}"
    )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(log_path).unlink(missing_ok=True)  # a new file: the old one may be the kept log's other name
    Path(log_path).write_text(f"{stamp} ERROR repgeom: {message}\n", encoding="utf-8")
    rec["attempt"] = attempt
    _write(marker, rec)
    return f"[repgeom] {message}"


def record(snakemake: Any, exc: BaseException, name: str | None = None) -> None:
    """Call in the job wrapper's failure branch, after the traceback is logged and before the exception is raised
    on. A deterministic error is recorded for the retry (:func:`refuse_repeat`) and printed on the console as one
    line naming the log (the traceback is in the log, which ``show-failed-logs`` prints); any other error removes
    an earlier record and is printed as before."""
    try:
        name = name or str(getattr(snakemake, "rule", "job"))
        log_path = _log_path(snakemake)
        if log_path is None:
            return
        if not deterministic(exc):
            _forget(log_path, keep_attempt_logs=True)
            return
        _print_once(
            exc,
            f"[repgeom] {name} failed: {type(exc).__name__}, an error in the data, the configuration or the code, "
            f"which a retry cannot change; its error and traceback: {log_path}",
        )
        attempt = attempt_of(snakemake)
        if attempt is not None:
            _hold(log_path)
            rec = {
                "attempt": attempt,
                "first_attempt": attempt,
                "key": job_key(snakemake),
                "type": type(exc).__name__,
                "error": str(exc),
            }
            _write(marker_path(log_path), rec)
    except Exception as e:  # noqa: BLE001 - the bookkeeping must never hide the job's own error
        logging.getLogger("repgeom").debug("retry: not recorded (%s: %s)", type(e).__name__, e)


#: the deterministic error this process ended on, if it does, and the line printed instead of its traceback
_quiet: dict[str, Any] = {}


def _print_once(exc: BaseException, line: str) -> None:
    """Have the interpreter print ``line`` instead of ``exc``'s traceback if ``exc`` ends the process (one hook per
    process, holding the last such error only)."""
    _quiet.update(exc=exc, line=line)
    if getattr(sys.excepthook, "repgeom_quiet", False):
        return
    previous: Callable = sys.excepthook

    def hook(tp: type[BaseException], value: BaseException, tb: Any) -> None:
        if value is _quiet.get("exc"):
            print(_quiet["line"], file=sys.stderr, flush=True)
        else:
            previous(tp, value, tb)

    hook.repgeom_quiet = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def _hold(log_path: str) -> None:
    """Give the log a second name (a hard link; a copy where links fail), which survives Snakemake removing the
    log before the retry. The wrapper writes nothing to the log after :func:`record`."""
    held = _held_log(log_path)
    held.unlink(missing_ok=True)
    try:
        os.link(log_path, held)
    except OSError:
        shutil.copyfile(log_path, held)


def _forget(log_path: str, keep_attempt_logs: bool = False) -> None:
    """Remove the record and the held log; on attempt 1 also the logs an earlier run's retries kept, which would
    only mislead now."""
    marker_path(log_path).unlink(missing_ok=True)
    _held_log(log_path).unlink(missing_ok=True)
    if keep_attempt_logs:
        return
    p = Path(log_path)
    with contextlib.suppress(OSError):
        for old in p.parent.glob(f"{p.stem}.attempt*{p.suffix}"):
            if old.name[len(p.stem) + len(".attempt") :].removesuffix(p.suffix).isdigit():
                old.unlink()


def _write(path: Path, rec: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
