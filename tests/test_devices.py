"""``dtype: auto``: looked up, not assumed (GPU bf16 support, the CPU's bf16 flags), and calibrated on a CPU."""

import pytest

from repgeom import devices
from repgeom.activations import load_decoder
from repgeom.architectures import build_tiny
from repgeom.cpuinfo import cpu_bf16_flags

torch = pytest.importorskip("torch")


def test_cpu_bf16_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_bf16_flags(str(info)) == ["avx512_bf16"]
    info.write_text("flags\t\t: fpu sse avx2\n")
    assert cpu_bf16_flags(str(info)) == []
    assert cpu_bf16_flags(str(tmp_path / "absent")) == []


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return build_tiny("gpt2", tmp_path_factory.mktemp("tiny") / "gpt2")


def test_auto_on_a_cpu_without_bf16_is_float32(gpt2_dir, monkeypatch):
    monkeypatch.setattr(devices, "cpu_bf16_flags", lambda *a: [])
    model, _, info = load_decoder(gpt2_dir, dtype="auto", device="cpu")
    assert info["dtype"] == "float32" and "no amx_bf16 or avx512_bf16" in info["dtype_reason"]
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("threshold,want", [(0.0, "bfloat16"), (1.01, "float32")])
def test_auto_on_a_bf16_cpu_follows_the_calibration(gpt2_dir, monkeypatch, threshold, want):
    monkeypatch.setattr(devices, "cpu_bf16_flags", lambda *a: ["avx512_bf16"])
    monkeypatch.setattr(devices, "CALIBRATION_MIN_COSINE", threshold)
    model, _, info = load_decoder(gpt2_dir, dtype="auto", device="cpu")
    assert info["dtype"] == want and next(model.parameters()).dtype == getattr(torch, want)
    assert "avx512_bf16" in info["dtype_reason"] and "mean cosine" in info["dtype_reason"]


def test_this_machines_choice_is_stated(gpt2_dir):
    """Whatever this CPU is, auto says what it chose and why (the note of the issue records it per machine)."""
    _, _, info = load_decoder(gpt2_dir, dtype="auto", device="cpu")
    flags = cpu_bf16_flags()
    assert (info["dtype"] == "float32") if not flags else info["dtype"] in ("bfloat16", "float32")
    print(flags, info["dtype"], info["dtype_reason"])


def test_pick_device_without_torch_is_the_cpu_as_in_the_analysis_env():
    """Under --sdm conda the similarity pair job runs in envs/analysis.yaml, which has no torch: `auto` is the CPU
    (its products run in numpy), `cuda` an error naming the missing torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from repgeom.devices import pick_device\n"
        "print(pick_device('auto'), pick_device('cpu'))\n"
        "try:\n"
        "    pick_device('cuda')\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["cpu cpu", "device: cuda was asked for, but this job's environment has no torch"]
