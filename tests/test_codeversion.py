"""Code versions: each rule hashes exactly the library modules its wrapper script imports, transitively."""

import re
import textwrap

import pytest
from conftest import ROOT

from repgeom.codeversion import code_of, code_version, library_modules

SRC = ROOT / "src"
SCRIPTS = ROOT / "workflow" / "scripts"


def _mods(script):
    return {str(p.relative_to(SRC / "repgeom")) for p in library_modules(SCRIPTS / f"{script}.py", SRC)}


def test_every_rule_hashes_the_script_it_runs():
    text = "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    rules = re.split(r"(?m)^rule ", text)[1:]
    with_script = 0
    for body in rules:
        name = body.split(":", 1)[0]
        script = re.search(r'script:\s*\n\s*"\.\./scripts/(\w+)\.py"', body)
        if script:
            with_script += 1
            assert f'get_code_version("{script.group(1)}")' in body, name
    assert with_script >= 20


def test_modules_follow_what_the_wrappers_really_import():
    """The drift the hand-kept lists had: STS jobs read shards through activations, merging scores use models
    and corpora, every model-running job picks its device through devices."""
    for script in ("sts_variant", "sts_autoencoders"):
        m = _mods(script)
        assert any(p.startswith("activations") for p in m) and any(p.startswith("sts") for p in m), m
    m = _mods("merging_scores")
    assert {"models.py", "corpora/pairs.py", "devices.py"} <= m and any(p.startswith("merging") for p in m), m
    for script in ("merging_train", "activations", "embeddings"):
        assert "devices.py" in _mods(script), script
    assert "__init__.py" in _mods("sequences") and "artifacts.py" in _mods("sequences")
    assert not any(p.startswith(("sts", "merging")) for p in _mods("sequences"))


def test_relative_lazy_and_parent_package_imports(tmp_path):
    pkg = tmp_path / "src" / "repgeom"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from .b import x\n",
        "b.py": "x = 1\ndef f():\n    from .sub import deep  # lazy\n",
        "c.py": "y = 2\n",  # imported by nobody
        "sub/__init__.py": "",
        "sub/deep.py": "from ..d import z\n",
        "d.py": "z = 3\n",
    }
    for name, body in files.items():
        (pkg / name).write_text(textwrap.dedent(body))
    script = tmp_path / "wrapper.py"
    script.write_text("import sys\nfrom repgeom.a import x\n")
    got = {str(p.relative_to(pkg)) for p in library_modules(script, tmp_path / "src")}
    assert got == {"__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/deep.py", "d.py"}
    v0 = code_version(script, tmp_path / "src")
    (pkg / "c.py").write_text("y = 3\n")
    assert code_version(script, tmp_path / "src") == v0  # not imported: no rerun
    (pkg / "d.py").write_text("z = 4\n")
    assert code_version(script, tmp_path / "src") != v0  # reached through a lazy import in a subpackage


