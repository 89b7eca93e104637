#!/usr/bin/env python3
"""What a secondary costs on a Ray cluster against the same secondary on this machine.

    python bench/cluster.py [--counts 2,4] [--runs 5] [--seconds 1]

Issue 22. A 3-node Ray cluster is started on this machine (ray.cluster_utils.Cluster, as the tests do), then
for each count N, `orchestra delegate --no-analyze --no-tmux --json` with N scripted secondaries (the toy
agent: it writes one file, waits --seconds, says DONE) runs alternately on this machine (each in a git
worktree of its own) and with `--cluster` (each an `orchestra run` on a node, its base sent as a bundle,
its transcript streamed back, its branch fetched back as a bundle), --runs times each, in fresh temporary
git repositories. Every run is a fresh `orchestra` process, as a user's is.

  wall      the command, start to exit (median), each way
  over      wall minus the slowest secondary's own duration (its agent's time, start to end, as its
            summary says): what orchestra added around the agents, each way
  added     cluster over - local over: what the cluster adds to a run of N secondaries
  per more  between two counts, how much `added` grows per secondary: the cost of one more secondary
            (what stays is the run's fixed cost: importing Ray, connecting, one Ray worker started per
            node for the run's job, the base bundle)

  death     a second table: one secondary (an agent that never finishes) on a worker node; the node is
            removed at once (its raylet killed), and timed until the run's live record says the
            secondary `crashed` (node_died), --runs times (a fresh node each time). The cluster's health
            check is the one the README gives (FAST_DETECTION: about 3 s), as the tests use.

The cluster's start (~10 s here) is paid once per cluster, not per run, and is left out. The machine
has 2 cores shared with other work: the three "nodes" and the agents share them, so the cluster
figures are an upper bound for real nodes, where each secondary has a machine's cores of its own.
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

import yaml

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "agents" / "toy_agent.py"
MB = 1024 * 1024


def start_cluster():
    from ray.cluster_utils import Cluster

    sys.path.insert(0, str(ROOT))
    from orchestra.cluster import FAST_DETECTION

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {"node0": 1}, "object_store_memory": 80 * MB, "include_dashboard": False,
        "_system_config": FAST_DETECTION})
    cluster.bench_workers = {n: add_worker(cluster, n) for n in (1, 2)}
    cluster.wait_for_nodes()
    return cluster


def add_worker(cluster, n: int):
    return cluster.add_node(num_cpus=2, resources={f"node{n}": 1, "worker": 1}, object_store_memory=80 * MB)


def record(project: Path) -> dict:
    found = sorted((project / ".orchestra" / "runs").glob("*/run.json"))
    try:
        return json.loads(found[-1].read_text()) if found else {}
    except ValueError:
        return {}


def until(predicate, timeout: float = 120, every: float = 0.01):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(every)
    return value


def death(tmp: Path, cluster) -> float:
    """Seconds from a node's removal to its secondary recorded crashed (node_died)."""
    from orchestra.cluster import sweep

    where = Path(tempfile.mkdtemp(dir=tmp))
    cfg = where / "orchestra.yaml"
    cfg.write_text(yaml.safe_dump({"agents": {"stuck": {
        "command": [sys.executable, str(TOY), "--task", "{task}", "--hang"], "completion": "^DONE", "timeout": 120,
        "kill_grace": 1}}}))
    project = repo(where / "repo")
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--no-analyze",
                             "--no-tmux", "--json", "--task", "t", "--to", "stuck", "--cluster", cluster.address,
                             "--cluster-resources", "cpu=0.5,worker=1"], cwd=project, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        agent = until(lambda: next((a for a in record(project).get("secondaries") or [] if a.get("latest")), None))
        n, node = next((n, w) for n, w in cluster.bench_workers.items() if w.node_id == agent["node"]["id"])
        began = time.monotonic()
        cluster.remove_node(node, allow_graceful=False)
        until(lambda: (record(project).get("secondaries") or [{}])[0].get("status") == "crashed")
        took = time.monotonic() - began
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cluster.bench_workers[n] = add_worker(cluster, n)
    cluster.wait_for_nodes()
    sweep()  # what the dead node's task left (all on this machine here)
    shutil.rmtree(where, ignore_errors=True)
    return took


