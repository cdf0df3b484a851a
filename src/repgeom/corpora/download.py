"""Downloading one file over HTTP(S) with the standard library: retried with back-off, resumed where the server
allows, size- and sha256-checked, and renamed into place only when whole.

Rules (the ``url`` source's ``retries``, ``timeout`` and ``backoff`` keys set the numbers):

* transient faults are retried ``retries`` times, waiting ``backoff``, ``2·backoff``, ``4·backoff``, … seconds:
  HTTP 5xx, 408 and 429, a connection reset or closed mid-answer, no data for ``timeout`` seconds (a stalled
  server), a body cut off before its ``Content-Length`` (``http.client`` returns a short body then, without an
  error) or a broken chunked body (``http.client.IncompleteRead``);
* other HTTP errors (404, 403, …), an unknown host, a refused connection or a TLS failure fail at once;
* a retry after a cut-off asks for the rest (``Range: bytes=N-``) when the server answered ``Accept-Ranges:
  bytes``, and appends only if it answers 206 with a matching ``Content-Range``; otherwise it starts again from
  byte 0;
* the bytes go to ``<name>.part`` beside the destination, renamed only after the size and (when given) the
  sha256 match; on any failure the ``.part`` is deleted, so no partial file is left under any name.
"""

from __future__ import annotations

import http.client
import logging
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

from ..artifacts import sha256_file
from .errors import DataError

log = logging.getLogger(__name__)

#: the ``url`` source's defaults: tries after the first, seconds without data, the first wait (doubled each try)
RETRIES = 3
TIMEOUT = 60.0
BACKOFF = 1.0
#: HTTP client errors worth another try (request timeout, too many requests); every 5xx is retried too
RETRY_STATUS = (408, 429)
_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
HINT = "Point the corpus at a local copy instead (source: {type: local, path: …})"


class _Transient(Exception):
    """One try failed in a way another try may not: the message says how."""


class _CutOff(_Transient):
    def __init__(self, got: int, expected: int):
        super().__init__(f"cut off at {got} of {expected} bytes")
        self.got, self.expected = got, expected


def download_file(
    url: str,
    dest: Path,
    sha256: str | None = None,
    *,
    retries: int = RETRIES,
    timeout: float = TIMEOUT,
    backoff: float = BACKOFF,
    progress: bool | None = None,
) -> Path:
    """Fetch ``url`` into ``dest`` (see the module's rules); ``progress``: a tqdm bar on stderr (None: only when
    stderr is a terminal). Raise :class:`DataError` naming the URL and what went wrong."""
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    tries, resume, start = retries + 1, _Resume(), time.monotonic()
    try:
        for i in range(tries):
            try:
                _one_try(url, part, resume, timeout, progress)
                break
            except _Transient as e:
                if i + 1 == tries:
                    if isinstance(e, _CutOff):
                        raise DataError(
                            f"cannot download {url}: received {e.got} of {e.expected} bytes; the transfer was cut "
                            f"off on each of {tries} tries. {HINT}",
                            retryable=True,
                        ) from None
                    raise DataError(
                        f"cannot download {url}: {e} (after {tries} tries). {HINT}", retryable=True
                    ) from None
                wait = backoff * 2**i
                log.warning("download %s: %s; try %d of %d in %.3g s", url, e, i + 2, tries, wait)
                time.sleep(wait)
        size = part.stat().st_size
        if sha256:
            got = sha256_file(part)
            if got != sha256:
                raise DataError(f"{url}: sha256 {got} does not match the configured {sha256}", retryable=False)
        part.replace(dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    secs = time.monotonic() - start
    log.info("downloaded %s: %d bytes in %.1f s (%.2f MB/s)", url, size, secs, size / 1e6 / max(secs, 1e-9))
    return dest


class _Resume:
    """What the previous try learnt: whether the server takes byte ranges, and the validator to resume against."""

    def __init__(self):
        self.ranges: bool = False
        self.validator: str | None = None


def _one_try(url: str, part: Path, resume: _Resume, timeout: float, progress: bool | None) -> None:
    have = part.stat().st_size if part.exists() else 0
    if not resume.ranges:
        have = 0
    headers = {"User-Agent": "repgeom", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if resume.validator:
            headers["If-Range"] = resume.validator
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:  # noqa: S310 - configured URL
            have, total = _accept(r, url, have, resume)
            _receive(r, part, have, total, progress, url)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:  # the rest we asked for is not there: start again from byte 0
            resume.ranges = False
            raise _Transient(f"HTTP 416 {e.reason} for bytes={have}-") from None
        if e.code >= 500 or e.code in RETRY_STATUS:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise DataError(f"cannot download {url}: HTTP {e.code} {e.reason}. {HINT}", retryable=False) from None
    except urllib.error.URLError as e:  # before any answer: the reason is the socket's error
        _raise(url, e.reason, timeout)
    except (OSError, http.client.HTTPException) as e:  # after the request: a reset, a stall, a broken chunk
        _raise(url, e, timeout)


def _raise(url: str, err: object, timeout: float) -> NoReturn:
    if isinstance(err, TimeoutError):
        raise _Transient(f"no data for {timeout:g} s") from None
    if isinstance(err, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.HTTPException)):
        raise _Transient(f"{type(err).__name__}: {err}") from None
    raise DataError(f"cannot download {url}: {err}. {HINT}", retryable=True) from None  # DNS, refused, TLS


def _accept(r: http.client.HTTPResponse, url: str, have: int, resume: _Resume) -> tuple[int, int | None]:
    """Check the answer against what we asked; return the bytes kept in the ``.part`` and the expected total."""
    length = r.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if r.status == 206:
        m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
        if not have or not m or int(m.group(1)) != have:
            resume.ranges = False
            raise _Transient(f"asked for bytes={have}-, got 206 with Content-Range {r.headers.get('Content-Range')!r}")
        total = int(m.group(3)) if m.group(3) != "*" else (have + length if length is not None else None)
        log.info("resuming %s at byte %d of %s", url, have, total if total is not None else "?")
        return have, total
    if have:
        log.info("%s: the server sent the whole file again (status %d); starting from byte 0", url, r.status)
    resume.ranges = r.headers.get("Accept-Ranges", "").strip().lower() == "bytes"
    etag = r.headers.get("ETag")
    resume.validator = etag if etag and not etag.startswith("W/") else r.headers.get("Last-Modified")
    final = r.geturl()
    if final != url:
        log.info("%s redirected to %s", url, final)
    log.info("downloading %s (%s)", final, f"{length} bytes" if length is not None else "size unknown")
    return 0, length


def _receive(
    r: http.client.HTTPResponse, part: Path, have: int, total: int | None, progress: bool | None, url: str
) -> None:
    from tqdm.auto import tqdm

    name = url.rstrip("/").rsplit("/", 1)[-1]
    got = have
    with (
        open(part, "ab" if have else "wb") as out,
        tqdm(
            total=total,
            initial=have,
            desc=name,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=None if progress is None else not progress,
            file=sys.stderr,
            mininterval=2,
        ) as bar,
    ):
        if have:
            out.truncate(have)
        while chunk := r.read(_CHUNK):
            out.write(chunk)
            got += len(chunk)
            bar.update(len(chunk))
    if total is not None and got != total:
        raise _CutOff(got, total)
