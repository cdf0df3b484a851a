"""The ``url`` corpus source run for real against a loopback HTTP server (``corpus_server.py``) serving the
published archives built from ../shared/data, with the faults a real download meets: HTTP errors, redirects,
transfers cut off, stalls, a wrong body."""

import hashlib
import logging
import time
import zipfile

import pytest
from conftest import SHARED
from corpus_server import CorpusServer, snli_zip, stsb_tarball

from repgeom.configure.config import ConfigError, validate_config
from repgeom.corpora import DataError, download_file, load_corpus, prepare

pytestmark = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not present")


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    d = tmp_path_factory.mktemp("archives")
    return {"stsb": stsb_tarball(SHARED / "stsb", d).read_bytes(), "snli": snli_zip(SHARED / "snli/snli_test.csv", d)}


@pytest.fixture
def server():
    with CorpusServer() as s:
        yield s


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.INFO, logger="repgeom.corpora")
    return caplog


def url_source(server, path, **kw):
    """A url source with tiny waits: 2 retries, 10 ms back-off, 2 s without data."""
    return {"type": "url", "url": server.url(path), "retries": 2, "timeout": 2, "backoff": 0.01, **kw}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def same_artifact(a, b):
    """Two corpus artifacts with the same content (their source, paths and creation time differ)."""
    (ma, sa), (mb, sb) = load_corpus(a), load_corpus(b)
    assert sa == sb
    assert ma["texts_sha256"] == mb["texts_sha256"] and ma["rows"] == mb["rows"]
    assert {s: f["md5"] for s, f in ma["files"].items()} == {s: f["md5"] for s, f in mb["files"].items()}
    return ma


@pytest.fixture(scope="module")
def stsb_local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "stsb.json"
    prepare("stsb", {"source": {"type": "local", "path": str(SHARED / "stsb")}}, out)
    return out


def test_stsb_tarball_download_equals_the_local_copy(server, archives, stsb_local, tmp_path, logs):
    server.route("/Stsbenchmark.tar.gz", archives["stsb"])
    src = url_source(server, "/Stsbenchmark.tar.gz", sha256=sha(archives["stsb"]))
    meta = prepare("stsb", {"source": src}, tmp_path / "s.json")
    assert meta["source"] == src and same_artifact(tmp_path / "s.json", stsb_local)
    assert [r["status"] for r in server.requests] == [200]
    assert f"downloading {src['url']} ({len(archives['stsb'])} bytes)" in logs.text
    assert f"downloaded {src['url']}: {len(archives['stsb'])} bytes in" in logs.text and "MB/s" in logs.text


def test_snli_zip_download_equals_the_unpacked_folder_and_the_csv(server, archives, tmp_path):
    server.route("/snli_1.0.zip", archives["snli"].read_bytes())
    prepare("snli", {"source": url_source(server, "/snli_1.0.zip")}, tmp_path / "url.json")
    with zipfile.ZipFile(archives["snli"]) as zf:
        zf.extractall(tmp_path / "unpacked")
    prepare("snli", {"source": {"type": "local", "path": str(tmp_path / "unpacked/snli_1.0")}}, tmp_path / "loc.json")
    meta = same_artifact(tmp_path / "url.json", tmp_path / "loc.json")
    assert meta["rows"] == {"test": 9824} and meta["files"]["test"]["path"].endswith("snli_1.0/snli_1.0_test.txt")
    # the published tab-separated layout reads as the shared CSV does (ids carry the file's name)
    csv_meta = prepare("snli", {"source": {"type": "local", "path": str(SHARED / "snli")}}, tmp_path / "csv.json")
    _, url_splits = load_corpus(tmp_path / "url.json")
    _, csv_splits = load_corpus(tmp_path / "csv.json")
    renamed = [{**r, "id": r["id"].replace("snli_1.0_test", "snli_test")} for r in url_splits["test"]]
    assert renamed == csv_splits["test"]
    assert meta["texts_sha256"] == csv_meta["texts_sha256"]


