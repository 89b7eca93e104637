"""A live run record from a run's start, and runs in the background: --detach, status, wait, cancel, lost."""
import json
import os
import signal
import subprocess
import sys
import threading

from conftest import orchestra, toy
from test_faults import all_gone, config, wait_for, wait_for_file

from orchestra import jobs, procs


def test_the_record_is_live_from_the_start_and_a_reader_never_sees_half_of_it(workdir):
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", toy=["--task", "{task}", "--flood", "2", "--pidfile", str(pidfile)])
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--agent", "toy", "--task", "t",
                             "--config", str(cfg), "--no-tmux"], cwd=workdir, stdout=subprocess.DEVNULL)
    wait_for_file(pidfile)
    record = next((workdir / ".orchestra" / "runs").iterdir()) / "run.json"
    seen, broken = [], []

    def read_all_the_time():
        running = True
        while running:
            running = proc.poll() is None  # one read more after the exit: the final record may come just before it
            try:
                seen.append(json.loads(record.read_text()))
            except ValueError as exc:
                broken.append(exc)

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    proc.wait(timeout=60)
    reader.join()
    live = [r for r in seen if r["status"] == "running"]
    assert not broken and live and seen[-1]["status"] == "completed"
    assert live[-1]["pid"] == proc.pid and live[-1]["secondaries"][0]["agent"] == "toy"
    assert {"starting", "working"} & {r["secondaries"][0]["phase"] for r in live}
    assert json.loads(record.read_text())["pid"] == proc.pid  # the final record keeps it


def test_a_detached_run_says_its_id_at_once_and_wait_gives_its_summary(workdir):
    started = orchestra("delegate", "--demo", "--task", "Add a User model", "--detach", "--json", cwd=workdir)
    assert started.returncode == 0, started.stderr
    said = json.loads(started.stdout)
    assert said["status"] == "running"
    done = orchestra("wait", said["run_id"], "--json", cwd=workdir)
    record = json.loads(done.stdout)
    assert done.returncode == 0 and record["status"] == "completed" and record["summary_returned_to_primary"]
    assert (workdir / ".orchestra" / "runs" / said["run_id"] / "orchestra.log").exists()
    os.system(f"tmux kill-session -t =orchestra-{said['run_id']} 2>/dev/null")


def test_a_detached_worker_has_a_session_of_its_own_and_no_terminal(workdir):
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", slow=["--task", "{task}", "--hang", "--pidfile", str(pidfile)])
    run_id = jobs.start(workdir, ["run", "--agent", "slow", "--task", "t", "--config", str(cfg), "--no-tmux"])
    worker = jobs.status(workdir, run_id)[0]["pid"]
    agent = int(wait_for_file(pidfile))
    assert os.getsid(worker) == worker and procs.terminal(worker) is None  # its own session leader; no tty
    assert jobs.cancel(workdir, run_id)["status"] == "interrupted"
    assert all_gone([agent])


def test_wait_gives_up_at_its_timeout_with_124_and_cancel_ends_the_run_as_ctrl_c_would(workdir):
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", slow=["--task", "{task}", "--hang", "--spawn-child", "--pidfile", str(pidfile)])
    started = orchestra("run", "--agent", "slow", "--task", "t", "--config", str(cfg), "--no-tmux", "--detach",
                        "--json", cwd=workdir)
    run_id = json.loads(started.stdout)["run_id"]
    pids = [int(p) for p in wait_for_file(pidfile).split()]
    waited = orchestra("wait", run_id, "--timeout", "0.5", "--json", cwd=workdir)
    assert waited.returncode == 124 and json.loads(waited.stdout)["status"] == "running"
    listed = orchestra("status", cwd=workdir)
    assert run_id in listed.stdout and "[agent] slow: working" in listed.stdout, listed.stdout
    cancelled = orchestra("cancel", run_id, cwd=workdir)
    assert cancelled.returncode == 0 and "interrupted" in cancelled.stdout, cancelled.stderr
    assert all_gone(pids)
    assert json.loads(orchestra("show", run_id, "--json", cwd=workdir).stdout)["status"] == "interrupted"
    assert "No run under way" in orchestra("status", cwd=workdir).stdout


