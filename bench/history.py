#!/usr/bin/env python3
"""`orchestra status` and `orchestra runs` in a directory of 1,000 runs, beside Python reading every record.

    python bench/history.py [--runs 1000] [--times 11] [--before main]

Issue 23 asks for both within 1.2x of a plain Python loop that reads every run's record. The directory
is a git repository whose .orchestra/runs/ holds --runs finished runs of realistic shape, made with
orchestra's own summary types as a run writes them (run.json with indent 2, 5-25 KB: a delegation of
a primary and one secondary, an `orchestra run` with checks, a delegation to four secondaries with
worktrees and a merge report; twenty last lines, a reply, a transcript per agent, run.lock), two runs
under way (their process: this one) and three folders without run.json (killed runs: `incomplete`).

Each command is a fresh process (`python -m orchestra CMD`, this checkout and --before side by side,
byte-compiled as `pip install .` does), the cases alternating, --times each; the baseline is the same
interpreter running LOOP: list the folders, json.load every run.json, print one line per run. Shown:
median wall and CPU ms (user + system), and the ratio to the loop's. `orchestra runs` keeps each
finished run's row in .orchestra/rows.json under its record's fingerprint (runfolder.rows); its "first
listing" row has that file removed before each run, so every record is read and the file written.
Then the same inside one process (no interpreter start, no imports): runfolder.list_runs() (what
`runs --json` and the first listing read) beside the loop's body.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import ROOT, Tree, med, python, series  # noqa: E402

LOOP = """
import json, os, sys
runs = os.path.join(".orchestra", "runs")
for name in sorted(os.listdir(runs)):
    try:
        with open(os.path.join(runs, name, "run.json"), encoding="utf-8") as fh:
            r = json.load(fh)
    except (OSError, ValueError):
        continue
    print(r.get("run_id"), r.get("status"), " ".join(str(r.get("task") or "").split())[:60])
"""
IN_PROCESS = """
import json, os, statistics, sys, time
from pathlib import Path
from orchestra.runfolder import list_runs
here = Path.cwd()

def loop():
    runs = os.path.join(".orchestra", "runs")
    out = []
    for name in sorted(os.listdir(runs)):
        try:
            with open(os.path.join(runs, name, "run.json"), encoding="utf-8") as fh:
                out.append(json.load(fh))
        except (OSError, ValueError):
            continue
    return out

times = {"list_runs": [], "loop": []}
for i in range(int(sys.argv[1])):
    for name, fn in (("list_runs", lambda: list_runs(here)), ("loop", loop))[:: 1 if i % 2 else -1]:
        t = time.perf_counter()
        fn()
        times[name].append((time.perf_counter() - t) * 1000)
