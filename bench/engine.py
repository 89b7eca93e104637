#!/usr/bin/env python3
"""The read loop at the limit: orchestra's drive() against a bare Python loop over the same ptys.

    python bench/engine.py [--old DIR|--before REV] [--runs 5] [--rounds 20] [--tui-agents 32]
                           [--tui-seconds 4] [--no-tmux] [--only flood|tui]

The limit is a bare selectors loop (epoll) that reads the same ptys (the same children, spawned by
pexpect with the same size) one read of each ready pty per wake, and matches the same completion
regex on each read: what reading agents from Python costs with nothing else to do.

1. flood: 8 agents in one loop, one of them flooding ANSI colour output without pause, seven writing
   10 KB then a stamped completion line (`DONE <time>`) at a random moment; detection = when the loop
   matched it minus the stamp. p50 / p99 / max over --rounds rounds of 7 samples, for each code.
2. tui: --tui-agents TUI-like agents, each redrawing an Ink-style frame (erase the last frame's lines
   with cursor up + erase line, then draw 40 coloured lines, about 3.8 KB) 26 times a second (about
   100 KB/s each) for --tui-seconds, then a completion line. CPU time of the reading process per MB
   read, from the loop's start to the last completion matched, for either loop (process time, so the
   agents' own CPU is not counted; orchestra's ending of the agents after it is not either), and with
   tmux on, the tmux server's CPU per MB beside it (a private server; /proc/PID/stat before and after).

Each measurement runs in a fresh process; the codes (the bare loop, orchestra of --old or --before,
this checkout's orchestra) take turns within each run, so load on this shared machine falls on all of
them alike. Figures are medians over --runs runs (flood: percentiles over all samples of all runs).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(os.environ.get("ORCHESTRA_BENCH_CODE", ROOT))  # whose orchestra a measurement imports
sys.path.insert(0, str(CODE))
from trees import build_native  # noqa: E402  (bench/, the script's own folder, is on sys.path)

COMPLETION = r"^DONE (\d+\.\d+)"
STEADY_CHILD = textwrap.dedent("""
    import os, random, sys, time
    time.sleep(random.uniform(0.05, 0.4))  # past the start-up of its neighbours, staggered
    os.write(1, (b"\\x1b[32m+\\x1b[0m " + b"y" * 95 + b"\\n") * 100)
    time.sleep(random.uniform(0.0, 0.05))
    os.write(1, ("DONE %.6f\\n" % time.time()).encode())
    time.sleep(30)  # stays until ended, as an agent at its prompt does
""")
FLOOD_CHILD = textwrap.dedent("""
    import os
    block = (b"\\x1b[31mflood\\x1b[0m " * 8 + b"\\n") * 400
    while True:
        os.write(1, block)
