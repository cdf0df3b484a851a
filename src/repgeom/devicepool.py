"""A local GPU pool: concurrent GPU jobs on one workstation each get their own device.

``snakemake --cores all --resources gpu=K`` lets up to K jobs that ask for a GPU run at once, but Snakemake does
not say *which* GPU each should take, and torch takes device 0 for all of them. :func:`claim_gpus` gives a job
free devices: one lock file per device (``fcntl.flock``, held by the job's process, so a job that ends *or dies*
gives its device back: the kernel drops the lock with the process), and ``CUDA_VISIBLE_DEVICES`` set to the claimed
devices before torch initialises CUDA. Under SLURM the scheduler's assignment is kept (nothing is claimed).

The devices are ``CUDA_VISIBLE_DEVICES``' entries where it is set, else the GPUs the NVIDIA driver lists
(``/proc/driver/nvidia/gpus``); ``REPGEOM_GPU_COUNT`` overrides the count (tests, and machines whose driver is not
visible there). The locks live in ``REPGEOM_GPU_LOCK_DIR`` (default ``/tmp/repgeom-gpu-locks-<uid>``): per machine,
on a local disk, where ``flock`` works.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

#: how long a job waits for a free device before failing (more jobs than devices: ``--resources gpu`` too high)
WAIT_SECONDS = 3600.0
POLL_SECONDS = 0.5


class NoFreeGpuError(RuntimeError):
    """Every device stayed claimed for the whole wait."""


def visible_gpus() -> list[str]:
    """The devices this machine's jobs may share (see the module's docstring)."""
    n = os.environ.get("REPGEOM_GPU_COUNT")
    if n is not None:
        return [str(i) for i in range(int(n))]
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return [d.strip() for d in cvd.split(",") if d.strip() and d.strip() != "-1"]
    proc = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(proc.iterdir())))] if proc.is_dir() else []


def lock_dir() -> Path:
    d = Path(os.environ.get("REPGEOM_GPU_LOCK_DIR") or f"/tmp/repgeom-gpu-locks-{os.getuid()}")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _claim(devices: list[str], n: int, wait: float) -> dict[str, int]:
    """``n`` devices' locks, all at once (a partial claim is given back before waiting: two multi-GPU jobs never
    hold half each)."""
    t0, announced = time.monotonic(), False
    while True:
        got: dict[str, int] = {}
        for d in devices:
            if len(got) == n:
                break
            if (fd := _try_lock(lock_dir() / f"gpu{d}.lock")) is not None:
                got[d] = fd
        if len(got) == n:
            return got
        for fd in got.values():
            os.close(fd)
        if time.monotonic() - t0 > wait:
            raise NoFreeGpuError(
                f"no {n} free GPU(s) for {wait:.0f} s: {','.join(devices)} are held by other jobs (locks in "
                f"{lock_dir()}); run with --resources gpu=<number of GPUs>"
            )
        if not announced:
            log.info("GPU pool: waiting for %d free device(s) of %s", n, ",".join(devices))
            announced = True
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def claim_gpus(n: int, wait: float = WAIT_SECONDS) -> Iterator[list[str]]:
    """Claim ``n`` free devices for the ``with`` block (``CUDA_VISIBLE_DEVICES`` set to them, restored after);
    yields the claimed devices, or ``[]`` where there is nothing to share: no GPU asked for, under SLURM, or fewer
    than two devices (then the job simply sees what there is)."""
    devices = visible_gpus()
    if n >= 1 and "SLURM_JOB_ID" in os.environ:
        log.info("GPU: SLURM's assignment kept (CUDA_VISIBLE_DEVICES=%s)", os.environ.get("CUDA_VISIBLE_DEVICES"))
    if n < 1 or "SLURM_JOB_ID" in os.environ or len(devices) < 2:
        yield []
        return
    if n > len(devices):
        raise NoFreeGpuError(f"the job asks for {n} GPUs; this machine has {len(devices)} ({','.join(devices)})")
    held = _claim(devices, n, wait)
    try:
        claimed = sorted(held, key=devices.index)
        old = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(claimed)
        log.info(
            "GPU pool: this job holds GPU %s of %s (locks in %s)", ",".join(claimed), ",".join(devices), lock_dir()
        )
        try:
            yield claimed
        finally:
            if old is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = old
    finally:
        for fd in held.values():
            os.close(fd)  # drops the lock (a killed process's locks go with it)
