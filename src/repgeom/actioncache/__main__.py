"""``python -m repgeom.actioncache {info,list,verify,prune}``: look after the action cache's store."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import yaml

from .settings import CacheSettings
from .store import Store


def _settings(args: argparse.Namespace) -> CacheSettings:
    config = {}
    if args.configfile:
        config = yaml.safe_load(Path(args.configfile).read_text()) or {}
    s = CacheSettings.of(config)
    if args.dir:
        s = CacheSettings(s.enabled, Path(args.dir), s.max_gb)
    return s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m repgeom.actioncache", description=__doc__)
    p.add_argument("--dir", help="the store (default: the config's cache.dir, $REPGEOM_CACHE_DIR, ~/.cache/…)")
    p.add_argument("--configfile", help="a workflow config whose cache entry to use")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="where the store is, its size and entries")
    sub.add_parser("list", help="every entry: last use, rule, wildcards, size")
    v = sub.add_parser("verify", help="check every blob against its digest")
    v.add_argument("--fix", action="store_true", help="remove damaged entries and blobs")
    pr = sub.add_parser("prune", help="remove least recently used entries down to a size")
    pr.add_argument("--max-gb", type=float, help="the size to prune to (default: the config's cache.max_gb)")
    args = p.parse_args(argv)
    s = _settings(args)
    store = Store(s.dir)
    if not store.root.is_dir():
        print(f"no store at {store.root}")
        return 0 if args.cmd in ("info", "list") else 1
    if args.cmd == "info":
        n = sum(1 for _ in store.entries())
        print(f"store {store.root}: {n} entries, {store.size() / 1e9:.3f} GB (max_gb {s.max_gb})")
        print(f"writable: {store.writable()}; enabled by config and environment: {s.enabled}")
    elif args.cmd == "list":
        for path, e in store.entries():
            when = dt.datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
            if e is None:
                print(f"{when}  {path.stem[:16]}  (unreadable entry)")
                continue
            files = [f for o in e["outputs"] for f in (o["files"] if o["kind"] == "dir" else [o])]
            size = sum(f["size"] for f in files)
            wc = ",".join(f"{k}={v}" for k, v in e.get("wildcards", {}).items())
            print(f"{when}  {path.stem[:16]}  {e.get('rule')}[{wc}]  {len(files)} files  {size / 1e6:.1f} MB")
    elif args.cmd == "verify":
        rep = store.verify(fix=args.fix)
        for line in rep.problems:
            print(f"damaged: {line}")
        print(f"{rep.entries} entries checked, {len(rep.problems)} damaged", end="")
        print(f"; removed {len(rep.removed_entries)} entries and {rep.removed_blobs} blobs" if args.fix else "")
        return 1 if rep.problems and not args.fix else 0
    elif args.cmd == "prune":
        max_gb = args.max_gb if args.max_gb is not None else s.max_gb
        rep = store.prune(int(max_gb * 1e9))
        print(
            f"pruned to {rep.bytes / 1e9:.3f} GB (max {max_gb} GB): removed {len(rep.removed_entries)} entries, "
            f"{rep.removed_blobs} blobs ({rep.freed_bytes / 1e9:.3f} GB); {rep.entries} entries left"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
