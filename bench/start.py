#!/usr/bin/env python3
"""How fast orchestra's CLI starts: `orchestra --help`, `status` and `runs`, old and new side by side.

    python bench/start.py [--before main] [--runs 15]

Issue 23 asks for a CLI start under 120 ms. Each command runs as `python -m orchestra CMD` in a fresh
process, in an empty temporary git repository (no run under way, no past run), with PYTHONPATH set to
this checkout or to `--before` (its `git archive`), both byte-compiled first as `pip install .` does;
`python -c pass` (the same interpreter, the same site) is the floor of any Python process. The cases
alternate, each `--runs` times, and the median wall and CPU time (user + system) are shown.

Then `python -X importtime` of each: the time its imports took (the sum of the top-level imports after
site, median of 5) and which of the heavy modules it imported (pexpect, yaml, the MCP SDK, starlette,
psutil, asyncio): a command should import only what it uses.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import Tree, med, python, series  # noqa: E402

COMMANDS = [["--help"], ["status"], ["runs"]]
HEAVY = ["pexpect", "yaml", "mcp", "starlette", "uvicorn", "psutil", "asyncio", "orchestra.session", "orchestra.config"]
TARGET_MS = 120


def import_times(tree: Tree, cmd: list[str], cwd: Path, runs: int = 5) -> tuple[float, list[str]]:
    """The ms its imports took (top level, after site), and which HEAVY modules it imported."""
    totals, heavy = [], []
    for _ in range(runs):
        done = subprocess.run([tree.python, "-X", "importtime", "-m", "orchestra", *cmd], cwd=cwd, env=tree.env,
                              capture_output=True, text=True)
        total, seen, after_site = 0, set(), False
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line:
                continue
            _, cumulative, name = line.split("|")
            stripped = name.strip()
            seen.add(stripped)
            top = not name[1:].startswith(" ")  # a top-level import: one space after the bar
            if top and stripped == "site":
                after_site = True
                continue
            if top and after_site and cumulative.strip().isdigit():
                total += int(cumulative)
        totals.append(total / 1000)
        heavy = [h for h in HEAVY if h in seen]
    return med(totals), heavy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="main", help="the revision to compare with (default: main)")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-start-"))
    old = None
    try:
        exe = python(tmp / "venv")
        old, new = Tree(args.before, exe), Tree(None, exe)
        work = tmp / "work"
        subprocess.run(["git", "init", "-q", str(work)], check=True)
        cases = {"python -c pass": ([exe, "-c", "pass"], new.env, work)}
        for cmd in COMMANDS:
            for tree in (old, new):
                cases[f"{' '.join(cmd)} ({tree.name})"] = ([exe, "-m", "orchestra", *cmd], tree.env, work)
        got = series(cases, args.runs)
        imports = {name: import_times(tree, cmd, work) for cmd in COMMANDS for tree in (old, new)
                   for name in [f"{' '.join(cmd)} ({tree.name})"]}
    finally:
        if old is not None:
            old.remove()
        shutil.rmtree(tmp, ignore_errors=True)
    bare = med(got["python -c pass"]["wall"])
    print(f"# orchestra bench: CLI start, {args.runs} runs each, alternating (median ms); before = {args.before}; "
          f"target < {TARGET_MS} ms")
    head = (f"{'command':>26} | {'wall ms':>8} | {'CPU ms':>7} | {'over python -c pass':>19} | {'imports ms':>10} | "
            "heavy modules imported")
    print(head)
    print("-" * len(head))
    for name, t in got.items():
        wall, cpu = med(t["wall"]), med(t["cpu"])
        over = "-" if name == "python -c pass" else f"{wall - bare:+.1f}"
        took, heavy = imports.get(name, (None, []))
        print(f"{name:>26} | {wall:>8.1f} | {cpu:>7.1f} | {over:>19} | "
              f"{('-' if took is None else f'{took:.1f}'):>10} | {', '.join(heavy) or '-'}")
    print()
    for cmd in COMMANDS:
        name = f"{' '.join(cmd)} ({new.name})"
        wall = med(got[name]["wall"])
        print(f"# orchestra {' '.join(cmd)}: {wall:.1f} ms (target < {TARGET_MS} ms): "
              f"{'met' if wall < TARGET_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
