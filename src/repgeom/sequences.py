"""Numeric-sequence datasets: a registry of integer families, windows, rendering.

A *family* is an infinite integer sequence indexed from 0 (its first term).
A dataset takes, for each configured family, ``n_sequences`` windows of
``length`` consecutive terms. Window ``j`` of a family covers the term indices

    [o + j * (length + gap),  o + j * (length + gap) + length)

where ``o`` is the dataset's ``start_offset`` (or the family's entry in
``family_offsets``) and ``gap`` (default 0) the number of terms skipped between
windows. Windows of one family are therefore *non-overlapping in index space*:
no term position is used twice. (Values can still repeat across windows where
the family itself repeats a value: Recamán's sequence revisits numbers, e.g.
42 at indices 20 and 24; Fibonacci has 1 twice.)

Each window is rendered as its terms joined by ``separator`` (", ") and capped
at ``max_chars`` characters: a text that would be longer is cut after the last
whole term that fits, so no number is ever split, and is flagged ``truncated``.

Adding a family is adding one function decorated with :func:`family`.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .artifacts import ArtifactError, now_iso, read_json, texts_sha256, write_json
from .params import SequenceSpec
from .registry import Registry

log = logging.getLogger(__name__)

FAMILIES: Registry[Family] = Registry("family")


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    oeis: str
    generator: Callable[[], Iterator[int]]

    def terms(self, n: int, start: int = 0) -> list[int]:
        """Terms with indices ``start .. start + n - 1``."""
        return list(itertools.islice(self.generator(), start, start + n))


def family(
    name: str, description: str, oeis: str = ""
) -> Callable[[Callable[[], Iterator[int]]], Callable[[], Iterator[int]]]:
    def deco(fn: Callable[[], Iterator[int]]):
        FAMILIES.register(name, Family(name, description, oeis, fn))
        return fn

    return deco


# ------------------------------------------------------------------ the paper's six families
@family("consecutive", "consecutive positive integers 1, 2, 3, …", "A000027")
def _consecutive():
    return itertools.count(1)


@family("even", "positive even numbers 2, 4, 6, …", "A005843 (without 0)")
def _even():
    return itertools.count(2, 2)


@family("odd", "odd numbers 1, 3, 5, …", "A005408")
def _odd():
    return itertools.count(1, 2)


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    r = math.isqrt(n)
    return all(n % d for d in range(3, r + 1, 2))


@family("primes", "prime numbers 2, 3, 5, 7, …", "A000040")
def _primes():
    return (n for n in itertools.count(2) if _is_prime(n))


@family("composites", "composite numbers 4, 6, 8, 9, …", "A002808")
def _composites():
    return (n for n in itertools.count(4) if not _is_prime(n))


@family("recaman", "Recamán's sequence 0, 1, 3, 6, 2, 7, …", "A005132")
def _recaman():
    def gen():
        a, seen = 0, {0}
        yield a
        for n in itertools.count(1):
            b = a - n
            a = b if b > 0 and b not in seen else a + n
            seen.add(a)
            yield a

    return gen()


# ------------------------------------------------------------------ optional families (opt-in)
@family("squares", "perfect squares 1, 4, 9, …", "A000290 (without 0)")
def _squares():
    return (n * n for n in itertools.count(1))


@family("fibonacci", "Fibonacci numbers 0, 1, 1, 2, 3, 5, …", "A000045")
def _fibonacci():
    def gen():
        a, b = 0, 1
        while True:
            yield a
            a, b = b, a + b

    return gen()


@family("triangular", "triangular numbers 1, 3, 6, 10, …", "A000217 (without 0)")
def _triangular():
    return (n * (n + 1) // 2 for n in itertools.count(1))


@family("powers_of_two", "powers of two 1, 2, 4, 8, …", "A000079")
def _powers_of_two():
    return (1 << n for n in itertools.count(0))


# ------------------------------------------------------------------ windows and rendering
def window_starts(n_sequences: int, length: int, offset: int = 0, gap: int = 0) -> list[int]:
    step = length + gap
    return [offset + j * step for j in range(n_sequences)]


def render(terms: list[int], max_chars: int, separator: str = ", ") -> tuple[str, int, bool]:
    """Join ``terms``; cut after the last whole term within ``max_chars``.

    Returns ``(text, n_terms_rendered, truncated)``. If even the first term is
    longer than ``max_chars`` it is kept whole (a number is never split).
    """
    parts: list[str] = []
    size = 0
    for t in terms:
        s = str(t)
        extra = len(s) + (len(separator) if parts else 0)
        if parts and size + extra > max_chars:
            return separator.join(parts), len(parts), True
        parts.append(s)
        size += extra
    return separator.join(parts), len(parts), False


@dataclass
class Record:
    id: str
    family: str
    window: int
    first_index: int
    n_terms: int
    truncated: bool
    text: str


def build(spec: SequenceSpec | Mapping[str, Any]) -> list[Record]:
    """Build the records of one dataset from its config entry (a partial mapping gets the schema's defaults)."""
    spec = SequenceSpec.of(spec)
    records = []
    for fam_name in spec.families:
        fam = FAMILIES.get_or_raise(fam_name, "families")
        offset = spec.family_offsets.get(fam_name, spec.start_offset)
        starts = window_starts(spec.n_sequences, spec.length, offset, spec.gap)
        total = starts[-1] + spec.length - offset
        terms = fam.terms(total, offset)
        for j, s in enumerate(starts):
            window = terms[s - offset : s - offset + spec.length]
            text, n, cut = render(window, spec.max_chars, spec.separator)
            records.append(Record(f"{fam_name}_{j:03d}", fam_name, j, s, n, cut, text))
    return records


def write_dataset(spec: SequenceSpec | Mapping[str, Any], path: str | os.PathLike, name: str) -> dict:
    """Build one dataset and write it (JSON, atomically) with its provenance."""
    spec = SequenceSpec.of(spec)
    records = build(spec)
    texts = [r.text for r in records]
    n_cut = sum(r.truncated for r in records)
    if n_cut:
        log.warning("%d of %d sequences were cut at max_chars=%d", n_cut, len(records), spec.max_chars)
    meta = {
        "kind": "sequences",
        "dataset": name,
        "params": spec.params(),
        "n": len(records),
        "families": list(spec.families),
        "n_truncated": n_cut,
        "texts_sha256": texts_sha256(texts),
        "definition": "window j of a family = term indices [o + j*(length+gap), o + j*(length+gap) + length), "
        "o = start offset; terms joined by the separator and cut after the last whole term "
        "within max_chars",
        "created": now_iso(),
    }
    write_json(path, {"meta": meta, "records": [asdict(r) for r in records]})
    log.info(
        "wrote %d sequences (%d families × %d) to %s; %d truncated",
        len(records),
        len(spec.families),
        spec.n_sequences,
        path,
        n_cut,
    )
    return meta


def load_dataset(path: str | os.PathLike) -> tuple[dict, list[dict]]:
    """Read a dataset artifact and check that its texts match its recorded hash."""
    obj = read_json(path)
    try:
        meta, records = obj["meta"], obj["records"]
    except (KeyError, TypeError):
        raise ArtifactError(f"{path}: not a dataset artifact (no meta/records)") from None
    if texts_sha256([r["text"] for r in records]) != meta.get("texts_sha256"):
        raise ArtifactError(f"{path}: texts do not match the recorded sha256 (edited or corrupt)")
    return meta, records
