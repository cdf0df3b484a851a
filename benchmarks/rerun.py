"""The blast radius of a library edit: how many jobs a statement edit schedules, and how many of them compute.

    python benchmarks/rerun.py [--configfile config/config.yaml] [--top 15] [--definitions]
    python benchmarks/rerun.py --measure-cutoff tests/configs/tiny_cache.yaml   # which rules reproduce their outputs

For the DAG of a config (the default config's unless ``--configfile``; job counts from Snakemake's dry run with
``--forceall``, rule dependencies from ``--rulegraph``) and for each library module, it prints the jobs of each rule
that a statement edit schedules and how many compute:

- **before** (main before the action cache): a rule reran when the module was in its wrapper's import closure
  (``repgeom.codeversion.library_modules``), and everything downstream of it reran too: all of them compute;
- **after**: a statement that runs on import reruns the rules whose wrappers load the module
  (``repgeom.codegraph.CodeGraph.loaded``); with ``--definitions``, an edit inside one top-level definition reruns
  the rules that reach it. Snakemake still schedules everything downstream, but with the action cache a downstream
  job restores unless an input of it comes from a computing job whose outputs are not reproduced byte for byte
  (content digest) when computed again: :data:`NOT_REPRODUCED` (none on this machine's CPU, measured with
  ``--measure-cutoff``; ``--not-reproduced activations,…`` shows what a GPU's non-deterministic kernels would cost).

Job counts are per rule (every job of a rerun rule and of the rules downstream): an upper bound where a rule fans
out by wildcard and only some of its jobs read the changed ones.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))

from repgeom.codegraph import CodeGraph  # noqa: E402
from repgeom.codeversion import library_modules  # noqa: E402
from repgeom.rulefiles import rule_scripts  # noqa: E402

#: rules whose outputs are not reproduced (content digest) when computed again from the same inputs, so their
#: consumers compute too. None, measured on this machine's CPU with --measure-cutoff on every tiny config
#: (tests/configs/tiny*.yaml: every rule reproduced its outputs); --not-reproduced models other hardware (a GPU's
#: non-deterministic kernels).
NOT_REPRODUCED: set[str] = set()


def snakemake(*args: str, configfile: Path, workdir: Path) -> str:
    snakefile = ROOT / "workflow/Snakefile"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir)]
    cmd += ["--cores", "1", *args, "--configfile", str(configfile)]
    env = {**os.environ, "REPGEOM_CACHE": "off"}
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout


def dag(configfile: Path) -> tuple[dict[str, int], dict[str, set[str]]]:
    """``(jobs per rule, rule -> the rules that read its outputs)`` of the config's whole DAG."""
    with tempfile.TemporaryDirectory() as wd:
        plan = snakemake("--dry-run", "--forceall", configfile=configfile, workdir=Path(wd))
        graph = snakemake("--rulegraph", configfile=configfile, workdir=Path(wd))
    jobs: dict[str, int] = {}
    stats = plan[plan.index("Job stats:") :].splitlines()
    for line in stats[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            if parts and parts[0] == "total":
                break
            continue
        jobs[parts[0]] = int(parts[1])
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', graph, re.M))
    down: dict[str, set[str]] = defaultdict(set)
    for a, b in re.findall(r"^\s*(\d+) -> (\d+)", graph, re.M):
        down[names[a]].add(names[b])  # a's outputs are b's inputs
    jobs.pop("all", None)
    return jobs, down


def closures(tree: Path, rules) -> dict[str, set[str]]:
    """Rule -> the library files (relative to the package) its wrapper imports, in ``tree``'s code."""
    src = tree / "src"
    scripts = rule_scripts(tree)
    return {
        r: {str(p.relative_to((src / "repgeom").resolve())) for p in library_modules(scripts[r], src)}
        for r in rules
        if r in scripts
    }


def closures_at(rev: str | None, rules) -> dict[str, set[str]]:
    """:func:`closures` in the code of commit ``rev`` (a detached worktree), or of this tree."""
    if rev is None:
        return closures(ROOT, rules)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True, capture_output=True
        )
        try:
            return closures(tree, rules)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def downstream(rules: set[str], down: dict[str, set[str]]) -> set[str]:
    seen, todo = set(rules), list(rules)
    while todo:
        for r in down.get(todo.pop(), ()):
            if r not in seen:
                seen.add(r)
                todo.append(r)
    return seen


