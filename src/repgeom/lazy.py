"""Lazy package exports: a package's public names, each imported from its submodule on first use.

A package's ``__init__`` declares ``_EXPORTS = {"name": "submodule", …}`` as a dict literal (which
:mod:`repgeom.codeversion` reads without importing, so a job's code version covers only the submodules whose
names its wrapper imports) and the submodules one may take whole, then ends with::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS, _SUBMODULES)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str], submodules: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """The module-level ``__getattr__`` and ``__dir__`` (PEP 562) and ``__all__`` of ``package`` (an underscored
    export, e.g. a test counter, resolves but stays out of ``__all__``)."""
    public = [*(k for k in exports if not k.startswith("_")), *submodules]

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        if name in submodules:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports, *submodules})

    return __getattr__, __dir__, public
