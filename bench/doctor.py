#!/usr/bin/env python3
"""How long `orchestra doctor` takes with the agent CLIs installed, beside asking their versions one by one.

    python bench/doctor.py [--runs 5]

Issue 19.12: doctor took 10-13 s, asking each CLI its `--version` in turn (a node CLI takes a second
or two to answer), and printed nothing until the end; it should take under 3 s with all six
installed. Each run, in turn:
  doctor                 `orchestra doctor --config <shipped> --json`, a process of its own (as a user
                         runs it: Python's start and orchestra's imports included)
  one by one             the same version questions asked one after the other, in this process (what
                         doctor did before; its own start not counted)
The machine is shared and noisy: the median and p90 of --runs are shown, with the load average.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestra import agents  # noqa: E402
from orchestra.config import SHIPPED_CONFIG, load_config  # noqa: E402


def questions() -> list[list[str]]:
    """Each distinct version question doctor asks with the shipped config, and tmux's."""
    asked = {tuple(argv) for p in load_config(str(SHIPPED_CONFIG)).agents.values()
             if (argv := agents.version_argv(p))}
    tmux = agents.which("tmux")
    return [list(a) for a in sorted(asked)] + ([[tmux, "-V"]] if tmux else [])


def one_by_one(argvs: list[list[str]]) -> float:
    start = time.monotonic()
    for argv in argvs:
        subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    return time.monotonic() - start


def doctor() -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "orchestra", "doctor", "--config", str(SHIPPED_CONFIG), "--json"],
                   capture_output=True, cwd=ROOT, timeout=120)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    argvs = questions()
    print(f"{len(argvs)} version questions: {', '.join(Path(a[0]).name for a in argvs)}")
    times: dict[str, list[float]] = {"doctor": [], "one by one": []}
    loads = []
    for _ in range(args.runs):
        loads.append(os.getloadavg()[0])
        times["doctor"].append(doctor())
        times["one by one"].append(one_by_one(argvs))
    for name, values in times.items():
        values.sort()
        p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
        print(f"{name:<12} median {statistics.median(values):5.2f} s   p90 {p90:5.2f} s   "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    print(f"load average (1 min) during the runs: {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
