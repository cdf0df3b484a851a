"""The config schema (``workflow/schemas/config.schema.yaml``): loading it, validating against it and filling its
defaults. The only place a default is written is the schema; this module imports nothing else of the package, so
library code that fills a partial entry (:func:`fill_entry_defaults`) stays light and depends on nothing else.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and the value."""


def load_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def default_filling_validator(schema: dict) -> Any:
    """A JSON Schema (2020-12) validator for ``schema`` that fills every missing key that has a default."""
    import jsonschema

    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(schema)


def schema_problems(instance: Any, schema: dict, prefix: str = "") -> list[str]:
    """Fill ``instance``'s defaults in place and list what the schema refuses, each naming its key and value."""
    validator = default_filling_validator(schema)
    # two passes: the first fills nested defaults, the second reports on the filled instance
    list(validator.iter_errors(instance))
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    problems = []
    for e in errors:
        best = e
        if e.context:  # if/then, oneOf: report the most specific sub-error
            best = max(e.context, key=lambda c: len(list(c.absolute_path)))
        key = ".".join([prefix] * bool(prefix) + [str(p) for p in best.absolute_path]) or "<top level>"
        value = best.instance
        shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 80 else "<…>"
        problems.append(f"config key '{key}' = {shown}: {_message(best)}")
    return problems


def fill_entry_defaults(entry: dict, pointer: str, where: str = "") -> dict:
    """Validate one config entry against the schema at JSON ``pointer`` (e.g. ``/$defs/corpus``) and fill its
    defaults in place: library calls made outside a workflow get the same defaults as the workflow's. ``where``
    names the entry in messages (e.g. ``data.stsb``)."""
    schema = load_schema()
    sub: Any = schema
    for part in pointer.strip("/").split("/"):
        sub = sub[part]
    problems = schema_problems(entry, {**sub, "$defs": schema["$defs"]}, where)
    if problems:
        raise ConfigError(f"invalid config entry ({where or pointer}):\n  - " + "\n  - ".join(problems))
    return entry


def _message(err) -> str:
    if err.validator == "pattern" and isinstance(err.instance, str):
        return (
            "not a safe name (letters, digits, '_', '-', single '.', at most 64 characters; no '/', '..' or spaces)"
            if "A-Za-z0-9_-" in err.validator_value
            else f"does not match {err.validator_value!r}"
        )
    if err.validator == "additionalProperties":
        return err.message.replace("Additional properties are not allowed", "unknown key(s)")
    return err.message
