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

What is hashed is each module's code (:func:`code_of`): its syntax tree without docstrings, so that editing only
comments, docstrings, blank lines or layout (a formatter's run) reruns nothing, while any change to what runs (a
statement, a name, a default, a string that is not a docstring) reruns the jobs that run it.
"""

from __future__ import annotations

import ast
import hashlib
import os
from functools import cache
from pathlib import Path

PACKAGE = "repgeom"


def _module_index(src: Path) -> dict[str, Path]:
    """Every module of the package under ``src`` by dotted name (``repgeom.x.y``): the file ``x/y.py``, else
    ``x/y/__init__.py``. Listed once per walk of a wrapper's imports instead of two file checks per name tried."""
    index: dict[str, Path] = {}
    root = src / PACKAGE
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(folder)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = here / name
            rel = path.relative_to(src).with_suffix("")
            if rel.name == "__init__":
                index.setdefault(".".join(rel.parts[:-1]), path)  # a module file of the same name comes first
            else:
                index[".".join(rel.parts)] = path
    return index


def _dotted(src: Path, path: Path) -> str:
    """``repgeom.x.y`` for ``src/repgeom/x/y.py`` (or ``.../y/__init__.py``)."""
    rel = path.relative_to(src).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@cache
def _module_facts(raw: bytes, filename: str) -> tuple[tuple, dict, bytes]:
    """``(imports, exports, code)`` of a module's source, parsed once per distinct content in a process (Snakemake
    evaluates every rule's code version at each start: each module is reached from many wrappers). ``imports``:
    ``(level, module or None, names or None)`` per ``from … import`` (names ``None`` for a plain ``import``, whose
    module is then each alias); ``exports``: the ``_EXPORTS`` dict literal at module level, else ``{}``;
    ``code``: :func:`code_of`'s bytes."""
    tree = ast.parse(raw, filename=filename)
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.extend((0, a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.level, node.module, tuple(a.name for a in node.names)))
    exports: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets) and node.value is not None:
                exports = ast.literal_eval(node.value)
                break
    out: list[str] = []
    try:
        _canonical(tree, out)
        code = "\0".join(out).encode("utf-8", "surrogatepass")
    except RecursionError:  # nested deeper than the walk can go: the raw bytes, as any edit reruns
        code = raw
    return tuple(imports), exports, code


def code_of(path: str | Path) -> bytes:
    """What a module runs, as bytes that change when its code does and not when only its comments, docstrings,
    blank lines or layout do, so that a documentation edit reruns no job: its syntax tree without the docstrings
    of the module, its classes and functions, written out field by field (:func:`_canonical`). A file that does
    not parse raises :class:`SyntaxError`."""
    path = Path(path)
    return _module_facts(path.read_bytes(), str(path))[2]


_DOC_HOLDERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _is_docstring(stmt: ast.AST) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _canonical(node, out: list[str]) -> None:
    """Append ``node`` written out: a syntax node as its class and its fields by name, a list item by item, any
    other value (a constant, an identifier) as its type and ``repr``. Docstrings are left out, and so are fields
    that are unset or empty, so that a Python release that adds an optional field to a node (as 3.12 added
    ``type_params``) writes the same. Positions (line and column) are not fields: layout does not count."""
    if isinstance(node, ast.AST):
        out.append(type(node).__name__ + "(")
        for name in node._fields:
            value = getattr(node, name, None)
            if name == "body" and isinstance(node, _DOC_HOLDERS) and value and _is_docstring(value[0]):
                value = value[1:]
            if value is None or (isinstance(value, list) and not value):
                continue
            out.append(name + "=")
            _canonical(value, out)
        out.append(")")
    elif isinstance(node, list):
        out.append("[")
        for item in node:
            _canonical(item, out)
        out.append("]")
    else:
        out.append(f"{type(node).__name__}:{node!r}")


def _imported_names(path: Path, dotted: str | None) -> set[tuple[str, bool]]:
    """Every module name an ``import`` in ``path`` may load, relative imports resolved against ``dotted``, each
    with whether the module object itself is taken (``import x``, the names of ``from pkg import x``) or only
    loaded on the way to a name in it (the ``pkg`` of ``from pkg import x``)."""
    imports = _module_facts(path.read_bytes(), str(path))[0]
    is_pkg = path.name == "__init__.py"
    names: set[tuple[str, bool]] = set()
    for level, module, aliases in imports:
        if aliases is None:  # import x
            names.add((module, True))
            continue
        if level:
            if dotted is None:
                continue
            parts = dotted.split(".") if is_pkg else dotted.split(".")[:-1]
            parts = parts[: len(parts) - (level - 1)]
            base = ".".join(parts + ([module] if module else []))
        else:
            base = module or ""
        names.add((base, False))
        names.update((f"{base}.{a}", True) for a in aliases)  # a submodule, or a name in base
    return {(n, whole) for n, whole in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def lazy_exports(init: Path) -> dict[str, str]:
    """The ``_EXPORTS`` dict literal of a package's ``__init__.py`` (public name → submodule), else ``{}``."""
    if init.name != "__init__.py" or not init.is_file():
        return {}
    return dict(_module_facts(init.read_bytes(), str(init))[1])


def library_modules(script: str | Path, src: str | Path) -> list[Path]:
    """The library files that ``script`` (a wrapper, or a library module) imports, transitively, sorted."""
    return sorted(_closure(Path(script).resolve(), Path(src).resolve()))


@cache
def _closure(script: Path, src: Path) -> frozenset[Path]:
    index = _module_index(src)
    todo = [(script, _dotted(src, script) if script.is_relative_to(src) else None)]
    seen: set[Path] = set()
    while todo:
        path, dotted = todo.pop()
        for name, whole in _imported_names(path, dotted):
            for f in _files_for(index, name, whole):
                if f not in seen:
                    seen.add(f)
                    todo.append((f, _dotted(src, f)))
    seen.discard(script)
    return frozenset(seen)


def _files_for(index: dict[str, Path], name: str, whole: bool = True) -> list[Path]:
    """The files that importing ``name`` runs (``index``: :func:`_module_index`): its parent packages and itself;
    for a lazily exporting package, the submodule of an exported name, or every exported submodule when the
    package object itself is taken (``whole``)."""
    parts = name.split(".")
    files = [f for i in range(1, len(parts) + 1) if (f := index.get(".".join(parts[:i]))) is not None]
    parent = index.get(".".join(parts[:-1])) if len(parts) > 1 else None
    exports = lazy_exports(parent) if parent is not None else {}
    if parts[-1] in exports and exports[parts[-1]] != parts[-1]:  # from repgeom.pkg import name
        files += _files_for(index, ".".join(parts[:-1] + [exports[parts[-1]]]))
    own = index.get(name)
    if whole and own is not None and own.name == "__init__.py":  # the package object: any export may be used
        for sub in set(lazy_exports(own).values()):
            files += _files_for(index, f"{name}.{sub}")
    return files


def code_version(script: str | Path, src: str | Path) -> str:
    """sha256 (16 hex digits) over the paths and the code (:func:`code_of`: not comments, docstrings or layout) of
    :func:`library_modules` of ``script``."""
    src = Path(src).resolve()
    h = hashlib.sha256()
    for f in library_modules(script, src):
        h.update(str(f.relative_to(src)).encode() + b"\0" + code_of(f) + b"\0")
    return h.hexdigest()[:16]
