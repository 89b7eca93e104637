#!/usr/bin/env python3
"""Several secondaries at once: wall time against one, and completion detection while N run.

    python bench/parallel.py [--counts 1,2,4,8,16] [--seconds 10] [--runs 1] [--no-tmux] [--repo-files K]

Issue 6: with N replayed secondaries that each take T seconds, the run takes T plus a
small overhead, not N x T. Every measurement is one call of the library's
`orchestra.delegate.delegate()` (no primary, analyze off) in a fresh temporary git
repository (one commit), in a fresh process; with N > 1 each secondary gets its own git
worktree and branch, and that is part of what is measured, as are the tmux windows
(unless --no-tmux or no tmux), the transcripts, the per-branch commit and merge report.

  wall       N secondaries, each `python -m orchestra.replay CAST --speed 1` on a synthetic
             recording: a progress line every 50 ms for T seconds (every fifth one in ANSI
             colour), then "TASK COMPLETE" at t = T. Timed around delegate(); compared with
             the N = 1 run of the same bench (overhead = wall_N / wall_1 - 1, in % and s) and
             with N x T, what running them one after another would take at best.
             "spawned by" is when the last secondary was started (from the delegate() call):
             worktrees, windows and spawns are made one after another; "after exit" is from
             the last secondary's end to delegate() returning (commits, merge report, run.json).
             A second table splits that work by step (STEPS: git worktree add, tmux window,
             spawn, git's view of each secondary, branch report...), summed over the secondaries (the
             summaries and commits run at once, a thread each: their sum can exceed the wall time).
  detection  N secondaries running a small child (STEADY_CHILD) that writes a line every
             20 ms for T seconds and then `DONE <time.time()>`; with N > 1 one of the N
             (FLOOD_CHILD) instead floods output without pause for T seconds, then writes
             its stamped DONE. Detection delay = the moment orchestra's drive() loop matched
             the completion (AgentSession._turn_over, wrapped in the measuring process) minus
             the stamp. p50 / p99 / max are over the steady secondaries; the flooder's own delay
             is shown apart: its DONE waits behind whatever it wrote before, still unread in
             the pty, and its stamp is taken before a write that blocks while the pty is full.

Temporary repositories, worktrees, branches, tmux sessions (on a private tmux server) and
agent processes are removed even when a measurement fails. The machine is shared and noisy:
use --runs 3 (median) for figures to quote.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEADY_CHILD = textwrap.dedent("""
    import os, sys, time
    seconds = float(sys.argv[1])
    start = time.monotonic()
    due, i = start, 0
    while True:
        due += 0.02
        if due >= start + seconds:
            break
        i += 1
        os.write(1, b"\\x1b[36mstep %d\\x1b[0m working on part %d of the task\\n" % (i, i % 7))
        time.sleep(max(0.0, due - time.monotonic()))
    time.sleep(max(0.0, start + seconds - time.monotonic()))
    os.write(1, ("DONE %.6f\\n" % time.time()).encode())
""")
FLOOD_CHILD = textwrap.dedent("""
    import os, sys, time
    end = time.monotonic() + float(sys.argv[1])
    block = (b"\\x1b[31mflood\\x1b[0m " * 8 + b"\\n") * 400
    while time.monotonic() < end:
        os.write(1, block)
    os.write(1, ("DONE %.6f\\n" % time.time()).encode())
