"""A corpus file's text: decoded once, with an error that names the file, line, column and bytes when it is not in
the encoding it should be (not a decoder's offset into a read buffer)."""

from __future__ import annotations

import codecs
import io
from pathlib import Path

from .errors import DataError


def read_text(path: Path, encoding: str = "utf-8", fix: str = "") -> io.StringIO:
    """The file's text as a stream for ``csv`` or line iteration (line ends kept as they are: CRLF, LF, bare CR).
    A UTF-8 byte-order mark is dropped. ``fix`` ends the error message of a file that does not decode."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"{path}: unknown encoding {encoding!r} (e.g. utf-8, latin-1, utf-16)") from None
    raw = Path(path).read_bytes()
    if codec == "utf-8" and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        bad = raw[e.start : min(e.end, e.start + 8)]
        raise DataError(
            f"{path}:{line}:{col}: not {encoding} text (bytes {bad.hex(' ')}: {e.reason})" + (f"; {fix}" if fix else "")
        ) from None
    return io.StringIO(text, newline="")
