"""Which library definitions a wrapper can reach, found by static name resolution, and one hash of their code.

A job's code version (:func:`definitions_version`) covers the code its wrapper can run, not every module its
imports touch: editing a function that no job of a rule calls reruns none of them. Starting from the wrapper's
statements, every name they use is resolved to the definition it names (a function, a class, a module-level
assignment, in this module or through its imports), and that definition's own names in turn, transitively. What
is hashed per definition is its code as :func:`repgeom.codeversion.code_of` sees it (the syntax tree without
docstrings): comments, docstrings and layout do not count.

Conservative where static resolution cannot see:

- importing a module runs its top-level statements: every one that is not a plain definition (a call, an ``if``
  or ``try`` block, a loop), every decorated definition but those of known harmless decorators (a registry filled
  by ``@corpus("stsb")`` counts whole), and its imports (so the modules they load) are in the version of every
  job that loads it, with its parent packages';
- a definition that calls ``getattr``, ``eval``, ``exec``, ``globals``, ``vars``, ``__import__`` or
  ``importlib.import_module`` pulls in its whole module (every definition in it); a star import, its whole
  source module;
- a module used as a value (passed, not only ``mod.name``), and a name a module does not define (a lazy package's
  ``__getattr__``), pull in the whole module;
- a class counts whole (every method and attribute), so a method of a returned object is covered by the function
  that builds it.

Third-party code is not followed: its distribution's version is in every job's action key
(:mod:`repgeom.actioncache.key`). Packages that export their names lazily declare them in ``_EXPORTS`` (see
:mod:`repgeom.lazy`), which is followed like an import.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from .codeversion import PACKAGE, _canonical, _module_index, lazy_exports

#: decorators that only wrap or describe what they decorate (no registration): such a definition counts only when used
PURE_DECORATORS = frozenset(
    {
        "dataclass",
        "dataclasses.dataclass",
        "cache",
        "functools.cache",
        "lru_cache",
        "functools.lru_cache",
        "cached_property",
        "functools.cached_property",
        "property",
        "staticmethod",
        "classmethod",
        "contextmanager",
        "contextlib.contextmanager",
        "wraps",
        "functools.wraps",
        "abstractmethod",
        "abc.abstractmethod",
        "overload",
        "typing.overload",
    }
)
#: calls that reach names no static reading can follow
DYNAMIC_CALLS = frozenset({"getattr", "eval", "exec", "globals", "vars", "__import__", "import_module"})
#: modules whose dynamic imports are the lazy exports this module resolves statically from ``_EXPORTS``
LAZY_MODULES = frozenset({f"{PACKAGE}.lazy"})


def _code(node: ast.AST) -> bytes:
    out: list[str] = []
    _canonical(node, out)
    return "\0".join(out).encode("utf-8", "surrogatepass")


def _decorator_name(d: ast.expr) -> str:
    d = d.func if isinstance(d, ast.Call) else d
    parts = []
    while isinstance(d, ast.Attribute):
        parts.append(d.attr)
        d = d.value
    if isinstance(d, ast.Name):
        parts.append(d.id)
    return ".".join(reversed(parts))


@dataclass
class _Stmt:
    """One top-level statement of a module: its code, the names it binds, the names it uses (``(name, attr)``
    pairs: ``attr`` when used as ``name.attr``), whether importing the module runs code of consequence (``always``)
    and whether it uses a name no static reading can follow (``dynamic``)."""

    code: bytes
    binds: set[str]
    uses: set[tuple[str, str | None]]
    always: bool
    dynamic: bool = False
    imports: list[tuple[int, str | None, tuple[tuple[str, str], ...] | None]] = field(default_factory=list)


def _uses(node: ast.AST) -> tuple[set[tuple[str, str | None]], bool, list]:
    """Names ``node`` reads (with the attribute read off each, where it is ``name.attr``), whether it calls
    something dynamic, and the imports inside it (``(level, module, ((name, alias), …) or None)``)."""
    uses: set[tuple[str, str | None]] = set()
    dynamic = False
    imports: list = []
    attr_of: dict[int, str] = {}
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            attr_of[id(n.value)] = n.attr
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Load, ast.Del)):
            uses.add((n.id, attr_of.get(id(n))))
        elif isinstance(n, ast.Call):
            f = n.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in DYNAMIC_CALLS:
                dynamic = True
        elif isinstance(n, ast.Import):
            imports.append((0, None, tuple((a.name, a.asname or a.name.split(".")[0]) for a in n.names)))
        elif isinstance(n, ast.ImportFrom):
            if any(a.name == "*" for a in n.names):
                dynamic = True
            imports.append((n.level, n.module, tuple((a.name, a.asname or a.name) for a in n.names)))
    return uses, dynamic, imports


def _binds(stmt: ast.stmt) -> set[str]:
    names: set[str] = set()
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    for n in ast.walk(stmt):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.alias):
            names.add(n.asname or n.name.split(".")[0])
    return names


def _is_type_checking(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)


@cache
def _parse(raw: bytes, filename: str) -> tuple[_Stmt, ...]:
    tree = ast.parse(raw, filename=filename)
    out = []
    body = tree.body[1:] if tree.body and _docstring(tree.body[0]) else tree.body
    for stmt in body:
        if _is_type_checking(stmt):  # imports for annotations only: never run
            continue
        uses, dynamic, imports = _uses(stmt)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            always = any(_decorator_name(d) not in PURE_DECORATORS for d in stmt.decorator_list)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            always = False
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            always = True  # what it binds, and that its module is loaded
        else:
            always = True  # a call, a block, a loop: runs at import
        out.append(_Stmt(_code(stmt), _binds(stmt), uses, always, dynamic, imports))
    return tuple(out)


def _docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


class CodeGraph:
    """The definitions of the package under ``src`` and how they refer to each other."""

    def __init__(self, src: str | Path):
        self.src = Path(src).resolve()
        self.index = _module_index(self.src)

    def statements(self, module: str) -> tuple[_Stmt, ...]:
        path = self.index[module]
        return _parse(path.read_bytes(), str(path))

    def _is_package(self, module: str) -> bool:
        return self.index[module].name == "__init__.py"

    def _resolve_import(self, module: str, level: int, target: str | None) -> str:
        if not level:
            return target or ""
        parts = module.split(".") if self._is_package(module) else module.split(".")[:-1]
        parts = parts[: len(parts) - (level - 1)]
        return ".".join(parts + ([target] if target else []))

    def exports(self, module: str) -> dict[str, str]:
        """A lazy package's ``_EXPORTS`` (name → submodule), else ``{}``."""
        return lazy_exports(self.index[module])

    def reach(self, script: str | Path) -> dict[tuple[str, int], bytes]:
        """``(module, statement index) → code`` of every top-level statement ``script`` can reach (the script's
        own statements under the module name ``""``)."""
        return self._walk(script).reached

    def loaded(self, script: str | Path) -> list[Path]:
        """The library files a run of ``script`` imports (at the top of a module it loads, or inside a definition
        it reaches): what an import-time statement added to one of them reruns. Sorted."""
        return sorted(self.index[m] for m in self._walk(script).loaded)

    @cache  # noqa: B019 - one graph per src walk, few scripts
    def _walk(self, script: str | Path) -> _Walk:
        script = Path(script).resolve()
        stmts = _parse(script.read_bytes(), str(script))
        walk = _Walk(self)
        for i, s in enumerate(stmts):
            walk.add_stmt("", i, s, stmts)
        walk.run()
        return walk


