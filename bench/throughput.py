#!/usr/bin/env python3
"""Throughput, memory and completion latency of orchestra's pty reading, against baselines.

    python bench/throughput.py [--sizes 1,4,16,200] [--runs 15] [--big-runs 5] [--latency-runs 50]
                               [--settle SECONDS] [--floor] [--no-tmux]

Each reader runs in a fresh process on the same child (a script writing N MB of
80-column lines, then a completion line), so its peak RSS is its own:
  raw        a bare os.read loop on the child's pty: the baseline to beat
  pexpect    pexpect's expect() with its default settings (skipped above 4 MB: minutes)
  orchestra  AgentSession with everything on: asciicast recording, tmux window,
             escape stripping, completion search and the summary parser
Ratios are against the raw loop of the same size in the same run; machines here
are shared and noisy, so trust the ratios more than the MB/s. The ratio is the raw
median over the orchestra median; beside it, the middle half (quartiles) of the
run-by-run ratios (each orchestra run against the raw run just before it) shows how
much single runs swing. Runs are cheap at small sizes, so those get --runs; sizes of
100 MB and more get --big-runs.

By default each measurement starts as soon as the one before it ended. --settle S
leaves the machine idle for S seconds before each one instead. On the 2-vCPU VMs
here that changes the raw loop at 1-16 MB and not orchestra: the raw loop sleeps and
is woken for every few KB the child writes, so how fast the machine wakes a sleeping
reader right then sets its speed, while orchestra mostly finds its next read already
waiting. Run both ways to see how much of a small-size ratio is the machine.

--floor adds orchestra's read loop with each read's handling stubbed out (one_loop):
what orchestra would reach if recording, the window, decoding, search and parsing
cost nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WRITER = textwrap.dedent("""
    import os, sys, time
    total = int(float(sys.argv[1]) * 1024 * 1024)
    before = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    block = (b"x" * 70 + b" modified? \\n") * 800
    fd = 1
    sent = 0
    while sent < total:
        sent += os.write(fd, block[: total - sent])
    os.write(fd, ("\\nDONE %.6f\\n" % time.time()).encode())
""")


def writer_argv(mb: float) -> list[str]:
    return [sys.executable, "-c", WRITER, str(mb)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_raw(mb: float) -> dict:
    import pexpect

    t0 = time.perf_counter()  # both readers are timed from before the spawn
    child = pexpect.spawn(writer_argv(mb)[0], writer_argv(mb)[1:], echo=False)
    n = 0
    while True:
        try:
            data = os.read(child.child_fd, 65536)
        except OSError:
            break
        if not data:
            break
        n += len(data)
    secs = time.perf_counter() - t0
    child.close()
    return {"secs": secs, "bytes": n, "rss": peak_rss_mb()}


def one_pexpect(mb: float) -> dict:
    import pexpect

    t0 = time.perf_counter()
    child = pexpect.spawn(writer_argv(mb)[0], writer_argv(mb)[1:], echo=False, timeout=600)
    child.expect(r"DONE \d")
    secs = time.perf_counter() - t0
    child.close()
    return {"secs": secs, "rss": peak_rss_mb()}


def one_orchestra(mb: float, tmux: bool) -> dict:
    from orchestra.config import Profile
    from orchestra.session import AgentSession, drive
    from orchestra.viewer import TmuxViewer

    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
    viewer = TmuxViewer(f"orchestra-bench-{os.getpid()}") if tmux else None
    prof = Profile(name="writer", command=writer_argv(mb), completion=re.compile(r"^DONE \d", re.M),
                   timeout=600, parser="generic")
    s = AgentSession(prof, "", tmp, tmp / "w.cast", window=viewer.open_window("w") if viewer else None)
    if viewer:  # as in a real run, the window is up before the agent starts
        subprocess.run(["tmux", "display-message", "-p", "-t", s.window.target, "#{pane_pid}"],
                       check=True, capture_output=True)
    t0 = time.perf_counter()
    s.start()
    drive([s])
    secs = time.perf_counter() - t0
    result = s.result()
    cast_mb = (tmp / "w.cast").stat().st_size / 1e6
    skipped = result.viewer_skipped
    if viewer:
        viewer.kill()
    shutil.rmtree(tmp)
    assert result.status == "completed", result
    return {"secs": secs, "rss": peak_rss_mb(), "cast_mb": cast_mb, "viewer_skipped": skipped}


def one_loop(mb: float) -> dict:
    """orchestra's read loop with nothing to do: the floor under orchestra at this size (--floor).

    drive() and on_readable() as they are; each read's handling replaced by a bytes.find
    for the completion line: no window, no recording, no decoding, no search, no parser."""
    from orchestra.config import Profile
    from orchestra.session import WORKING, AgentSession, Outcome, drive

    class LoopOnly(AgentSession):
        def _handle(self, data: bytes, final: bool = False) -> None:
            if self.phase == WORKING and b"DONE " in data:
                self._turn_over(Outcome("completed"))

    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
    prof = Profile(name="writer", command=writer_argv(mb), completion=re.compile(r"^DONE \d", re.M),
                   timeout=600, parser="generic")
    s = LoopOnly(prof, "", tmp, tmp / "w.cast")
    t0 = time.perf_counter()
    s.start()
    drive([s])
    secs = time.perf_counter() - t0
    result = s.result()
    shutil.rmtree(tmp)
    assert result.status == "completed", result
    return {"secs": secs}


LATENCY_CHILD = textwrap.dedent("""
    import os, random, sys, time
    time.sleep(random.uniform(0.05, 0.25))  # past the start-up of its neighbours, staggered
    os.write(1, (b"y" * 99 + b"\\n") * 100)
    os.write(1, ("DONE %.6f\\n" % time.time()).encode())