print(json.dumps({k: statistics.median(v) for k, v in times.items()}))
"""


def fill(workdir: Path, n: int) -> None:
    """n finished runs of realistic shape, two under way (this process), three without a record."""
    from orchestra.procs import process_started
    from orchestra.runfolder import LIVE_DIR, RUNS_DIR
    from orchestra.summary import AgentSummary, RunSummary

    subprocess.run(["git", "init", "-q", str(workdir)], check=True)
    lines = [f"step {k}: \x1b[32m✓\x1b[0m edited src/module_{k}.py, ran the tests: 42 passed in 1.3s " * 2
             for k in range(20)]

    def agent(name: str, role: str, run_id: str, i: int, files: int) -> dict:
        a = AgentSummary(
            agent=name, role=role, status="completed" if i % 7 else "failed",
            reason="" if i % 7 else "the agent reported an error",
            ended_by={"signal": "completion", "pattern": '"type":"result"', "line": '{"type":"result",' + "x" * 150,
                      "decided_ms": 0.48},
            files_modified=[f"src/pkg/module_{k}.py" for k in range(files)], files_claimed=[],
            files_seen_by_git=[f"src/pkg/module_{k}.py" for k in range(files)], cost_usd=0.0123 * (i % 9 + 1),
            cost_source="reported", tokens={"input": 9807 + i, "output": 123 + i}, duration_s=12.5 + i % 60,
            started_at="2026-12-01T10:00:00.000+00:00", exit_code=0,
            transcript=f".orchestra/runs/{run_id}/{role}.cast", session_id="a46f31bc-b934-4cca-a812-4f8614ade05a",
            last_lines=lines, reply=("The model, its schemas and the router are in place; the tests pass. " * 25),
            workdir=str(workdir), tmux_target=f"orchestra-{run_id}:{role}")
        return a.to_dict()

    runs = workdir / RUNS_DIR
    for i in range(n + 5):
        run_id = f"20261201-{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}-{i % 256:02x}{i:04x}"[:22]
        folder = runs / run_id
        folder.mkdir(parents=True)
        (folder / "run.lock").touch()
        if i >= n + 2:  # killed before its record: a transcript, no run.json
            (folder / "secondary-1.cast").write_text(json.dumps({"version": 2, "width": 120, "height": 40,
                                                                 "timestamp": 1764583200,
                                                                 "title": "orchestra: droid"}) + "\n")
            continue
        shape = i % 3
        task = f"Add a User model with CRUD endpoints, run {i}: models/user.py, schemas/user.py, routers/users.py"
        record = RunSummary(run_id=run_id, task=task, status="completed", started_at="2026-12-01T10:00:00+00:00",
                            workdir=str(workdir), duration_s=30.0 + i % 100, tmux_session=f"orchestra-{run_id}")
        if shape == 0:  # delegate: a primary and one secondary
            record.primary = agent("claude", "primary", run_id, i, 0)
            record.secondaries = [agent("droid", "secondary-1", run_id, i, 3)]
            record.brief = "Create a User model with CRUD endpoints in FastAPI: " * 4
            record.summary_returned_to_primary, record.primary_reply = True, "Done: check the endpoints. " * 10
        elif shape == 1:  # orchestra run, with checks
            one = agent("codex", "agent", run_id, i, 5)
            one["checks"] = [{"command": "python -m pytest -q", "exit_code": 0, "duration_s": 1.2,
                              "output": "42 passed in 1.1s\n" * 10, "timed_out": False}]
            one["verified"] = True
            record.secondaries, record.verified = [one], True
        else:  # delegate --parallel 4: worktrees, branches, a merge report
            record.primary = agent("claude", "primary", run_id, i, 0)
            record.secondaries = [agent(name, f"secondary-{k + 1}", run_id, i, 4)
                                  for k, name in enumerate(["droid", "codex", "gemini", "aider"])]
            record.briefs = ["Part of the task: " * 10] * 4
            record.base = {"branch": "main", "commit": "0123456789abcdef0123456789abcdef01234567"}
            record.worktrees = [{"agent": a["agent"], "window": a["role"], "branch": f"orchestra/{run_id}/{a['agent']}",
                                 "path": str(workdir / ".orchestra" / "worktrees" / run_id / a["agent"])}
                                for a in record.secondaries]
            record.merges = [{"agent": a["agent"], "branch": f"orchestra/{run_id}/{a['agent']}", "status": "completed",
                              "commits": 1, "files": a["files_modified"], "merges_cleanly": True, "conflicts": [],
                              "conflicts_with_earlier": [], "merged": False, "uncommitted": False, "note": ""}
                             for a in record.secondaries]
        record.total_cost_usd = 0.05 + i % 10 / 100
        record.pid, record.pid_started = 4000 + i, 123456 + i
        if i >= n:  # under way: its process lives (this one), a marker in .orchestra/live/
            record.status, record.pid, record.pid_started = "running", os.getpid(), process_started(os.getpid())
            (workdir / LIVE_DIR).mkdir(parents=True, exist_ok=True)
            (workdir / LIVE_DIR / run_id).touch()
        for a in ([record.primary] if record.primary else []) + record.secondaries:
            (folder / f"{a['role']}.cast").write_text('{"version": 2, "width": 120, "height": 40}\n' +
                                                      '[0.1, "o", "working\\r\\n"]\n' * 50)
        (folder / "run.json").write_text(json.dumps(record.to_dict(), indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000, help="finished runs in the directory")
    ap.add_argument("--times", type=int, default=11, help="runs of each command (alternating; the median is shown)")
    ap.add_argument("--before", default="main", help="the revision to compare with (default: main)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-history-"))
    old = new = None
    try:
        exe = python(tmp / "venv")
        old, new = Tree(args.before, exe), Tree(None, exe)
        work = tmp / "work"
        fill(work, args.runs)
        sizes = [p.stat().st_size for p in (work / ".orchestra" / "runs").glob("*/run.json")]
        listed = subprocess.run([exe, "-m", "orchestra", "runs", "--json"], cwd=work, env=new.env,
                                capture_output=True, text=True, check=True).stdout
        assert len(json.loads(listed)) == args.runs + 5, "runs --json did not list every folder"
        cases = {"Python reading every record (LOOP)": ([exe, "-c", LOOP], new.env, work)}
        for cmd in (["status"], ["runs"]):
            for tree in (old, new):
                cases[f"orchestra {' '.join(cmd)} ({tree.name})"] = ([exe, "-m", "orchestra", *cmd], tree.env, work)
        rows = work / ".orchestra" / "rows.json"
        cases["orchestra runs, first listing (this checkout)"] = (
            [exe, "-m", "orchestra", "runs"], new.env, work, lambda: rows.unlink(missing_ok=True))
        got = series(cases, args.times)
        inside = {tree.name: json.loads(subprocess.run([exe, "-c", IN_PROCESS, str(args.times)], cwd=work,
                                                       env=tree.env, capture_output=True, text=True,
                                                       check=True).stdout) for tree in (old, new)}
    finally:
        if old is not None:
            old.remove()
        shutil.rmtree(tmp, ignore_errors=True)
    base = got["Python reading every record (LOOP)"]
    bw, bc = med(base["wall"]), med(base["cpu"])
    print(f"# orchestra bench: {args.runs} finished runs (+2 under way, 3 without a record), run.json "
          f"{min(sizes) // 1024}-{max(sizes) // 1024} KB (median {med(sizes) / 1024:.1f}); "
          f"each command a fresh process, "
          f"{args.times} times, alternating (median); before = {args.before}; target: within 1.2x of the loop")
    head = f"{'what':>46} | {'wall ms':>8} | {'x loop':>6} | {'CPU ms':>7} | {'x loop':>6}"
    print(head)
    print("-" * len(head))
    for name, t in got.items():
        w, c = med(t["wall"]), med(t["cpu"])
        print(f"{name:>46} | {w:>8.1f} | {w / bw:>5.2f}x | {c:>7.1f} | {c / bc:>5.2f}x")
    print()
    print("# inside one process (no interpreter start, no imports): every record read, median ms")
    head = f"{'tree':>16} | {'list_runs()':>11} | {'the loop':>8} | {'x loop':>6}"
    print(head)
    print("-" * len(head))
    for name, t in inside.items():
        print(f"{name:>16} | {t['list_runs']:>11.1f} | {t['loop']:>8.1f} | {t['list_runs'] / t['loop']:>5.2f}x")
    print()
    for cmd in ("status", "runs"):
        ratio = med(got[f"orchestra {cmd} ({new.name})"]["wall"]) / bw
        print(f"# orchestra {cmd}: {ratio:.2f}x the loop's wall time (target <= 1.2x): "
              f"{'met' if ratio <= 1.2 else 'MISSED'}")


if __name__ == "__main__":
    main()
