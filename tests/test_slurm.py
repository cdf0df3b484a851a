"""The tiny workflow submitted to a real SLURM (`.ci/slurm/up.sh` starts one) through the SLURM executor plugin
with the shipped profile: jobs really go through SLURM (sacct), GPU rules ask for a GPU, outputs equal a local
run's, a second submission does nothing, a job killed for memory is retried with more, and a job cancelled by
the scheduler leaves nothing a rerun would trust."""

import re
import shutil
import subprocess
import time

import pandas as pd
import pytest
import yaml
from conftest import ROOT, assert_same_features, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]


def _cluster_up() -> bool:
    if not shutil.which("sinfo") or not shutil.which("sacct"):
        return False
    p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return p.returncode == 0 and any(s in p.stdout for s in ("idle", "mix", "alloc"))


if not _cluster_up():
    pytest.skip("no SLURM cluster is up (start one with .ci/slurm/up.sh)", allow_module_level=True)

PROFILE = ROOT / "workflow/profiles/slurm"


def _config(tmp_path, **resources):
    c = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())
    c["resources"] = {**c.get("resources", {}), **resources}
    p = tmp_path / "slurm.yaml"
    p.write_text(yaml.safe_dump(c))
    return p


#: poll the tiny cluster often (the plugin waits 40 s before its first status check and 10 s between rounds)
FAST_POLL = ("--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2")


def _slurm(wd, cfg, *args, check=True):
    return snakemake(
        wd, "--workflow-profile", str(PROFILE), "--latency-wait", "5", *FAST_POLL, *args, configfile=cfg, check=check,
        timeout=1200,
    )  # fmt: skip


def _sacct(since: str) -> pd.DataFrame:
    out = subprocess.run(
        ["sacct", "-X", "-P", "-S", since, "-o", "JobID,JobName,Comment,State,AllocTRES,ReqMem,Start,End"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|") for line in out.strip().splitlines()]
    return pd.DataFrame(rows[1:], columns=rows[0]) if len(rows) > 1 else pd.DataFrame(columns=rows[0])


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, prepared_minilm):
    wd = tmp_path_factory.mktemp("slurm_run")
    shutil.copytree(prepared_minilm, wd / "resources/models/minilm")
    # 500 MB for the embedding job: its first attempt (~800 MB with the in-job Snakemake) is killed by SLURM for
    # memory, the retry gets 2 x 500 MB and finishes
    cfg = _config(wd, embed_mem_mb=500)
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    proc = _slurm(wd, cfg)
    return wd, cfg, since, proc


def test_jobs_went_through_slurm_with_gpu_requests_and_a_retry(slurm_run):
    wd, cfg, since, proc = slurm_run
    acct = _sacct(since)
    rules = acct.Comment.str.extract(r"rule_([a-z_]+?)_wildcards|rule_([a-z_]+)$").bfill(axis=1)[0]
    acct = acct.assign(rule=rules)
    assert {"sequences", "embeddings", "metrics", "plots_tsne"} <= set(acct.rule.dropna()), acct.to_string()
    assert not {"metrics_summary", "plots_bars", "corpora"} & set(acct.rule.dropna())  # localrules stay local
    emb = acct[acct.rule == "embeddings"]
    assert emb.AllocTRES.str.contains("gres/gpu=1").all(), emb.to_string()  # the profile's GPU request
    assert not acct[acct.rule == "metrics"].AllocTRES.str.contains("gpu").any()
    # the memory retry: one embeddings job ended OUT_OF_MEMORY (or was killed), the next one completed
    assert len(emb) == 2 and emb.State.iloc[-1] == "COMPLETED" and emb.State.iloc[0] != "COMPLETED", emb.to_string()
    assert emb.ReqMem.tolist() == ["500M", "1000M"], emb.to_string()


def test_outputs_equal_a_local_run_and_resubmission_does_nothing(slurm_run, tiny_run):
    wd, cfg, since, _ = slurm_run
    local_wd, _ = tiny_run
    for rel in ("results/metrics/tiny/summary.tsv",):
        a = pd.read_csv(wd / rel, sep="\t")
        b = pd.read_csv(local_wd / rel, sep="\t")
        # a SLURM job and a local job may run with other thread counts, whose float kernels may round
        # differently by an ulp: agreement within a stated tolerance, not bit for bit
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5, atol=1e-6)
    before = len(_sacct(since))
    out = _slurm(wd, cfg)
    assert "Nothing to be done" in out.stdout + out.stderr
    assert len(_sacct(since)) == before


