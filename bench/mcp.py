#!/usr/bin/env python3
"""From an MCP `delegate` tool call to the secondary's process started: orchestra's own share.

    python bench/mcp.py [--runs 15]

Issue 13 asks for under 300 ms. One `orchestra mcp` server (started and initialised once, not
timed) in a temporary directory gets `tools/call delegate` over plain JSON-RPC; the secondary is
`sh -c 'date +%s.%N > STAMP; echo DONE'`, so the time measured is from writing the call to the
server's stdin to the stamp its first command writes: the MCP server's work, jobs.start (a new
orchestra process: Python's start, orchestra's imports, the config), the run's set-up (its folder,
live record, tmux session and window when tmux is installed) and the spawn. The call's answer (the
summary, once the secondary is done) is read too, and the runs' tmux sessions are closed.

Beside it, in the same directory and with the same config:
  python -c pass             a bare interpreter spawn, and exit (the floor of any new Python process)
  orchestra --version        the same plus orchestra's CLI imports
  delegate in the foreground `python -m orchestra delegate --no-analyze --to stamp --task T` started
                             directly (no MCP, no detaching): from the spawn to the stamp
The difference between the first row and the last is what the MCP server and detaching add.
The machine is shared and noisy: the median and p90 of --runs are shown.

orchestra's modules are compiled to bytecode first (compileall), as `pip install .` does: where
PYTHONDONTWRITEBYTECODE is set (it is on the machines here) an editable checkout would otherwise
compile its sources at every start, about 60 ms that no installed orchestra spends.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_config(where: Path, stamp: Path) -> Path:
    path = where / "bench-orchestra.yaml"
    script = f"date +%s.%N > {stamp}; echo DONE"
    path.write_text(json.dumps({  # JSON is YAML
        "agents": {"stamp": {"command": ["sh", "-c", script, "sh", "{task}"], "binary": "sh",
                             "completion": "^DONE", "timeout": 30, "linger": 0.2}},
        "routing": {"rules": [], "default": "stamp"}}))
    return path


def read_stamp(stamp: Path, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = stamp.read_text().strip()
            if text:
                return float(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    raise TimeoutError(f"the secondary never wrote {stamp}")


class Server:
    def __init__(self, cwd: Path, cfg: Path, env: dict):
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestra", "mcp", "--config", str(cfg)], cwd=cwd,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.n = 0
        self.buf = b""

    def call(self, method: str, params: dict) -> float:
        self.n += 1
        line = json.dumps({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params}).encode() + b"\n"
        sent = time.time()
        self.proc.stdin.write(line)
        self.proc.stdin.flush()
        return sent

    def notify(self, method: str) -> None:
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" not in self.buf:
                if not select.select([self.proc.stdout], [], [], max(0, deadline - time.monotonic()))[0]:
                    raise TimeoutError("no answer from orchestra mcp")
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError("orchestra mcp closed its output")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if msg.get("id") == self.n:
                return msg

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def spawn_time(argv: list[str], cwd: Path, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def row(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return f"| {name} | {statistics.median(ms):.0f} | {p90:.0f} | {ms[0]:.0f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "orchestra")], check=True,
                   stdout=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-mcp-"))
    tmux_dir = tempfile.mkdtemp(prefix="orchestra-bench-tmux-")  # a tmux server of its own
    env = dict(os.environ, TMUX_TMPDIR=tmux_dir, PYTHONPATH=str(ROOT))
    env.pop("TMUX", None)
    project = tmp / "project"
    project.mkdir()
    stamp = tmp / "stamp"
    cfg = write_config(tmp, stamp)
    mcp_times, fg_times, bare, version = [], [], [], []
    server = Server(project, cfg, env)
    try:
        server.call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "bench", "version": "1"}})
        server.answer()
        server.notify("notifications/initialized")
        for i in range(args.runs):
            stamp.unlink(missing_ok=True)
            sent = server.call("tools/call", {"name": "delegate", "arguments": {"task": f"t{i}", "to": "stamp"}})
            mcp_times.append(read_stamp(stamp) - sent)
            reply = server.answer()
            assert reply["result"]["structuredContent"]["status"] == "completed", reply

            stamp.unlink(missing_ok=True)
            t = time.time()
            subprocess.run([sys.executable, "-m", "orchestra", "delegate", "--no-analyze", "--to", "stamp",
                            "--task", f"f{i}", "--config", str(cfg)], cwd=project, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            fg_times.append(read_stamp(stamp) - t)
            bare.append(spawn_time([sys.executable, "-c", "pass"], project, env))
            version.append(spawn_time([sys.executable, "-m", "orchestra", "--version"], project, env))
    finally:
        server.close()
        if shutil.which("tmux"):
            subprocess.run(["tmux", "kill-server"], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmux_dir, ignore_errors=True)
    tmux = "on" if shutil.which("tmux") else "off (not installed)"
    print(f"From a delegate call to the secondary's process started, {args.runs} runs, tmux {tmux} (ms)\n")
    print("| what | median | p90 | min |")
    print("| --- | --- | --- | --- |")
    print(row("MCP `delegate` call -> secondary started", mcp_times))
    print(row("`orchestra delegate` in the foreground -> secondary started", fg_times))
    print(row("`python -c pass` (spawn and exit)", bare))
    print(row("`python -m orchestra --version` (spawn and exit)", version))


if __name__ == "__main__":
    main()
