"""Row-parts: a text set extracted in parts and gathered into virtual files reads exactly as one whole run, and
every way a part can go wrong after the gather (missing, corrupt, truncated, foreign, another plan) is refused by
name; the faster checksum and the once-per-process verification."""

import shutil

import numpy as np
import pytest
from conftest import extract_whole_and_parts

from repgeom import activations as A
from repgeom.activations import gathered, rowread, shardfile
from repgeom.activations import parts as P
from repgeom.architectures import build_tiny
from repgeom.artifacts import ArtifactError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, WINDOW = 600, 256
TEXTS = [", ".join(str(i * k) for k in range(1, 2 + i % 9)) for i in range(N)]
IDS = [f"t{i:04d}" for i in range(N)]
KW = dict(model="tiny", positions=("last", "mean"), batch_size=16, store_dtype="float32", progress=False)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return build_tiny("gpt2", tmp_path_factory.mktemp("tiny") / "gpt2")


@pytest.fixture(scope="module")
def runs(gpt2, tmp_path_factory):
    """The whole set in one run, and the same in parts of 256 rows gathered."""
    return extract_whole_and_parts(TEXTS, IDS, gpt2, tmp_path_factory.mktemp("runs"), 256, WINDOW, **KW)


def _plan(root, rows_per_part, n=N):
    """The plan of the texts above, as write_plan makes it."""
    return P.make_plan(IDS[:n], TEXTS[:n], rows_per_part, WINDOW)


def test_gathered_layers_equal_one_whole_run_bit_for_bit(runs):
    whole, gathered, plan = runs
    assert len(plan["parts"]) == 3 and plan["parts"][-1]["row_stop"] == N
    for pos in ("last", "mean"):
        assert A.list_layers(gathered, pos) == A.list_layers(whole, pos)
        for L in A.list_layers(whole, pos):
            Xw, idw, aw = A.load_layer(whole, L, position=pos)
            Xg, idg, ag = A.load_layer(gathered, L, position=pos)
            np.testing.assert_array_equal(Xg, Xw)  # the same batches: part boundaries on window boundaries
            assert list(idg) == list(idw) and ag["n"] == N and ag["texts_sha256"] == aw["texts_sha256"]
            assert len(ag["parts"]) == 3 and not any(e["file"].startswith("/") for e in ag["parts"])
    # iter_layers and the STS reader's expectations work unchanged on gathered shards
    assert [L for L, *_ in A.iter_layers(gathered)] == A.list_layers(whole)


def test_the_virtual_dataset_is_what_h5py_users_see_and_survives_a_move(runs, tmp_path):
    import h5py

    whole, gathered, _ = runs
    moved = tmp_path / "moved"
    shutil.copytree(gathered.parent, moved)  # the text set's folder and its parts' folder, side by side
    with h5py.File(A.shard_path(moved / gathered.name, 1), "r") as f:
        assert f["activations"].is_virtual
        np.testing.assert_array_equal(f["activations"][()], A.load_layer(whole, 1)[0])
    A.check_shard(A.shard_path(moved / gathered.name, 1), verify=True)


def _copy(runs, tmp_path):
    whole, gathered, plan = runs
    dst = tmp_path / "c"
    shutil.copytree(gathered.parent, dst)
    return dst / gathered.name, P.parts_dir(dst / gathered.name) / plan["parts"][1]["name"]


def test_a_deleted_part_is_named(runs, tmp_path):
    out, part = _copy(runs, tmp_path)
    A.shard_path(part, 1).unlink()
    for read in (lambda: A.load_layer(out, 1), lambda: A.check_shard(A.shard_path(out, 1))):
        with pytest.raises(ArtifactError, match=r"rows_000000256-000000512/layer_01\.h5 \(rows 256–512\) is missing"):
            read()


def _first_chunk_offset(path):
    import h5py

    with h5py.File(path, "r") as f:
        return f["activations"].id.get_chunk_info(0).byte_offset


def test_a_corrupt_or_truncated_part_is_named(runs, tmp_path):
    out, part = _copy(runs, tmp_path)
    path = A.shard_path(part, 2)
    raw = bytearray(path.read_bytes())
    raw[_first_chunk_offset(path) + 100] ^= 0xFF  # a byte inside the activations
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"rows_000000256-000000512/layer_02\.h5"):
        A.load_layer(out, 2)
    with pytest.raises(ArtifactError, match=r"rows_000000256-000000512/layer_02\.h5: activations do not match"):
        A.check_shard(A.shard_path(out, 2))  # verified through the gathered layer, the part opened once
    A.check_shard(A.shard_path(out, 2), verify=False)  # unverified: the part's attributes and shapes only
    path.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(ArtifactError, match=r"rows_000000256-000000512/layer_02\.h5"):
        A.load_layer(out, 2)


