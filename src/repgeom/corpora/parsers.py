"""Strict parsers of the corpora's own file formats (STS-B, GenericsKB, SNLI) and of any sentence-pair table (the
``pairs`` kind: TSV or CSV, header or not, columns by name or index); a bad row names its file and line."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

from .errors import DataError
from .text import read_text

log = logging.getLogger(__name__)

#: canonical row counts, verified unless the corpus entry says ``verify_rows: false``
STSB_ROWS = {"train": 5749, "dev": 1500, "test": 1379}
SNLI_LABELS = ("entailment", "neutral", "contradiction")
#: the columns an SNLI file's header must name
SNLI_HEADER = ("gold_label", "sentence1", "sentence2")
#: the canonical datasets are UTF-8: what to do about a file that is not
_CONVERT = "convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8)"

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a sentence over 128 KiB is data, not a crash


class _Rows:
    """Collects rows and bad-row decisions for one file."""

    def __init__(self, path: Path, on_bad_row: str):
        self.path, self.on_bad_row, self.rows, self.skipped = path, on_bad_row, [], []
        self.split_values: set[str] = set()  # a pairs table's split column: every value it holds

    def bad(self, line: int, why: str) -> None:
        msg = f"{self.path}:{line}: {why}"
        if self.on_bad_row != "skip":
            raise DataError(msg + " (set on_bad_row: skip to count and skip such rows)")
        log.warning("skipping %s", msg)
        self.skipped.append(msg)


# ------------------------------------------------------------------ parsers
def parse_stsb_file(path: Path, on_bad_row: str = "error") -> _Rows:
    out = _Rows(path, on_bad_row)
    with read_text(path, fix=_CONVERT) as fh:
        for i, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            f = line.split("\t")
            if len(f) < 7:
                out.bad(i, f"{len(f)} tab-separated fields, STS-B rows have at least 7")
                continue
            try:
                score = float(f[4])
            except ValueError:
                out.bad(i, f"score {f[4]!r} is not a number")
                continue
            if not 0.0 <= score <= 5.0:
                out.bad(i, f"score {score} is outside [0, 5]")
                continue
            s1, s2 = f[5].strip(), f[6].strip()
            if not s1 or not s2:
                out.bad(i, "empty sentence")
                continue
            out.rows.append(
                {
                    "id": f"{path.stem}-{i:05d}",
                    "genre": f[0],
                    "source": f[1],
                    "year": f[2],
                    "sentence1": s1,
                    "sentence2": s2,
                    "score": score,
                }
            )
    return out


def parse_genericskb_file(path: Path, on_bad_row: str = "error") -> _Rows:
    out = _Rows(path, on_bad_row)
    with read_text(path, fix=_CONVERT) as fh:
        first = fh.readline()
        header = first.rstrip("\r\n").split("\t")
        sent_col = header.index("generic_sentence") if "generic_sentence" in header else None
        if sent_col is None:
            fh.seek(0)
        for i, line in enumerate(fh, 2 if sent_col is not None else 1):
            f = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            col = sent_col if sent_col is not None else 1
            if len(f) <= col:
                out.bad(i, f"{len(f)} fields, expected a sentence in field {col + 1}")
                continue
            s = f[col].strip()
            if not s:
                out.bad(i, "empty sentence")
                continue
            out.rows.append({"id": f"{path.stem}-{i:06d}", "sentence": s})
    return out


def snli_reader(fh, path: Path) -> csv.DictReader:
    """An SNLI file's rows, its header checked: the canonical snli_1.0.zip holds tab-separated snli_1.0_*.txt (no
    quoting); copies are often CSV."""
    reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if path.suffix == ".txt" else csv.DictReader(fh)
    missing = set(SNLI_HEADER) - set(reader.fieldnames or [])
    if missing:
        raise DataError(f"{path}:1: header lacks {sorted(missing)} (has {reader.fieldnames})")
    return reader


def parse_snli_file(path: Path, on_bad_row: str = "error") -> tuple[_Rows, int]:
    out = _Rows(path, on_bad_row)
    no_gold = 0
    with read_text(path, fix=_CONVERT) as fh:
        reader = snli_reader(fh, path)
        for i, row in enumerate(reader, 2):
            label = (row["gold_label"] or "").strip()
            if label == "-":
                no_gold += 1
                continue
            if label not in SNLI_LABELS:
                out.bad(i, f"gold_label {label!r} is not one of {SNLI_LABELS}")
                continue
            s1, s2 = (row["sentence1"] or "").strip(), (row["sentence2"] or "").strip()
            if not s1 or not s2:
                out.bad(i, "empty sentence")
                continue
            out.rows.append({"id": f"{path.stem}-{i:05d}", "sentence1": s1, "sentence2": s2, "label": label})
    return out, no_gold


def column_index(spec: str | int, header: list[str] | None, path: Path, key: str) -> int:
    """The 0-based index of a column given by header name or by index."""
    if isinstance(spec, int):
        return spec
    if header is None:
        raise DataError(f"{path}: columns.{key} = {spec!r} names a column, but format.header is false; give its index")
    if spec not in header:
        raise DataError(f"{path}:1: no column {spec!r} for columns.{key} (the header has {header})")
    return header.index(spec)


#: ``format.delimiter: auto``: a file's delimiter from its suffix (a source list of a CSV copy and a TSV archive)
AUTO_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}


def resolved_delimiter(delimiter: str, path: Path) -> str:
    """``auto``: ``,`` for a ``.csv`` file, a tab for ``.tsv``, ``.tab`` and ``.txt``; else the one given."""
    if delimiter != "auto":
        return delimiter
    try:
        return AUTO_DELIMITERS[path.suffix.lower()]
    except KeyError:
        raise DataError(
            f"{path}: format.delimiter is auto, but {path.suffix or 'no suffix'} names no delimiter "
            f"({', '.join(f'{k} {v!r}' for k, v in AUTO_DELIMITERS.items())}); set format.delimiter"
        ) from None


def resolved_quoting(quoting: str, delimiter: str) -> str:
    """``auto`` is ``none`` for a tab (real similarity sets are TSV with quotes inside sentences), else ``csv``."""
    if quoting == "auto":
        return "none" if delimiter == "\t" else "csv"
    return quoting


def pairs_reader(fh, delimiter: str, quoting: str):
    """A ``csv`` reader of a pairs table under ``format.quoting``."""
    quoting = resolved_quoting(quoting, delimiter)
    return csv.reader(fh, delimiter=delimiter, quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL)


def pairs_columns(reader, path: Path, header: bool, columns: dict) -> tuple[list[str] | None, dict[str, int]]:
    """The header's names (``None`` without one) and each configured column's 0-based index; an error names the
    file and the column the header lacks."""
    names = None
    if header:
        try:
            names = [c.strip() for c in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty file (format.header is true)") from None
        except csv.Error as e:
            raise DataError(f"{path}:1: {e}") from None
    return names, {k: column_index(v, names, path, k) for k, v in columns.items()}


def parse_pairs_file(
    path: Path,
    *,
    delimiter: str,
    header: bool,
    quoting: str,
    columns: dict,
    score_range: tuple[float, float],
    labels: dict[str, float] | None = None,
    split_values: dict[str, str] | None = None,
    on_bad_row: str = "error",
    encoding: str = "utf-8",
) -> _Rows:
    """Rows ``{"id", "sentence1", "sentence2", "score" (0–5, from score_range), "raw_score"[, "split"]}`` of a
    sentence-pair table. ``columns`` maps ``sentence1``, ``sentence2``, ``score`` (and ``split``, whose values
    ``split_values`` maps to split names) to a header name or a 0-based index. With ``labels`` the score column
    holds text labels, each read as its number there (a label not listed is a bad row).

    ``quoting``: ``none`` (a ``"`` is text), ``csv`` (double quotes quote fields) or ``auto`` (``none`` for a tab,
    ``csv`` otherwise: real similarity sets are TSV with quotes inside sentences). Under ``csv`` quoting, a quoted
    field that runs over a line end, or a tab-separated field that holds a tab, is refused with its line and the
    ``quoting: none`` fix: an unbalanced quote would otherwise swallow the rows after it without a word."""
    lo, hi = float(score_range[0]), float(score_range[1])
    out = _Rows(path, on_bad_row)
    delimiter = resolved_delimiter(delimiter, path)
    by_value = {str(v): k for k, v in (split_values or {}).items()}
    quoting = resolved_quoting(quoting, delimiter)
    fix = f"set format.quoting: none if a {chr(34)} in this file is text"
    with read_text(path, encoding, fix="set format.encoding to the file's encoding (e.g. latin-1, utf-16)") as fh:
        reader = pairs_reader(fh, delimiter, quoting)
        names, idx = pairs_columns(reader, path, header, columns)
        need = max(idx.values()) + 1
        last = reader.line_num
        while True:
            try:
                f = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise DataError(f"{path}:{reader.line_num}: {e}; {fix}") from None
            i, start, last = reader.line_num, last + 1, reader.line_num
            if quoting == "csv" and i > start:
                raise DataError(
                    f"{path}:{start}: a quoted field runs over {i - start + 1} lines (to line {i}): an unbalanced "
                    f"quote would swallow the rows after it; {fix}"
                )
            if quoting == "csv" and delimiter == "\t" and any("\t" in x for x in f):
                raise DataError(f"{path}:{i}: a quoted field holds a tab; {fix}")
            if not any(x.strip() for x in f):
                continue
            if len(f) < need:
                out.bad(i, f"{len(f)} fields, columns {columns} need {need}")
                continue
            if names is not None and len(f) > len(names):  # a delimiter inside a field: columns would shift
                out.bad(i, f"{len(f)} fields, the header has {len(names)} (a {delimiter!r} inside a sentence?)")
                continue
            if labels:
                label = f[idx["score"]].strip()
                if label not in labels:
                    out.bad(i, f"score label {label!r} is none of {sorted(labels)} (labels in the data entry)")
                    continue
                raw = float(labels[label])
            else:
                try:
                    raw = float(f[idx["score"]])
                except ValueError:
                    out.bad(i, f"score {f[idx['score']]!r} is not a number")
                    continue
            if not lo <= raw <= hi:
                out.bad(i, f"score {raw} is outside score_range [{lo:g}, {hi:g}]")
                continue
            s1, s2 = f[idx["sentence1"]].strip(), f[idx["sentence2"]].strip()
            if not s1 or not s2:
                out.bad(i, "empty sentence")
                continue
            row = {
                "id": f"{path.stem}-{i:06d}",
                "sentence1": s1,
                "sentence2": s2,
                "score": 5.0 * (raw - lo) / (hi - lo),
                "raw_score": raw,
            }
            if "split" in idx:
                value = f[idx["split"]].strip()
                out.split_values.add(value)
                if value not in by_value:
                    out.bad(i, f"split value {value!r} is none of {sorted(by_value)} (splits in the data entry)")
                    continue
                row["split"] = by_value[value]
            out.rows.append(row)
    return out
