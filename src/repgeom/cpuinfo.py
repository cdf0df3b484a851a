"""What this CPU can do that changes a job's numbers: its native bfloat16 units (read, never assumed).

Apart from :mod:`repgeom.devices` (which loads torch and plans devices) so that every job's action key can name the
CPU kind without importing either (:mod:`repgeom.actioncache.key`).
"""

from __future__ import annotations

#: CPU flags (``/proc/cpuinfo``) of native bfloat16 matrix units: Intel AMX, AVX-512 BF16
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The native-bf16 flags this CPU reports (none where ``/proc/cpuinfo`` is missing: look, don't assume)."""
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            line = next((ln for ln in fh if ln.startswith("flags")), "")
    except OSError:
        return []
    flags = set(line.split(":", 1)[-1].split())
    return [f for f in BF16_CPU_FLAGS if f in flags]