def computing(changed: set[str], down: dict[str, set[str]]) -> set[str]:
    """The rules that compute when ``changed`` rerun for their code: they, and the consumers of a computing rule
    whose outputs are not reproduced (the rest restore from the action cache)."""
    out, todo = set(changed), list(changed)
    while todo:
        r = todo.pop()
        if r not in NOT_REPRODUCED:
            continue
        for c in down.get(r, ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def count(rules: set[str], jobs: dict[str, int]) -> int:
    return sum(jobs.get(r, 0) for r in rules)


def report(configfile: Path, top: int, definitions: bool, before_rev: str | None = None) -> None:
    jobs, down = dag(configfile)
    scripts = {r: s for r, s in rule_scripts(ROOT).items() if r in jobs}
    graph = CodeGraph(SRC)
    closure = closures_at(before_rev, scripts)
    old_modules = set().union(*closure.values())
    loaded = {r: set(graph.loaded(s)) for r, s in scripts.items()}
    reach = {r: set(graph.reach(s)) for r, s in scripts.items()}
    total = count(set(jobs), jobs)
    print(f"config {configfile.relative_to(ROOT) if configfile.is_relative_to(ROOT) else configfile}: {total} jobs")
    print("rules whose outputs are not reproduced when computed again:", ", ".join(sorted(NOT_REPRODUCED)) or "none")
    print(f"before: the import-closure rule, in the code of {before_rev or 'this tree'}")
    rows = []
    for path in sorted(graph.index.values()):
        rel = str(path.relative_to(SRC / "repgeom"))
        before = {r for r in scripts if rel in closure.get(r, ())}
        after = {r for r in scripts if path in loaded[r]}
        sched_before = count(downstream(before, down), jobs)
        sched_after = count(downstream(after, down), jobs)
        comp_after = count(computing(after, down), jobs)
        rows.append((rel, sched_before, sched_after, comp_after, count(after, jobs)))
    print(f"\n[1] a statement edit of one module (run on import), jobs of {total}; the largest savings first:")
    print(f"{'module':40s} {'before':>8s} {'after: scheduled':>17s} {'compute':>8s} {'restore':>8s}")
    for rel, sb, sa, ca, _ in sorted(rows, key=lambda x: (x[3] - x[1], x[0]))[:top]:  # the largest savings first
        print(f"{rel:40s} {sb:8d} {sa:17d} {ca:8d} {sa - ca:8d}")
    for name, i in (("before", 1), ("after, computed", 3)):
        vals = [r[i] for r in rows if i != 1 or r[0] in old_modules]  # before: the modules that were there
        print(
            f"    {name:16s} median {statistics.median(vals):6.1f} jobs, worst {max(vals)} ({rows[vals.index(max(vals))][0]})"
        )
    for rel in ("artifacts.py", "corpora/parsers.py", "config_checks.py", "configure/checks.py"):
        hit = [r for r in rows if r[0] == rel]
        if hit:
            _, sb, sa, ca, _ = hit[0]
            print(f"    {rel}: before {sb} jobs computed; after {sa} scheduled, {ca} computed, {sa - ca} restored")
    if not definitions:
        return
    drows, before_jobs = [], []
    for module, i in sorted({k for r in reach.values() for k in r if k[0]}):
        stmt = graph.statements(module)[i]
        if stmt.always or not stmt.binds:
            continue
        users = {r for r in scripts if (module, i) in reach[r]}
        rel = str(graph.index[module].relative_to(SRC / "repgeom"))
        if rel in old_modules:
            before_jobs.append(count(downstream({r for r in scripts if rel in closure.get(r, ())}, down), jobs))
        drows.append(
            (f"{module}:{'/'.join(sorted(stmt.binds))[:40]}", count(users, jobs), count(computing(users, down), jobs))
        )
    vals = [c for _, _, c in drows]
    callers = [u for _, u, _ in drows]
    print(f"\n[2] a statement edit inside one top-level definition ({len(drows)} reached by some job):")
    print(f"    before: median {statistics.median(before_jobs):.1f} jobs computed (those of its module's edit)")
    print(
        f"    jobs that really run it: median {statistics.median(callers):.1f}; computed after the edit: median "
        f"{statistics.median(vals):.1f}, worst {max(vals)}"
    )
    print(f"{'definition':60s} {'run it':>7s} {'compute':>8s}")
    for name, u, c in sorted(drows, key=lambda x: -x[2])[:top]:
        print(f"{name:60s} {u:7d} {c:8d}")


def measure_cutoff(configfile: Path) -> None:
    """Run ``configfile`` twice with --forceall (cache off) and print, per rule, whether every output's content
    digest came out the same: a rule that does not reproduce stops early cutoff for its consumers."""
    from repgeom.actioncache.digest import content_digest

    text = configfile.read_text().replace("SHARED", str(ROOT.parent / "shared" / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        (wd / "config.yaml").write_text(text)
        digests = []
        for _ in range(2):
            snakemake("--forceall", configfile=wd / "config.yaml", workdir=wd)
            out = snakemake("--summary", configfile=wd / "config.yaml", workdir=wd)
            per = {}
            for line in out.splitlines()[1:]:
                f = line.split("\t")
                if len(f) > 2 and (wd / f[0]).exists() and not f[0].startswith(("logs/", "results/benchmarks")):
                    per[f[0]] = (f[2], content_digest(wd / f[0]))
            digests.append(per)
        by_rule: dict[str, list[bool]] = defaultdict(list)
        for path, (rule, d) in digests[0].items():
            by_rule[rule].append(digests[1].get(path, (rule, None))[1] == d)
        for rule, same in sorted(by_rule.items()):
            print(f"{rule:24s} {'reproduced' if all(same) else 'NOT reproduced'} ({sum(same)}/{len(same)} outputs)")
        shutil.rmtree(wd / ".snakemake", ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", type=Path, default=ROOT / "config/config.yaml")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--definitions", action="store_true", help="also per top-level definition")
    p.add_argument("--measure-cutoff", type=Path, metavar="CONFIG", help="run a config twice, compare outputs")
    p.add_argument("--not-reproduced", default="", help="rules to count as not reproducing (comma-separated)")
    p.add_argument(
        "--before", metavar="REV", help="the commit whose import-closure rule is 'before' (default: this tree)"
    )
    args = p.parse_args()
    NOT_REPRODUCED.update(r for r in args.not_reproduced.split(",") if r)
    if args.measure_cutoff:
        measure_cutoff(args.measure_cutoff.resolve())
    else:
        report(args.configfile.resolve(), args.top, args.definitions, args.before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