def test_a_lazily_exporting_package_costs_only_the_submodules_a_wrapper_names(tmp_path):
    """`from repgeom.pkg import train` depends on pkg/training.py alone; `from repgeom import pkg` on all."""
    pkg = tmp_path / "src" / "repgeom" / "pkg"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg.parent / "shared.py").write_text("s = 1\n")
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        import importlib
        _EXPORTS = {"train": "training", "verdict": "verdicts"}
        def __getattr__(name):
            return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    """)
    )
    (pkg / "training.py").write_text("from ..shared import s\ndef train(): ...\n")
    (pkg / "verdicts.py").write_text("def verdict(): ...\n")
    one = tmp_path / "one.py"
    one.write_text("from repgeom.pkg import train\n")
    whole = tmp_path / "whole.py"
    whole.write_text("from repgeom import pkg\n")

    def mods(script):
        return {str(p.relative_to(pkg.parent)) for p in library_modules(script, tmp_path / "src")}

    assert mods(one) == {"__init__.py", "pkg/__init__.py", "pkg/training.py", "shared.py"}
    assert mods(whole) == {"__init__.py", "pkg/__init__.py", "pkg/training.py", "pkg/verdicts.py", "shared.py"}


def test_every_lazy_export_resolves_without_loading_torch():
    import subprocess
    import sys

    code = (
        "import importlib, sys\n"
        "sys.path.insert(0, 'src')\n"
        "for pkg in ('activations', 'sts', 'merging', 'corpora'):\n"
        "    m = importlib.import_module('repgeom.' + pkg)\n"
        "    for n in (*m._EXPORTS, *m._SUBMODULES):\n"
        "        getattr(m, n)\n"
        "    assert set(m.__all__) <= set(dir(m))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


BASE = '''"""A module."""

import math  # a comment

RATE = 0.5


class Scaler:
    """Scales."""

    def scale(self, x, k=2):
        """By k."""
        return x * k  # times


async def fetch(url):
    """Fetches."""
    return url


def label(n):
    return f"{n} items" if n != 1 else "one item"
'''
SAME = {  # only comments, docstrings, blank lines and layout differ
    "comment edited": BASE.replace("# a comment", "# another comment"),
    "comment added": BASE.replace("RATE = 0.5", "# why 0.5\nRATE = 0.5  # see the paper"),
    "module docstring": BASE.replace('"""A module."""', '"""A module.\n\nWith more words."""'),
    "class docstring": BASE.replace('"""Scales."""', '"""Scales\n    its input."""'),
    "method docstring gone": BASE.replace('        """By k."""\n', ""),
    "async docstring": BASE.replace('"""Fetches."""', "'''Fetches a URL.'''"),
    "function docstring added": BASE.replace("def label(n):\n", 'def label(n):\n    """Words."""\n'),
    "layout": BASE.replace("return x * k", "return (\n            x\n            * k\n        )").replace(
        "\n\n\n", "\n\n"
    ),
    "quotes": BASE.replace('f"{n} items"', "f'{n} items'"),
}
OTHER = {  # what runs differs
    "a constant": BASE.replace("RATE = 0.5", "RATE = 0.25"),
    "a default": BASE.replace("k=2", "k=3"),
    "an operator": BASE.replace("x * k", "x ** k"),
    "a name": BASE.replace("import math", "import cmath"),
    "a string that is code": BASE.replace('"one item"', '"1 item"'),
    "a statement": BASE + "RATE += 1\n",
    "a docstring moved below code": BASE.replace(
        '        """By k."""\n        return', '        y = x\n        """By k."""\n        return'
    ),
}


@pytest.mark.parametrize("name", sorted(SAME))
def test_comments_docstrings_and_layout_change_no_code_version(tmp_path, name):
    """A documentation edit reruns nothing: the version is the code's, not the file's bytes."""
    base, other = tmp_path / "base.py", tmp_path / "other.py"
    base.write_text(BASE)
    other.write_text(SAME[name])
    assert base.read_bytes() != other.read_bytes()
    assert code_of(other) == code_of(base)


@pytest.mark.parametrize("name", sorted(OTHER))
def test_every_change_to_what_runs_changes_the_code_version(tmp_path, name):
    base, other = tmp_path / "base.py", tmp_path / "other.py"
    base.write_text(BASE)
    other.write_text(OTHER[name])
    assert code_of(other) != code_of(base)


def test_equal_values_of_other_types_are_other_code(tmp_path):
    versions = set()
    for i, value in enumerate(["1", "1.0", "True", "-0.0", "0.0", "b'1'", "'1'"]):
        (tmp_path / f"m{i}.py").write_text(f"x = {value}\n")
        versions.add(code_of(tmp_path / f"m{i}.py"))
    assert len(versions) == 7


def test_a_module_that_does_not_parse_is_named(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    with pytest.raises(SyntaxError) as e:
        code_of(bad)
    assert e.value.filename == str(bad)