def test_unchanged_parts_are_read_by_their_recorded_offsets_and_still_verified(runs, tmp_path, monkeypatch):
    """A part whose size and mtime are those the gather recorded is read from the rows' recorded offset without
    opening it as HDF5 (a copy that keeps mtimes too), its checksum still verified; a part touched since goes
    through HDF5 and every identity check; bit rot that keeps the mtime is caught by the checksum, naming the part."""
    import os

    whole, _, _ = runs
    out, part = _copy(runs, tmp_path)
    attrs = A.check_shard(A.shard_path(out, 1))
    assert all(e["raw"]["offset"] == _first_chunk_offset(out / e["file"]) for e in attrs["parts"])
    opened = []
    real_open_part = gathered._open_part
    monkeypatch.setattr(gathered, "_open_part", lambda *a: opened.append(a[0]) or real_open_part(*a))
    rowread._VERIFIED.clear()
    for pos in ("last", "mean"):
        for L in A.list_layers(whole, pos):
            np.testing.assert_array_equal(
                A.load_layer(out, L, position=pos)[0], A.load_layer(whole, L, position=pos)[0]
            )
    assert opened == [] and len(rowread._VERIFIED) >= 3  # every part verified, none opened as HDF5
    path = A.shard_path(part, 2)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    A.load_layer(out, 2)
    assert [p.resolve() for p in opened] == [path.resolve()]
    raw = bytearray(path.read_bytes())
    raw[_first_chunk_offset(path) + 100] ^= 0xFF  # bit rot: same size, and the mtime put back
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    rowread._VERIFIED.clear()
    with pytest.raises(ArtifactError, match=r"rows_000000256-000000512/layer_02\.h5: activations do not match"):
        A.load_layer(out, 2)
    assert [p.resolve() for p in opened] == [path.resolve()]


def test_a_part_of_another_run_is_refused(runs, gpt2, tmp_path):
    out, part = _copy(runs, tmp_path)
    A.extract(TEXTS[256:512], IDS[256:512], gpt2, tmp_path / "again", sort_window=WINDOW, **KW)
    shutil.copy(A.shard_path(tmp_path / "again", 1), A.shard_path(part, 1))  # same rows, another run
    with pytest.raises(ArtifactError, match=r"not the file the gather recorded \(another run's part"):
        A.load_layer(out, 1)


def test_the_gather_refuses_parts_of_another_plan_or_other_texts(runs, tmp_path):
    out, _ = _copy(runs, tmp_path)
    pdir = P.parts_dir(out)
    # rows_per_part changed to 512: its parts have other names; were an old part's files found under a new name
    shutil.copytree(pdir / P.part_name(0, 256), pdir / P.part_name(0, 512))
    with pytest.raises(ArtifactError, match=r"holds rows 0–256, the plan's part is 0–512"):
        P.gather(_plan(tmp_path, 512), out)
    plan = _plan(tmp_path, 256)
    plan["parts"][0]["texts_sha256"] = "0" * 64
    with pytest.raises(ArtifactError, match=r"rows_000000000-000000256/layer_\d+\.h5: its texts are not the plan"):
        P.gather(plan, out)


def test_parts_must_be_whole_sorting_windows():
    assert P.plan_parts(600, 256, 256) == [(0, 256), (256, 512), (512, 600)]
    assert P.plan_parts(600, 1024, 1000) == [(0, 600)]  # the window rounds up to 1024
    with pytest.raises(ValueError, match=r"rows_per_part = 300 .* multiple of 256"):
        P.plan_parts(600, 300, 256)


def test_rows_per_part_is_checked_with_the_config():
    from repgeom.configure.config import validate_config

    with pytest.raises(Exception, match=r"activations.rows_per_part' = 1000: not a whole number .*e\.g\. 768"):
        validate_config({"activations": {"rows_per_part": 1000, "sort_window": 256}})


