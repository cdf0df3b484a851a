"""Checks of a corpus's local source before any job: the path is there, the files its kind reads are there and
readable, in the configured encoding, and their headers name the configured columns. The Snakefile runs them at
DAG time, like the config's checks, so a typo in a path or a column costs nothing; each takes the first 64 KiB of
a file at most. Everything else (every row, a download) is the corpora job's.

A source list is tried in order, as the corpora job does (:func:`.sources.fetch_first`): a local path that is not
there passes to the next source; the first that is there is the one read, so its files are checked; a download
ends the checks (it cannot be checked without the network). Only when every source is a local path that is not
there is it a problem here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..params import CorpusSpec
from .errors import DataError
from .kinds import FILES
from .parsers import pairs_columns, pairs_reader, resolved_delimiter, snli_reader
from .text import head_text


def source_problems(name: str, entry: dict) -> list[str]:
    """One line per problem of ``data.<name>``'s local source, each naming the key, the file and the fix."""
    spec = CorpusSpec.of(entry)
    kind = spec.kind or name
    if kind not in FILES:
        return []  # an unknown kind is the config checks' to name
    sources = spec.source if isinstance(spec.source, list) else [spec.source]
    missing = []
    for i, src in enumerate(sources):
        key = f"data.{name}.source" + (f"[{i}]" if isinstance(spec.source, list) else "")
        if src.get("type") != "local":
            return []
        path = Path(src["path"]).expanduser()
        if not path.exists():
            missing.append(f"config key '{key}.path' = {src['path']!r}: {_not_there(path)}")
            continue
        try:
            _check_files(path, spec, kind)
        except DataError as e:
            return [f"corpus {name!r} ({key}): {e}"]
        return []
    if len(missing) > 1:
        return [f"corpus {name!r}: none of its local sources is there:", *(f"  {m}" for m in missing)]
    return missing


def _not_there(path: Path) -> str:
    where = "" if path.is_absolute() else f" (relative to the working directory {os.getcwd()})"
    return f"no such file or folder{where}; fix the path, add a url or hf source after it, or drop the corpus"


def _check_files(root: Path, spec: CorpusSpec, kind: str) -> None:
    for files in FILES[kind](root, spec).values():
        for p in files:
            _check_head(p, spec, kind)


def _check_head(path: Path, spec: CorpusSpec, kind: str) -> None:
    """The file opens, its first 64 KiB decode, and its header names what the kind reads."""
    fmt = spec.format or {}
    encoding = fmt.get("encoding", "utf-8") if kind == "pairs" else "utf-8"
    head = head_text(path, encoding, fix="set format.encoding to the file's encoding" if kind == "pairs" else "")
    if kind == "snli":
        snli_reader(head, path)
    elif kind == "pairs" and fmt.get("header", True):
        delimiter = resolved_delimiter(fmt["delimiter"], path)
        pairs_columns(pairs_reader(head, delimiter, fmt["quoting"]), path, True, spec.columns)
