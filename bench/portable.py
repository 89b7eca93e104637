#!/usr/bin/env python3
"""The portable read loop (the path a Mac takes) against the Linux one, on the same machine.

    python bench/portable.py [--sizes 4,16] [--runs 7] [--latency-runs 20] [--exit-runs 30]

Every measurement runs in a fresh process, alternately with and without ORCHESTRA_PORTABLE=1 (which
goes first alternates too):
  linux      epoll, pidfds for the exits, /proc
  portable   poll (kqueue on a Mac), a SIGCHLD self-pipe for the exits, psutil, the pty slave held
             until the exit is seen (orchestra.ptyslave)
Rows:
  throughput N MB    bench/throughput.py's orchestra reader (recording, stripping, search, parser; no tmux)
  completion p50     bench/throughput.py's latency: a stamped completion line, write to detection (ms)
  completion p50 x4  the same with 4 agents, one of them flooding output the whole time
  exit               an agent that prints one line and exits: start() to drive() returning (ms, median)
"portable cost": portable over linux for times, linux over portable for MB/s, less 1: above 0 the
portable loop is slower. Beside it, the same for the CPU time the measuring process and its children
(the agents) used, which a shared machine's load moves much less than wall time: the machines here
swing by 20 % from one series of runs to the next, so read the CPU column first.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
THROUGHPUT = ROOT / "bench" / "throughput.py"


def one_exit(runs: int) -> dict:
    from orchestra.config import Profile
    from orchestra.session import AgentSession, drive

    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
    prof = Profile(name="brief", command=[sys.executable, "-S", "-c", "print('the last line')"], completion=None,
                   timeout=60, parser="generic")
    times = []
    for r in range(runs):
        s = AgentSession(prof, "", tmp, tmp / f"{r}.cast")
        t0 = time.perf_counter()
        s.start()
        drive([s])
        times.append((time.perf_counter() - t0) * 1000)
        assert s.result().status == "completed" and "the last line" in s.stream.last_lines, s.result()
    shutil.rmtree(tmp)
    return {"ms": statistics.median(times)}


def measure(portable: bool, argv: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRA_PORTABLE"}
    if portable:
        env["ORCHESTRA_PORTABLE"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=900, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"bench {argv} failed:\n{out.stderr}")
    said = json.loads(out.stdout.strip().splitlines()[-1])
    said["cpu_ms"] = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    return said


def compare(label: str, argv: list[str], value, runs: int, higher_is_better: bool) -> tuple:
    got = {False: [], True: []}
    cpu = {False: [], True: []}
    for run in range(runs):
        for portable in ((False, True) if run % 2 == 0 else (True, False)):  # neither always goes first
            said = measure(portable, argv)
            got[portable].append(value(said))
            cpu[portable].append(said["cpu_ms"])
    linux, portable = statistics.median(got[False]), statistics.median(got[True])
    ratio = linux / portable if higher_is_better else portable / linux
    cpu_linux, cpu_portable = statistics.median(cpu[False]), statistics.median(cpu[True])
    return label, linux, portable, ratio, cpu_linux, cpu_portable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4,16")
    ap.add_argument("--runs", type=int, default=7, help="interleaved runs of each measurement and path")
    ap.add_argument("--latency-runs", type=int, default=20, help="completions per latency measurement")
    ap.add_argument("--exit-runs", type=int, default=30, help="agents per exit measurement")
    ap.add_argument("--one-exit", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_exit:
        print(json.dumps(one_exit(args.one_exit)))
        return
    rows = []
    for mb in args.sizes.split(","):
        rows.append(compare(f"throughput {mb} MB (MB/s)", [str(THROUGHPUT), "--one", "orchestra", mb, "no-tmux"],
                            lambda r, mb=float(mb): mb / r["secs"], args.runs, True))
    for agents in (1, 4):
        rows.append(compare(f"completion p50 x{agents} (ms)", [str(THROUGHPUT), "--one", "latency", str(agents),
                                                               str(args.latency_runs)],
                            lambda r: r["p50"], args.runs, False))
    rows.append(compare("exit (ms)", [__file__, "--one-exit", str(args.exit_runs)], lambda r: r["ms"], args.runs, False))
    print(f"# orchestra bench: the portable loop against the Linux one (median of {args.runs} interleaved runs each)")
    print(f"{'measurement':<28} | {'linux':>9} | {'portable':>9} | {'portable cost':>13} | "
          f"{'CPU ms linux':>12} | {'portable':>9} | {'CPU cost':>8}")
    print("-" * 112)
    for label, linux, portable, ratio, cpu_linux, cpu_portable in rows:
        print(f"{label:<28} | {linux:>9.2f} | {portable:>9.2f} | {(ratio - 1) * 100:>+12.1f}% | "
              f"{cpu_linux:>12.1f} | {cpu_portable:>9.1f} | {(cpu_portable / cpu_linux - 1) * 100:>+7.1f}%")


if __name__ == "__main__":
    main()
