"""Configuration validation: the schema (:mod:`.schema`, defaults filled) plus the checks it cannot express
(:mod:`.checks`).

:func:`validate_config` runs in the Snakefile before any job and raises
:class:`ConfigError` naming the offending key and value. It is light (jsonschema
and PyYAML only) so that the no-op rerun stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ..schema import ConfigError, load_schema, schema_problems
from .checks import semantic_problems, unpinned_remote_code


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                f"(first at line {seen[key] + 1}) in {node.start_mark.name}"
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> Any:
    """Load YAML refusing duplicate keys (PyYAML would silently keep the last one)."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass


def validate_config(config: dict, families: Iterable[str] | None = None) -> dict:
    """Validate ``config`` in place (defaults filled in) and return it.

    Raises :class:`ConfigError` listing every problem, each naming its key.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"the configuration must be a mapping, got {type(config).__name__}")
    problems = [*moved_key_problems(config), *schema_problems(config, load_schema())]
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    problems += semantic_problems(config, families)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return config


#: keys that moved, with where to: a config still using one is told so by name
MOVED_KEYS = {
    ("sts", "positions"): "sts.templates.<name>.positions (each prompt template lists its poolings; the default "
    "template plain has [last, mean])",
}


def moved_key_problems(config: dict) -> list[str]:
    """One line per key of an older config that moved (before the schema's generic "unknown key")."""
    out = []
    for (section, key), where in MOVED_KEYS.items():
        sec = config.get(section)
        if isinstance(sec, dict) and key in sec:
            out.append(f"config key '{section}.{key}' = {sec[key]!r}: moved to {where}")
    return out


def remote_code_warnings(config: dict) -> list[str]:
    """One line per model that runs remote code that is not pinned (the Snakefile logs them)."""
    out = []
    for name, m in config.get("models", {}).items():
        src = m["source"]
        if m.get("trust_remote_code") and unpinned_remote_code(m):
            where = f"revision {src.get('revision')!r}" if src["type"] == "hub" else f"folder {src['path']!r}"
            out.append(f"model {name!r} runs remote code from unpinned {where}")
    return out


def one_model_config(name: str, entry: dict, **sections: Any) -> dict:
    """A validated config holding one model (plus any other ``sections``): how callers outside a workflow (tests,
    benchmarks, notebooks) get a stage's parameters with the schema's defaults, e.g.
    ``prepare_params(one_model_config("m", {"runtime": "decoder", "source": {...}}), "m")``."""
    return validate_config({**sections, "models": {name: entry}})
