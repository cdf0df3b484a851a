"""Text datasets for the STS study: STS Benchmark, GenericsKB, SNLI.

Each corpus comes from a *source*: ``local`` (a folder or file, e.g. the copies in
``../shared/data``) or ``url`` (the canonical archive or file, downloaded to a
temporary file, retried and resumed, size- and sha256-checked when the config pins one,
unpacked). What arrives is parsed strictly, verified (row counts where they are known) and normalised
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

Submodules, one concept each (public names exported lazily through ``_EXPORTS``, so that a wrapper's code
version covers only the submodules whose names it imports, see :mod:`repgeom.codeversion`):

:mod:`.errors`   :class:`DataError`
:mod:`.parsers`  the strict file parsers and the canonical row counts
:mod:`.download` :func:`download_file`: one HTTP(S) file, retried with back-off, resumed, checked, renamed when whole
:mod:`.sources`  :data:`SOURCES`: ``local``, ``url``, ``hf``; :func:`fetch_first`
:mod:`.kinds`    :data:`CORPORA`: ``stsb``, ``genericskb``, ``snli``, ``pairs``; :data:`FILES`: the files each reads
:mod:`.preflight` :func:`source_problems`: a local source's path, files, encoding and header, checked before any job
:mod:`.store`    :func:`prepare` (the corpora stage: fetch, parse, verify, write)
:mod:`.artifact` :func:`load_corpus`, :func:`corpus_sentences`, :func:`sentence_id` (what the jobs that read a
                 corpus use; no parser or source in their code version)
:mod:`.pairs`    :func:`stsb_pairs`, :func:`snli_pairs` (what the probes and the merging scores read)
"""

from __future__ import annotations

from ..lazy import lazy_exports

#: public name → the submodule that defines it (read by :mod:`repgeom.codeversion` without importing)
_EXPORTS = {
    "DataError": "errors",
    "STSB_ROWS": "parsers",
    "SNLI_LABELS": "parsers",
    "parse_stsb_file": "parsers",
    "parse_genericskb_file": "parsers",
    "parse_snli_file": "parsers",
    "download_file": "download",
    "fetch_first": "sources",
    "SOURCES": "sources",
    "fetch": "sources",
    "fetch_local": "sources",
    "fetch_url": "sources",
    "HF_SPLITS": "sources",
    "HF_SNLI_LABELS": "sources",
    "fetch_hf": "sources",
    "CORPORA": "kinds",
    "load_stsb": "kinds",
    "load_genericskb": "kinds",
    "load_snli": "kinds",
    "corpus": "kinds",
    "FILES": "kinds",
    "source_problems": "preflight",
    "limit_rows": "store",
    "prepare": "store",
    "load_corpus": "artifact",
    "sentence_id": "artifact",
    "corpus_sentences": "artifact",
    "SNLI_TARGET": "pairs",
    "stsb_pairs": "pairs",
    "snli_pairs": "pairs",
}
_SUBMODULES = ("errors", "parsers", "download", "sources", "kinds", "store", "artifact", "pairs", "preflight")

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