def repo(where: Path) -> Path:
    where.mkdir(parents=True)
    for args in (("init", "-q", "-b", "main"), ("config", "user.name", "Bench"), ("config", "user.email", "b@x")):
        subprocess.run(["git", *args], cwd=where, check=True)
    (where / "README.md").write_text("# bench\n")
    subprocess.run(["git", "add", "-A"], cwd=where, check=True)
    subprocess.run(["git", "commit", "-qm", "start"], cwd=where, check=True)
    return where


def one(tmp: Path, n: int, seconds: float, address: str | None) -> tuple[float, float]:
    """(wall, wall minus the slowest agent's own duration) of one delegate of n secondaries."""
    where = Path(tempfile.mkdtemp(dir=tmp))
    cfg = where / "orchestra.yaml"
    agents = {f"w{i}": {"command": [sys.executable, str(TOY), "--task", "{task}", "--files", f"f{i}.py", "--line",
                                    "working"], "completion": "^DONE", "timeout": 60, "linger": 0.1, "kill_grace": 1}
              for i in range(n)}
    for body in agents.values():  # the agent's own wait, so its duration is more than start and stop
        body["command"] = [sys.executable, "-c", f"import time,subprocess,sys; time.sleep({seconds}); "
                           f"sys.exit(subprocess.call(sys.argv[1:]))", *body["command"]]
    cfg.write_text(yaml.safe_dump({"agents": agents}))
    project = repo(where / "repo")
    argv = [sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--no-analyze", "--no-tmux",
            "--json", "--task", "t", *sum((["--to", name] for name in agents), [])]
    if address:
        argv += ["--cluster", address, "--cluster-resources", "cpu=0.5"]
    began = time.monotonic()
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - began
    try:
        run = json.loads(done.stdout)
    except ValueError:
        raise SystemExit(f"orchestra said no JSON (exit {done.returncode}):\n{done.stderr[-2000:]}") from None
    if run["status"] != "completed":
        raise SystemExit(f"a run did not complete: {run['reason']}\n{done.stderr[-2000:]}")
    slowest = max(s["duration_s"] for s in run["secondaries"])
    shutil.rmtree(where, ignore_errors=True)
    return wall, wall - slowest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="2,4")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="each agent's own work time")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-cluster-"))
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="orch-ray-", dir="/tmp")  # Ray's sessions: removed after
    print("starting a 3-node Ray cluster on this machine...", file=sys.stderr)
    cluster = start_cluster()
    rows = []
    try:
        for n in counts:
            local, remote = [], []
            for i in range(args.runs):  # alternating: the machine's load falls on both alike
                local.append(one(tmp, n, args.seconds, None))
                remote.append(one(tmp, n, args.seconds, cluster.address))
                print(f"  N={n} run {i + 1}: local {local[-1][0]:.2f} s, cluster {remote[-1][0]:.2f} s", file=sys.stderr)
            med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
            rows.append((n, med(local, 0), med(remote, 0), med(local, 1), med(remote, 1)))
        deaths = []
        for i in range(args.runs):
            deaths.append(death(tmp, cluster))
            print(f"  node death {i + 1}: noticed after {deaths[-1]:.2f} s", file=sys.stderr)
    finally:
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
    print(f"\nsecondaries: the toy agent, {args.seconds:g} s of its own work each; medians of {args.runs} runs each way\n")
    print("| N | wall, local | wall, cluster | over, local | over, cluster | added by the cluster | per more |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    before = None
    for n, wl, wc, ol, oc in rows:
        more = f"{((oc - ol) - (before[1])) / (n - before[0]):+.2f} s" if before else ""
        print(f"| {n} | {wl:.2f} s | {wc:.2f} s | {ol:.2f} s | {oc:.2f} s | {oc - ol:+.2f} s | {more} |")
        before = (n, oc - ol)
    print("\n| a node removed mid-run: its secondary recorded crashed (node_died) after | median | runs |")
    print("| --- | --- | --- |")
    print(f"| health check 1 s x 3 | {statistics.median(deaths):.2f} s | {', '.join(f'{d:.2f}' for d in deaths)} s |")


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    main()
