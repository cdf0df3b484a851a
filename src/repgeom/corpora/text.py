"""A corpus file's text: decoded once, with an error that names the file, line, column and bytes when it is not in
the encoding it should be (not a decoder's offset into a read buffer)."""

from __future__ import annotations

import codecs
import io
from pathlib import Path

from .errors import DataError


def _codec(path: Path, encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r} (e.g. utf-8, latin-1, utf-16)") from None


def _decode(path: Path, raw: bytes, codec: str, encoding: str, fix: str, final: bool = True) -> str:
    if codec == "utf-8" and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return codecs.getincrementaldecoder(codec)().decode(raw, final=final)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        bad = raw[e.start : min(e.end, e.start + 8)]
        raise DataError(
            f"{path}:{line}:{col}: not {encoding} text (bytes {bad.hex(' ')}: {e.reason})" + (f"; {fix}" if fix else "")
        ) from None


def read_text(path: Path, encoding: str = "utf-8", fix: str = "") -> io.StringIO:
    """The file's text as a stream for ``csv`` or line iteration (line ends kept as they are: CRLF, LF, bare CR).
    A UTF-8 byte-order mark is dropped. ``fix`` ends the error message of a file that does not decode."""
    codec = _codec(path, encoding)
    return io.StringIO(_decode(path, Path(path).read_bytes(), codec, encoding, fix), newline="")


def head_text(path: Path, encoding: str = "utf-8", fix: str = "", nbytes: int = 1 << 16) -> io.StringIO:
    """The file's first ``nbytes`` as :func:`read_text` reads them (a character cut at the end is left out), for
    the checks before any job: its header, or its first row. Raises :class:`DataError` when it cannot be read."""
    codec = _codec(path, encoding)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(nbytes)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    return io.StringIO(_decode(path, raw, codec, encoding, fix, final=len(raw) < nbytes), newline="")
