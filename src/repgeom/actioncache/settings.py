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


#: the store's folder when neither the config nor the environment names one: in the working folder, so on the
#: results' file system (every insert and restore a hard link, no copy; no home quota filled by a cluster's shards)
LOCAL_DIR = Path(".snakemake") / "repgeom" / "actions"


def default_dir() -> Path:
    """``$REPGEOM_CACHE_DIR``, else ``.snakemake/repgeom/actions`` in the working folder (absolute). Clones and
    cluster nodes share a store by naming one folder (``cache.dir`` or the variable) on a shared file system."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV]).expanduser().absolute()
    return LOCAL_DIR.absolute()


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool
    dir: Path
    max_gb: float

    @classmethod
    def of(cls, config: Mapping[str, Any] | None) -> CacheSettings:
        """From a workflow config's ``cache`` entry (absent keys take the schema's defaults: on, the default
        folder, 50 GB; a relative ``dir`` is the working folder's), then ``REPGEOM_CACHE=off`` turns it off."""
        c = dict((config or {}).get("cache") or {})
        enabled = bool(c.get("enabled", True)) and os.environ.get(SWITCH_ENV, "").lower() not in _OFF
        folder = Path(c["dir"]).expanduser().absolute() if c.get("dir") else default_dir()
        return cls(enabled=enabled, dir=folder, max_gb=float(c.get("max_gb", 50)))
