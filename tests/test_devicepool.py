"""The local GPU pool with an injected device count: concurrent jobs never share a device, a killed job's device
comes back, SLURM's assignment is kept; and through the workflow, concurrent GPU part jobs on different devices."""

import os
import re
import signal
import subprocess
import sys
import textwrap
from datetime import datetime

import pytest
from conftest import ROOT, snakemake

from repgeom.devicepool import NoFreeGpuError, claim_gpus, visible_gpus

HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {src!r})
    from repgeom.devicepool import claim_gpus
    with claim_gpus({n}) as got:
        print(",".join(got), flush=True)
        time.sleep({hold})
    """
)


@pytest.fixture
def pool(tmp_path, monkeypatch):
    monkeypatch.setenv("REPGEOM_GPU_COUNT", "3")
    monkeypatch.setenv("REPGEOM_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return tmp_path


def _holder(n=1, hold=30.0):
    code = HOLDER.format(src=str(ROOT / "src"), n=n, hold=hold)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    return p, p.stdout.readline().strip()


def test_concurrent_jobs_get_different_devices_and_a_killed_jobs_device_comes_back(pool):
    (p1, d1), (p2, d2) = _holder(), _holder()
    try:
        assert {d1, d2} <= {"0", "1", "2"} and d1 != d2
        with claim_gpus(1, wait=0) as got:  # the third device is the only free one
            assert got == sorted({"0", "1", "2"} - {d1, d2}) and os.environ["CUDA_VISIBLE_DEVICES"] == got[0]
            with pytest.raises(NoFreeGpuError, match=r"no 1 free GPU\(s\) .* held by other jobs"):
                with claim_gpus(1, wait=0):
                    pass
        assert "CUDA_VISIBLE_DEVICES" not in os.environ  # restored
        os.killpg(p1.pid, signal.SIGKILL)  # a job that dies gives its device back
        p1.wait()
        with claim_gpus(2, wait=5) as got:
            assert d1 in got and d2 not in got
    finally:
        for p in (p1, p2):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_a_multi_gpu_claim_is_all_or_nothing(pool):
    p, d = _holder()
    try:
        with pytest.raises(NoFreeGpuError, match="asks for 4 GPUs; this machine has 3"):
            with claim_gpus(4):
                pass
        with pytest.raises(NoFreeGpuError):
            with claim_gpus(3, wait=0):  # two are free: neither is kept
                pass
        with claim_gpus(2, wait=0) as got:
            assert d not in got and len(got) == 2
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def test_slurm_and_single_device_machines_are_left_alone(pool, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "17")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    with claim_gpus(1) as got:
        assert got == [] and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.delenv("REPGEOM_GPU_COUNT")
    assert visible_gpus() == ["5"]
    with claim_gpus(1) as got:
        assert got == []
    with claim_gpus(0) as got:
        assert got == []


@pytest.mark.e2e
def test_concurrent_gpu_jobs_of_the_workflow_hold_different_devices(pool, tmp_path, monkeypatch):
    import yaml

    from repgeom.architectures import build_tiny
    from repgeom.configure.config import load_yaml

    cfg = load_yaml(ROOT / "tests/configs/tiny_parts.yaml")
    cfg["models"]["tiny"]["source"]["path"] = str(build_tiny("gpt2", tmp_path / "gpt2"))
    cfg["models"]["tiny"]["resources"] = {"gpu": 1}
    cfg["resources"] = {"gpu_jobs_use_gpu": True}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("REPGEOM_GPU_COUNT", "2")
    args = ("--resources", "gpu=2", "--set-threads", "activation_part=1")  # two cores: two one-thread jobs at once
    snakemake(tmp_path, "results/activations/tiny/seq", *args, configfile=tmp_path / "config.yaml")
    spans = []
    for log in sorted((tmp_path / "logs/activations/tiny/seq.parts").glob("*.log")):
        text = log.read_text()
        stamps = [datetime.fromisoformat(x.replace(",", ".")) for x in re.findall(r"^(\S+ \S+) INFO", text, re.M)]
        dev = re.search(r"GPU pool: this job holds GPU (\d) of 0,1", text)
        assert dev, text[-2000:]
        spans.append((stamps[0], stamps[-1], dev.group(1)))
    assert len(spans) == 3
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, "the part jobs did not run concurrently"  # two cores, gpu=2: two at a time
    assert all(a[2] != b[2] for a, b in overlapping)