class _Walk:
    def __init__(self, graph: CodeGraph):
        self.g = graph
        self.reached: dict[tuple[str, int], bytes] = {}
        self.loaded: set[str] = set()
        self.whole: set[str] = set()
        self.todo: list[tuple[str, int, _Stmt, tuple[_Stmt, ...]]] = []
        self.binds: dict[str, dict[str, list[int]]] = {}
        self.imports: dict[tuple[str, int], dict[str, tuple[str, str | None]]] = {}

    def _bound(self, module: str, stmts: tuple[_Stmt, ...]) -> dict[str, list[int]]:
        if module not in self.binds:
            table: dict[str, list[int]] = {}
            for i, s in enumerate(stmts):
                for n in s.binds:
                    table.setdefault(n, []).append(i)
            self.binds[module] = table
        return self.binds[module]

    def add_stmt(self, module: str, i: int, s: _Stmt, stmts: tuple[_Stmt, ...]) -> None:
        if (module, i) not in self.reached:
            self.reached[module, i] = s.code
            self.todo.append((module, i, s, stmts))

    def run(self) -> None:
        while self.todo:
            module, i, s, stmts = self.todo.pop()
            if s.dynamic and module and module not in LAZY_MODULES:
                self.load_whole(module)
            imported = self._imports_of(module, i, s)
            for target, name in {(t, n) for t, n in imported.values()}:  # an import runs its module
                sub = f"{target}.{name}" if name is not None else None
                self.load(sub if sub in self.g.index else target)
            for name, attr in s.uses:
                if name in imported:  # an import inside this statement (a function's own)
                    self.resolve_imported(imported[name], attr)
                self.use(module, stmts, name, attr)

    def use(self, module: str, stmts: tuple[_Stmt, ...], name: str, attr: str | None) -> None:
        """``name`` (read as ``name.attr`` when ``attr``) in ``module``: the top-level statements that bind it, and
        through an import statement among them, what it imports."""
        for j in self._bound(module, stmts).get(name, ()):
            s = stmts[j]
            self.add_stmt(module, j, s, stmts)
            imported = self._imports_of(module, j, s)
            if name in imported:
                self.resolve_imported(imported[name], attr)

    def _imports_of(self, module: str, i: int, s: _Stmt) -> dict[str, tuple[str, str | None]]:
        """Local name → ``(module, name in it, or None for the module itself)`` of the library imports in ``s``."""
        if (module, i) in self.imports:
            return self.imports[module, i]
        out: dict[str, tuple[str, str | None]] = {}
        for level, mod, names in s.imports:
            if mod is None and not level:  # import a.b.c [as x]
                for full, alias in names or ():
                    if full == PACKAGE or full.startswith(PACKAGE + "."):
                        if alias != full and alias == full.split(".")[0]:  # binds the top package: used anyhow
                            self.load_whole(full)
                        out[alias] = (full if alias != full.split(".")[0] or alias == full else PACKAGE, None)
                continue
            base = self.g._resolve_import(module, level, mod) if module else (mod or "")
            if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
                continue
            for name, alias in names or ():
                if name == "*":
                    self.load_whole(base)
                    continue
                out[alias] = (base, name)
        self.imports[module, i] = out
        return out

    def resolve_imported(self, target: tuple[str, str | None], attr: str | None) -> None:
        module, name = target
        if name is None:  # a module object
            self.resolve_module_use(module, attr)
        elif f"{module}.{name}" in self.g.index:  # from pkg import submodule
            self.resolve_module_use(f"{module}.{name}", attr)
        else:
            self.resolve_name(module, name)

    def resolve_module_use(self, module: str, attr: str | None) -> None:
        if module not in self.g.index:
            return
        self.load(module)
        if attr is None:  # the module as a value: anything in it may be used
            self.load_whole(module)
        elif f"{module}.{attr}" in self.g.index:
            self.load(f"{module}.{attr}")
        else:
            self.resolve_name(module, attr)

    def resolve_name(self, module: str, name: str) -> None:
        """``from module import name``: the statements that bind it, through re-exports and lazy exports."""
        if module not in self.g.index:
            return
        self.load(module)
        stmts = self.g.statements(module)
        if name in self._bound(module, stmts):
            self.use(module, stmts, name, None)
            return
        exports = self.g.exports(module)
        sub = f"{module}.{exports.get(name)}"
        if name in exports and sub in self.g.index:
            if exports[name] == name:
                self.resolve_module_use(sub, None)
            else:
                self.resolve_name(sub, name)
            return
        self.load_whole(module)  # a name the module does not bind: whatever its __getattr__ does

    def load(self, module: str) -> None:
        """Importing ``module``: its parent packages and it run their top-level code of consequence."""
        parts = module.split(".")
        for k in range(1, len(parts) + 1):
            m = ".".join(parts[:k])
            if m in self.loaded or m not in self.g.index:
                continue
            self.loaded.add(m)
            stmts = self.g.statements(m)
            for j, s in enumerate(stmts):
                if s.always:
                    self.add_stmt(m, j, s, stmts)

    def load_whole(self, module: str) -> None:
        if module in self.whole or module not in self.g.index:
            return
        self.whole.add(module)
        self.load(module)
        stmts = self.g.statements(module)
        for j, s in enumerate(stmts):
            self.add_stmt(module, j, s, stmts)
        for name in self.g.exports(module):  # a lazy package used whole: any export may be used
            self.resolve_name(module, name)


def definitions_version(script: str | Path, src: str | Path) -> str:
    """sha256 (16 hex digits) over the library statements ``script`` can reach (:meth:`CodeGraph.reach`), by
    module and in source order; the script's own statements are left to Snakemake and the action key."""
    graph = CodeGraph(src)
    reached = graph.reach(script)
    h = hashlib.sha256()
    for (module, _), code in sorted(reached.items()):  # in source order; positions left out, so that a statement
        if module:  # added where no job reaches it changes nothing
            h.update(module.encode() + b"\0" + code + b"\0")
    return h.hexdigest()[:16]