def test_verification_uses_xxh3_and_happens_once_per_unchanged_file(runs, monkeypatch):
    whole, _, _ = runs
    attrs = A.check_shard(A.shard_path(whole, 1))
    assert len(attrs["xxh3_activations"]) == 32 and len(attrs["sha256_activations"]) == 64
    calls = []

    class Counting(rowread._RowSha):
        def __init__(self, dtype, shape, algorithm="sha256"):
            calls.append((algorithm, len(shape)))
            super().__init__(dtype, shape, algorithm)

    monkeypatch.setattr(rowread, "_RowSha", Counting)
    rowread._VERIFIED.clear()
    shardfile._IDS.clear()
    X1, ids1, _ = A.load_layer(whole, 1)
    X2, ids2, _ = A.load_layer(whole, 1)
    A.load_layer(whole, 2)
    assert calls == [("xxh3", 2)] * 2  # layer 1 once (the repeat is not hashed), layer 2
    assert list(ids2) == list(ids1) == IDS and ids2 is not ids1
    ids2[0] = "changed"  # a caller's edit does not reach the next read
    assert A.load_layer(whole, 1)[1][0] == IDS[0]


# ------------------------------------------------------------------ all tokens
def test_all_tokens_are_stored_per_text_and_match_transformers(gpt2, tmp_path, caplog):
    from transformers import AutoModel, AutoTokenizer

    from repgeom.activations.tokens import load_tokens

    texts, ids = TEXTS[:40], IDS[:40]
    out = tmp_path / "tok"
    with caplog.at_level("INFO", logger="repgeom.activations.tokens"):
        A.extract(texts, ids, gpt2, out, model="tiny", positions=("last", "tokens"), batch_size=8, store_dtype="float32",
                  progress=False, max_length=12)  # fmt: skip
    announced = float(
        next(r.getMessage() for r in caplog.records if "all tokens" in r.getMessage()).split("= ")[-1][:-3]
    )
    tok = AutoTokenizer.from_pretrained(gpt2)
    model = AutoModel.from_pretrained(gpt2).eval()
    n_layers, on_disk = len(A.list_layers(out)), 0
    for L in A.list_layers(out):
        t = load_tokens(out, L)
        on_disk += t.X.nbytes
        last = A.load_layer(out, L)[0]
        assert list(t.ids) == ids and t.X.shape == (int(t.n_tokens.sum()), 64)
        for i in (0, 7, 39):
            enc = tok(texts[i], return_tensors="pt")["input_ids"][:, :12]
            np.testing.assert_array_equal(t.text(i)[-1], last[i])  # the last token is the "last" shard's row
            assert t.token_ids[t.row_start[i] : t.row_start[i] + t.n_tokens[i]].tolist() == enc[0].tolist()
            if L == n_layers:  # transformers' last hidden state has the final norm applied; a block's output not
                continue
            with torch.no_grad():
                ref = model(input_ids=enc, output_hidden_states=True).hidden_states[L][0].numpy()
            np.testing.assert_allclose(t.text(i), ref, rtol=1e-4, atol=1e-5)  # batched and padded: a tolerance
    assert abs(announced - on_disk / 1e9) <= 0.05 * on_disk / 1e9 + 5e-4, (announced, on_disk, n_layers)
    with pytest.raises(ArtifactError, match="read it with load_tokens"):
        A.load_layer(out, 1, position="tokens")


def test_an_all_token_run_over_the_cap_is_refused_before_writing(gpt2, tmp_path):
    with pytest.raises(ValueError, match=r"would take 0\.\d+ GB \(\d+ tokens of 600 texts × \d layers × 64 × 4 bytes\), "
                       r"over activations.max_token_gb = 1e-05"):  # fmt: skip
        A.extract(TEXTS, IDS, gpt2, tmp_path / "big", model="tiny", positions=("tokens",), store_dtype="float32",
                  progress=False, max_token_gb=1e-5)  # fmt: skip
    assert not (tmp_path / "big").exists() or not list((tmp_path / "big").rglob("*.h5"))


def test_all_tokens_gathered_over_parts_equal_one_whole_run(gpt2, tmp_path):
    from repgeom.activations.tokens import load_tokens

    whole, out, _ = extract_whole_and_parts(TEXTS, IDS, gpt2, tmp_path, 256, WINDOW, **dict(KW, positions=("tokens",)))
    for L in A.list_layers(out, "tokens"):
        w, g = load_tokens(whole, L), load_tokens(out, L)
        assert g.attrs["n_tokens_total"] == w.X.shape[0] and len(g.attrs["parts"]) == 3
        for i in (0, 255, 256, 599):  # each text's tokens, either side of the part boundaries
            np.testing.assert_array_equal(g.text(i), w.text(i))
            s, t = g.row_start[i], w.row_start[i]
            assert g.token_ids[s : s + g.n_tokens[i]].tolist() == w.token_ids[t : t + w.n_tokens[i]].tolist()
        assert list(g.ids) == IDS and (g.n_tokens == w.n_tokens).all()


