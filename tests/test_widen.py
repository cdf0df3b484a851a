"""Reading float16 shards as float32 (every default read): the casts give numpy's bits, the rows are cast block by
block as they are read (single shard or gathered, verified or not, through HDF5 where the fast path does not
apply) with no float16 copy of the layer, and corruption or truncation is still refused."""

import sys
import tracemalloc

import numpy as np
import pytest
from conftest import extract_whole_and_parts

from repgeom import activations as A
from repgeom.activations import parts as P
from repgeom.activations import rowread, widen
from repgeom.architectures import build_tiny
from repgeom.artifacts import ArtifactError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, WINDOW = 600, 256
TEXTS = [", ".join(str(i * k) for k in range(1, 2 + i % 7)) for i in range(N)]
IDS = [f"t{i:04d}" for i in range(N)]
KW = dict(model="tiny", positions=("last", "tokens"), batch_size=16, store_dtype="float16", progress=False)
CASTS = {"lookup": widen._f16_lookup, "torch": widen._f16_torch}


def test_each_cast_gives_numpys_bits_for_every_float16_value():
    """All 65 536 bit patterns: the look-up is numpy's cast exactly; torch's differs only in quieting signalling
    NaNs (exponent all ones, top mantissa bit clear), which stay NaN."""
    bits = np.arange(1 << 16, dtype=np.uint16)
    src = bits.view(np.float16).reshape(256, 256)
    ref = src.astype(np.float32)
    for name, cast in CASTS.items():
        out = np.full(src.shape, 7.0, np.float32)
        cast(src, out)
        differ = (out.view(np.uint32) != ref.view(np.uint32)).reshape(-1)
        signalling = ((bits & 0x7C00) == 0x7C00) & ((bits & 0x03FF) != 0) & ((bits & 0x0200) == 0)
        if name == "lookup":
            assert not differ.any()
        else:
            assert np.array_equal(differ, signalling) and np.isnan(out.reshape(-1)[signalling]).all()


