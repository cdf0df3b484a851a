"""Corpus kinds: each turns what a source delivered into normalised splits, behind the :data:`CORPORA`
registry."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from ..params import CorpusSpec
from ..registry import Registry
from .errors import DataError
from .parsers import STSB_ROWS, parse_genericskb_file, parse_pairs_file, parse_snli_file, parse_stsb_file


def _find(root: Path, pattern: str) -> list[Path]:
    if root.is_file():
        return [root]
    hits = sorted(p for p in root.rglob(pattern) if p.is_file())
    return hits


#: a pairs corpus's files when the entry names none: tables by their suffix, not a README or a licence beside them
PAIRS_SUFFIXES = (".tsv", ".csv", ".tab", ".txt")
_NOT_DATA = ("readme", "license", "licence", "copying", "changelog", "citation")


def _tables(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in PAIRS_SUFFIXES
        and not p.name.startswith(".")
        and not p.name.lower().startswith(_NOT_DATA)
    )


#: the files each kind reads from what its source delivered, by split (``None``: the split comes from the file or a
#: column); a kind whose files are not there raises :class:`DataError` naming what it looked for. The corpora job
#: and the checks before any job (:mod:`.preflight`) both use these, so they agree on which files a corpus reads.
FILES: Registry[Callable[[Path, CorpusSpec], dict[str | None, list[Path]]]] = Registry("corpus kind")


@FILES.register("stsb")
def stsb_files(root: Path, spec: CorpusSpec) -> dict[str | None, list[Path]]:
    out = {}
    for split in ("train", "dev", "test"):
        files = _find(root, f"sts-{split}.csv")
        if not files:
            raise DataError(f"{root}: no sts-{split}.csv (expected the STS Benchmark's sts-*.csv files)")
        out[split] = files[:1]
    return out


@FILES.register("genericskb")
def genericskb_files(root: Path, spec: CorpusSpec) -> dict[str | None, list[Path]]:
    files = _find(root, spec.files or "*.t[sx][vt]")
    if not files:
        raise DataError(f"{root}: no GenericsKB files ({spec.files or '*.tsv / *.txt'})")
    return {"train": files}


@FILES.register("snli")
def snli_files(root: Path, spec: CorpusSpec) -> dict[str | None, list[Path]]:
    files = _find(root, spec.files or "snli*.csv")
    if not files and not spec.files:
        files = _find(root, "snli_1.0_*.txt")  # the canonical archive
    if not files:
        raise DataError(f"{root}: no {spec.files or 'snli*.csv or snli_1.0_*.txt'} file")
    return {None: files}


@FILES.register("pairs")
def pairs_files(root: Path, spec: CorpusSpec) -> dict[str | None, list[Path]]:
    """By split when ``splits`` maps each to a file glob; else every table (``files``, or by default every
    ``.tsv``/``.csv``/``.tab``/``.txt`` file but a README or licence) as one group."""
    if spec.splits and "split" not in (spec.columns or {}):
        groups = {s: _find(root, g) for s, g in spec.splits.items()}
        for split, files in groups.items():
            if not files:
                raise DataError(f"{root}: no file matches {spec.splits[split]!r} (splits.{split})")
        return groups
    files = _find(root, spec.files) if spec.files else _tables(root)
    if not files:
        what = repr(spec.files) if spec.files else "*" + ", *".join(PAIRS_SUFFIXES) + " (a README or licence aside)"
        raise DataError(f"{root}: no file matches {what}; set files: to a glob of the tables")
    return {None: files}


CORPORA: Registry[Callable[[Path, CorpusSpec], tuple[dict, dict]]] = Registry("corpus kind")
corpus = CORPORA.register


@corpus("stsb")
def load_stsb(root: Path, spec: CorpusSpec) -> tuple[dict, dict]:
    splits, meta = {}, {"files": {}, "skipped": []}
    for split, files in stsb_files(root, spec).items():
        parsed = parse_stsb_file(files[0], spec.on_bad_row)
        n_seen = len(parsed.rows) + len(parsed.skipped)
        if spec.verify_rows and n_seen != STSB_ROWS[split]:
            raise DataError(
                f"{files[0]}: {n_seen} rows, the canonical STS-B {split} split has {STSB_ROWS[split]} "
                "(set verify_rows: false for a different release)"
            )
        splits[split] = parsed.rows
        meta["files"][split] = {"path": str(files[0]), "md5": hashlib.md5(files[0].read_bytes()).hexdigest()}
        meta["skipped"] += parsed.skipped
    return splits, meta


@corpus("genericskb")
def load_genericskb(root: Path, spec: CorpusSpec) -> tuple[dict, dict]:
    files = genericskb_files(root, spec)["train"]
    seen, rows, meta = set(), [], {"files": {}, "skipped": []}
    for p in files:
        parsed = parse_genericskb_file(p, spec.on_bad_row)
        meta["files"][p.name] = {
            "path": str(p),
            "md5": hashlib.md5(p.read_bytes()).hexdigest(),
            "rows": len(parsed.rows),
        }
        meta["skipped"] += parsed.skipped
        for r in parsed.rows:
            if r["sentence"] not in seen:
                seen.add(r["sentence"])
                rows.append(r)
    meta["distinct_sentences"] = len(rows)
    limit = spec.max_rows
    if limit and len(rows) < limit:
        raise DataError(f"{root}: {len(rows)} distinct sentences, fewer than max_rows={limit}")
    return {"train": rows[:limit] if limit else rows}, meta


@corpus("snli")
def load_snli(root: Path, spec: CorpusSpec) -> tuple[dict, dict]:
    splits, meta = {}, {"files": {}, "skipped": [], "no_gold_label": {}}
    for p in snli_files(root, spec)[None]:
        split = next((s for s in ("train", "dev", "test") if s in p.stem), p.stem)
        parsed, no_gold = parse_snli_file(p, spec.on_bad_row)
        splits[split] = parsed.rows
        meta["files"][split] = {"path": str(p), "md5": hashlib.md5(p.read_bytes()).hexdigest()}
        meta["skipped"] += parsed.skipped
        meta["no_gold_label"][split] = no_gold
    return splits, meta


@corpus("pairs")
def load_pairs(root: Path, spec: CorpusSpec) -> tuple[dict, dict]:
    """Any sentence-pair similarity table (``kind: pairs``): scores mapped from ``score_range`` to STS-B's 0–5, so
    that it reads as STS-B does. Splits: ``splits`` maps split → file glob inside the source; or, with a
    ``columns.split`` column, split → that column's value; or neither: every file is one ``test`` split."""
    fmt, cols = spec.format, spec.columns
    if not cols:
        raise DataError("a pairs corpus needs columns: {sentence1: …, sentence2: …, score: …} (names or indices)")
    if spec.score_range is None:
        raise DataError("a pairs corpus needs score_range: [low, high] (the scores' scale, mapped to 0–5)")
    kw = dict(
        delimiter=fmt["delimiter"],
        header=fmt["header"],
        quoting=fmt["quoting"],
        encoding=fmt["encoding"],
        columns=cols,
        score_range=tuple(spec.score_range),
        labels=spec.labels,
        on_bad_row=spec.on_bad_row,
    )
    meta: dict = {"files": {}, "skipped": [], "score_range": list(spec.score_range), "labels": dict(spec.labels)}
    splits: dict[str, list] = {}
    seen: set[str] = set()
    for split, files in pairs_files(root, spec).items():
        for p in files:
            parsed = parse_pairs_file(p, **kw, split_values=spec.splits if "split" in cols else None)
            meta["files"][p.name] = {"path": str(p), "md5": hashlib.md5(p.read_bytes()).hexdigest(), "split": split}
            meta["skipped"] += parsed.skipped
            seen |= parsed.split_values
            for r in parsed.rows:
                splits.setdefault(split or r.pop("split", "test"), []).append(r)
    if "split" in cols:
        missing = [s for s in spec.splits if s not in splits]
        if missing:
            raise DataError(
                f"{root}: no row of split(s) {missing} (values {[spec.splits[s] for s in missing]}); the "
                f"{cols['split']!r} column holds {sorted(seen)}"
            )
    return splits, meta
