"""Which library code a job runs, found by walking imports, and one hash of it.

Each rule passes ``code=get_code_version("<its wrapper script>")`` as a param, so that editing library code (not
only the wrapper, which Snakemake tracks itself) reruns exactly the jobs that run it. The modules are found by
reading the wrapper's ``import`` statements with :mod:`ast`, then those of every library module it reaches,
transitively: imports inside functions count (the library imports heavy modules lazily), and importing
``repgeom.a.b`` runs ``repgeom/__init__.py`` and ``repgeom/a/__init__.py`` too. Nothing is imported to find them.

A package whose ``__init__`` exports its public names lazily declares them in a module-level dict literal
``_EXPORTS = {"name": "submodule", …}`` (see :func:`lazy_exports`): ``from repgeom.pkg import name`` then
depends on that one submodule (and what it imports), so editing a package's verdict code does not rerun its
training jobs; importing the package object itself (``from repgeom import pkg``) depends on every submodule.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
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


def _imported_names(path: Path, dotted: str | None) -> set[tuple[str, bool]]:
    """Every module name an ``import`` in ``path`` may load, relative imports resolved against ``dotted``, each
    with whether the module object itself is taken (``import x``, the names of ``from pkg import x``) or only
    loaded on the way to a name in it (the ``pkg`` of ``from pkg import x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    names: set[tuple[str, bool]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.name, True) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if dotted is None:
                    continue
                parts = dotted.split(".") if is_pkg else dotted.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add((base, False))
            names.update((f"{base}.{a.name}", True) for a in node.names)  # a submodule, or a name in base
    return {(n, whole) for n, whole in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def lazy_exports(init: Path) -> dict[str, str]:
    """The ``_EXPORTS`` dict literal of a package's ``__init__.py`` (public name → submodule), else ``{}``."""
    if init.name != "__init__.py" or not init.is_file():
        return {}
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets) and node.value is not None:
                return ast.literal_eval(node.value)
    return {}


def library_modules(script: str | Path, src: str | Path) -> list[Path]:
    """The library files that ``script`` (a wrapper, or a library module) imports, transitively, sorted."""
    return sorted(_closure(Path(script).resolve(), Path(src).resolve()))


@cache
def _closure(script: Path, src: Path) -> frozenset[Path]:
    todo = [(script, _dotted(src, script) if script.is_relative_to(src) else None)]
    seen: set[Path] = set()
    while todo:
        path, dotted = todo.pop()
        for name, whole in _imported_names(path, dotted):
            for f in _files_for(src, name, whole):
                if f not in seen:
                    seen.add(f)
                    todo.append((f, _dotted(src, f)))
    seen.discard(script)
    return frozenset(seen)


def _files_for(src: Path, name: str, whole: bool = True) -> list[Path]:
    """The files that importing ``name`` runs: its parent packages and itself; for a lazily exporting package,
    the submodule of an exported name, or every exported submodule when the package object itself is taken
    (``whole``)."""
    parts = name.split(".")
    files = [f for i in range(1, len(parts) + 1) if (f := _module_file(src, ".".join(parts[:i]))) is not None]
    parent = _module_file(src, ".".join(parts[:-1])) if len(parts) > 1 else None
    exports = lazy_exports(parent) if parent is not None else {}
    if parts[-1] in exports and exports[parts[-1]] != parts[-1]:  # from repgeom.pkg import name
        files += _files_for(src, ".".join(parts[:-1] + [exports[parts[-1]]]))
    own = _module_file(src, name)
    if whole and own is not None and own.name == "__init__.py":  # the package object: any export may be used
        for sub in set(lazy_exports(own).values()):
            files += _files_for(src, f"{name}.{sub}")
    return files


def code_version(script: str | Path, src: str | Path) -> str:
    """sha256 (16 hex digits) over the paths and bytes of :func:`library_modules` of ``script``."""
    src = Path(src).resolve()
    h = hashlib.sha256()
    for f in library_modules(script, src):
        h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
