#!/usr/bin/env python3
"""What acceptance checks and a fix round add to a run, beyond the commands themselves.

    python bench/checks.py [--repeat 20]

per check    checks.run_check (its own process group, output read and kept to its tail, masked with a
             run's Redactor, the group ended) against subprocess.run of the same argv with its output
             captured: the difference is orchestra's own overhead per check (the goal: under 50 ms)
run          `orchestra run` of the toy agent with one --check true, against the same run without it,
             less what `true` takes by itself
fix round    `orchestra run` of a toy agent whose check fails until its resumed session rewrites the
             file (--fix-rounds 1), against the same run without checks, less the resumed agent and
             the two checks run by themselves: what orchestra adds for a round (its session, window,
             transcript, git snapshot, summary)
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOY = ROOT / "tests" / "agents" / "toy_agent.py"
PY = sys.executable


def ms(fn, repeat: int) -> float:
    """The median of repeat timings of fn(), in ms."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def per_check(repeat: int, workdir: Path) -> list[tuple[str, float, float]]:
    from orchestra.checks import run_check
    from orchestra.redact import Redactor

    mask = Redactor(["sk-bench-" + "k" * 40, "ghp_" + "t" * 36]).text
    env = dict(os.environ)
    rows = []
    for name, command in (("true", "true"), ("python -c pass", f"{PY} -c pass"),
                          ("python: 1 MB of output", f"{PY} -c \"print(('y' * 79 + chr(10)) * 13000)\"")):
        argv = shlex.split(command)
        bare = ms(lambda: subprocess.run(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True),
                  repeat)
        checked = ms(lambda: run_check(command, workdir, env, 600, mask), repeat)
        rows.append((name, bare, checked))
    return rows


def orchestra(workdir: Path, cfg: Path, *args: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([PY, "-m", "orchestra", "run", "--config", str(cfg), "--agent", "toy", "--task", "t",
                           "--no-tmux", "--json", *args], cwd=workdir, capture_output=True, text=True)
    took = (time.perf_counter() - t0) * 1000
    if done.returncode not in (0, 1):
        raise SystemExit(f"orchestra failed: {done.stderr}")
    return took


def runs(repeat: int, workdir: Path) -> dict:
    import yaml

    toy = [PY, str(TOY), "--task", "{task}", "--files", "m.py", "--line", "session: toy-1"]
    cfg = workdir.parent / "orchestra.yaml"
    cfg.write_text(yaml.safe_dump({"agents": {"toy": {
        "command": toy, "completion": "^DONE", "linger": 0.3, "parse": {"session_id": r"session: (\S+)"},
        "resume": [*toy, "--line", "resumed {session_id}"]}}}))
    fixed = "grep -q 'acceptance checks' m.py"

    variants = {"plain": (), "checked": ("--check", "true"), "fixing": ("--check", fixed, "--fix-rounds", "1")}
    times: dict = {k: [] for k in variants}
    for _ in range(repeat):  # interleaved: a busy machine slows each alike
        for key, extra in variants.items():
            times[key].append(orchestra(workdir, cfg, *extra))
    plain, checked, fixing = (statistics.median(times[k]) for k in variants)
    true_alone = ms(lambda: subprocess.run(["true"]), repeat)
    (workdir / "m.py").write_text("x\n")
    grep_alone = ms(lambda: subprocess.run(shlex.split(fixed), cwd=workdir), repeat)
    resumed_alone = ms(lambda: subprocess.run([PY, str(TOY), "--task", "fix", "--files", "m.py", "--line", "resumed"],
                                              cwd=workdir, capture_output=True), repeat)
    return {"plain": plain, "checked": checked, "fixing": fixing, "true": true_alone, "grep": grep_alone,
            "resumed": resumed_alone}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="orchestra-bench-checks-") as tmp:
        workdir = Path(tmp) / "repo"
        workdir.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
        print(f"per check (median of {args.repeat}, ms)")
        print(f"{'command':<28} {'alone':>8} {'as a check':>11} {'overhead':>9}")
        for name, bare, checked in per_check(args.repeat, workdir):
            print(f"{name:<28} {bare:>8.1f} {checked:>11.1f} {checked - bare:>9.1f}")
        r = runs(max(3, args.repeat // 2), workdir)
        print(f"\norchestra run of the toy agent (median of {max(3, args.repeat // 2)}, interleaved, ms)")
        print(f"{'what':<44} {'total':>8} {'added':>8} {'beyond the commands':>20}")
        print(f"{'no check':<44} {r['plain']:>8.0f} {'':>8} {'':>20}")
        added = r["checked"] - r["plain"]
        print(f"{'--check true':<44} {r['checked']:>8.0f} {added:>8.0f} {added - r['true']:>20.0f}")
        added = r["fixing"] - r["plain"]
        beyond = added - r["resumed"] - 2 * r["grep"]
        print(f"{'--check (fails, then passes) --fix-rounds 1':<44} {r['fixing']:>8.0f} {added:>8.0f} {beyond:>20.0f}")
        print(f"\n(the commands alone: true {r['true']:.1f} ms, the grep check {r['grep']:.1f} ms, "
              f"the resumed toy agent {r['resumed']:.0f} ms)")


if __name__ == "__main__":
    main()