""")
# An Ink-style frame (log-update): erase the lines of the frame before (cursor up + erase line each),
# then draw the new one: a box of 40 coloured lines with a spinner and a counter that change per frame.
TUI_CHILD = textwrap.dedent("""
    import os, sys, time
    seconds, rate, kind = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    rows = 40
    erase = b"\\x1b[2K\\x1b[1A" * (rows - 1) + b"\\x1b[2K\\x1b[G"
    spin = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
    def frame(i):
        out = []
        for r in range(rows):
            if r == 0:
                out.append("\\x1b[1m\\x1b[38;5;214m%s\\x1b[39m\\x1b[22m Working… (%ds · ↓ %d tokens)" % (spin[i % 10], i // 26, 40 * i))
            elif r == rows - 1:
                out.append("\\x1b[2m  ? for shortcuts\\x1b[22m")
            else:
                j = i if kind == "changing" else 0  # "ink": the lines under the status line stay
                out.append("\\x1b[38;5;246m│\\x1b[39m \\x1b[36m%02d\\x1b[39m src/module_%d.py \\x1b[2m+%d -%d\\x1b[22m %s" % (r, (r * 7 + j) % 50, r, j % 9, "·" * 10))
        return "\\n".join(out).encode()
    frames = [frame(i) for i in range(52)]
    start = time.monotonic()
    os.write(1, frames[0])
    i, due = 1, start
    while True:
        due += 1.0 / rate
        if due >= start + seconds:
            break
        time.sleep(max(0.0, due - time.monotonic()))
        os.write(1, erase + frames[i % 52])
        i += 1
    os.write(1, ("\\nDONE %.6f\\n" % time.time()).encode())
    time.sleep(30)
""")
TUI_RATE = 26  # frames a second: about 100 KB/s
# "changing": every line of a frame differs from the frame before (the figures); "ink": only
# the status line does (spinner, time, tokens), as in an Ink app's frame, whose other lines stay put
TUI_KINDS = ("changing", "ink")


# -- one measurement, in a process of its own ---------------------------------------------------


def spawn(argv: list[str]):
    import pexpect

    child = pexpect.spawn(argv[0], argv[1:], echo=False, dimensions=(40, 120))
    os.set_blocking(child.child_fd, False)
    return child


def kill(children) -> None:
    import signal

    for c in children:
        try:
            os.killpg(c.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            c.close(force=True)
        except Exception:
            pass


def bare_loop(children, done_count: int) -> tuple[dict, int]:
    """The limit: one selector, one read per ready pty per wake, the regex on each read.
    Returns {index: ms from its completion's stamp to the match} and the bytes read."""
    import selectors

    pattern = re.compile(COMPLETION.encode(), re.M)
    sel = selectors.DefaultSelector()
    for i, c in enumerate(children):
        sel.register(c.child_fd, selectors.EVENT_READ, i)
    seen: dict[int, float] = {}
    tails = [b""] * len(children)  # a line cut by a read is matched whole
    total = 0
    while len(seen) < done_count:
        for key, _ in sel.select(1.0):
            try:
                data = os.read(key.fileobj, 65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                continue
            total += len(data)
            i = key.data
            if i not in seen:
                m = pattern.search(tails[i] + data)
                if m:
                    seen[i] = (time.time() - float(m.group(1))) * 1000
                tails[i] = (tails[i] + data)[-256:]
    sel.close()
    return seen, total


def one_flood_bare(rounds: int) -> dict:
    delays = []
    for _ in range(rounds):
        children = [spawn([sys.executable, "-c", FLOOD_CHILD])] + \
                   [spawn([sys.executable, "-c", STEADY_CHILD]) for _ in range(7)]
        try:
            seen, _ = bare_loop(children, 7)
        finally:
            kill(children)
        delays += [seen[i] for i in range(1, 8)]
    return {"delays": delays}


def one_flood_orchestra(rounds: int) -> dict:
    from orchestra.config import Profile
    from orchestra.session import AgentSession, drive

    class Timed(AgentSession):
        def _turn_over(self, outcome):
            self.detected = time.time()
            super()._turn_over(outcome)

    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
    steady = Profile(name="steady", command=[sys.executable, "-c", STEADY_CHILD],
                     completion=re.compile(COMPLETION, re.M), timeout=60, linger=0.05, kill_grace=0.5)
    flood = Profile(name="flood", command=[sys.executable, "-c", FLOOD_CHILD], completion=None, timeout=600,
                    kill_grace=0.5)
    delays = []
    try:
        for r in range(rounds):
            flooder = AgentSession(flood, "", tmp, tmp / f"{r}-flood.cast")
            sessions = [Timed(steady, "", tmp, tmp / f"{r}-{i}.cast") for i in range(7)]
            for s in [flooder] + sessions:
                s.start()

            def stop_flood() -> None:
                if flooder.active and all(s.outcome is not None for s in sessions):
                    flooder.abort("interrupted", "bench over", at_once=True)

            drive([flooder] + sessions, tick=stop_flood, tick_every=0.02)
            for s in sessions:
                stamp = re.search(r"DONE (\d+\.\d+)", "\n".join(s.stream.last_lines)).group(1)
                delays.append((s.detected - float(stamp)) * 1000)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"delays": delays}


def tmux_cpu() -> float:
    """CPU seconds the private tmux server has used (0 when there is none)."""
    out = subprocess.run(["tmux", "display-message", "-p", "#{pid}"], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        return 0.0
    fields = Path(f"/proc/{out.stdout.strip()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_tui_bare(agents: int, seconds: float, kind: str) -> dict:
    children = [spawn([sys.executable, "-c", TUI_CHILD, str(seconds), str(TUI_RATE), kind]) for _ in range(agents)]
    try:
        t0 = time.process_time()
        _, total = bare_loop(children, agents)
        cpu = time.process_time() - t0
    finally:
        kill(children)
    return {"cpu": cpu, "bytes": total, "tmux_cpu": 0.0}


def one_tui_orchestra(agents: int, seconds: float, kind: str, tmux: bool) -> dict:
    from orchestra.config import Profile
    from orchestra.session import AgentSession, drive
    from orchestra.viewer import TmuxViewer

    class Counted(AgentSession):
        def _handle(self, data: bytes, final: bool = False) -> None:
            self.bytes_read = getattr(self, "bytes_read", 0) + len(data)
            super()._handle(data, final)

        def _turn_over(self, outcome) -> None:
            self.cpu_at = time.process_time()  # as the bare loop, up to the last completion
            super()._turn_over(outcome)

    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
    viewer = TmuxViewer(f"orchestra-bench-{os.getpid()}") if tmux else None
    prof = Profile(name="tui", command=[sys.executable, "-c", TUI_CHILD, str(seconds), str(TUI_RATE), kind],
                   completion=re.compile(COMPLETION, re.M), timeout=120, linger=0.05, kill_grace=0.5)
    try:
        sessions = []
        for i in range(agents):
            window = viewer.open_window(f"a{i}") if viewer else None
            sessions.append(Counted(prof, "", tmp, tmp / f"{i}.cast", window=window))
        if viewer:  # every window up (its cat reading) before the agents start, as in a run
            for s in sessions:
                subprocess.run(["tmux", "display-message", "-p", "-t", s.window.target, "#{pane_pid}"],
                               check=True, capture_output=True)
        for s in sessions:
            s.start()
        tmux_before = tmux_cpu() if tmux else 0.0
        t0 = time.process_time()
        drive(sessions)
        cpu = max(s.cpu_at for s in sessions) - t0
        if tmux:
            # what tmux was given last is drawn a moment later: let it settle, then read its CPU
            time.sleep(0.3)
        tmux_used = tmux_cpu() - tmux_before if tmux else 0.0
        assert all(s.result().status == "completed" for s in sessions), [s.result().reason for s in sessions]
        return {"cpu": cpu, "bytes": sum(s.bytes_read for s in sessions), "tmux_cpu": tmux_used,
                "skipped": sum(s.result().viewer_skipped for s in sessions)}
    finally:
        if viewer:
            viewer.kill()
        shutil.rmtree(tmp, ignore_errors=True)


# -- the parent ---------------------------------------------------------------------------------


def measure(code: Path | None, *args: str) -> dict:
    env = dict(os.environ)
    if code is not None:
        env["ORCHESTRA_BENCH_CODE"] = str(code)
        env["PYTHONPATH"] = str(code)
    out = subprocess.run([sys.executable, __file__, "--one", *args], capture_output=True, text=True, timeout=900,
                         env=env)
    if out.returncode != 0:
        raise SystemExit(f"bench {args} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", help="a directory holding the orchestra to compare with (its orchestra/ package)")
    ap.add_argument("--before", help="a git revision to compare with (its files taken with git archive)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=10, help="flood: rounds of 7 completions per run")
    ap.add_argument("--tui-agents", type=int, default=32)
    ap.add_argument("--tui-seconds", type=float, default=4.0)
    ap.add_argument("--no-tmux", action="store_true")
    ap.add_argument("--only", choices=("flood", "tui"))
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kind, *rest = args.one
        if kind == "flood-bare":
            said = one_flood_bare(int(rest[0]))
        elif kind == "flood":
            said = one_flood_orchestra(int(rest[0]))
        elif kind == "tui-bare":
            said = one_tui_bare(int(rest[0]), float(rest[1]), rest[2])
        else:
            said = one_tui_orchestra(int(rest[0]), float(rest[1]), rest[2], rest[3] == "tmux")
        print(json.dumps(said))
        return

    made = None
    old = Path(args.old) if args.old else None
    if args.before:
        made = Path(tempfile.mkdtemp(prefix="orchestra-bench-old-"))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(made)], input=archive.stdout, check=True)
        build_native(made)
        old = made
    codes = [("bare loop (limit)", None)] + ([(f"orchestra {args.before or 'old'}", old)] if old else []) + \
            [("orchestra (this checkout)", ROOT)]
    os.environ["TMUX_TMPDIR"] = tempfile.mkdtemp(prefix="orchestra-bench-tmux-")  # a private tmux server
    os.environ.pop("TMUX", None)
    tmux = not args.no_tmux and shutil.which("tmux") is not None
    if tmux:
        subprocess.run(["tmux", "new-session", "-d", "-s", "bench-keeps-the-server-up", "cat"], check=True)
    started = time.monotonic()
    try:
        if args.only in (None, "flood"):
            flood: dict[str, list[float]] = {name: [] for name, _ in codes}
            for run in range(args.runs):
                order = codes if run % 2 == 0 else codes[::-1]
                for name, code in order:
                    kind = "flood-bare" if code is None else "flood"
                    flood[name] += measure(code, kind, str(args.rounds))["delays"]
                print(f"# flood run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
            limit = flood[codes[0][0]]
            print(f"# 1. completion detection, 8 agents in one loop, one flooding ANSI output (ms from the "
                  f"stamped write to the match; {len(limit)} samples each; {os.cpu_count()} CPUs)")
            print(f"{'reader':<28} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | {'p50 vs limit':>12} | "
                  f"{'p99 vs limit':>12}")
            print("-" * 88)
            for name, _ in codes:
                d = flood[name]
                print(f"{name:<28} | {statistics.median(d):>7.2f} | {pct(d, 0.99):>7.2f} | {max(d):>7.2f} | "
                      f"{statistics.median(d) / statistics.median(limit):>11.2f}x | "
                      f"{pct(d, 0.99) / pct(limit, 0.99):>11.2f}x")
            print()
        if args.only in (None, "tui"):
            variants = [(name, code, False) for name, code in codes] + \
                       ([(name, code, True) for name, code in codes if code is not None] if tmux else [])
            tui: dict[tuple, list[dict]] = {(kind, name, t): [] for kind in TUI_KINDS for name, _, t in variants}
            for run in range(args.runs):
                for kind in TUI_KINDS:
                    order = variants if run % 2 == 0 else variants[::-1]
                    for name, code, t in order:
                        if code is None:
                            said = measure(None, "tui-bare", str(args.tui_agents), str(args.tui_seconds), kind)
                        else:
                            said = measure(code, "tui", str(args.tui_agents), str(args.tui_seconds), kind,
                                           "tmux" if t else "no-tmux")
                        tui[(kind, name, t)].append(said)
                print(f"# tui run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)

            def per_mb(rows: list[dict], key: str) -> float:
                return statistics.median(r[key] / (r["bytes"] / 1e6) * 1000 for r in rows)

            print(f"# 2. CPU per MB read, {args.tui_agents} TUI-like agents (Ink-style frames of about 3.8 KB, "
                  f"{TUI_RATE}/s each) for {args.tui_seconds:g} s (ms of CPU per MB; median of {args.runs} runs); "
                  "frames: changing = every line differs from the frame before, ink = only the status line does")
            print(f"{'frames':<8} | {'reader':<28} | {'tmux':>4} | {'MB read':>7} | {'CPU ms/MB':>9} | {'vs limit':>8} | "
                  f"{'µs/frame':>8} | {'tmux server ms/MB':>17} | {'viewer skipped':>14}")
            print("-" * 125)
            for kind in TUI_KINDS:
                limit = per_mb(tui[(kind, codes[0][0], False)], "cpu")
                for name, code, t in variants:
                    rows = tui[(kind, name, t)]
                    mb = statistics.median(r["bytes"] for r in rows) / 1e6
                    cpu = per_mb(rows, "cpu")
                    frame_us = cpu * 3.8e-3 * 1000  # ms per MB -> µs per 3.8 KB
                    tm = f"{per_mb(rows, 'tmux_cpu'):>17.1f}" if t else f"{'-':>17}"
                    skipped = f"{statistics.median(r.get('skipped', 0) for r in rows) / 1e6:>11.2f} MB" if t \
                        else f"{'-':>14}"
                    print(f"{kind:<8} | {name:<28} | {'on' if t else 'off':>4} | {mb:>7.1f} | {cpu:>9.1f} | "
                          f"{cpu / limit:>7.2f}x | {frame_us:>8.0f} | {tm} | {skipped}")
        print(f"# took {time.monotonic() - started:.0f} s")
    finally:
        subprocess.run(["tmux", "kill-server"], capture_output=True)  # the private server only
        shutil.rmtree(os.environ["TMUX_TMPDIR"], ignore_errors=True)
        if made:
            shutil.rmtree(made, ignore_errors=True)


if __name__ == "__main__":
    main()
