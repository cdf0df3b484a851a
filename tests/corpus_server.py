"""A loopback HTTP server for the corpus downloads, with faults on demand, and the archives it serves.

:class:`CorpusServer` serves bytes per path on 127.0.0.1 (a free port) from daemon threads. Each path's
:class:`Route` says how to answer: the body, or a status (404, 500), a redirect, a body cut off after N bytes
(with or without byte-range support, with a ``Content-Length`` or chunked), a stall (headers then nothing, or
nothing at all), a corrupted body; a fault can apply to the first ``times`` requests only. Everything is bounded:
at most ``max_requests`` answered, a stall lasts at most ``MAX_STALL`` seconds and ends when the server closes,
a connection that sends nothing is dropped after ``SOCKET_TIMEOUT`` s, and the server closes itself after
``lifetime`` seconds whatever happens.

:func:`stsb_tarball` and :func:`snli_zip` build the published archives (``Stsbenchmark.tar.gz``,
``snli_1.0.zip``) from the copies in ``../shared/data``, in a folder of the caller's (never in the repository).
"""

from __future__ import annotations

import csv
import io
import re
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_STALL = 10.0
SOCKET_TIMEOUT = 10.0
_RANGE = re.compile(r"bytes=(\d+)-")


@dataclass
class Route:
    """How one path is answered. The fault (``status`` other than 200, ``cut``, ``stall``, ``corrupt``) applies
    to the first ``times`` requests of the path, or to every one when ``times`` is None."""

    body: bytes = b""
    status: int = 200  # answered instead of the body while the fault applies
    redirect: str | None = None  # a path: 302 to it (always)
    cut: int | None = None  # send this many bytes of the body, then close the connection
    stall: float = 0.0  # send nothing more for this long (at most MAX_STALL), then close
    stall_headers: bool = False  # stall before the status line (else after the headers)
    corrupt: bool = False  # one byte of the body flipped (same length)
    times: int | None = None
    ranges: bool = True  # advertise Accept-Ranges: bytes
    honour_ranges: bool = True  # answer Range with 206 (false: 200 and the whole body)
    chunked: bool = False  # Transfer-Encoding: chunked instead of Content-Length
    hits: int = 0


@dataclass
class CorpusServer:
    max_requests: int = 100
    lifetime: float = 120.0
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)  # path, headers and status of each request, in order

    def route(self, path: str, body: bytes = b"", **kw) -> Route:
        self.routes[path] = Route(body=body, **kw)
        return self.routes[path]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def hits(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> CorpusServer:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()  # ends every stall at once
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hung up mid-answer (its time-out): expected
        pass


def _handler(srv: CorpusServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = SOCKET_TIMEOUT

        def log_message(self, format, *args):  # quiet: the test asserts on srv.requests instead
            pass

        def do_GET(self):
            self.close_connection = True
            faulty = False
            with srv._lock:
                n = len(srv.requests)
                rec = {"path": self.path, "headers": dict(self.headers), "status": None}
                srv.requests.append(rec)
                route = srv.routes.get(self.path)
                if route is not None:
                    route.hits += 1
                    faulty = route.times is None or route.hits <= route.times
            if n >= srv.max_requests:
                return self._status(rec, 410, "request limit of the test server reached")
            if route is None:
                return self._status(rec, 404)
            if route.redirect:
                rec["status"] = 302
                self.send_response(302)
                self.send_header("Location", srv.url(route.redirect))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if faulty and route.status != 200:
                return self._status(rec, route.status)
            if faulty and route.stall and route.stall_headers:
                srv._stop.wait(min(route.stall, MAX_STALL))
                return
            body = route.body
            if faulty and route.corrupt:
                i = len(body) // 2
                body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1 :]
            start = 0
            m = _RANGE.fullmatch(self.headers.get("Range", "").strip())
            if m and route.honour_ranges and int(m.group(1)) < len(body):
                start = int(m.group(1))
            rec["status"] = 206 if start else 200
            self.send_response(rec["status"])
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("ETag", f'"{len(route.body)}"')
            if route.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            if route.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if faulty and route.stall:
                self.wfile.flush()
                srv._stop.wait(min(route.stall, MAX_STALL))
                return
            rest = body[start:]
            if faulty and route.cut is not None:
                rest = rest[: route.cut]
            if route.chunked:
                for i in range(0, len(rest), 1 << 16):
                    piece = rest[i : i + (1 << 16)]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                if not (faulty and route.cut is not None):
                    self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(rest)
            self.wfile.flush()

        def _status(self, rec: dict, code: int, text: str = "") -> None:
            rec["status"] = code
            data = (text or self.responses.get(code, ("",))[0]).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


# ------------------------------------------------------------------ the published archives
def _add(tf: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 1_490_000_000
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        tf.addfile(info, io.BytesIO(data))


def stsb_tarball(stsb: Path, out: Path) -> Path:
    """``Stsbenchmark.tar.gz`` as published: ``stsbenchmark/`` with the three ``sts-*.csv`` (byte copies of
    ``stsb``'s), ``readme.txt`` and ``LICENSE.txt``."""
    path = out / "Stsbenchmark.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        _add(tf, "stsbenchmark", None)
        for name in ("LICENSE.txt", "readme.txt", "sts-dev.csv", "sts-test.csv", "sts-train.csv"):
            _add(tf, f"stsbenchmark/{name}", (stsb / name).read_bytes())
    return path


SNLI_HEADER = (
    "gold_label",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "captionID",
    "pairID",
    "label1",
    "label2",
    "label3",
    "label4",
    "label5",
)


def _tokens(s: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", s)


def snli_txt(snli_csv: Path) -> str:
    """``snli_1.0_test.txt`` made from the ``gold_label,sentence1,sentence2`` CSV: tab-separated, the published
    header, parse columns from a plain tokenisation, made-up ids, every annotator label the gold one."""
    lines = ["\t".join(SNLI_HEADER)]
    with open(snli_csv, encoding="utf-8-sig", newline="") as fh:
        for i, r in enumerate(csv.DictReader(fh)):
            t1, t2 = _tokens(r["sentence1"]), _tokens(r["sentence2"])
            binary = [f"( {' '.join(t)} )" for t in (t1, t2)]
            parse = ["(ROOT (S " + " ".join(f"(X {w})" for w in t) + "))" for t in (t1, t2)]
            caption = f"{1_000_000_000 + i // 3}.jpg#{i % 5}"
            label = r["gold_label"]
            fields = [label, *binary, *parse, r["sentence1"], r["sentence2"], caption, f"{caption}r1{label[0]}"]
            lines.append("\t".join(fields + [label] * 5))
    return "\n".join(lines) + "\n"


def snli_zip(snli_csv: Path, out: Path) -> Path:
    """``snli_1.0.zip`` as published (test split only): ``snli_1.0/snli_1.0_test.txt`` and a README, plus the
    macOS metadata folder (``__MACOSX/``) the published zip carries."""
    path = out / "snli_1.0.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("snli_1.0/", b"")
        zf.writestr("snli_1.0/README.txt", "Stanford Natural Language Inference (SNLI) Corpus (test copy)\n")
        zf.writestr("snli_1.0/snli_1.0_test.txt", snli_txt(snli_csv))
        zf.writestr("__MACOSX/snli_1.0/._snli_1.0_test.txt", b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    return path