def test_scancel_mid_job_leaves_nothing_trusted_and_a_plain_rerun_finishes(slurm_run):
    wd, _, _, _ = slurm_run
    cfg = _config(wd, embed_mem_mb=2000)  # resources are no rerun trigger: only the deleted output reruns
    target = wd / "results/embeddings/tiny/minilm.h5"
    target.unlink()
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    rel = str(target.relative_to(wd))  # an intermediate: named, or Snakemake would not remake it
    first = subprocess.Popen(
        [*_cmd(wd, cfg), "--retries", "0", rel], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=wd
    )
    job = _running_job("embeddings")
    assert job, "the embedding job never started"
    time.sleep(3)
    subprocess.run(["scancel", job], check=True)
    assert first.wait(timeout=600) != 0
    assert not target.exists()
    assert not list(target.parent.glob("minilm.h5*"))  # no partial file under any name a reader would take
    acct = _sacct(since)
    assert (acct.JobID == job).any() and acct.loc[acct.JobID == job, "State"].iloc[0].startswith("CANCELLED")
    _slurm(wd, cfg, rel)  # a plain rerun completes the work
    assert target.exists()
    _slurm(wd, cfg)  # the downstream jobs follow the remade embeddings
    out = _slurm(wd, cfg, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


# ------------------------------------------------------------------ row-parts as concurrent GPU jobs
ACTS = "results/activations/tiny/seq"
ONE_THREAD = ("--set-threads", "activation_part=1", "activations=1")  # two CPUs: two part jobs at once


def _rules(acct):
    rules = acct.Comment.str.extract(r"rule_([a-z_]+?)_wildcards|rule_([a-z_]+)$").bfill(axis=1)[0]
    return acct.assign(rule=rules)


@pytest.fixture(scope="module")
def slurm_parts(tmp_path_factory):
    from repgeom.architectures import build_tiny

    wd = tmp_path_factory.mktemp("slurm_parts")
    c = yaml.safe_load((ROOT / "tests/configs/tiny_parts.yaml").read_text())
    c["models"]["tiny"]["source"]["path"] = str(build_tiny("gpt2", wd / "gpt2"))
    c["resources"] = {"activations_mem_mb": 1500}
    cfg = wd / "parts.yaml"
    cfg.write_text(yaml.safe_dump(c))
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    _slurm(wd, cfg, ACTS, *ONE_THREAD)
    local = tmp_path_factory.mktemp("local_whole")  # the same text set in one local job, for comparison
    c["activations"]["rows_per_part"] = 1024
    (local / "whole.yaml").write_text(yaml.safe_dump(c))
    snakemake(local, ACTS, *ONE_THREAD, configfile=local / "whole.yaml")
    return wd, cfg, since, local


def test_parts_ran_as_concurrent_gpu_jobs_and_equal_one_local_job(slurm_parts):
    from repgeom import activations as A

    wd, _, since, local = slurm_parts
    acct = _rules(_sacct(since))
    parts = acct[acct.rule == "activation_part"]
    assert len(parts) == 3 and (parts.State == "COMPLETED").all(), acct.to_string()
    assert parts.AllocTRES.str.contains("gres/gpu=1").all(), parts.to_string()
    gather = acct[acct.rule == "activations"]  # the job that only gathers the parts' files holds no GPU
    assert len(gather) == 1 and not gather.AllocTRES.str.contains("gpu").any(), gather.to_string()
    spans = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in zip(parts.Start, parts.End)]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :]), parts.to_string()
    assert "activation_plan" not in set(acct.rule.dropna())  # a localrule
    devices = set()
    for log in (wd / "logs/activations/tiny/seq.parts").glob("*.log"):
        m = re.search(r"SLURM's assignment kept \(CUDA_VISIBLE_DEVICES=(\S+)\)", log.read_text())
        assert m, log.read_text()[-1500:]
        devices.add(m.group(1))
    assert devices == {"0", "1"}  # the two fake GPUs, each given to one of two concurrent jobs
    for pos in ("last", "mean"):
        for L in A.list_layers(local / ACTS, pos):
            # one thread per job in both runs, the same batches (parts on window boundaries): bit for bit on this
            # machine's CPU; another CPU may round a batch differently across processes (see assert_same_features)
            assert_same_features(
                A.load_layer(wd / ACTS, L, position=pos)[0],
                A.load_layer(local / ACTS, L, position=pos)[0],
                f"{pos} layer {L}",
            )


def test_a_cancelled_part_reruns_alone(slurm_parts):
    wd, cfg, _, _ = slurm_parts
    part = wd / f"{ACTS}.parts/rows_000000256-000000512"
    shutil.rmtree(part)
    shutil.rmtree(wd / ACTS)
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    first = subprocess.Popen(
        [*_cmd(wd, cfg), "--retries", "0", ACTS, *ONE_THREAD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    job = _running_job("activation_part")
    assert job, "the part job never started"
    time.sleep(2)
    subprocess.run(["scancel", job], check=True)
    assert first.wait(timeout=600) != 0
    assert not (wd / ACTS).exists() and not list(part.glob("layer_*.h5"))
    since2 = time.strftime("%Y-%m-%dT%H:%M:%S")
    _slurm(wd, cfg, ACTS, *ONE_THREAD)  # a plain rerun: only the cancelled part, then the gather
    acct = _rules(_sacct(since2))
    assert list(acct.rule[acct.rule.str.startswith("activation", na=False)].sort_values()) == [
        "activation_part",
        "activations",
    ], acct.to_string()
    from repgeom import activations as A

    A.check_shard(A.shard_path(wd / ACTS, 1), verify=True)
    assert len(_rules(_sacct(since)).query("rule == 'activation_part'")) == 2  # cancelled + rerun


def _running_job(rule: str, tries: int = 300) -> str | None:
    """The id of a RUNNING job of ``rule`` (its comment names the rule), polled for up to ``tries`` × 0.5 s."""
    for _ in range(tries):
        q = subprocess.run(["squeue", "-h", "-o", "%i %k %T"], capture_output=True, text=True).stdout.split("\n")
        job = next((line.split()[0] for line in q if rule in line and "RUNNING" in line), None)
        if job:
            return job
        time.sleep(0.5)
    return None


def _cmd(wd, cfg):
    import sys

    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "workflow/Snakefile"),
        "--directory",
        str(wd),
        "--cores",
        "2",
        "--workflow-profile",
        str(PROFILE),
        "--latency-wait",
        "5",
        *FAST_POLL,
        "--configfile",
        str(cfg),
    ]
