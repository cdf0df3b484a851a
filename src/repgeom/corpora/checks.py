"""What a parsed corpus must be before it is written: not empty, not mostly skipped, its duplicates counted.

- A split with no rows (a header-only file, every row skipped) is an error naming the split and why, in the corpora
  job, not jobs later as "no 'test' split".
- Skipped bad rows (``on_bad_row: skip``) are summed up by reason; beyond ``max_bad_fraction`` of a corpus's rows
  the corpus is refused, naming its first bad lines.
- Pairs that occur more than once in a split are counted: exactly again, swapped (``b, a`` after ``a, b``), or with
  another score or label (a conflict); ``on_duplicate`` keeps them (counted, reported), drops the later ones, or
  refuses the corpus naming the first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

from .errors import DataError

ON_DUPLICATE = ("keep", "drop", "error")


def check_not_empty(name: str, splits: Mapping[str, list], meta: Mapping) -> None:
    """Every split holds rows, else a :class:`DataError` saying which and why."""
    skipped = list(meta.get("skipped", []))
    why = f"all {len(skipped)} of its rows were skipped as bad" if skipped else "its files hold no data rows"
    first = f" ({'; '.join(skipped[:2])})" if skipped else " (header only?)"
    if not any(splits.values()):
        raise DataError(f"corpus {name!r}: no rows at all: {why}{first}")
    for split, rows in splits.items():
        if not rows:
            raise DataError(
                f"corpus {name!r}: split {split!r} has no rows: a header-only file, or every row bad{first}"
            )


def skip_reasons(skipped: list[str]) -> Counter:
    """The skipped rows' messages (``file:line: why``) counted by reason, their numbers and quoted values blanked."""
    reasons = Counter()
    for m in skipped:
        why = m.split(": ", 1)[1] if ": " in m else m
        why = re.sub(r"\(set on_bad_row.*?\)", "", why)
        why = re.sub(r"'[^']*'|\"[^\"]*\"", "…", why)
        reasons[re.sub(r"-?\d+(\.\d+)?", "N", why).strip()] += 1
    return reasons


def check_skipped(name: str, n_kept: int, skipped: list[str], max_bad_fraction: float) -> list[str]:
    """The summary lines of the skipped rows (none when none were); a :class:`DataError` when more than
    ``max_bad_fraction`` of the rows were skipped."""
    if not skipped:
        return []
    total = n_kept + len(skipped)
    lines = [f"corpus {name}: skipped {len(skipped)} of {total} rows as bad (on_bad_row: skip):"]
    lines += [f"  {n:6d}  {why}" for why, n in skip_reasons(skipped).most_common()]
    if len(skipped) > max_bad_fraction * total:
        raise DataError(
            f"corpus {name!r}: {len(skipped)} of {total} rows are bad, more than max_bad_fraction "
            f"{max_bad_fraction:g}; the first: {'; '.join(skipped[:3])} (fix the file, or raise max_bad_fraction)"
        )
    return lines


def _score(row: Mapping):
    return row.get("score", row.get("label"))


def find_duplicates(splits: Mapping[str, list]) -> dict[str, dict]:
    """Per split: ``{"exact": n, "swapped": n, "conflicting": n, "first": [ids…], "later": set of row indices}``
    of the pairs seen before in that split (rows without two sentences are left alone)."""
    out = {}
    for split, rows in splits.items():
        seen: dict[tuple[str, str], Mapping] = {}
        rec = {"exact": 0, "swapped": 0, "conflicting": 0, "first": [], "later": set()}
        for i, row in enumerate(rows):
            if "sentence1" not in row or "sentence2" not in row:
                continue
            key = (row["sentence1"], row["sentence2"])
            swapped = (row["sentence2"], row["sentence1"])
            before = seen.get(key) or seen.get(swapped)
            if before is None:
                seen[key] = row
                continue
            kind = "conflicting" if _score(before) != _score(row) else "exact" if key in seen else "swapped"
            rec[kind] += 1
            rec["later"].add(i)
            if len(rec["first"]) < 3:
                rec["first"].append(f"{row.get('id')} repeats {before.get('id')} ({kind})")
        if rec["later"]:
            out[split] = rec
    return out


def handle_duplicates(name: str, splits: dict[str, list], on_duplicate: str) -> tuple[dict[str, list], dict, list[str]]:
    """``(splits, counts per split, summary lines)``: duplicates kept, dropped (the later rows) or refused."""
    if on_duplicate not in ON_DUPLICATE:
        raise DataError(f"corpus {name!r}: on_duplicate {on_duplicate!r} is none of {ON_DUPLICATE}")
    dups = find_duplicates(splits)
    counts = {s: {k: d[k] for k in ("exact", "swapped", "conflicting")} for s, d in dups.items()}
    if not dups:
        return splits, counts, []
    lines = [
        f"corpus {name}: split {s}: {d['exact']} exact, {d['swapped']} swapped and {d['conflicting']} conflicting "
        f"repeated pairs (on_duplicate: {on_duplicate}); e.g. {', '.join(d['first'])}"
        for s, d in dups.items()
    ]
    if on_duplicate == "error":
        raise DataError(lines[0] + " (set on_duplicate: keep or drop)")
    if on_duplicate == "drop":
        splits = {
            s: [r for i, r in enumerate(rows) if i not in dups.get(s, {}).get("later", ())]
            for s, rows in splits.items()
        }
    return splits, counts, lines