@pytest.mark.parametrize(("status", "reason", "tries"), [(404, "Not Found", 1), (500, "Internal Server Error", 3)])
def test_http_errors_name_the_url_and_the_status(server, tmp_path, status, reason, tries):
    server.route("/x.tar.gz", status=status)
    src = url_source(server, "/x.tar.gz")
    with pytest.raises(DataError, match=rf"corpus 'stsb': .*cannot download {src['url']}: HTTP {status} {reason}"):
        prepare("stsb", {"source": src}, tmp_path / "s.json")
    assert len(server.requests) == tries  # a 404 is not retried; a 500 is, retries times
    assert not (tmp_path / "s.json").exists()


def test_a_failed_download_falls_back_to_the_local_copy(server, stsb_local, tmp_path, logs):
    server.route("/gone.tar.gz", status=404)
    spec = {"source": [url_source(server, "/gone.tar.gz"), {"type": "local", "path": str(SHARED / "stsb")}]}
    meta = prepare("stsb", spec, tmp_path / "s.json")
    assert meta["source"] == spec["source"][1] and same_artifact(tmp_path / "s.json", stsb_local)
    assert "source 1 of 2 (url) failed: cannot download" in logs.text and "HTTP 404 Not Found" in logs.text


def test_a_redirect_is_followed_and_the_final_url_logged(server, archives, stsb_local, tmp_path, logs):
    server.route("/old/Stsbenchmark.tar.gz", redirect="/new/Stsbenchmark.tar.gz")
    server.route("/new/Stsbenchmark.tar.gz", archives["stsb"])
    src = url_source(server, "/old/Stsbenchmark.tar.gz", sha256=sha(archives["stsb"]))
    prepare("stsb", {"source": src}, tmp_path / "s.json")
    same_artifact(tmp_path / "s.json", stsb_local)
    assert [r["status"] for r in server.requests] == [302, 200]
    assert f"redirected to {server.url('/new/Stsbenchmark.tar.gz')}" in logs.text


def test_server_errors_are_retried_until_one_succeeds(server, archives, stsb_local, tmp_path, logs):
    server.route("/s.tar.gz", archives["stsb"], status=500, times=2)
    prepare("stsb", {"source": url_source(server, "/s.tar.gz")}, tmp_path / "s.json")
    same_artifact(tmp_path / "s.json", stsb_local)
    assert [r["status"] for r in server.requests] == [500, 500, 200]
    assert "HTTP 500 Internal Server Error; try 2 of 3" in logs.text and "try 3 of 3" in logs.text


@pytest.mark.parametrize(
    ("mode", "route"),
    [
        ("resumed", {}),  # Accept-Ranges: bytes, the retry asks for the rest and gets a 206
        ("no ranges", {"ranges": False}),  # no Accept-Ranges: the retry starts again
        ("range ignored", {"honour_ranges": False}),  # Range asked, the whole file sent again (200): starts again
        ("chunked", {"chunked": True, "ranges": False}),  # no Content-Length: http.client's IncompleteRead
    ],
)
def test_a_transfer_cut_off_once_is_recovered(server, archives, tmp_path, logs, mode, route):
    data, cut = archives["stsb"], 100_000
    server.route("/s.tar.gz", data, cut=cut, times=1, **route)
    src = url_source(server, "/s.tar.gz")
    got = download_file(src["url"], tmp_path / "s.tar.gz", sha(data), retries=2, timeout=2, backoff=0.01)
    assert got.read_bytes() == data and sorted(p.name for p in tmp_path.iterdir()) == ["s.tar.gz"]
    first, second = server.requests
    assert "Range" not in first["headers"]
    if mode == "resumed":
        assert second["headers"]["Range"] == f"bytes={cut}-" and second["status"] == 206
        assert f"resuming {src['url']} at byte {cut} of {len(data)}" in logs.text
    elif mode == "range ignored":
        assert second["headers"]["Range"] == f"bytes={cut}-" and second["status"] == 200
        assert "the server sent the whole file again" in logs.text
    else:
        assert "Range" not in second["headers"] and second["status"] == 200
    assert ("IncompleteRead" if mode == "chunked" else f"cut off at {cut} of {len(data)} bytes") in logs.text


