"""Code versions as narrow as the code a job can run (repgeom.codegraph): a table of edits of the real library that
must rerun a wrapper's jobs and of edits that must not, each applied to a scratch copy of src/."""

import shutil
from pathlib import Path

import pytest

from repgeom.codegraph import CodeGraph, definitions_version
from repgeom.codeversion import library_modules

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"


def _edit(src: Path, module: str, old: str | None, new: str) -> None:
    """Replace ``old`` (once, it must be there) by ``new`` in ``src/repgeom/{module}``; ``old=None`` appends."""
    path = src / "repgeom" / module
    text = path.read_text()
    if old is None:
        path.write_text(text + "\n" + new + "\n")
        return
    assert text.count(old) == 1, (module, old)
    path.write_text(text.replace(old, new))


# (what, wrapper, module, old, new)
MUST_RERUN = [
    (
        "a statement in a called function",
        "activations",
        "corpora/artifact.py",
        "    seen: dict[str, str] = {}\n",
        "    seen: dict[str, str] = {}\n    sids_checked = 0\n",
    ),
    ("a default argument", "activations", "artifacts.py", "block: int = 1 << 20", "block: int = 1 << 21"),
    ("a constant it reads", "activations", "activations/layout.py", "CHUNK_ROWS = 256", "CHUNK_ROWS = 512"),
    (
        "a class attribute",
        "activations",
        "params.py",
        "    sort_window: int  # rows sorted",
        "    sort_window: float  # rows sorted",
    ),
    (
        "a method of a returned object",
        "activations",
        "activations/writer.py",
        "    def flush(self) -> None:\n",
        "    def flush(self) -> None:\n        _ = None\n",
    ),
    (
        "a registry entry added",
        "activations",
        "activations/pooling.py",
        "POSITIONS = tuple(POOLINGS)",
        '@POOLINGS.register("first")\ndef pool_first(h, mask, last):\n    return h[:, 0].float()\n\n\n'
        "POSITIONS = tuple(POOLINGS)",
    ),
    ("a statement run on import", "sts_tables", "sts/tables.py", None, "print(end='')"),
    ("the corpus parser, for the corpora job", "corpora", "corpora/parsers.py", '"year": f[2],', '"year": str(f[2]),'),
]
MUST_NOT_RERUN = [
    ("an unused function", "activations", "artifacts.py", None, "def _unused():\n    return 1"),
    (
        "a plot helper, for a job that draws nothing",
        "activations",
        "plots/__init__.py",
        None,
        "def _helper():\n    return 2",
    ),
    (
        "a configuration message",
        "activations",
        "configure/checks.py",
        "def semantic_problems(",
        "def _unused_message():\n    return 'reworded'\n\n\ndef semantic_problems(",
    ),
    (
        "the corpus parser, for a job that reads corpora",
        "activations",
        "corpora/parsers.py",
        '"year": f[2],',
        '"year": str(f[2]),',
    ),
    ("a merging method, for the STS probes", "sts_variant", "merging/methods/slerp.py", None, "X_SLERP = 3"),
    ("a docstring of a reached function", "activations", "corpora/artifact.py", "A stable id", "A stable, short id"),
]


