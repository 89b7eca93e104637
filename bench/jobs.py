#!/usr/bin/env python3
"""Runs in the background: how fast `status` answers beside many past runs, and how soon `wait` sees an end.

    python bench/jobs.py [--runs 1000] [--waits 20]

status   jobs.status() (the runs under way) in a directory holding --runs finished runs and two live
         ones, beside reading every record (history.list_runs, what `orchestra runs` does)
wait     a detached `orchestra run` of an agent that ends at once; from its final record being
         written (the file's mtime) to jobs.wait() returning, beside a wait that looks at the record
         every second (as the nearest peer polls)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fill(workdir: Path, n: int) -> None:
    """n finished runs, each with a record the size of a real delegation's, and two live ones (this process)."""
    from orchestra.runfolder import LIVE_DIR, RUNS_DIR

    agent = {"agent": "droid", "role": "secondary-1", "status": "completed", "files_modified": ["a.py"] * 20,
             "errors": [], "cost_usd": 0.05, "last_lines": ["x" * 100] * 20, "reply": "y" * 2000}
    for i in range(n + 2):
        run_id = f"20260101-{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}-{i:06x}"
        folder = workdir / RUNS_DIR / run_id
        folder.mkdir(parents=True)
        live = i >= n
        record = {"run_id": run_id, "task": "t", "status": "running" if live else "completed",
                  "pid": os.getpid(), "primary": dict(agent, role="primary"), "secondaries": [agent]}
        (folder / "run.json").write_text(json.dumps(record, indent=2))
        if live:
            (workdir / LIVE_DIR).mkdir(parents=True, exist_ok=True)
            (workdir / LIVE_DIR / run_id).touch()


def timed_ms(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def polling_wait(workdir: Path, run_id: str, period: float = 1.0) -> None:
    from orchestra.runfolder import load as load_run

    while load_run(workdir, run_id)["status"] == "running":
        time.sleep(period)


def main() -> None:
    from orchestra import jobs
    from orchestra.runfolder import list_runs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--waits", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-jobs-"))
    try:
        fill(tmp / "many", args.runs)
        ours = timed_ms(lambda: jobs.status(tmp / "many"), 20)
        every = timed_ms(lambda: list_runs(tmp / "many"), 5)
        assert len(jobs.status(tmp / "many")) == 2
        print(f"# orchestra bench: background runs ({args.runs} past runs; {args.waits} waits)")
        print(f"{'what':>34} | {'p50 ms':>8} | {'max ms':>8}")
        print("-" * 58)
        print(f"{'status (runs under way)':>34} | {statistics.median(ours):>8.1f} | {max(ours):>8.1f}")
        print(f"{'every record read (orchestra runs)':>34} | {statistics.median(every):>8.1f} | {max(every):>8.1f}")

        work = tmp / "wait"
        work.mkdir()
        cfg = work / "o.yaml"
        cfg.write_text(json.dumps({"agents": {"quick": {"command": [sys.executable, "-c", "print('DONE')"],
                                                        "completion": "^DONE", "linger": 0.1}}}))
        seen, polled = [], []
        for i in range(args.waits):
            run_id = jobs.start(work, ["run", "--agent", "quick", "--config", str(cfg), "--no-tmux"])
            waiter = polling_wait if i % 2 else (lambda w, r: jobs.wait(w, r, 60))
            waiter(work, run_id)
            done = time.time()
            written = (work / ".orchestra" / "runs" / run_id / "run.json").stat().st_mtime
            (polled if i % 2 else seen).append((done - written) * 1000)
        print(f"{'wait: final record -> wait returns':>34} | {statistics.median(seen):>8.1f} | {max(seen):>8.1f}")
        print(f"{'a wait that looks every 1 s':>34} | {statistics.median(polled):>8.1f} | {max(polled):>8.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["true"])  # (reaps the finished workers)


if __name__ == "__main__":
    main()
