"""tmux windows a person can read: the header stays in sight, the last line says how the agent ended, the
primary's window shows what it was sent, and finished runs' sessions do not pile up. On a real tmux server
(the tests' own), read back as a person sees it: an attached client, capture-pane, list-panes."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pexpect
import pytest

from conftest import orchestra, tmux, toy, wait_for_pane, write_config
from test_faults import config, wait_for, wait_for_file

from orchestra import runfolder
from orchestra.viewer import KEEP_FINISHED

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

HEADER = "● droid · scripted-model"
# A droid-like JSON agent: its init event, 200 lines of text, its completion
CHATTY = ("import json, sys\n"
          "print(json.dumps({'type': 'system', 'model': 'scripted-model', 'cwd': '/repo'}))\n"
          "for i in range(200):\n"
          "    print(json.dumps({'type': 'message', 'role': 'assistant', 'text': f'line {i}'}))\n"
          "print(json.dumps({'type': 'completion', 'numTurns': 1}))\n")


def pane(target: str) -> str:
    return tmux("capture-pane", "-p", "-J", "-S", "-", "-t", target).stdout


def how_it_ended(target: str) -> str:
    """How a window's program ended, as tmux tells (`status 0 signal `), once it has. A tmux built with
    libutempter can miss the SIGCHLD of a pane's program that exits while the helper runs (for this pane's
    hang-up or another's: tmux/tmux#311), and learns of the exit at its next SIGCHLD: given here, as
    `pkill -CHLD tmux` would."""
    ended = "#{pane_dead_status}#{pane_dead_signal}"
    server = int(tmux("display-message", "-p", "#{pid}").stdout)

    def told() -> bool:
        os.kill(server, signal.SIGCHLD)
        return tmux("list-panes", "-t", target, "-F", ended).stdout.strip() != ""

    wait_for(told)
    return tmux("list-panes", "-t", target, "-F", "status #{pane_dead_status} signal #{pane_dead_signal}").stdout.strip()


def sessions() -> list[str]:
    return tmux("list-sessions", "-F", "#{session_name}").stdout.split()


def demo(workdir, tmux_sessions) -> str:
    done = orchestra("delegate", "--demo", "--task", "Add a User model", "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    session = json.loads(done.stdout)["tmux_session"]
    tmux_sessions.append(session)
    return session


def test_a_rendered_windows_header_stays_in_sight_after_200_lines(workdir, tmux_sessions):
    (workdir / "chatty.py").write_text(CHATTY)
    cfg = write_config(workdir / "c.yaml", {"chatty": {
        "command": [sys.executable, str(workdir / "chatty.py"), "{task}"], "completion": '"type":"completion"',
        "parser": "droid", "view": "rendered", "timeout": 30}})
    done = orchestra("run", "--agent", "chatty", "--task", "t", "--config", str(cfg), "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    target = json.loads(done.stdout)["tmux_target"]
    tmux_sessions.append(target.split(":")[0])
    wait_for_pane(target, "line 199")
    assert HEADER not in tmux("capture-pane", "-p", "-t", target).stdout  # scrolled out of the pane itself
    client = pexpect.spawn("tmux", ["attach", "-t", target], dimensions=(40, 120), encoding="utf-8",
                           env=dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8"))
    try:
        client.expect_exact(HEADER, timeout=10)  # ...and on the window's top line for a person attached
    finally:
        client.close(force=True)
    assert tmux("display-message", "-p", "-t", target, "#{pane_title}").stdout.strip() == f"{HEADER} · /repo"


def test_a_finished_window_ends_with_how_the_agent_ended_not_pane_is_dead(workdir, tmux_sessions):
    target = f"{demo(workdir, tmux_sessions)}:secondary-1"
    wait_for_pane(target, "── orchestra: demo-droid completed ──")
    wait_for(lambda: tmux("list-panes", "-t", target, "-F", "#{pane_dead}").stdout.strip() == "1")  # `cat` ended
    lines = [line for line in pane(target).splitlines() if line.strip()]
    assert lines[-1] == "── orchestra: demo-droid completed ──"
    assert "Pane is dead" not in pane(target)
    assert tmux("list-panes", "-t", target, "-F", "#{pane_dead_signal}").stdout.strip() == ""


def test_a_window_is_not_hung_up_when_its_reader_closes_its_output_before_it_exits(workdir, tmux_sessions):
    # coreutils' cat closes its output, then exits: a machine busy enough to delay its exit, made sure here
    slow = workdir / "slow"
    slow.mkdir()
    (slow / "cat").write_text('#!/bin/sh\n/bin/cat "$@"\nexec >&- 2>&-\nsleep 0.5\n')
    (slow / "cat").chmod(0o755)
    tmux_sessions.append("keeps-the-server-up")
    tmux("new-session", "-d", "-s", "keeps-the-server-up", "cat")
    tmux("set-environment", "-g", "PATH", f"{slow}:{os.environ['PATH']}")
    try:
        target = f"{demo(workdir, tmux_sessions)}:secondary-1"
    finally:
        tmux("set-environment", "-g", "PATH", os.environ["PATH"])
    assert how_it_ended(target) == "status 0 signal"
    assert [line for line in pane(target).splitlines() if line.strip()][-1] == "── orchestra: demo-droid completed ──"


def test_a_finished_agents_window_ends_once_orchestra_has_exited_not_while_the_run_goes_on(workdir, tmux_sessions):
    # A window's end (its reader's and shell's exits, tmux's handling of the pane) takes the tmux server's CPU:
    # not while orchestra wraps the run up. Here the run goes on after its agent, with a check that waits for
    # the test to close its end of a FIFO.
    gate = workdir / "gate"
    os.mkfifo(gate)
    held = os.open(gate, os.O_RDWR)  # (the check's `cat` opens it at once, and reads until this is closed)
    run = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--cmd", " ".join(toy()), "--done", "^DONE",
                            "--task", "t", "--check", f"sh -c 'touch checking; cat {gate}'"], cwd=workdir,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        session = next(m.group(1) for line in run.stdout if (m := re.search(r"Watch: tmux attach -t (\S+)", line)))
        tmux_sessions.append(session)
        target = f"{session}:python"
        wait_for_file(workdir / "checking")  # the agent has ended; its check runs
        wait_for_pane(target, "completed ──")
        assert tmux("list-panes", "-t", target, "-F", "#{pane_dead}").stdout.strip() == "0"  # its `cat` reads on
    finally:
        os.close(held)  # the check ends, and the run
        assert run.wait(timeout=30) == 0
        run.stdout.close()
    assert how_it_ended(target) == "status 0 signal"  # a finished program, not hung up
    assert [line for line in pane(target).splitlines() if line.strip()][-1].endswith("completed ──")


def test_a_failed_agents_window_says_why_on_its_last_line(workdir, tmux_sessions):
    done = orchestra("run", "--cmd", " ".join(toy("--exit", "3", "--done", "NOPE")), "--done", "^DONE",
                     "--task", "t", "--json", cwd=workdir)
    target = json.loads(done.stdout)["tmux_target"]
    tmux_sessions.append(target.split(":")[0])
    wait_for_pane(target, "crashed: exited with code 3 ──")


def test_the_primarys_windows_show_what_orchestra_sent_it(workdir, tmux_sessions):
    session = demo(workdir, tmux_sessions)
    wait_for_pane(f"{session}:primary", "» You are the primary agent in Orchestra.")
    wait_for_pane(f"{session}:primary-reply", "» Orchestra: the secondary agent has finished. Its summary:")
    # droid's own events repeat its brief: shown once
    assert pane(f"{session}:secondary-1").count("» Create a User model") == 1


def test_clean_finished_closes_finished_runs_sessions_and_keeps_one_under_way(workdir, tmux_sessions):
    finished = orchestra("run", "--cmd", " ".join(toy()), "--done", "^DONE", "--task", "t", "--json", cwd=workdir)
    done_session = json.loads(finished.stdout)["tmux_target"].split(":")[0]
    replayed = orchestra("replay", "latest", "--tmux", "--speed", "0", cwd=workdir)
    assert replayed.returncode == 0, replayed.stderr
    replay_session = next(s for s in sessions() if s.startswith("orchestra-replay-"))
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", slow=["--task", "{task}", "--hang", "--pidfile", str(pidfile)])
    started = orchestra("run", "--agent", "slow", "--task", "t", "--config", str(cfg), "--detach", "--json",
                        cwd=workdir)
    running = json.loads(started.stdout)["run_id"]
    tmux_sessions += [done_session, replay_session, f"orchestra-{running}"]
    try:
        wait_for_file(pidfile)
        wait_for(lambda: f"orchestra-{running}" in sessions())
        cleaned = orchestra("clean", "--finished", cwd=workdir)
        assert cleaned.returncode == 0, cleaned.stderr
        assert f"closed tmux session {done_session}" in cleaned.stdout
        assert f"closed tmux session {replay_session}" in cleaned.stdout
        assert f"kept (under way): orchestra-{running}" in cleaned.stdout
        left = sessions()
        assert done_session not in left and replay_session not in left and f"orchestra-{running}" in left
    finally:
        orchestra("cancel", running, cwd=workdir)


def test_clean_finished_with_a_run_id_is_a_usage_error(workdir):
    done = orchestra("clean", "--finished", "latest", cwd=workdir)
    assert done.returncode == 2 and "without RUN_ID" in done.stderr and "Traceback" not in done.stderr


def test_a_new_run_closes_the_oldest_finished_sessions_past_the_bound_and_says_so_once(workdir, tmux_sessions):
    old = [f"20260101-0000{i:02d}-0000{i:02d}" for i in range(KEEP_FINISHED + 2)]
    for run_id in old:
        folder = workdir / ".orchestra" / "runs" / run_id
        folder.mkdir(parents=True)
        runfolder.write_record(folder, {"run_id": run_id, "status": "completed"})
        tmux_sessions.append(f"orchestra-{run_id}")
        tmux("new-session", "-d", "-s", f"orchestra-{run_id}", "cat")
    first = new_run(workdir, tmux_sessions)
    assert "closed the tmux sessions of 2 finished runs" in first
    left = sessions()
    assert [f"orchestra-{r}" in left for r in old] == [False] * 2 + [True] * KEEP_FINISHED
    second = new_run(workdir, tmux_sessions)
    assert f"orchestra-{old[2]}" not in sessions()  # the first run is finished now: one more went
    assert "closed the tmux sessions" not in second


def new_run(workdir, tmux_sessions) -> str:
    """`orchestra run` of the toy agent: what it says."""
    done = orchestra("run", "--cmd", " ".join(toy()), "--done", "^DONE", "--task", "t", cwd=workdir)
    assert done.returncode == 0, done.stderr
    tmux_sessions.append(re.search(r"Watch: tmux attach -t (\S+)", done.stdout).group(1))
    return done.stdout
