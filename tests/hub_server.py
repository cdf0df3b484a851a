"""A loopback server speaking the part of the Hugging Face hub's HTTP interface that a pinned-revision
``snapshot_download`` and ``datasets.load_dataset`` use, with model and dataset repos behind it; ``huggingface_hub``
and ``datasets`` reach it through ``HF_ENDPOINT``.

Endpoints (as ``huggingface_hub`` 2.x calls them, see its ``HfApi.model_info``/``dataset_info``, ``list_repo_tree``
and ``file_download.get_hf_file_metadata``/``http_get``); a dataset repo's paths have ``datasets`` before the repo:

``GET /api/{models|datasets}/{ns}/{name}/revision/{rev}``   ``{"id", "sha", "siblings", …}``: the revision resolved
                                                            to a commit
``GET /api/{models|datasets}/{ns}/{name}/tree/{rev}[/dir]`` the listing of the root or ``dir`` (all below it with
                                                            ``?recursive=true``): ``type``, ``path``, ``size``,
                                                            ``oid`` (git blob sha1) and, for weights and parquet
                                                            files, ``lfs: {oid: sha256, size, …}``
``HEAD|GET /[datasets/]{ns}/{name}/resolve/{rev}/{path}``  the file, with ``X-Repo-Commit``, ``ETag`` (the LFS sha256
                                                            or the blob sha1, as the hub sends), ``Content-Length``,
                                                            byte ranges

``datasets`` 5.2 loading a parquet dataset at a pinned commit asks, in order (logged from it): HEAD+GET
``resolve/{rev}/README.md``, HEAD ``resolve/{rev}/{name}.py`` (404: no script), GET ``api/datasets/…/revision/{rev}``,
HEAD ``resolve/{rev}/.huggingface.yaml`` (404), GET ``tree/{rev}/{dir}`` and ``tree/{rev}`` (``?recursive=false``,
to resolve the card's ``data_files`` globs), HEAD ``resolve/{rev}/dataset_infos.json`` (404), then HEAD+GET each
parquet file of the config's splits.

Errors carry the hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``), which
``huggingface_hub`` turns into its typed errors. Faults for tests: :meth:`FakeHub.cut` (a body cut off after some
bytes, for the next k GETs of a file), :meth:`FakeHub.tamper` (a file's bytes changed under the same commit, as a
rewritten mirror would), :meth:`FakeHub.push` (a new commit on a branch). Every request is logged in
:attr:`FakeHub.requests`; the server answers at most :data:`MAX_REQUESTS` requests and each connection times out, so
no test can hang on it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

MAX_REQUESTS = 5000
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".onnx", ".parquet")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def folder_files(folder: str | Path) -> dict[str, bytes]:
    """Every file below ``folder`` by its relative POSIX path (symlinks followed)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}  # id → {"refs": {branch: commit}, "commits": {commit: {path: bytes}}}
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self._cuts: dict[tuple[str, str], list[int]] = {}  # (repo, path) → [bytes to send, GETs left to cut]
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------ content
    def push(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        """A new commit on ``branch`` holding exactly ``files``; returns its 40-hex id. A dataset repo is named
        ``datasets/{ns}/{name}``, as in its URLs (:meth:`push_dataset`)."""
        h = hashlib.sha1(repo.encode())
        for path in sorted(files):
            h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
        r = self.repos.setdefault(repo, {"refs": {}, "commits": {}})
        h.update(str(len(r["commits"])).encode())  # the same files pushed twice are two commits, as in git
        commit = h.hexdigest()
        r["commits"][commit] = dict(files)
        r["refs"][branch] = commit
        return commit

    def push_dataset(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        """A new commit of dataset repo ``repo`` (served under ``/api/datasets/{repo}`` and ``/datasets/{repo}``)."""
        return self.push(f"datasets/{repo}", files, branch)

    def tamper(self, repo: str, commit: str, path: str, data: bytes) -> None:
        """Change a file's bytes under an existing commit (listing included): what no honest hub does."""
        self.repos[repo]["commits"][commit][path] = data

    def cut(self, repo: str, path: str, after: int, times: int = 1) -> None:
        """Cut the body of the next ``times`` GETs of ``path`` after ``after`` bytes (the connection closes)."""
        self._cuts[(repo, path)] = [after, times]

    def gets(self, path_suffix: str) -> list[str | None]:
        """The Range header of every GET whose path ends with ``path_suffix``."""
        return [rng for m, p, rng in self.requests if m == "GET" and p.endswith(path_suffix)]

    # ------------------------------------------------------------ server
    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # an idle connection is dropped, never waited on forever

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_HEAD(self) -> None:
                hub._handle(self, "HEAD")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------ protocol
    def _resolve(self, repo: str, rev: str) -> str | None:
        r = self.repos[repo]
        return r["refs"].get(rev) or (rev if rev in r["commits"] else None)

    def _listing(self, files: dict[str, bytes]) -> list[dict]:
        out, dirs = [], set()
        for path, data in sorted(files.items()):
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    out.append({"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0})
            entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
            if path.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            out.append(entry)
        return out

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        path, query = unquote(url.path), parse_qs(url.query)
        head = method == "HEAD"
        with self._lock:
            self.requests.append((method, path + (f"?{url.query}" if url.query else ""), h.headers.get("Range")))
            if len(self.requests) > MAX_REQUESTS:
                h.close_connection = True
                return _send(h, 503, b"too many requests for a test server", head)
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/(revision|tree)/([^/]+)(?:/(.*))?", path)
        if m:
            kind, repo_id, what, rev, sub = m.groups()
            repo = repo_id if kind == "models" else f"datasets/{repo_id}"
            if repo not in self.repos:
                return _send(h, 404, b'{"error": "Repository not found"}', head, {"X-Error-Code": "RepoNotFound"})
            commit = self._resolve(repo, rev)
            if commit is None:
                msg = json.dumps({"error": f"Invalid rev id: {rev}"}).encode()
                return _send(h, 404, msg, head, {"X-Error-Code": "RevisionNotFound"})
            files = self.repos[repo]["commits"][commit]
            if what == "revision":
                body = {"id": repo_id, "sha": commit, "private": False, "disabled": False, "gated": False}
                body["siblings"] = [{"rfilename": p} for p in sorted(files)]
            else:  # the entries under ``sub`` (the root if none): its children, or all below when recursive
                prefix = f"{sub.strip('/')}/" if sub else ""
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                body = [
                    e
                    for e in self._listing(files)
                    if e["path"].startswith(prefix) and (recursive or "/" not in e["path"][len(prefix) :])
                ]
                if sub and not body:
                    msg = json.dumps({"error": f"{sub} does not exist on {rev}"}).encode()
                    return _send(h, 404, msg, head, {"X-Error-Code": "EntryNotFound"})
            return _send(h, 200, json.dumps(body).encode(), head, {"Content-Type": "application/json"})
        m = re.fullmatch(r"/((?:datasets/)?[^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not m or m.group(1) not in self.repos:
            return _send(h, 404, b"Repository not found", head, {"X-Error-Code": "RepoNotFound"})
        repo, rev, fname = m.groups()
        commit = self._resolve(repo, rev)
        if commit is None:
            return _send(h, 404, b"Invalid rev id", head, {"X-Error-Code": "RevisionNotFound"})
        files = self.repos[repo]["commits"][commit]
        if fname not in files:
            return _send(h, 404, b"Entry not found", head, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
        data = files[fname]
        etag = hashlib.sha256(data).hexdigest() if fname.endswith(LFS_SUFFIXES) else git_blob_sha1(data)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        status, start = 200, 0
        rng = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")
        if rng and int(rng.group(1)) < len(data):
            status, start = 206, int(rng.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        cut = None
        with self._lock:
            c = self._cuts.get((repo, fname))
            if not head and c and c[1] > 0:
                c[1] -= 1
                cut = c[0]
        _send(h, status, data[start:], head, headers, cut=cut)


def _send(
    h: BaseHTTPRequestHandler, status: int, body: bytes, head: bool, headers: dict | None = None, cut: int | None = None
) -> None:
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    if cut is not None:
        h.send_header("Connection", "close")
    h.end_headers()
    if head:
        return
    if cut is None:
        h.wfile.write(body)
        return
    h.wfile.write(body[:cut])  # then the connection drops mid-body
    h.wfile.flush()
    h.close_connection = True
