"""What the workflow's rules files say, read as text (no Snakemake): the wrapper script each rule runs."""

from __future__ import annotations

import os
import re
from pathlib import Path


def rule_scripts(tree: str | os.PathLike) -> dict[str, Path]:
    """Rule name → the wrapper script it runs (``workflow/scripts/{name}.py`` under the checkout ``tree``), read from
    ``workflow/rules/*.smk``; rules without a ``script:`` are left out."""
    tree = Path(tree)
    text = "".join(p.read_text() for p in sorted((tree / "workflow/rules").glob("*.smk")))
    out = {}
    for body in re.split(r"(?m)^(?:rule|checkpoint) ", text)[1:]:
        m = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+)\.py"', body)
        if m:
            out[body.split(":", 1)[0]] = tree / "workflow/scripts" / f"{m.group(1)}.py"
    return out
