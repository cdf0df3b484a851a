"""Retries only for what a retry can change (issue 36, item 4): repgeom.retry's classification, the job wrapper's
record of a deterministic failure and the retry that refuses to repeat it, and one bad corpus row run by the
workflow (``retries: 2``): computed once, its traceback and message printed once."""

import contextlib
import io
import json
import re
import sys
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT, SHARED, snakemake

import repgeom.smk as smk
from repgeom import retry
from repgeom.corpora import prepare
from repgeom.corpora.errors import DataError
from repgeom.corpora.sources import fetch_first


# ------------------------------------------------------------------ the job wrapper, wired to repgeom.retry
def test_smk_is_wired():
    """The job wrapper calls into :mod:`repgeom.retry`: before the log is opened and where a failure is logged."""
    src = Path(smk.__file__).read_text()
    assert "retry.refuse_repeat(snakemake, name)" in src and "retry.record(snakemake, e, name)" in src


def _named(items: dict):
    from snakemake.iocontainers import Namedlist

    nl = Namedlist(list(items.values()))
    for i, k in enumerate(items):
        nl._set_name(k, i)
    return nl


def _sm(attempt: int | None, data: str = "in.txt") -> SimpleNamespace:
    res = SimpleNamespace(gpu=0) if attempt is None else SimpleNamespace(gpu=0, attempt=attempt)
    return SimpleNamespace(
        rule="corpora",
        input=_named({"data": data}),
        output=_named({"out": "out.json"}),
        params=_named({"code": "v1", "spec": {"source": "x"}}),
        wildcards=_named({"corpus": "stsb"}),
        log=["logs/corpora/stsb.log"],
        resources=res,
        config={},
    )


class _Runs:
    """Runs a job body through the wired wrapper; counts how often the body ran."""

    def __init__(self):
        self.job, self.n = smk.job, 0

    def __call__(self, sm, error: BaseException | None = None) -> tuple[str, int | None, str]:
        """What the body did ("ran" or "refused"), the exit code of a refusal, and what reached stderr."""
        err = io.StringIO()
        before = self.n
        code = None
        with contextlib.redirect_stderr(err), _patched_dunder_stderr(err):
            try:
                with self.job(sm, cache=False):
                    self.n += 1
                    if error is not None:
                        raise error
                    Path("out.json").write_text("{}")
            except SystemExit as e:
                code = e.code
            except BaseException as e:  # the job's own error, raised on
                assert e is error
        return ("ran" if self.n > before else "refused"), code, err.getvalue()


@contextlib.contextmanager
def _patched_dunder_stderr(stream):
    old = sys.__stderr__
    sys.__stderr__ = stream
    try:
        yield
    finally:
        sys.__stderr__ = old


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPGEOM_CACHE", "off")
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # record() installs a hook: put it back afterwards
    Path("in.txt").write_text("rows\n")
    return tmp_path


LOG = Path("logs/corpora/stsb.log")
KEPT = Path("logs/corpora/stsb.attempt1.log")
MARKER = Path("logs/corpora/.stsb.log.failed.json")


def _bad_row() -> DataError:
    try:
        float("abc")
    except ValueError:
        return DataError("corpus 'stsb': sts-train.csv:3: score 'abc' is not a number")
    raise AssertionError


def test_a_deterministic_failure_is_computed_once_and_its_retries_refuse_at_once(in_tmp):
    run = _Runs()
    bad = _bad_row()
    assert run(_sm(1), bad)[0] == "ran"
    first = LOG.read_text()
    assert "Traceback" in first and "score 'abc' is not a number" in first
    assert json.loads(MARKER.read_text())["attempt"] == 1
    # the console gets one line, not the traceback (the interpreter's hook, when the error ends the process)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        sys.excepthook(type(bad), bad, bad.__traceback__)
    assert err.getvalue().count("\n") == 1 and "DataError" in err.getvalue() and str(LOG) in err.getvalue()
    assert "score 'abc'" not in err.getvalue()  # the message is printed once: in the log
    for attempt in (2, 3):
        what, code, said = run(_sm(attempt), _bad_row())
        assert (what, code) == ("refused", 1)
        assert said.count("\n") == 1 and f"attempt {attempt} not run: attempt 1 failed with DataError" in said
        assert str(KEPT) in said and "score 'abc'" not in said
        assert LOG.read_text().count("\n") == 1 and str(KEPT) in LOG.read_text()
        assert KEPT.read_text() == first  # the first attempt's log, kept whole
    assert run.n == 1
    # the next run (attempt 1 again) computes: the source may have been fixed where no key can see it
    assert run(_sm(1))[0] == "ran" and run.n == 2
    assert not MARKER.exists() and not KEPT.exists() and "finished" in LOG.read_text()


