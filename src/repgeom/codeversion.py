"""Which library code a job runs, found by walking imports, and one hash of it.

Each rule passes ``code=get_code_version("<its wrapper script>")`` as a param, so that editing library code (not
only the wrapper, which Snakemake tracks itself) reruns exactly the jobs that run it. The modules are found by
reading the wrapper's ``import`` statements with :mod:`ast`, then those of every library module it reaches,
transitively: imports inside functions count (the library imports heavy modules lazily), and importing
``repgeom.a.b`` runs ``repgeom/__init__.py`` and ``repgeom/a/__init__.py`` too. Nothing is imported to find them.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = "repgeom"


def _module_file(src: Path, dotted: str) -> Path | None:
    """The file of module ``dotted`` (``repgeom.x.y``) under ``src``: ``x/y.py`` or ``x/y/__init__.py``."""
    base = src.joinpath(*dotted.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _dotted(src: Path, path: Path) -> str:
    """``repgeom.x.y`` for ``src/repgeom/x/y.py`` (or ``.../y/__init__.py``)."""
    rel = path.relative_to(src).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imported_names(path: Path, dotted: str | None) -> set[str]:
    """Every module name an ``import`` in ``path`` may load, relative imports resolved against ``dotted``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if dotted is None:
                    continue
                parts = dotted.split(".") if is_pkg else dotted.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def library_modules(script: str | Path, src: str | Path) -> list[Path]:
    """The library files that ``script`` (a wrapper, or a library module) imports, transitively, sorted."""
    return sorted(_closure(Path(script).resolve(), Path(src).resolve()))


@lru_cache(maxsize=None)
def _closure(script: Path, src: Path) -> frozenset[Path]:
    todo = [(script, _dotted(src, script) if script.is_relative_to(src) else None)]
    seen: set[Path] = set()
    while todo:
        path, dotted = todo.pop()
        for name in _imported_names(path, dotted):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the parent packages run too
                f = _module_file(src, ".".join(parts[:i]))
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append((f, _dotted(src, f)))
    seen.discard(script)
    return frozenset(seen)


def code_version(script: str | Path, src: str | Path) -> str:
    """sha256 (16 hex digits) over the paths and bytes of :func:`library_modules` of ``script``."""
    src = Path(src).resolve()
    h = hashlib.sha256()
    for f in library_modules(script, src):
        h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