""")
FLOOD_CHILD = textwrap.dedent("""
    import os
    block = (b"\\x1b[31mflood\\x1b[0m " * 8 + b"\\n") * 400
    while True:
        os.write(1, block)
""")


def one_latency(agents: int, runs: int) -> dict:
    """Detection delay: completion seen by orchestra minus the time the child wrote it.

    With more than one agent, one of them floods output without pause the whole time."""
    from orchestra.config import Profile
    from orchestra.session import AgentSession, drive

    class Timed(AgentSession):
        def _turn_over(self, outcome):
            self.detected = time.time()
            super()._turn_over(outcome)

    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
    delays = []
    measured = Profile(name="writer", command=[sys.executable, "-c", LATENCY_CHILD],
                       completion=re.compile(r"^DONE \d", re.M), timeout=60, linger=0.2)
    flood = Profile(name="flood", command=[sys.executable, "-c", FLOOD_CHILD], completion=None, timeout=600,
                    kill_grace=0.5)
    for r in range(runs):
        sessions = [Timed(measured, "", tmp, tmp / f"{r}-{i}.cast") for i in range(max(1, agents - 1))]
        flooder = AgentSession(flood, "", tmp, tmp / f"{r}-flood.cast") if agents > 1 else None
        for s in sessions + ([flooder] if flooder else []):
            s.start()

        def stop_flood_when_done() -> None:
            if flooder and flooder.active and all(not s.active for s in sessions):
                flooder.abort("interrupted", "bench over")

        drive(sessions + ([flooder] if flooder else []), tick=stop_flood_when_done, tick_every=0.05)
        for s in sessions:
            stamp = float(re.search(r"DONE (\d+\.\d+)", "\n".join(s.stream.last_lines)).group(1))
            delays.append((s.detected - stamp) * 1000)
    shutil.rmtree(tmp)
    delays.sort()
    return {"p50": statistics.median(delays), "p99": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
            "max": delays[-1], "n": len(delays)}


def measure(kind: str, *args: str, settle: float = 0.0) -> dict:
    if settle:
        time.sleep(settle)  # an idle machine before the measurement (see --settle)
    out = subprocess.run([sys.executable, __file__, "--one", kind, *args], capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"bench {kind} {args} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,4,16,200")
    ap.add_argument("--runs", type=int, default=15, help="runs per size below 100 MB")
    ap.add_argument("--big-runs", type=int, default=5, help="runs per size of 100 MB or more")
    ap.add_argument("--settle", type=float, default=0.0, help="idle seconds before each measurement")
    ap.add_argument("--latency-runs", type=int, default=50)
    ap.add_argument("--no-tmux", action="store_true")
    ap.add_argument("--floor", action="store_true",
                    help="also run orchestra's read loop with each read's handling stubbed out (one_loop)")
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kind, *rest = args.one
        if kind == "raw":
            print(json.dumps(one_raw(float(rest[0]))))
        elif kind == "pexpect":
            print(json.dumps(one_pexpect(float(rest[0]))))
        elif kind == "loop":
            print(json.dumps(one_loop(float(rest[0]))))
        elif kind == "orchestra":
            print(json.dumps(one_orchestra(float(rest[0]), rest[1] == "tmux")))
        elif kind == "latency":
            print(json.dumps(one_latency(int(rest[0]), int(rest[1]))))
        return

    os.environ["TMUX_TMPDIR"] = tempfile.mkdtemp(prefix="orchestra-bench-tmux-")  # a private tmux server
    os.environ.pop("TMUX", None)
    tmux = "notmux" if args.no_tmux or not shutil.which("tmux") else "tmux"
    if tmux == "tmux":
        # The server stays up for the whole bench, as it does where orchestra is used (a run's
        # session stays open for viewing until `orchestra clean`). A server's very first windows
        # cost it page faults (about 5 ms more at 1 MB, measured here): a one-time start-up cost.
        subprocess.run(["tmux", "new-session", "-d", "-s", "bench-keeps-the-server-up", "cat"], check=True)
    sizes = [float(s) for s in args.sizes.split(",")]
    print(f"# orchestra bench: throughput and memory (median of {args.runs} interleaved runs, "
          f"{args.big_runs} from 100 MB; orchestra with recording, escape stripping, search, parser"
          f"{' and tmux window' if tmux == 'tmux' else ''}; "
          f"{f'{args.settle:g} s idle before each measurement' if args.settle else 'back to back'})")
    print(f"{'MB':>6} | {'raw MB/s':>9} | {'pexpect default':>16} | {'orchestra MB/s':>14} | {'ratio':>6} | "
          f"{'run by run':>11} | {'orch. peak RSS':>14} | {'raw RSS':>7} | {'viewer skipped':>14}"
          + (f" | {'loop only':>9}" if args.floor else ""))
    print("-" * (130 if args.floor else 118))
    try:
        for mb in sizes:
            raw, orch, pex, loop = [], [], [], []
            for run in range(args.runs if mb < 100 else args.big_runs):
                raw.append(measure("raw", str(mb), settle=args.settle))
                orch.append(measure("orchestra", str(mb), tmux, settle=args.settle))
                if args.floor:
                    loop.append(measure("loop", str(mb), settle=args.settle))
                if mb <= 4 and run < 5:  # a reference figure: five runs are plenty
                    pex.append(measure("pexpect", str(mb), settle=args.settle))
            raw_s = statistics.median(r["secs"] for r in raw)
            orch_s = statistics.median(r["secs"] for r in orch)
            paired = [r["secs"] / o["secs"] for r, o in zip(raw, orch)]
            q1, _, q3 = statistics.quantiles(paired, n=4) if len(paired) > 1 else paired * 3
            pex_txt = f"{mb / statistics.median(r['secs'] for r in pex):.1f} MB/s" if pex else "(minutes)"
            rss = max(r["rss"] for r in orch)
            skipped = max(r["viewer_skipped"] for r in orch) / 1e6
            print(f"{mb:>6g} | {mb / raw_s:>9.1f} | {pex_txt:>16} | {mb / orch_s:>14.1f} | "
                  f"{raw_s / orch_s:>5.2f}x | {q1:>4.2f}-{q3:.2f}x | {rss:>11.1f} MB | "
                  f"{max(r['rss'] for r in raw):>4.0f} MB | {skipped:>11.1f} MB"
                  + (f" | {raw_s / statistics.median(r['secs'] for r in loop):>8.2f}x" if loop else ""))
        print()
        print("# completion latency: each child writes 10 KB then a stamped completion line (ms from write "
              "to detection); with 8 agents, one of them floods output the whole time")
        print(f"{'agents':>6} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | {'samples':>7} | baseline")
        print("-" * 72)
        for n in (1, 8):
            lat = measure("latency", str(n), str(args.latency_runs if n == 1 else max(1, args.latency_runs // 7)))
            print(f"{n:>6} | {lat['p50']:>7.2f} | {lat['p99']:>7.2f} | {lat['max']:>7.2f} | {lat['n']:>7} | "
                  "seed: fixed 60 s wait; nearest peer polls every 1000 ms")
    finally:
        subprocess.run(["tmux", "kill-server"], capture_output=True)
        shutil.rmtree(os.environ["TMUX_TMPDIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