def test_the_cast_is_torchs_only_where_torch_is_loaded(monkeypatch):
    assert widen.converter(np.float16, np.float32) is widen._f16_torch  # this test module imported torch
    monkeypatch.delitem(sys.modules, "torch")
    assert widen.converter("float16", "float32") is widen._f16_lookup
    assert widen.converter(np.float32, np.float16) is widen._numpy_cast
    assert widen.converter(np.dtype(">f2"), np.float32) is widen._numpy_cast  # not native: numpy's cast
    out = np.empty(5, np.float16)
    with np.errstate(over="ignore"):  # 1e6 is past float16's range: inf, as astype gives
        widen._numpy_cast(np.array([1, 2.5, -3, 1e6, 6e-8], np.float32), out)
    assert out.tolist() == [1, 2.5, -3, np.inf, np.float16(6e-8)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A float16 whole run and the same texts in three parts, gathered (last tokens and all tokens); the stored rows
    of each layer's last-token shard."""
    import h5py

    root = tmp_path_factory.mktemp("f16")
    whole, gathered, plan = extract_whole_and_parts(
        TEXTS, IDS, build_tiny("gpt2", root / "gpt2"), root, 256, WINDOW, **KW
    )
    stored = {}
    for L in A.list_layers(whole):
        with h5py.File(A.shard_path(whole, L), "r") as f:
            stored[L] = f["activations"][()]
    assert len(plan["parts"]) == 3 and all(X.dtype == np.float16 for X in stored.values())
    return whole, gathered, stored


@pytest.mark.parametrize("cast", sorted(CASTS))
@pytest.mark.parametrize("share", [0.0, 0.4, 1.0])
def test_float16_shards_read_as_float32_are_their_rows_cast(runs, monkeypatch, cast, share):
    """Many small blocks, each cast by the worker, the reading thread or both; single shard and gathered (parts
    read from their recorded offsets, and through HDF5 once touched); verified, verified earlier, unverified."""
    whole, gathered, stored = runs
    monkeypatch.setattr(rowread, "READ_BLOCK", 4096)
    monkeypatch.setattr(rowread, "CAST_SHARE", share)
    real = widen.converter
    monkeypatch.setattr(rowread, "converter", lambda s, d: CASTS[cast] if real(s, d) in CASTS.values() else real(s, d))
    for L, X16 in stored.items():
        for src in (whole, gathered):
            rowread._VERIFIED.clear()
            for verify in (True, True, False):
                X, ids, _ = A.load_layer(src, L, verify=verify)
                assert X.dtype == np.float32 and X.flags.c_contiguous
                np.testing.assert_array_equal(X, X16.astype(np.float32))
                assert list(ids) == IDS
    X = A.load_layer(gathered, 1, dtype=np.float64)[0]  # any dtype asked for: numpy's cast
    assert X.dtype == np.float64 and np.array_equal(X, stored[1].astype(np.float64))


def test_all_token_shards_are_read_in_the_dtype_asked_for(runs):
    """``load_tokens`` keeps the stored dtype by default and casts as it reads when asked, single and gathered."""
    import h5py

    from repgeom.activations.tokens import load_tokens

    whole, gathered, _ = runs
    layers = A.list_layers(whole, "tokens")
    assert layers == A.list_layers(gathered, "tokens") and layers
    for L in layers:
        with h5py.File(A.shard_path(whole, L, "tokens"), "r") as f:
            X16 = f["activations"][()]
        for src in (whole, gathered):
            rowread._VERIFIED.clear()
            kept, wide = load_tokens(src, L), load_tokens(src, L, dtype=np.float32)
            assert kept.X.dtype == np.float16 and wide.X.dtype == np.float32
            np.testing.assert_array_equal(kept.X, X16)
            np.testing.assert_array_equal(wide.X, X16.astype(np.float32))
            assert wide.token_ids.tolist() == kept.token_ids.tolist() and list(wide.ids) == IDS
            s, n = wide.row_start[599], wide.n_tokens[599]
            np.testing.assert_array_equal(wide.text(599), X16[s : s + n].astype(np.float32))


def test_rows_through_hdf5_are_cast_too(runs, monkeypatch):
    """Where the rows are not plain row chunks (filtered or irregular), HDF5 reads them in their stored dtype,
    they are verified, then cast."""
    whole, gathered, stored = runs
    monkeypatch.setattr(rowread, "_chunk_infos", lambda ds: None)
    before = rowread._FAST_READS[0]
    for src in (whole, gathered):
        rowread._VERIFIED.clear()
        np.testing.assert_array_equal(A.load_layer(src, 2)[0], stored[2].astype(np.float32))
    assert rowread._FAST_READS[0] == before + 3  # the gathered layer's parts: from their recorded offsets


def _traced_peak(read) -> tuple[np.ndarray, int]:
    """``read()``'s result and the peak memory traced while it ran."""
    tracemalloc.start()
    try:
        X = read()
        return X, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_float32_read_holds_no_float16_copy_of_the_layer(runs, monkeypatch):
    """Peak traced memory of a verified float32 read beside the same read done as a float16 read then a cast
    (as before): the float16 copy of the layer is gone; only two small buffers stand in for it."""
    whole, _, stored = runs
    monkeypatch.setattr(rowread, "READ_BLOCK", 512)  # small buffers: the difference is the float16 layer's
    A.load_layer(whole, 1)  # modules imported, the look-up table built, the ids decoded once
    rowread._VERIFIED.clear()
    X, new = _traced_peak(lambda: A.load_layer(whole, 1)[0])
    rowread._VERIFIED.clear()
    X_old, old = _traced_peak(lambda: A.load_layer(whole, 1, dtype=None)[0].astype(np.float32))
    np.testing.assert_array_equal(X, X_old)
    f16 = stored[1].nbytes
    assert old - new > 0.6 * f16, (old, new, f16)


def _corrupt(path, offset_in_rows):
    """The file's bytes with one bit flipped ``offset_in_rows`` bytes into its rows."""
    import h5py

    with h5py.File(path, "r") as f:
        off = f["activations"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[off + offset_in_rows] ^= 0x40
    return bytes(raw)


def test_a_corrupt_or_truncated_float16_shard_is_refused_when_read_as_float32(runs, tmp_path, monkeypatch):
    import shutil

    whole, gathered, _ = runs
    monkeypatch.setattr(rowread, "READ_BLOCK", 4096)
    copy = tmp_path / "whole"
    shutil.copytree(whole, copy)
    path = A.shard_path(copy, 1)
    good = path.read_bytes()
    path.write_bytes(_corrupt(path, 5000))  # inside the second block
    with pytest.raises(ArtifactError, match=r"layer_01\.h5: activations do not match their stored checksum"):
        A.load_layer(copy, 1)
    path.write_bytes(good[: len(good) - 3000])
    with pytest.raises(ArtifactError, match=r"layer_01\.h5"):
        A.load_layer(copy, 1, verify=False)
    shutil.copytree(gathered.parent, tmp_path / "c")  # mtimes kept: the parts are read from recorded offsets
    parts = tmp_path / "c" / gathered.name
    part = sorted(P.parts_dir(parts).iterdir())[1]
    ppath = A.shard_path(part, 1)
    ppath.write_bytes(_corrupt(ppath, 100))
    rowread._VERIFIED.clear()
    with pytest.raises(ArtifactError, match=rf"{part.name}/layer_01\.h5: activations do not match"):
        A.load_layer(parts, 1)