def test_a_transfer_cut_off_every_time_fails_clearly_and_leaves_nothing(server, archives, tmp_path):
    data = archives["stsb"]
    server.route("/s.tar.gz", data, cut=1000)
    src = url_source(server, "/s.tar.gz")
    # each try resumes where the last stopped, and is cut 1000 bytes later
    pattern = rf"cannot download {src['url']}: received 3000 of {len(data)} bytes; the transfer was cut off on each of 3 tries"
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DataError, match=pattern):
        download_file(src["url"], work / "s.tar.gz", retries=2, timeout=2, backoff=0.01)
    assert list(work.iterdir()) == []
    # through the corpora stage: an artifact made before stays as it was, and nothing else is left beside it
    out = tmp_path / "data" / "stsb.json"
    out.parent.mkdir()
    out.write_text('{"earlier": true}')
    before = out.stat().st_mtime_ns
    with pytest.raises(DataError, match="corpus 'stsb': .*" + pattern):
        prepare("stsb", {"source": src}, out)
    assert out.read_text() == '{"earlier": true}' and out.stat().st_mtime_ns == before
    assert list(out.parent.iterdir()) == [out]
    fresh = tmp_path / "data" / "other.json"
    with pytest.raises(DataError, match="cut off on each of 3 tries"):
        prepare("stsb", {"source": src}, fresh)
    assert not fresh.exists()
    assert len(server.requests) == 9


def test_a_sha256_mismatch_names_both_digests_and_leaves_nothing(server, archives, tmp_path):
    data = archives["stsb"]
    server.route("/s.tar.gz", data, corrupt=True)
    wrong = data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1 :]
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DataError, match=rf"s.tar.gz: sha256 {sha(wrong)} does not match the configured {sha(data)}"):
        download_file(server.url("/s.tar.gz"), work / "s.tar.gz", sha(data), retries=2, backoff=0.01)
    assert list(work.iterdir()) == [] and len(server.requests) == 1  # refused, not retried
    with pytest.raises(DataError, match=f"corpus 'stsb': .*sha256 {sha(wrong)} does not match"):
        prepare("stsb", {"source": url_source(server, "/s.tar.gz", sha256=sha(data))}, tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("where", ["after the headers", "before the headers"])
def test_a_stalled_server_times_out_and_is_retried_never_hangs(server, archives, tmp_path, where):
    server.route("/s.tar.gz", archives["stsb"], stall=8, stall_headers=where == "before the headers")
    src = url_source(server, "/s.tar.gz", timeout=0.4, retries=1)
    t0 = time.monotonic()
    with pytest.raises(DataError, match=rf"cannot download {src['url']}: no data for 0.4 s \(after 2 tries\)"):
        prepare("stsb", {"source": src}, tmp_path / "s.json")
    elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed < 3, elapsed  # two tries of 0.4 s each, not the server's 8 s stall
    assert len(server.requests) == 2 and not (tmp_path / "s.json").exists()


def test_download_keys_only_on_url_sources():
    def check(source):
        return validate_config({"models": {}, "sequences": {}, "data": {"stsb": {"source": source}}})

    url = {"type": "url", "url": "https://example.org/Stsbenchmark.tar.gz"}
    check([{"type": "local", "path": "x"}, {**url, "retries": 0, "timeout": 0.5, "backoff": 0}])
    with pytest.raises(ConfigError, match=r"'data.stsb.source\[0\].retries': only a url source reads it; this source "):
        check([{"type": "local", "path": "x", "retries": 5}, url])
    with pytest.raises(ConfigError, match=r"'data.stsb.source.timeout': only a url source reads it.*'hf'"):
        check({"type": "hf", "dataset": "sentence-transformers/stsb", "timeout": 5})
    with pytest.raises(ConfigError, match=r"retries' = -1: -1 is less than the minimum of 0"):
        check({**url, "retries": -1})
    with pytest.raises(ConfigError, match=r"timeout' = 0: 0 is less than or equal to the minimum of 0"):
        check({**url, "timeout": 0})