def test_rows_are_read_to_the_page_alignment_of_their_file_offset(runs):
    """A read lands at the same offset within a page as the rows sit in the file, single shard or gathered: the
    kernel's copy runs ~2.4x slower on some CPUs (AMD Zen 3) when the two differ by 1-31 bytes, which numpy's
    default placement (16 bytes into a page) gives rows that sit page-aligned in a file."""
    import h5py

    for off in (0, 16, 2048, 4095, 5000):
        a = rowread._aligned_empty((3, 5), np.float32, off)
        assert a.ctypes.data % 4096 == off % 4096 and a.shape == (3, 5) and a.dtype == np.float32
        a[:] = 1  # writable, and exactly its own size
        assert a.sum() == 15
    whole, gathered, plan = runs
    L = A.list_layers(whole)[0]
    first_part = P.parts_dir(gathered) / plan["parts"][0]["name"]
    for read_from, rows_in in ((whole, whole), (gathered, first_part)):
        with h5py.File(A.shard_path(rows_in, L, "last"), "r") as f:
            infos = rowread._chunk_infos(f["activations"])
        assert infos, "the writer's layout is read by chunk offsets"
        X = A.load_layer(read_from, L, dtype=None)[0]
        assert X.ctypes.data % 4096 == infos[0].byte_offset % 4096


def test_read_destinations_are_faulted_in_ahead_and_a_failing_madvise_is_given_up(runs, monkeypatch):
    """Reads of several blocks have a worker fault in the destination of the block after next (madvise
    MADV_POPULATE_WRITE): the rows read are the file's, single shard or gathered, verified; prefaulting never
    changes memory; where the call fails the reader gives it up once and reads as before."""
    import h5py

    rng = np.random.default_rng(0)
    buf = rng.integers(0, 256, 3 << 20, dtype=np.uint8)
    before = buf.copy()
    rowread._prefault(buf[100 : (2 << 20) + 7])  # partial pages at both ends: a neighbour's pages are left alone
    np.testing.assert_array_equal(buf, before)

    whole, gathered, _ = runs
    L = A.list_layers(whole)[0]
    with h5py.File(A.shard_path(whole, L, "last"), "r") as f:
        ref = f["activations"][()]
    monkeypatch.setattr(rowread, "READ_BLOCK", 8192)  # a small layer in many blocks (each with a whole page)
    blocks = []
    real = rowread._prefault
    monkeypatch.setattr(rowread, "_prefault", lambda b: blocks.append(b.shape[0]) or real(b))
    for src in (whole, gathered):
        rowread._VERIFIED.clear()
        np.testing.assert_array_equal(A.load_layer(src, L, dtype=None)[0], ref)
    assert len(blocks) > 2 * rowread.PREFAULT_MIN_BLOCKS and sum(blocks) <= 2 * ref.shape[0]

    monkeypatch.setattr(rowread, "_POPULATE", [True, lambda *a: -1])  # e.g. EINVAL on a kernel before 5.14
    rowread._VERIFIED.clear()
    np.testing.assert_array_equal(A.load_layer(whole, L, dtype=None)[0], ref)
    assert rowread._POPULATE == [False]
    n = len(blocks)
    rowread._VERIFIED.clear()
    np.testing.assert_array_equal(A.load_layer(gathered, L, dtype=None)[0], ref)
    assert len(blocks) == n  # given up: no more prefaults


def test_a_plan_file_is_parsed_once_per_version(tmp_path, monkeypatch):
    """The workflow asks for the plan once per part job and per input/param/resource function: it is parsed once,
    and again only when the file is replaced."""
    from repgeom import artifacts

    path = tmp_path / "plan.json"
    plan = _plan(tmp_path, 256)
    artifacts.write_json(path, plan)
    reads = []
    real = artifacts.read_json
    monkeypatch.setattr(artifacts, "read_json", lambda p: reads.append(p) or real(p))
    assert P.read_plan(path) == plan and P.read_plan(path) is P.read_plan(path) and len(reads) == 1
    artifacts.write_json(path, _plan(tmp_path, 512))  # atomically replaced: a new inode
    assert len(P.read_plan(path)["parts"]) == 2 and len(reads) == 2
    with pytest.raises(ArtifactError, match="missing"):
        P.read_plan(tmp_path / "none.json")
