"""Text datasets for the STS study: STS Benchmark, GenericsKB, SNLI.

Each corpus comes from a *source*: ``local`` (a folder or file, e.g. the copies in
``../shared/data``) or ``url`` (the canonical archive or file, downloaded to a
temporary file, sha256-checked when the config pins one, unpacked). What arrives
is parsed strictly, verified (row counts where they are known) and normalised
into one JSON artifact per corpus: ``{"meta": …, "splits": {split: [rows]}}``.

Parsing rules (from the data's own formats):

* STS-B ``sts-{train,dev,test}.csv``: tab-separated, no header, **no quote
  handling** (some sentences hold unbalanced ``"``); the first 7 fields are
  ``genre filename year id score sentence1 sentence2``; score in [0, 5].
* GenericsKB: tab-separated ``term sentence score`` (CRLF tolerated), or the
  canonical ``GenericsKB-Best.tsv`` with a header naming ``generic_sentence``;
  sentences are de-duplicated in file order and the first ``max_rows`` kept.
* SNLI: CSV with a header holding ``gold_label,sentence1,sentence2`` (UTF-8 with
  BOM tolerated); rows whose gold label is ``-`` (no consensus) are skipped and
  counted, as the SNLI paper does.

A bad row (missing or out-of-range score, empty sentence, too few fields) is an
error naming the file and the line, or, with ``on_bad_row: skip``, a counted,
logged skip.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .artifacts import now_iso, read_json, sha256_file, texts_sha256, write_json
from .registry import Registry

log = logging.getLogger(__name__)

#: canonical row counts, verified unless the corpus entry says ``verify_rows: false``
STSB_ROWS = {"train": 5749, "dev": 1500, "test": 1379}
SNLI_LABELS = ("entailment", "neutral", "contradiction")


class DataError(ValueError):
    """A dataset cannot be obtained or a row is malformed; the message names file and line."""


class _Rows:
    """Collects rows and bad-row decisions for one file."""

    def __init__(self, path: Path, on_bad_row: str):
        self.path, self.on_bad_row, self.rows, self.skipped = path, on_bad_row, [], []

    def bad(self, line: int, why: str) -> None:
        msg = f"{self.path}:{line}: {why}"
        if self.on_bad_row != "skip":
            raise DataError(msg + " (set on_bad_row: skip to count and skip such rows)")
        log.warning("skipping %s", msg)
        self.skipped.append(msg)


# ------------------------------------------------------------------ parsers
def parse_stsb_file(path: Path, on_bad_row: str = "error") -> _Rows:
    out = _Rows(path, on_bad_row)
    with open(path, encoding="utf-8", newline="") as fh:
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
            out.rows.append({"id": f"{path.stem}-{i:05d}", "genre": f[0], "source": f[1], "year": f[2],
                             "sentence1": s1, "sentence2": s2, "score": score})
    return out


def parse_genericskb_file(path: Path, on_bad_row: str = "error") -> _Rows:
    out = _Rows(path, on_bad_row)
    with open(path, encoding="utf-8", newline="") as fh:
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


def parse_snli_file(path: Path, on_bad_row: str = "error") -> tuple[_Rows, int]:
    out = _Rows(path, on_bad_row)
    no_gold = 0
    with open(path, encoding="utf-8-sig", newline="") as fh:
        # the canonical snli_1.0.zip holds tab-separated snli_1.0_*.txt (no quoting); copies are often CSV
        reader = (csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if path.suffix == ".txt"
                  else csv.DictReader(fh))
        missing = {"gold_label", "sentence1", "sentence2"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}:1: header lacks {sorted(missing)} (has {reader.fieldnames})")
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


# ------------------------------------------------------------------ sources
def _download(url: str, dest: Path, sha256: str | None) -> Path:
    log.info("downloading %s", url)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as out:  # noqa: S310 - configured URL
            shutil.copyfileobj(r, out, 1 << 20)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot download {url}: {e}. Point the corpus at a local copy instead "
                        "(source: {type: local, path: …})") from None
    if sha256 and sha256_file(tmp) != sha256:
        got = sha256_file(tmp)
        tmp.unlink()
        raise DataError(f"{url}: sha256 {got} does not match the configured {sha256}")
    tmp.rename(dest)
    return dest


def fetch_first(sources, work: Path, kind: str) -> tuple[Path, dict]:
    """Try each source in turn (a local copy, then a download, …); return the first that works and which it
    was. Every failure is logged; if all fail the error lists them all."""
    sources = sources if isinstance(sources, list) else [sources]
    errors = []
    for i, src in enumerate(sources):
        try:
            return fetch(src, work / f"source{i}", kind), src
        except DataError as e:
            if len(sources) > 1:
                log.warning("source %d of %d (%s) failed: %s", i + 1, len(sources), src["type"], e)
            errors.append(f"source {i + 1} ({src['type']}): {e}")
    raise DataError("no source worked:\n    " + "\n    ".join(errors) if len(errors) > 1 else errors[0])


#: where a corpus comes from: source type → fetch(source, work, kind) → a local folder or file holding it
SOURCES: Registry[Callable[[dict, Path, str | None], Path]] = Registry("corpus source type")


def fetch(source: dict, work: Path, kind: str | None = None) -> Path:
    """Return a local folder or file holding the corpus."""
    work.mkdir(parents=True, exist_ok=True)
    try:
        fetcher = SOURCES.get_or_raise(source["type"], "source.type")
    except ValueError as e:
        raise DataError(str(e)) from None
    return fetcher(source, work, kind)


@SOURCES.register("local")
def fetch_local(source: dict, work: Path, kind: str | None) -> Path:
    """A folder or file the user already has."""
    p = Path(source["path"]).expanduser()
    if not p.exists():
        raise DataError(f"local path {str(p)!r} does not exist")
    return p


@SOURCES.register("url")
def fetch_url(source: dict, work: Path, kind: str | None) -> Path:
    """Download (checking the sha256 when given) and unpack a tar or zip archive."""
    name = source["url"].rstrip("/").rsplit("/", 1)[-1] or "download"
    got = _download(source["url"], work / name, source.get("sha256"))
    if tarfile.is_tarfile(got):
        with tarfile.open(got) as tf:
            tf.extractall(work / "unpacked", filter="data")
        return work / "unpacked"
    if zipfile.is_zipfile(got):
        with zipfile.ZipFile(got) as zf:
            zf.extractall(work / "unpacked")
        return work / "unpacked"
    return got


#: how a Hugging Face dataset's rows become the files the parsers read: split names, and a writer per kind
HF_SPLITS = {"stsb": {"train": "train", "validation": "dev", "test": "test"},
             "genericskb": {"train": "train"},
             "snli": {"train": "train", "validation": "dev", "test": "test"}}
HF_SNLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}


@SOURCES.register("hf")
def fetch_hf(source: dict, work: Path, kind: str | None) -> Path:
    """Load a dataset with the Hugging Face ``datasets`` library and write it in the canonical file format of
    ``kind`` (STS-B tab-separated rows with 0–5 scores, a GenericsKB TSV with a ``generic_sentence`` header, SNLI
    CSV with ``gold_label,sentence1,sentence2``), so that the same parsers and checks apply."""
    try:
        import datasets
    except ImportError:
        raise DataError("an hf source needs the 'datasets' package (pip install datasets)") from None
    if kind not in HF_SPLITS:
        raise DataError(f"an hf source cannot provide a corpus of kind {kind!r}")
    out = work / "hf"
    out.mkdir(parents=True, exist_ok=True)
    for hf_split, split in HF_SPLITS[kind].items():
        try:
            ds = datasets.load_dataset(source["dataset"], source.get("config"), split=hf_split,
                                       revision=source.get("revision"))
        except Exception as e:  # noqa: BLE001 - network, hub and format errors all mean "this source failed"
            raise DataError(f"cannot load {source['dataset']!r} ({source.get('config')}, split {hf_split}) with "
                            f"datasets: {type(e).__name__}: {e}") from None
        if kind == "stsb":  # sentence-transformers/stsb: sentence1, sentence2, score in [0, 1]
            with open(out / f"sts-{split}.csv", "w", encoding="utf-8") as fh:
                for i, r in enumerate(ds):
                    s1, s2 = (r["sentence1"] or "").replace("\t", " "), (r["sentence2"] or "").replace("\t", " ")
                    fh.write(f"hf\t{source['dataset']}\t-\t{i}\t{float(r['score']) * 5:.6g}\t{s1}\t{s2}\n")
        elif kind == "genericskb":  # community-datasets/generics_kb, generics_kb_best: generic_sentence
            with open(out / "GenericsKB-Best.tsv", "w", encoding="utf-8") as fh:
                fh.write("generic_sentence\n")
                for r in ds:
                    fh.write((r["generic_sentence"] or "").replace("\t", " ").replace("\n", " ") + "\n")
        else:  # stanfordnlp/snli: premise, hypothesis, label (-1 = no gold label)
            with open(out / f"snli_{split}.csv", "w", encoding="utf-8", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["gold_label", "sentence1", "sentence2"])
                for r in ds:
                    w.writerow([HF_SNLI_LABELS.get(r["label"], "-"), r["premise"], r["hypothesis"]])
    return out


def _find(root: Path, pattern: str) -> list[Path]:
    if root.is_file():
        return [root]
    hits = sorted(p for p in root.rglob(pattern) if p.is_file())
    return hits


# ------------------------------------------------------------------ corpora (registry)
CORPORA: Registry[Callable[[Path, dict], tuple[dict, dict]]] = Registry("corpus kind")
corpus = CORPORA.register


@corpus("stsb")
def load_stsb(root: Path, spec: dict) -> tuple[dict, dict]:
    splits, meta = {}, {"files": {}, "skipped": []}
    for split in ("train", "dev", "test"):
        files = _find(root, f"sts-{split}.csv")
        if not files:
            raise DataError(f"{root}: no sts-{split}.csv (expected the STS Benchmark's sts-*.csv files)")
        parsed = parse_stsb_file(files[0], spec.get("on_bad_row", "error"))
        n_seen = len(parsed.rows) + len(parsed.skipped)
        if spec.get("verify_rows", True) and n_seen != STSB_ROWS[split]:
            raise DataError(f"{files[0]}: {n_seen} rows, the canonical STS-B {split} split has {STSB_ROWS[split]} "
                            "(set verify_rows: false for a different release)")
        splits[split] = parsed.rows
        meta["files"][split] = {"path": str(files[0]), "md5": hashlib.md5(files[0].read_bytes()).hexdigest()}
        meta["skipped"] += parsed.skipped
    return splits, meta


@corpus("genericskb")
def load_genericskb(root: Path, spec: dict) -> tuple[dict, dict]:
    files = _find(root, spec.get("files", "*.t[sx][vt]"))
    if not files:
        raise DataError(f"{root}: no GenericsKB files (*.tsv / *.txt)")
    seen, rows, meta = set(), [], {"files": {}, "skipped": []}
    for p in files:
        parsed = parse_genericskb_file(p, spec.get("on_bad_row", "error"))
        meta["files"][p.name] = {"path": str(p), "md5": hashlib.md5(p.read_bytes()).hexdigest(),
                                 "rows": len(parsed.rows)}
        meta["skipped"] += parsed.skipped
        for r in parsed.rows:
            if r["sentence"] not in seen:
                seen.add(r["sentence"])
                rows.append(r)
    meta["distinct_sentences"] = len(rows)
    limit = spec.get("max_rows")
    if limit and len(rows) < limit:
        raise DataError(f"{root}: {len(rows)} distinct sentences, fewer than max_rows={limit}")
    return {"train": rows[:limit] if limit else rows}, meta


@corpus("snli")
def load_snli(root: Path, spec: dict) -> tuple[dict, dict]:
    splits, meta = {}, {"files": {}, "skipped": [], "no_gold_label": {}}
    files = _find(root, spec.get("files", "snli*.csv"))
    if not files:
        files = _find(root, "snli_1.0_*.txt")  # the canonical archive
    if not files:
        raise DataError(f"{root}: no snli*.csv or snli_1.0_*.txt file")
    for p in files:
        split = next((s for s in ("train", "dev", "test") if s in p.stem), p.stem)
        parsed, no_gold = parse_snli_file(p, spec.get("on_bad_row", "error"))
        splits[split] = parsed.rows
        meta["files"][split] = {"path": str(p), "md5": hashlib.md5(p.read_bytes()).hexdigest()}
        meta["skipped"] += parsed.skipped
        meta["no_gold_label"][split] = no_gold
    return splits, meta


def limit_rows(splits: dict, limits: dict) -> dict:
    """Keep the first ``limits[split]`` rows of each split (for tiny test configs)."""
    return {s: rows[: limits[s]] if limits.get(s) else rows for s, rows in splits.items()}


def prepare(name: str, spec: dict, out_path) -> dict:
    """Fetch, parse, verify and normalise one corpus into ``out_path`` (JSON, written atomically)."""
    kind = spec.get("kind", name)
    if kind not in CORPORA:
        raise DataError(CORPORA.unknown(kind, f"data.{name}.kind"))
    with tempfile.TemporaryDirectory(prefix=f".{name}.work-", dir=Path(out_path).parent) as work:
        try:
            root, used = fetch_first(spec["source"], Path(work), kind)
            splits, meta = CORPORA[kind](root, spec)
        except DataError as e:
            raise DataError(f"corpus {name!r}: {e}") from None
    splits = limit_rows(splits, spec.get("limit", {}))
    texts = [t for rows in splits.values() for r in rows for t in _texts(r)]
    meta.update(kind="corpus", corpus=name, type=kind, source=used, params=spec,
                rows={s: len(r) for s, r in splits.items()}, n_skipped=len(meta["skipped"]),
                texts_sha256=texts_sha256(texts), created=now_iso())
    if meta["n_skipped"]:
        log.warning("corpus %s: skipped %d bad rows", name, meta["n_skipped"])
    write_json(out_path, {"meta": meta, "splits": splits})
    log.info("corpus %s: %s", name, ", ".join(f"{s} {n}" for s, n in meta["rows"].items()))
    return meta


def _texts(row: dict) -> Iterator[str]:
    for k in ("sentence", "sentence1", "sentence2"):
        if k in row:
            yield row[k]


def load_corpus(path) -> tuple[dict, dict]:
    obj = read_json(path)
    return obj["meta"], obj["splits"]


def sentence_id(text: str) -> str:
    """A stable id for a sentence: the first 16 hex digits of its sha1 (order-free, so pair tables and
    activation shards agree without sharing row numbers)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def corpus_sentences(path) -> tuple[list[str], list[str]]:
    """``(ids, texts)``: every distinct sentence of a normalised corpus, in first-appearance order over the
    splits (sorted by name), for the activation stage."""
    _, splits = load_corpus(path)
    seen: dict[str, str] = {}
    sids: set[str] = set()
    for split in sorted(splits):
        for row in splits[split]:
            for t in _texts(row):
                if t not in seen:
                    sid = sentence_id(t)
                    if sid in sids:  # pragma: no cover - a 64-bit sha1 prefix collision
                        raise DataError(f"{path}: two sentences share the id {sid}")
                    seen[t] = sid
                    sids.add(sid)
    return list(seen.values()), list(seen)