""")
DONE_STAMP = re.compile(r"DONE (\d+\.\d+)")
# (column, module, callable) timed in the measuring process: delegate()'s work besides waiting for the agents
STEPS = [
    ("repo", "worktree", "Repo.__init__"),          # git: toplevel, HEAD, branch, identity
    ("status", "worktree", "Repo.uncommitted"),     # git status before the worktrees
    ("worktree", "worktree", "Repo.add"),           # git worktree add -b, one per secondary
    ("window", "run", "Run.window"),                # tmux window (new-session / new-window)
    ("spawn", "delegate", "AgentSession.start"),    # pexpect spawn (fork, exec, pty)
    ("summary", "delegate", "summarize_session"),   # parse + git's view of what changed (one git status each)
    ("commit", "worktree", "Repo.commit"),          # commit what the secondary left (nothing here)
    ("report", "worktree", "Repo.reports"),         # every branch's tip and parents; merge-tree where needed
    ("record", "run", "Run.write_json"),            # run.json
    ("close", "run", "Run.close_viewer"),
]


# -- in the measuring process ----------------------------------------------------


def write_cast(path: Path, seconds: float) -> None:
    """A recording that takes `seconds`: a progress line every 50 ms, then the completion line at t = seconds."""
    steps = max(1, int(round(seconds / 0.05)))
    lines = [json.dumps({"version": 2, "width": 120, "height": 40, "title": "bench: synthetic secondary"})]
    for k in range(1, steps):
        text = f"step {k}/{steps}: building module_{k % 37}.py ({100 * k // steps}%)\r\n"
        if k % 5 == 0:
            text = f"\x1b[32m✓\x1b[0m {text}"
        lines.append(json.dumps([round(k * seconds / steps, 6), "o", text]))
    lines.append(json.dumps([round(seconds, 6), "o", "\x1b[1mTASK COMPLETE\x1b[0m\r\n"]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def make_repo(path: Path) -> None:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@orchestra.invalid")
    git(path, "config", "commit.gpgsign", "false")
    (path / "README.md").write_text("# bench project\n")
    (path / "app.py").write_text("print('hello')\n")
    # --repo-files K: a bigger project, K files of 2 KB in 50 folders (a worktree checks them all out)
    for i in range(int(os.environ.get("ORCHESTRA_BENCH_REPO_FILES", "0"))):
        folder = path / "src" / f"pkg{i % 50}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{i}.py").write_text(f"# module {i}\n" + "x = 1\n" * 340)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "start")


def load_config(path: Path, agents: dict):
    """Profiles written as JSON (which is YAML) and loaded the way the CLI loads a config file."""
    from orchestra.config import load_config as load

    path.write_text(json.dumps({"agents": agents}, indent=2))
    return load(str(path))


class Recorder:
    """Wraps AgentSession methods (class-wide) to see when each agent started, completed and ended."""

    def __init__(self):
        from orchestra.session import AgentSession

        self.sessions: list = []
        cls, recorder = AgentSession, self
        start, turn_over, finish = cls.start, cls._turn_over, cls._finish

        def timed_start(s):
            start(s)
            s.spawned = time.monotonic()
            recorder.sessions.append(s)

        def timed_turn_over(s, outcome):
            s.detected = time.time()
            turn_over(s, outcome)

        def timed_finish(s):
            already = s.phase == "done"
            finish(s)
            if not already:
                s.finished = time.monotonic()

        cls.start, cls._turn_over, cls._finish = timed_start, timed_turn_over, timed_finish
        # where delegate()'s own time goes, summed over the secondaries (seconds)
        from orchestra import delegate, run, worktree

        self.spent: dict[str, float] = {}
        for key, owner, name in STEPS:
            self._time(key, {"delegate": delegate, "run": run, "worktree": worktree}[owner], name)

    def _time(self, key: str, module, name: str) -> None:
        owner_name, _, attr = name.rpartition(".")
        owner = getattr(module, owner_name) if owner_name else module
        original = getattr(owner, attr)
        spent = self.spent
        spent.setdefault(key, 0.0)

        def timed(*args, **kwargs):
            t = time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                spent[key] += time.monotonic() - t

        setattr(owner, attr, timed)

    def kill_leftovers(self) -> None:
        for s in self.sessions:
            if s.child is not None and s.child.isalive():
                try:
                    os.killpg(s.child.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                s.child.isalive()


def run_delegate(n: int, agents: dict, names: list[str], tmux: bool, tmp: Path) -> tuple[dict, "Recorder", float, float]:
    """delegate() with `names` as the secondaries in a fresh repository; (summary, recorder, t0, wall)."""
    from orchestra.delegate import Events, Plan, delegate
    from orchestra.errors import OrchestraError
    from orchestra.worktree import clean

    recorder = Recorder()
    config = load_config(tmp / "orchestra.yaml", agents)  # outside the repository: not part of the work
    workdir = tmp / "repo"
    make_repo(workdir)
    said: list[str] = []
    try:
        plan = Plan(task=f"bench: {n} secondar{'ies' if n > 1 else 'y'} at once", primary=None,
                    secondaries=names, analyze=False)
        t0 = time.monotonic()
        summary = delegate(config, plan, workdir, tmux=tmux, events=Events(say=said.append))
        wall = time.monotonic() - t0
        if summary.status != "completed" or len(summary.secondaries) != n:
            raise SystemExit(f"delegate() with {n} secondaries: {summary.status}: {summary.reason}\n" +
                             "\n".join(said))
        return summary.to_dict(), recorder, t0, wall
    finally:
        recorder.kill_leftovers()
        runs = workdir / ".orchestra" / "runs"
        for run_dir in (runs.iterdir() if runs.is_dir() else []):
            try:
                clean(workdir, run_dir.name)
            except OrchestraError:
                pass


def one_wall(n: int, seconds: float, tmux: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-parallel-"))
    try:
        cast = tmp / "secondary.cast"
        write_cast(cast, seconds)
        agents = {"replayed": {
            "command": [sys.executable, "-m", "orchestra.replay", str(cast), "--speed", "1"],
            "env": {"PYTHONPATH": str(ROOT)}, "completion": r"^TASK COMPLETE", "parser": "generic",
            "timeout": seconds * 4 + 60, "linger": 0.2, "kill_grace": 1}}
        summary, recorder, t0, wall = run_delegate(n, agents, ["replayed"] * n, tmux, tmp)
        sessions = recorder.sessions
        return {"wall": wall, "spawned_by": max(s.spawned for s in sessions) - t0,
                "first_spawn": min(s.spawned for s in sessions) - t0,
                "after_exit": t0 + wall - max(s.finished for s in sessions),
                "agent_s": [s["duration_s"] for s in summary["secondaries"]],
                "worktrees": len(summary["worktrees"]), "spent": recorder.spent}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def one_detection(n: int, seconds: float, tmux: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-parallel-"))
    try:
        common = {"completion": r"^DONE \d", "parser": "generic", "timeout": seconds * 4 + 60, "linger": 0.2,
                  "kill_grace": 1}
        agents = {"steady": {"command": [sys.executable, "-c", STEADY_CHILD, str(seconds)], **common},
                  "flood": {"command": [sys.executable, "-c", FLOOD_CHILD, str(seconds)], **common}}
        names = ["steady"] * n if n == 1 else ["steady"] * (n - 1) + ["flood"]
        _, recorder, _, wall = run_delegate(n, agents, names, tmux, tmp)
        steady, flood = [], []
        for s in recorder.sessions:
            stamp = DONE_STAMP.search("\n".join(s.stream.last_lines))
            if stamp is None or not hasattr(s, "detected"):
                raise SystemExit(f"{s.profile.name}: no stamped completion in {s.stream.last_lines[-3:]}")
            (flood if s.profile.name == "flood" else steady).append((s.detected - float(stamp.group(1))) * 1000)
        return {"steady": steady, "flood": flood, "wall": wall}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- in the parent ------------------------------------------------------------------


def measure(kind: str, *args: str, timeout: float) -> dict:
    """One measurement in a fresh process; on a timeout or Ctrl-C it is asked to end (it then ends its agents
    and cleans up) before it is killed."""
    proc = subprocess.Popen([sys.executable, __file__, "--one", kind, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    if proc.returncode != 0:
        raise SystemExit(f"bench {kind} {' '.join(args)} failed:\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1,2,4,8,16", help="numbers of secondaries at once")
    ap.add_argument("--seconds", type=float, default=10.0, help="T: how long each secondary takes")
    ap.add_argument("--runs", type=int, default=1, help="runs per count (interleaved; the median is shown)")
    ap.add_argument("--no-tmux", action="store_true")
    ap.add_argument("--repo-files", type=int, default=0, help="add K files to the repository (default: 2 files)")
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        # a SIGTERM from the parent unwinds through the finally blocks (delegate() itself ends its agents)
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
        kind, n, seconds, tmux = args.one
        one = one_wall if kind == "wall" else one_detection
        print(json.dumps(one(int(n), float(seconds), tmux == "tmux")))
        return

    counts = sorted({int(c) for c in args.counts.split(",")} | {1})  # N = 1 is the baseline
    os.environ["ORCHESTRA_BENCH_REPO_FILES"] = str(args.repo_files)  # read by make_repo in each measurement
    seconds = args.seconds
    started = time.monotonic()
    os.environ["TMUX_TMPDIR"] = tempfile.mkdtemp(prefix="orchestra-bench-tmux-")  # a private tmux server
    os.environ.pop("TMUX", None)
    tmux = "notmux" if args.no_tmux or not shutil.which("tmux") else "tmux"
    limit = seconds * 4 + 180
    wall: dict[int, list[dict]] = {n: [] for n in counts}
    detect: dict[int, list[dict]] = {n: [] for n in counts}
    try:
        for r in range(args.runs):
            for n in counts:
                w = measure("wall", str(n), str(seconds), tmux, timeout=limit)
                wall[n].append(w)
                print(f"# run {r + 1}/{args.runs} N={n}: wall {w['wall']:.3f} s", file=sys.stderr, flush=True)
            for n in counts:
                d = measure("detection", str(n), str(seconds), tmux, timeout=limit)
                detect[n].append(d)
                print(f"# run {r + 1}/{args.runs} N={n}: detection max "
                      f"{max(d['steady'] + d['flood']):.2f} ms", file=sys.stderr, flush=True)
    except KeyboardInterrupt:  # the measurement under way has ended its agents and cleaned up
        print("# interrupted", file=sys.stderr)
        raise SystemExit(130)
    finally:
        subprocess.run(["tmux", "kill-server"], capture_output=True)  # the private server only
        shutil.rmtree(os.environ["TMUX_TMPDIR"], ignore_errors=True)

    def med(n: int, key: str) -> float:
        return statistics.median(w[key] for w in wall[n])

    base = med(1, "wall")
    print(f"# orchestra bench: N secondaries at once through delegate() (N>1: a git worktree and branch each), "
          f"each taking T = {seconds:g} s; {os.cpu_count()} CPUs; tmux windows {'on' if tmux == 'tmux' else 'off'}; "
          f"repository of {args.repo_files + 2} files; "
          f"{'median of ' + str(args.runs) + ' runs' if args.runs > 1 else '1 run'}")
    print("# targets: < 10 % extra wall time at N = 8 against N = 1; each completion detected < 20 ms after "
          "it is written, however many run (detection: N-1 steady + 1 flooding when N > 1)")
    head = (f"{'N':>3} | {'secondaries wall s':>18} | {'vs N=1':>16} | {'sequential N×T s':>16} | "
            f"{'spawned by s':>12} | {'after exit s':>12} | {'detection p50 / p99 / max ms':>28} | "
            f"{'samples':>7} | {'flooder ms':>10}")
    print(head)
    print("-" * len(head))
    for n in counts:
        w = med(n, "wall")
        extra = w - base
        vs = "baseline" if n == 1 else f"{100 * (w / base - 1):+6.1f} % {extra:+6.2f} s"
        steady = [x for d in detect[n] for x in d["steady"]]
        flood = [x for d in detect[n] for x in d["flood"]]
        det = f"{statistics.median(steady):6.2f} / {percentile(steady, 0.99):6.2f} / {max(steady):6.2f}"
        print(f"{n:>3} | {w:>18.3f} | {vs:>16} | {n * seconds:>16.1f} | {med(n, 'spawned_by'):>12.3f} | "
              f"{med(n, 'after_exit'):>12.3f} | {det:>28} | {len(steady):>7} | "
              f"{(f'{max(flood):.2f}' if flood else '-'):>10}")
    print()
    keys = [key for key, _, _ in STEPS]
    print("# delegate()'s own work in the wall runs, summed over the secondaries (ms; median): "
          "the agents wait for it before they start (repo .. spawn) or after the last one ends (summary ..)")
    head = f"{'N':>3} | " + " | ".join(f"{k:>8}" for k in keys)
    print(head)
    print("-" * len(head))
    for n in counts:
        print(f"{n:>3} | " + " | ".join(f"{1000 * statistics.median(w['spent'][k] for w in wall[n]):>8.1f}"
                                          for k in keys))
    print()
    if 8 in counts:
        over = 100 * (med(8, "wall") / base - 1)
        print(f"# N = 8: {over:+.1f} % wall time against N = 1 (target < 10 %): {'met' if over < 10 else 'MISSED'}")
    worst = max(x for n in counts for d in detect[n] for x in d["steady"])
    worst_flood = max((x for n in counts for d in detect[n] for x in d["flood"]), default=None)
    print(f"# detection: worst {worst:.2f} ms over all N (target < 20 ms): {'met' if worst < 20 else 'MISSED'}" +
          (f"; the flooding secondary's own: worst {worst_flood:.2f} ms "
           f"({'met' if worst_flood < 20 else 'MISSED'})" if worst_flood is not None else ""))
    print(f"# took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
