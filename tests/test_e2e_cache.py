"""The action cache end to end on the tiny STS chain (tests/configs/tiny_cache.yaml: a corpus, SmolLM2's shards of
its sentences, two probes, tables and figures): early cutoff after a parser edit that changes no row, a config
value A -> B -> A, a second clone on the same store, a parser edit that does change the rows."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SHARED, scratch_tree, snakemake

pytestmark = [pytest.mark.e2e, pytest.mark.model]

sys.path.insert(0, str(ROOT / "benchmarks"))
from compare_tiny import compare  # noqa: E402


def _config(wd: Path, **replace: str) -> Path:
    text = (ROOT / "tests/configs/tiny_cache.yaml").read_text().replace("SHARED", str(SHARED))
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = wd / "config.yaml"
    path.write_text(text)
    return path


def _workdir(tmp: Path, model: Path) -> Path:
    if not (SHARED / "stsb").is_dir():
        pytest.skip(f"{SHARED} is not there")
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model, tmp / "resources/models/smollm2")
    return tmp


def _run(wd: Path, store: Path, tree: Path = ROOT, configfile: Path | None = None, cache: bool = True):
    """A run of the workflow; returns ``{(rule, wildcards): "restored" | "computed"}`` of the jobs it ran."""
    t0 = time.time()
    env = {"REPGEOM_CACHE": None if cache else "off", "REPGEOM_CACHE_DIR": str(store)}
    snakemake(wd, configfile=configfile or wd / "config.yaml", tree=tree, env=env)
    out = {}
    for log in (wd / "logs").rglob("*.log"):
        if log.stat().st_mtime < t0:
            continue
        text = log.read_text()
        m = re.search(r"rule (\w+) (\{.*?\}) started", text)
        if not m:
            continue
        outcome = "restored" if " restored in " in text else "computed" if " finished in " in text else "failed"
        out[m.group(1), m.group(2)] = outcome
    return out


def _rules(outcomes: dict, outcome: str) -> set[str]:
    return {rule for (rule, _), o in outcomes.items() if o == outcome}


def _edit_stsb_row(parsers: str, sentence1: str) -> str:
    """The STS-B parser's source with the expression that fills a row's ``sentence1`` replaced."""
    anchor = '"year": f[2],\n                    "sentence1": s1,'
    assert parsers.count(anchor) == 1
    return parsers.replace(anchor, anchor.replace("s1,", f"{sentence1},"))


ALWAYS_COMPUTE = {"corpora", "models"}  # they read sources their key cannot see


@pytest.fixture(scope="module")
def first(tmp_path_factory, prepared_smollm2):
    """One run that fills a fresh store; its working folder and the store."""
    tmp = tmp_path_factory.mktemp("cache")
    wd = _workdir(tmp / "wd", prepared_smollm2)
    _config(wd)
    store = tmp / "store"
    outcomes = _run(wd, store)
    assert _rules(outcomes, "computed") >= {"corpora", "activations", "sts_variant", "sts_tables"}
    assert _rules(outcomes, "restored") == set()
    snap = tmp / "first_results"
    shutil.copytree(wd / "results", snap)
    return wd, store, snap


def test_a_parser_edit_that_changes_no_row_restores_everything_downstream(first, tmp_path):
    wd, store, snap = first
    tree = scratch_tree(tmp_path / "tree")
    parsers = tree / "src/repgeom/corpora/parsers.py"
    text = parsers.read_text()
    parsers.write_text(_edit_stsb_row(text, "str(s1)"))  # code, the same rows
    outcomes = _run(wd, store, tree)
    assert _rules(outcomes, "computed") == {"corpora"}, outcomes  # its code changed: it ran, wrote the same rows
    restored = _rules(outcomes, "restored")
    assert {"activations", "sts_variant", "sts_tables"} <= restored  # no model forward, no probe trained
    assert compare(snap, wd / "results") == 0
    dry = snakemake(wd, "--dry-run", configfile=wd / "config.yaml", tree=tree, env={"REPGEOM_CACHE": None})
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_a_config_value_changed_and_changed_back_computes_nothing_the_second_time(first, tmp_path):
    wd, store, _ = first
    b = _config(tmp_path, **{"mlp_epochs: 10": "mlp_epochs: 11"})
    outcomes = _run(wd, store, configfile=b)
    mlp = "{'model': 'smollm2', 'template': 'plain', 'position': 'last', 'variant': 'mlp'}"
    assert outcomes["sts_variant", mlp] == "computed", outcomes  # the probe whose epochs changed
    outcomes = _run(wd, store)  # back to A
    assert outcomes["sts_variant", mlp] == "restored", outcomes
    assert _rules(outcomes, "computed") <= ALWAYS_COMPUTE, outcomes


def test_a_second_clone_on_the_same_store_runs_no_model(first, tmp_path, prepared_smollm2):
    _, store, snap = first
    wd = _workdir(tmp_path / "clone", prepared_smollm2)
    _config(wd)
    outcomes = _run(wd, store)
    assert _rules(outcomes, "computed") <= ALWAYS_COMPUTE, outcomes
    assert {"activations", "sts_variant", "sts_tables", "plots_sts"} <= _rules(outcomes, "restored")
    assert compare(snap, wd / "results") == 0


def test_a_parser_edit_that_changes_rows_recomputes_and_equals_a_run_without_cache(first, tmp_path, prepared_smollm2):
    wd, store, snap = first
    tree = scratch_tree(tmp_path / "tree")
    parsers = tree / "src/repgeom/corpora/parsers.py"
    text = parsers.read_text()
    parsers.write_text(_edit_stsb_row(text, "s1.lower()"))
    outcomes = _run(wd, store, tree)
    assert {"corpora", "activations", "sts_variant", "sts_tables"} <= _rules(outcomes, "computed"), outcomes
    assert "sts_variant" not in _rules(outcomes, "restored")
    off = _workdir(tmp_path / "off", prepared_smollm2)
    _config(off)
    outcomes = _run(off, tmp_path / "unused_store", tree, cache=False)
    assert _rules(outcomes, "restored") == set() and not (tmp_path / "unused_store").exists()
    assert compare(off / "results", wd / "results") == 0  # bit for bit
    assert compare(snap, wd / "results") != 0  # and the lowercased rows did change the results


BROKEN = 'raise RuntimeError("broken on purpose")'


@pytest.mark.parametrize(
    "rule,module,old,new,output",
    [
        (
            "corpora",
            "corpora/parsers.py",
            '"year": f[2],',
            '"year": (_ for _ in ()).throw(RuntimeError("broken on purpose")),',
            "resources/data/stsb.json",
        ),
        (
            "activations",
            "activations/extraction.py",
            "    ids, texts = load_texts(dataset_path)\n",
            f"    {BROKEN}\n",
            "results/activations/smollm2/stsb",
        ),
        (
            "sts_variant",
            "sts/variants.py",
            "    t0 = time.time()\n",
            f"    {BROKEN}\n",
            "results/sts/smollm2/plain/last/mlp.json",
        ),
    ],
    ids=["a corpus", "an extraction", "a probe"],
)
def test_a_failed_rerun_keeps_the_last_good_outputs_recoverable(first, tmp_path, rule, module, old, new, output):
    """Snakemake removes a job's outputs before it runs it: when the rerun fails, its error names the command that
    puts the last good outputs back, from the store."""
    wd, store, _ = first
    good = tmp_path / "good"
    (shutil.copytree if (wd / output).is_dir() else shutil.copy2)(wd / output, good)
    tree = scratch_tree(tmp_path / "tree")
    path = tree / "src/repgeom" / module
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))
    env = {"REPGEOM_CACHE": None, "REPGEOM_CACHE_DIR": str(store)}
    proc = snakemake(wd, f"--forcerun={rule}", output, configfile=wd / "config.yaml", tree=tree, check=False, env=env)
    assert proc.returncode != 0 and not (wd / output).exists(), proc.stderr[-3000:]
    m = re.search(
        r"the last good outputs of this job .*?: (python -m repgeom\.actioncache restore ([0-9a-f]{64}))", proc.stderr
    )
    assert m, proc.stderr[-3000:]
    run = subprocess.run(
        [sys.executable, "-m", "repgeom.actioncache", "restore", m.group(2)],
        cwd=wd,
        capture_output=True,
        text=True,
        env={**os.environ, "REPGEOM_CACHE_DIR": str(store), "PYTHONPATH": str(ROOT / "src")},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    if good.is_dir():
        assert sorted(p.name for p in (wd / output).rglob("*.h5")) == sorted(p.name for p in good.rglob("*.h5"))
        assert compare(good, wd / output) == 0
    else:
        assert (wd / output).read_bytes() == good.read_bytes()