# ------------------------------------------------------------------ sentence pairs
#: SNLI labels as similarity targets for the siamese pretraining
SNLI_TARGET = {"entailment": 1.0, "neutral": 0.5, "contradiction": 0.0}


def stsb_pairs(corpus_path, splits: Sequence[str] = ("train", "dev", "test")) -> dict[str, dict]:
    """``{split: {"id", "s1", "s2", "id1", "id2", "y" (score / 5)}}`` from a normalised STS-B corpus."""
    meta, data = load_corpus(corpus_path)
    if meta.get("type") != "stsb":
        raise DataError(f"{corpus_path}: corpus type {meta.get('type')!r}, expected 'stsb'")
    out = {}
    for split in splits:
        if split not in data or not data[split]:
            raise DataError(f"{corpus_path}: no {split!r} split (has {', '.join(data) or 'none'})")
        rows = data[split]
        out[split] = {"id": [r["id"] for r in rows], "s1": [r["sentence1"] for r in rows],
                      "s2": [r["sentence2"] for r in rows],
                      "id1": [sentence_id(r["sentence1"]) for r in rows],
                      "id2": [sentence_id(r["sentence2"]) for r in rows],
                      "y": np.array([r["score"] / 5.0 for r in rows], dtype=np.float32)}
    return out


def snli_pairs(corpus_path) -> dict:
    meta, data = load_corpus(corpus_path)
    rows = [r for split in sorted(data) for r in data[split]]
    if not rows:
        raise DataError(f"{corpus_path}: no SNLI pairs")
    return {"id1": [sentence_id(r["sentence1"]) for r in rows], "id2": [sentence_id(r["sentence2"]) for r in rows],
            "y": np.array([SNLI_TARGET[r["label"]] for r in rows], dtype=np.float32)}