@pytest.fixture
def src(tmp_path):
    dest = tmp_path / "src"
    shutil.copytree(ROOT / "src", dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


@pytest.mark.parametrize("what,wrapper,module,old,new", MUST_RERUN, ids=[e[0] for e in MUST_RERUN])
def test_an_edit_of_code_a_job_can_run_reruns_it(src, what, wrapper, module, old, new):
    script = SCRIPTS / f"{wrapper}.py"
    before = definitions_version(script, src)
    _edit(src, module, old, new)
    assert definitions_version(script, src) != before, what


@pytest.mark.parametrize("what,wrapper,module,old,new", MUST_NOT_RERUN, ids=[e[0] for e in MUST_NOT_RERUN])
def test_an_edit_of_code_a_job_cannot_run_reruns_nothing(src, what, wrapper, module, old, new):
    script = SCRIPTS / f"{wrapper}.py"
    path = src / "repgeom" / module
    if not path.exists():
        pytest.skip(f"{module} is not in this tree")
    before = definitions_version(script, src)
    _edit(src, module, old, new)
    assert definitions_version(script, src) == before, what


def test_what_cannot_be_resolved_pulls_in_the_whole_module(tmp_path):
    pkg = tmp_path / "src" / "repgeom"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "dyn.py").write_text(
        "def used(name):\n    return getattr(__import__('os'), name)\n\n\ndef other():\n    return 1\n"
    )
    (pkg / "plain.py").write_text("def used():\n    return 1\n\n\ndef other():\n    return 2\n")
    (pkg / "star.py").write_text("from .plain import *\n")
    scripts = {}
    for name, body in {
        "dyn": "from repgeom.dyn import used\nused('sep')\n",
        "plain": "from repgeom.plain import used\nused()\n",
        "modvalue": "from repgeom import plain\nf = plain\n",
        "star": "from repgeom.star import used\n",
    }.items():
        scripts[name] = tmp_path / f"{name}.py"
        scripts[name].write_text(body)
    src = tmp_path / "src"
    v = {k: definitions_version(p, src) for k, p in scripts.items()}
    (pkg / "dyn.py").write_text((pkg / "dyn.py").read_text().replace("return 1", "return 3"))
    (pkg / "plain.py").write_text((pkg / "plain.py").read_text().replace("return 2", "return 4"))
    now = {k: definitions_version(p, src) for k, p in scripts.items()}
    assert now["dyn"] != v["dyn"]  # getattr: the whole module counts
    assert now["plain"] == v["plain"]  # other() is not reached
    assert now["modvalue"] != v["modvalue"]  # the module used as a value: whole
    assert now["star"] != v["star"]  # a star import: its whole source


def test_every_wrapper_reaches_less_than_its_imports_and_only_loaded_modules():
    graph = CodeGraph(ROOT / "src")
    for script in sorted(SCRIPTS.glob("*.py")):
        closure = set(library_modules(script, ROOT / "src"))
        loaded = set(graph.loaded(script))
        assert loaded <= closure, script.stem
        reached_modules = {m for m, _ in graph.reach(script) if m}
        assert {graph.index[m] for m in reached_modules} <= loaded, script.stem


CONFIG_TIME = ("configure/__init__.py", "configure/config.py", "configure/checks.py", "configure/stages.py")


def test_no_job_loads_configuration_time_code():
    """Validation, semantic checks and stage planning run while Snakemake builds the DAG, never inside a job: no
    wrapper loads them, so rewording a configuration error reruns nothing."""
    graph = CodeGraph(ROOT / "src")
    pkg = (ROOT / "src" / "repgeom").resolve()
    for script in sorted(SCRIPTS.glob("*.py")):
        loaded = {str(p.relative_to(pkg)) for p in graph.loaded(script)}
        assert not loaded & set(CONFIG_TIME), (script.stem, sorted(loaded & set(CONFIG_TIME)))


def test_no_import_cycle_among_library_modules():
    """Imports as the module walk reads them (TYPE_CHECKING ones too): no module reaches itself again (there were two:
    config -> config_checks -> stages -> config, activations.backoff <-> activations.batching)."""
    from repgeom.codeversion import _dotted, _files_for, _imported_names, _module_index

    src = (ROOT / "src").resolve()
    index = _module_index(src)
    graph = {}
    for name, path in index.items():
        deps = set()
        for imported, whole in _imported_names(path, name):
            for f in _files_for(index, imported, whole):
                dep = _dotted(src, f)
                if dep != name and not name.startswith(dep + "."):  # a module's own packages run first, always
                    deps.add(dep)
        graph[name] = deps
    state: dict[str, int] = {}
    cycles = []

    def visit(u, stack):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                cycles.append(" -> ".join(stack[stack.index(v) :] + [v]))
            elif v not in state:
                visit(v, stack)
        stack.pop()
        state[u] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert cycles == []
