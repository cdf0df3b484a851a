"""Where the action cache lives and whether it is on: the ``cache`` config key, then the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: environment variables: the store's folder (when the config leaves ``cache.dir`` unset), and a switch that turns
#: the cache off for one run whatever the config says (``REPGEOM_CACHE=off``)
DIR_ENV = "REPGEOM_CACHE_DIR"
SWITCH_ENV = "REPGEOM_CACHE"
_OFF = {"0", "off", "false", "no"}


def default_dir() -> Path:
    """``$REPGEOM_CACHE_DIR``, else ``$XDG_CACHE_HOME/repgeom/actions``, else ``~/.cache/repgeom/actions``: one
    store per user, shared by every clone of the workflow (and by cluster nodes where the home folder is shared)."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "repgeom" / "actions"


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool
    dir: Path
    max_gb: float

    @classmethod
    def of(cls, config: Mapping[str, Any] | None) -> CacheSettings:
        """From a workflow config's ``cache`` entry (absent keys take the schema's defaults: on, the default
        folder, 50 GB), then ``REPGEOM_CACHE=off`` turns it off."""
        c = dict((config or {}).get("cache") or {})
        enabled = bool(c.get("enabled", True)) and os.environ.get(SWITCH_ENV, "").lower() not in _OFF
        folder = Path(c["dir"]).expanduser() if c.get("dir") else default_dir()
        return cls(enabled=enabled, dir=folder, max_gb=float(c.get("max_gb", 50)))
