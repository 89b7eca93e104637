"""The tmux viewer: a real tmux server shows each agent's raw bytes in its own window."""
import json
import os
import re
import shutil
import time

import pytest

from conftest import orchestra, tmux, toy
from orchestra.config import Profile
from orchestra.session import AgentSession, drive
from orchestra.viewer import TmuxViewer

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def pane(target, *flags):
    return tmux("capture-pane", "-p", "-J", "-S", "-", *flags, "-t", target).stdout


def wait_for_pane(target, text, timeout=10.0, *flags):
    """Wait until the window shows text (read back with capture-pane), at most timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in pane(target, *flags):
            return
        time.sleep(0.005)
    raise AssertionError(f"{target} did not show {text!r}; it shows:\n{pane(target)}")


def test_an_agent_window_shows_its_output_with_colours_while_it_runs(tmp_path, tmux_sessions):
    viewer = TmuxViewer(f"orchestra-test-{time.time_ns()}")
    tmux_sessions.append(viewer.session)
    target = f"{viewer.session}:secondary-1"
    prof = Profile(name="toy", command=toy("--task", "{task}", "--ask", "Continue? ", "--files", "a.py", "--color"),
                   completion=re.compile(r"^DONE", re.M), timeout=20)
    s = AgentSession(prof, "paint it", tmp_path, tmp_path / "t.cast", window=viewer.open_window("secondary-1"))
    seen_while_waiting = []

    def answer_once_the_window_shows_the_question():
        if not seen_while_waiting and "Continue?" in pane(target):
            seen_while_waiting.append(s.child.isalive())  # the agent is blocked on its question
            s.send("y\r")

    s.start()
    drive([s], tick=answer_once_the_window_shows_the_question, tick_every=0.01)
    assert seen_while_waiting == [True]
    wait_for_pane(target, "DONE")
    assert "working on: paint it" in pane(target)
    assert "\x1b[32mmodified: a.py" in pane(target, "-e")  # colour intact: raw bytes, not a copy
    viewer.close()
    assert "secondary-1" in tmux("list-windows", "-t", viewer.session, "-F", "#{window_name}").stdout


def test_orchestra_run_prints_the_attach_command_and_the_window_stays(workdir, tmux_sessions):
    done = orchestra("run", "--cmd", " ".join(toy("--files", "x.py")), "--done", "^DONE", "--task", "t",
                     cwd=workdir)
    assert done.returncode == 0, done.stderr
    m = re.search(r"Watch: tmux attach -t (\S+)", done.stdout)
    assert m, done.stdout
    tmux_sessions.append(m.group(1))
    wait_for_pane(f"{m.group(1)}:python", "modified: x.py")


def test_no_tmux_runs_headless_and_says_so_once(workdir):
    done = orchestra("run", "--cmd", " ".join(toy()), "--done", "^DONE", "--task", "t", "--json", "--no-tmux",
                     cwd=workdir)
    assert done.returncode == 0
    assert json.loads(done.stdout)["tmux_target"] is None


def test_without_tmux_on_path_the_run_goes_on_headless(workdir, monkeypatch):
    import os
    import sys

    env = dict(os.environ, PATH=os.path.dirname(sys.executable))  # python, but no tmux
    done = orchestra("run", "--cmd", " ".join(toy()), "--done", "^DONE", "--task", "t", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("tmux not found: running headless") == 1


def test_a_window_that_starts_after_the_agent_has_finished_still_shows_everything(workdir, tmux_sessions):
    # a loaded machine: the window's sh starts after a fast agent is done (here, 0.5 s late)
    slow = workdir / "slow"
    slow.mkdir()
    (slow / "sh").write_text('#!/bin/sh\nsleep 0.5\nexec /bin/sh "$@"\n')
    (slow / "sh").chmod(0o755)
    tmux_sessions.append("keeps-the-server-up")
    tmux("new-session", "-d", "-s", "keeps-the-server-up", "cat")
    tmux("set-environment", "-g", "PATH", f"{slow}:{os.environ['PATH']}")
    tmux("set-option", "-g", "default-shell", str(slow / "sh"))  # whichever way the window is started
    try:
        done = orchestra("run", "--cmd", " ".join(toy("--files", "x.py")), "--done", "^DONE", "--task", "t",
                         "--json", cwd=workdir)
    finally:
        tmux("set-environment", "-g", "PATH", os.environ["PATH"])
        tmux("set-option", "-gu", "default-shell")
    agent = json.loads(done.stdout)
    tmux_sessions.append(f"orchestra-{agent['run_id']}")
    wait_for_pane(agent["tmux_target"], "DONE")
    assert "No such file" not in pane(agent["tmux_target"])
    command = tmux("display-message", "-p", "-t", agent["tmux_target"], "#{pane_start_command}").stdout
    assert not any(os.path.exists(d) for d in re.findall(r"/\S*orchestra-view-[^/\s'\"]+", command))


def test_a_window_works_whatever_the_users_shell(workdir, tmux_sessions):
    # fish cannot run `exec 3<file`: the window's script is run by sh, not by the default shell
    broken = workdir / "not-a-posix-shell"
    broken.write_text('#!/bin/sh\necho "this shell does not understand: $*"\n')
    broken.chmod(0o755)
    tmux_sessions.append("keeps-the-server-up")
    tmux("new-session", "-d", "-s", "keeps-the-server-up", "cat")
    tmux("set-option", "-g", "default-shell", str(broken))
    try:
        done = orchestra("run", "--cmd", " ".join(toy("--files", "x.py")), "--done", "^DONE", "--task", "t",
                         "--json", cwd=workdir)
    finally:
        tmux("set-option", "-gu", "default-shell")
    agent = json.loads(done.stdout)
    tmux_sessions.append(f"orchestra-{agent['run_id']}")
    wait_for_pane(agent["tmux_target"], "DONE")
    assert "does not understand" not in pane(agent["tmux_target"])


@pytest.mark.parametrize("program", ["agent.sh", "python3.11"])
def test_a_window_named_after_a_program_with_a_dot_has_a_target_tmux_finds(workdir, tmux_sessions, program):
    import sys

    from conftest import TOY

    script = workdir / program
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{TOY}" "$@"\n')
    script.chmod(0o755)
    done = orchestra("run", "--cmd", f"./{program} --files x.py", "--done", "^DONE", "--task", "t", "--json",
                     cwd=workdir)
    assert done.returncode == 0, done.stderr
    target = json.loads(done.stdout)["tmux_target"]
    tmux_sessions.append(target.split(":")[0])
    # display-message falls back to another pane when the target names none: list-panes does not
    found = tmux("list-panes", "-t", target, "-F", "#{window_name}")
    assert found.returncode == 0, found.stderr
    wait_for_pane(target, "modified: x.py")
