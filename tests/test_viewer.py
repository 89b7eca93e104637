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


def log_update(frames: list[str]) -> list[bytes]:
    """What Ink's log-update writes for these frames, one write each: the frame before erased bottom up
    (ansi-escapes' eraseLines), then the frame and a line feed."""
    out, before = [], 0
    for frame in frames:
        text = frame + "\n"
        erase = "".join("\x1b[2K" + ("\x1b[1A" if i < before - 1 else "") for i in range(before)) + \
            ("\x1b[G" if before else "")
        out.append((erase + text).encode())
        before = text.count("\n") + 1
    return out


def screens_match(viewer, held: str, plain: str, marker: str) -> str:
    """Both windows' screens once each shows marker (as tmux draws them, colours too), and they are the same;
    the held one's. (tmux may draw the marker before the line feed after it, which `cat` read apart and may
    scroll the screen: the two are compared until both have drawn all, 10 s at most.)"""
    wait_for_pane(f"{viewer.session}:{held}", marker)
    wait_for_pane(f"{viewer.session}:{plain}", marker)
    deadline = time.monotonic() + 10
    while True:
        shown = [pane(f"{viewer.session}:{name}", "-e") for name in (held, plain)]
        if shown[0] == shown[1] or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert shown[0] == shown[1]
    return shown[0]


@pytest.mark.parametrize("seed", range(6))
def test_a_tui_window_given_only_the_frames_not_erased_at_once_shows_the_screen_every_byte_would(
        tmp_path, tmux_sessions, seed):
    """Frames of a log-update TUI (heights that grow, shrink and stay), cut into reads anywhere and held
    for a while, reach tmux collapsed: the same screen as every byte, colours and all, from fewer bytes."""
    import random

    rng = random.Random(seed)
    viewer = TmuxViewer(f"orchestra-test-{time.time_ns()}")
    tmux_sessions.append(viewer.session)
    held, plain = viewer.open_window("held"), viewer.open_window("plain")
    held.hold = 60.0  # (flushed by the test only)
    height = 3
    frames = []
    for i in range(80):
        height = min(12, max(1, height + rng.choice([0, 0, 0, 0, 1, -1, 2, -2])))
        frames.append("\n".join(f"\x1b[3{(i + r) % 8}m⠋ line {r} of frame {i}\x1b[39m {'·' * rng.randrange(30)}"
                                for r in range(height)))
    frames.append("\x1b[1mDONE drawing\x1b[22m")
    data = b"".join(log_update(frames))
    for window in (held, plain):  # each window's shell has opened its pipe (and removed it): it reads on
        deadline = time.monotonic() + 10
        while os.path.exists(window.fifo):
            assert time.monotonic() < deadline, "the window's shell did not start"
            time.sleep(0.005)
    plain.write(data)
    i = 0
    while i < len(data):  # cut anywhere, flushed every few reads (as by its due time)
        n = rng.choice([1, 7, 100, 700, 4095])
        held.write(data[i:i + n])
        i += n
        if rng.random() < 0.1:
            held.flush()
    held.flush()
    shown = screens_match(viewer, "held", "plain", "DONE drawing")
    assert "line 0 of frame" not in shown  # the last frame is the only one left on the screen
    assert held.given < len(data) / 2 and plain.given == len(data)  # (written to the pipe)
    viewer.close()


def test_output_that_is_not_a_frame_is_written_at_once_and_a_frame_that_erases_more_or_less_as_it_came(
        tmp_path, tmux_sessions):
    viewer = TmuxViewer(f"orchestra-test-{time.time_ns()}")
    tmux_sessions.append(viewer.session)
    held, plain = viewer.open_window("held"), viewer.open_window("plain")
    held.hold = 60.0
    held.write(b"compiling\r\n")
    assert held.given == len(b"compiling\r\n") and held.due == float("inf")  # nothing held: not a frame
    # a progress bar's redraws (a one-line frame each), then a frame whose erase takes out two lines where
    # the frame before has one (Ink's <Static> output is written that way): that one stays as it came
    reads = [b"\x1b[2K\x1b[G 10%", b"\x1b[2K\x1b[G 50%", b"\x1b[2K\x1b[G 90%", b"\x1b[2K\x1b[1A\x1b[2K\x1b[Gbuilt\r\n"]
    for r in reads:
        held.write(r)
        plain.write(r)
    assert held.due < float("inf")
    held.flush()
    plain.write(b"\r\nend\r\n")
    held.write(b"\r\nend\r\n")
    held.flush()
    screens_match(viewer, "held", "plain", "end")
    assert held.given == len(b"compiling\r\n") + len(reads[2]) + len(reads[3]) + len(b"\r\nend\r\n")
    viewer.close()