@pytest.mark.parametrize(
    "error",
    [
        OSError("connection reset"),
        urllib.error.URLError("no route to host"),
        MemoryError(),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        DataError("cannot download http://x/y: timed out (after 4 tries)", retryable=True),
        KeyboardInterrupt(),
    ],
    ids=["oserror", "urlerror", "memoryerror", "cuda-oom", "download", "interrupt"],
)
def test_a_retryable_failure_is_computed_again(in_tmp, error):
    run, hook = _Runs(), sys.excepthook
    assert run(_sm(1), error)[0] == "ran"
    assert not MARKER.exists() and sys.excepthook is hook  # nothing recorded; the traceback printed as before
    assert run(_sm(2))[0] == "ran" and run.n == 2


def test_a_retry_with_other_inputs_or_no_attempt_resource_computes(in_tmp):
    run = _Runs()
    run(_sm(1), _bad_row())
    Path("in.txt").write_text("other rows\n")  # an input changed between the attempts
    assert run(_sm(2), _bad_row())[0] == "ran"
    run(_sm(None), _bad_row())  # a rule without the attempt resource: nothing recorded, every try computes
    assert not MARKER.exists()
    assert run(_sm(None))[0] == "ran" and run.n == 4


def test_bookkeeping_never_costs_the_job(in_tmp):
    run = _Runs()
    run(_sm(1), _bad_row())
    MARKER.write_text("{not json")
    assert run(_sm(2))[0] == "ran"  # an unreadable record: compute


def test_one_quiet_hook_per_process_and_other_errors_keep_their_traceback(in_tmp):
    run = _Runs()
    run(_sm(None), _bad_row())
    hook = sys.excepthook
    run(_sm(None), _bad_row())
    assert sys.excepthook is hook  # not a chain of hooks, one per failure
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            raise RuntimeError("another error")
        except RuntimeError as e:
            sys.excepthook(type(e), e, e.__traceback__)
    assert "Traceback" in err.getvalue() and "another error" in err.getvalue()


# ------------------------------------------------------------------ which errors are deterministic
def _raised_from(new: BaseException, cause: BaseException, suppress: bool = False) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as c:
            if suppress:
                raise new from None
            raise new from c
    except BaseException as e:
        return e


@pytest.mark.parametrize(
    ("exc", "want"),
    [
        (DataError("sts-train.csv:3: score 'abc' is not a number"), True),
        (DataError("cannot download x: HTTP 404 Not Found", retryable=False), True),
        (DataError("cannot download x (after 4 tries)", retryable=True), False),
        (ValueError("could not convert string to float: 'abc'"), True),
        (KeyError("score"), True),
        (IndexError("list index out of range"), True),
        (TypeError("unsupported operand"), True),
        (AttributeError("x"), True),
        (ZeroDivisionError(), True),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), True),
        (json.JSONDecodeError("Expecting value", "x", 0), True),
        (OSError("No space left on device"), False),
        (FileNotFoundError("not there yet"), False),
        (ConnectionResetError(), False),
        (TimeoutError(), False),
        (urllib.error.URLError("unreachable"), False),
        (MemoryError(), False),
        (RuntimeError("CUDA out of memory"), False),
        (RuntimeError("MPS backend out of memory"), False),
        (type("OutOfMemoryError", (RuntimeError,), {})("torch.OutOfMemoryError"), False),
        (RuntimeError("something else"), False),  # unknown: retried, as before
        (KeyboardInterrupt(), False),
        (SystemExit(1), False),
        (_raised_from(ValueError("cannot parse x"), OSError("read failed")), False),
        (_raised_from(ValueError("bad row"), OSError("gone"), suppress=True), True),
        (_raised_from(DataError("x"), ConnectionResetError()), False),
    ],
)
def test_what_a_retry_can_change(exc, want):
    assert retry.deterministic(exc) is want


