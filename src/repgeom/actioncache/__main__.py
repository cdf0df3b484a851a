"""``python -m repgeom.actioncache {info,list,verify,prune,restore}``: look after the action cache's store."""

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
    r = sub.add_parser("restore", help="put an entry's outputs back (run in the workflow's folder)")
    r.add_argument("key", help="the entry's key (a failed job's log names its last good one)")
    r.add_argument("--force", action="store_true", help="replace outputs that exist")
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
    elif args.cmd == "restore":
        entry = store.lookup(args.key)
        if entry is None:
            print(f"no entry {args.key} in {store.root} (python -m repgeom.actioncache list shows them)")
            return 1
        outputs = [o["path"] for o in entry["outputs"]]
        there = [o for o in outputs if Path(o).exists()]
        if there and not args.force:
            print(f"not replacing what exists: {', '.join(there)} (--force replaces it)")
            return 1
        if not store.restore(args.key, outputs):
            print(f"entry {args.key} is damaged and was removed: nothing restored")
            return 1
        print(f"restored {', '.join(outputs)} ({entry.get('rule')}, made {entry.get('created')})")
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