def test_a_worker_killed_outright_is_lost_and_its_transcript_still_plays(workdir):
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", slow=["--task", "{task}", "--hang", "--pidfile", str(pidfile)])
    run_id = jobs.start(workdir, ["run", "--agent", "slow", "--task", "t", "--config", str(cfg), "--no-tmux"])
    agent = int(wait_for_file(pidfile))
    worker = jobs.status(workdir, run_id)[0]["pid"]
    wait_for(lambda: "working on: t" in (workdir / ".orchestra" / "runs" / run_id / "slow.cast").read_text())
    waiting = threading.Thread(target=lambda: seen.append(jobs.wait(workdir, run_id, 30)))
    seen: list = []
    waiting.start()
    os.kill(worker, signal.SIGKILL)
    waiting.join(timeout=10)
    assert seen and seen[0]["status"] == "lost", seen  # wait ends with the worker, not at its timeout
    listed = orchestra("status", run_id, cwd=workdir)
    assert "lost" in listed.stdout and f"pid {worker}" in listed.stdout
    played = orchestra("replay", run_id, "--agent", "agent", "--speed", "0", cwd=workdir)
    assert played.returncode == 0 and "working on: t" in played.stdout
    assert all_gone([agent])  # a hangup when its terminal went with the worker


def test_a_detached_run_that_cannot_start_says_why_and_leaves_no_run(workdir):
    import yaml

    cfg = workdir / "o.yaml"
    cfg.write_text(yaml.safe_dump({"agents": {"ghost": {"command": ["no-such-agent-cli", "{task}"],
                                                        "install": "npm install ghost-cli"}}}))
    failed = orchestra("run", "--agent", "ghost", "--task", "t", "--config", str(cfg), "--detach", cwd=workdir)
    # found by the command that would start it, before anything is made
    assert failed.returncode == 2 and "'no-such-agent-cli' was not found" in failed.stderr, failed.stderr
    assert "npm install ghost-cli" in failed.stderr
    assert not (workdir / ".orchestra").exists()
    # found by the worker, before its run started: said by the command that started it, its folder gone
    cfg.write_text(yaml.safe_dump({"agents": {"worker": {"command": toy("--task", "{task}"), "completion": "^DONE"}}}))
    failed = orchestra("delegate", "--no-analyze", "--to", "worker", "--task", "t", "--merge", "--config", str(cfg),
                       "--detach", cwd=workdir)
    assert failed.returncode == 2 and "--merge is for several secondaries" in failed.stderr, failed.stderr
    assert not list((workdir / ".orchestra" / "runs").iterdir())


def test_waiting_on_a_run_again_and_again_keeps_one_thread_on_it(workdir):
    """An MCP server waits in slices between progress reports: a run of hours must not gather a thread a slice."""
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", slow=["--task", "{task}", "--hang", "--pidfile", str(pidfile)])
    run_id = jobs.start(workdir, ["run", "--agent", "slow", "--task", "t", "--config", str(cfg), "--no-tmux"])
    agent = int(wait_for_file(pidfile))
    for _ in range(10):
        assert jobs.wait(workdir, run_id, 0.01)["status"] == "running"
    followers = [t for t in threading.enumerate() if t.name.startswith("orchestra-wait-")]
    assert len(followers) == 1
    assert jobs.cancel(workdir, run_id)["status"] == "interrupted"
    followers[0].join(timeout=10)
    assert not followers[0].is_alive() and all_gone([agent])


def test_phase_changes_close_together_make_one_live_write_and_the_loops_end_writes_what_was_held(workdir, monkeypatch):
    from orchestra import run as run_module, runfolder
    from orchestra.config import load_config

    writes = []
    real = runfolder.write_record
    def counted(folder, record):
        writes.append(record)
        return real(folder, record)

    monkeypatch.setattr(runfolder, "write_record", counted)
    r = run_module.Run(load_config(None), workdir, "t", tmux=False)
    try:
        r._live_at = 0.0  # the last write long ago
        before = len(writes)
        for _ in range(16):  # eight agents, each exiting then done, at once
            r.phase_changed()
        r._writes.wait()  # (written by a thread of their own)
        assert len(writes) == before + 1  # the first at once; the others within LIVE_SOON held back
        r.heartbeat()  # the loop's next tick writes what was held back
        r._writes.wait()
        assert len(writes) == before + 2
        r.heartbeat()
        r.flush_live()  # nothing held back: nothing written
        r._writes.wait()
        assert len(writes) == before + 2
        r.phase_changed()
        r.flush_live()  # the loop's end writes what was held back
        r._writes.wait()
        assert len(writes) == before + 3 and all(w["status"] == "running" for w in writes)
    finally:
        r.signals.restore()
        r.write_final({"run_id": r.id, "status": "completed"})