def test_a_frame_that_draws_below_the_lines_its_erase_cleared_is_written_as_it_came(tmp_path, tmux_sessions):
    """A frame that grows onto a line below it (here a long one) leaves that line's end there, which the
    next frame's erase takes out: that frame is not left out (the screen would keep the long line)."""
    viewer = TmuxViewer(f"orchestra-test-{time.time_ns()}")
    tmux_sessions.append(viewer.session)
    held, plain = viewer.open_window("held"), viewer.open_window("plain")
    held.hold = 60.0
    below = b"\r\n" * 3 + b"x" * 100 + b"\x1b[3A\r"  # a long line three lines down, the cursor back up
    reads = log_update(["a", "b1\nb2", "c1\nc2\nc3", "d1\nd2\nd3", "\x1b[1mend\x1b[22m"])
    for window in (held, plain):
        window.write(below)
        for r in reads:
            window.write(r)
    held.flush()
    shown = screens_match(viewer, "held", "plain", "end")
    assert "xxxx" not in shown and held.given < plain.given  # (the others are left out)
    viewer.close()


def test_a_frame_that_moves_the_cursor_to_another_line_is_written_as_it_came(tmp_path, tmux_sessions):
    viewer = TmuxViewer(f"orchestra-test-{time.time_ns()}")
    tmux_sessions.append(viewer.session)
    held, plain = viewer.open_window("held"), viewer.open_window("plain")
    held.hold = 60.0
    # the second frame draws its first line last, from below (cursor up): what the third frame's erase then
    # takes out is not what a frame drawn top down would leave
    reads = log_update(["a1\na2", "b1\nb2", "c1\nc2", "end"])
    reads[1] = reads[1].replace(b"b1\nb2\n", b"\nb2\n\x1b[2Ab1\x1b[2B\r")
    for window in (held, plain):
        for r in reads:
            window.write(r)
    held.flush()
    screens_match(viewer, "held", "plain", "end")
    assert held.given == plain.given - len(reads[2])  # (the third frame's drawing and the fourth's erase)
    viewer.close()


TUI_AGENT = """
import os, time
before = 0
for i in range(30):  # Ink's log-update: each frame erases the one before
    text = "\\n".join("frame %d line %d" % (i, r) for r in range(5)) + "\\n"
    erase = "".join("\\x1b[2K" + ("\\x1b[1A" if k < before - 1 else "") for k in range(before))
    os.write(1, (erase + ("\\x1b[G" if before else "") + text).encode())
    before = text.count("\\n") + 1
    time.sleep(0.002)
time.sleep(30)  # at work, quiet
"""


def test_a_tuis_window_shows_its_last_frame_while_it_runs_from_a_few_of_its_frames(tmp_path, tmux_sessions):
    import sys

    from orchestra.transcript import read_cast

    viewer = TmuxViewer(f"orchestra-test-{time.time_ns()}")
    tmux_sessions.append(viewer.session)
    target = f"{viewer.session}:secondary-1"
    prof = Profile(name="tui", command=[sys.executable, "-c", TUI_AGENT], completion=re.compile(r"^DONE", re.M),
                   timeout=20, kill_grace=0.5)
    s = AgentSession(prof, "", tmp_path, tmp_path / "t.cast", window=viewer.open_window("secondary-1"))
    seen = []

    def look():  # the frames held are written by their due time, the agent quiet and still at work
        if not seen and "frame 29 line 4" in pane(target):
            seen.append(s.child.isalive() and s.phase == "working")
            s.abort("interrupted", "seen")

    s.start()
    drive([s], tick=look, tick_every=0.01)
    assert seen == [True]
    drawn = sum(len(e.data.encode()) for e in read_cast(s.transcript_path).events() if e.kind == "o")
    assert s.window.given < drawn / 3
    viewer.close()