def test_library_errors_are_classified():
    from repgeom.activations.backoff import OutOfMemoryError
    from repgeom.devicepool import NoFreeGpuError
    from repgeom.params import StageParamsError
    from repgeom.registry import UnknownNameError

    assert retry.deterministic(StageParamsError("bad param"))
    assert retry.deterministic(UnknownNameError("no such thing"))
    assert not retry.deterministic(OutOfMemoryError("out of memory at batch 1"))
    assert not retry.deterministic(NoFreeGpuError("all GPUs held"))


def test_a_corpus_error_says_whether_another_try_can_pass(tmp_path):
    unreachable = {"type": "url", "url": "http://127.0.0.1:9/stsbenchmark.tar.gz", "retries": 0}
    missing = {"type": "local", "path": str(tmp_path / "nowhere")}
    with pytest.raises(DataError) as e:
        fetch_first(missing, tmp_path / "w1", "stsb")
    assert retry.deterministic(e.value)
    with pytest.raises(DataError) as e:
        fetch_first(unreachable, tmp_path / "w2", "stsb")
    assert not retry.deterministic(e.value)  # a refused connection: the network
    with pytest.raises(DataError, match="no source worked") as e:
        fetch_first([missing, unreachable], tmp_path / "w3", "stsb")
    assert not retry.deterministic(e.value)  # one source failed on the network: another try may work
    with pytest.raises(DataError, match="corpus 'stsb'") as e:  # the corpus's own wrapping keeps the verdict
        prepare("stsb", {"source": unreachable}, tmp_path / "s.json")
    assert not retry.deterministic(e.value)


def test_the_slurm_profile_gives_every_job_its_attempt():
    """The SLURM profile retries every rule (`retries: 1`); its default resources give each job its attempt."""
    from snakemake.resources import Resources

    prof = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    args = [f"{k}={v}" for k, v in prof["default-resources"].items()]
    res = Resources.parse(args, allow_expressions=True, defaults="full")
    got = res["attempt"].evaluate(wildcards={}, input=[], attempt=2, threads=1, rulename="x", async_run=None)
    assert got.value == 2


# ------------------------------------------------------------------ the workflow: one bad score, retries: 2
@pytest.mark.e2e
def test_a_bad_corpus_row_is_computed_once_and_printed_once(tmp_path):
    if not (SHARED / "stsb").is_dir():
        pytest.skip(f"{SHARED} is not there")
    src = tmp_path / "stsb"
    src.mkdir()
    for split in ("train", "dev", "test"):
        lines = (SHARED / f"stsb/sts-{split}.csv").read_text().splitlines(keepends=True)[:20]
        if split == "train":
            cols = lines[2].split("\t")
            cols[4] = "abc"
            lines[2] = "\t".join(cols)
        (src / f"sts-{split}.csv").write_text("".join(lines))
    cfg = tmp_path / "c.yaml"
    spec = {"source": {"type": "local", "path": str(src)}, "verify_rows": False}
    cfg.write_text(yaml.safe_dump({"data": {"stsb": spec}}))
    wd = tmp_path / "wd"
    wd.mkdir()
    proc = snakemake(wd, "resources/data/stsb.json", configfile=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert out.count("Trying to restart job") == 2  # rule corpora has retries: 2, and Snakemake used them
    assert out.count("Traceback (most recent call last)") == 1, out
    assert out.count("score 'abc' is not a number") == 1, out
    assert len(re.findall(r"attempt [23] not run: attempt 1 failed with DataError", out)) >= 2
    log, kept = wd / "logs/corpora/stsb.log", wd / "logs/corpora/stsb.attempt1.log"
    assert "score 'abc' is not a number" in kept.read_text() and kept.read_text().count(" started") == 1
    assert log.read_text().count("\n") == 1 and "attempt 3 not run" in log.read_text()
    assert not (wd / "resources/data/stsb.json").exists()
    # the source fixed: the next run (attempt 1) computes, and removes what the failed one kept
    (src / "sts-train.csv").write_text("".join((SHARED / "stsb/sts-train.csv").read_text().splitlines(True)[:20]))
    snakemake(wd, "resources/data/stsb.json", configfile=cfg)
    assert (wd / "resources/data/stsb.json").exists() and " finished" in log.read_text()
    assert not kept.exists() and not (wd / "logs/corpora/.stsb.log.failed.json").exists()
