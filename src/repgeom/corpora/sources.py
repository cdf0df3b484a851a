"""Where a corpus comes from: ``local``, ``url`` (downloaded, sha256-checked, unpacked) or ``hf`` (the
Hugging Face ``datasets`` library), behind the :data:`SOURCES` registry; the first source that works wins."""

from __future__ import annotations

import csv
import logging
import re
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from ..registry import Registry
from ..retry import deterministic
from .download import BACKOFF, RETRIES, TIMEOUT, download_file
from .errors import DataError

log = logging.getLogger(__name__)


def fetch_first(sources: dict | list[dict], work: Path, kind: str) -> tuple[Path, dict]:
    """Try each source in turn (a local copy, then a download, …); return the first that works and which it
    was. Every failure is logged; if all fail the error lists them all."""
    sources = sources if isinstance(sources, list) else [sources]
    errors, retryable = [], []
    for i, src in enumerate(sources):
        try:
            return fetch(src, work / f"source{i}", kind), src
        except DataError as e:
            if len(sources) > 1:
                log.warning("source %d of %d (%s) failed: %s", i + 1, len(sources), src["type"], e)
            errors.append(f"source {i + 1} ({src['type']}): {e}")
            retryable.append(getattr(e, "retryable", None))
    # another try may work when one source failed on the network; it cannot when each failed for good
    again = True if any(retryable) else (None if None in retryable else False)
    raise DataError(
        "no source worked:\n    " + "\n    ".join(errors) if len(errors) > 1 else errors[0], retryable=again
    )


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
    """Download (retried, resumed, size- and sha256-checked: :func:`.download.download_file`) and unpack a tar or zip
    archive."""
    name = source["url"].rstrip("/").rsplit("/", 1)[-1] or "download"
    got = download_file(
        source["url"],
        work / name,
        source.get("sha256"),
        retries=source.get("retries", RETRIES),
        timeout=source.get("timeout", TIMEOUT),
        backoff=source.get("backoff", BACKOFF),
    )
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
HF_SPLITS = {
    "stsb": {"train": "train", "validation": "dev", "test": "test"},
    "genericskb": {"train": "train"},
    "snli": {"train": "train", "validation": "dev", "test": "test"},
}
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
    from huggingface_hub import constants

    out = work / "hf"
    out.mkdir(parents=True, exist_ok=True)
    name, config, revision = source["dataset"], source.get("config"), source.get("revision")
    for hf_split, split in HF_SPLITS[kind].items():
        what = (
            f"cannot load {name!r} (config {config}, revision {revision}, split {hf_split}) from {constants.ENDPOINT}"
        )
        try:
            ds = datasets.load_dataset(name, config, split=hf_split, revision=revision)
        except Exception as e:  # noqa: BLE001 - network, hub and format errors all mean "this source failed"
            # not on the hub (id, revision, or gated) is final, though datasets makes it a FileNotFoundError
            missing = isinstance(e, getattr(datasets.exceptions, "DatasetNotFoundError", ()))
            retryable = False if missing else not deterministic(e)  # the hub unreachable: another try may work
            fix = (
                "the hub did not answer: another try may work, or use a local source"
                if retryable
                else "check the dataset id, config and revision on the hub, or use a local source"
            )
            raise DataError(
                f"{what} with datasets: {type(e).__name__}: {str(e).rstrip('.')}; {fix}", retryable=retryable
            ) from None
        # the hub unreachable, datasets silently falls back to the latest cached copy, of whatever commit: a pinned
        # commit is checked against the cache folder it came from (datasets names it by the commit)
        got = sorted({Path(f["filename"]).parent.name for f in ds.cache_files})
        if re.fullmatch(r"[0-9a-f]{40}", revision or "") and got and got != [revision]:
            raise DataError(
                f"{what}: the hub did not answer and datasets gave its cached copy of commit {', '.join(got)}, not "
                "the pinned one; another try may work, or use a local source",
                retryable=True,
            )
        if kind == "stsb":  # sentence-transformers/stsb: sentence1, sentence2, score in [0, 1]
            with open(out / f"sts-{split}.csv", "w", encoding="utf-8") as fh:
                for i, r in enumerate(ds):
                    s1, s2 = (r["sentence1"] or "").replace("\t", " "), (r["sentence2"] or "").replace("\t", " ")
                    fh.write(f"hf\t{name}\t-\t{i}\t{float(r['score']) * 5:.6g}\t{s1}\t{s2}\n")
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
