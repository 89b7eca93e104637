"""Transcripts: valid asciicast v2, flushed as they grow, and replayable to the same bytes."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import TOY, marked_processes, orchestra, toy
from orchestra.config import Profile
from orchestra.session import AgentSession, drive
from orchestra.transcript import read_cast

PROMPT = re.compile(r"ready> $", re.M)


def record(tmp_path, name, command, prompt=PROMPT, task="build it"):
    prof = Profile(name=name, command=command, prompt=prompt, completion=re.compile(r"^DONE", re.M),
                   timeout=20, linger=0.5)
    s = AgentSession(prof, task, tmp_path, tmp_path / f"{name}.cast")
    s.start()
    drive([s])
    return s.result(), tmp_path / f"{name}.cast"


def output_of(path):
    return "".join(e.data for e in read_cast(path).events() if e.kind == "o")


def test_a_transcript_is_valid_asciicast_v2(tmp_path):
    result, path = record(tmp_path, "toy", toy("--prompt", "ready> ", "--files", "a.py", "--color"))
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["width"] == 120 and header["height"] == 40
    assert isinstance(header["timestamp"], int)
    times = []
    for line in lines[1:]:
        t, kind, data = json.loads(line)
        assert isinstance(t, float) and kind in ("o", "i") and isinstance(data, str)
        times.append(t)
    assert times == sorted(times)
    assert [json.loads(x)[2] for x in lines[1:] if json.loads(x)[1] == "i"] == ["build it\r"]
    assert "\x1b[32mmodified: a.py\r\n\x1b[0m" in output_of(path)


def test_a_replay_agent_re_emits_the_same_bytes_and_waits_for_the_input(tmp_path):
    first, original = record(tmp_path, "live", toy("--prompt", "ready> ", "--files", "a.py", "--color"))
    replay = [sys.executable, "-m", "orchestra.replay", str(original), "--speed", "0"]
    second, replayed = record(tmp_path, "replay", replay, task="another task")
    assert second.status == "completed"
    assert output_of(replayed) == output_of(original)
    assert second.parsed.files == ["a.py"]
    assert [e.data for e in read_cast(replayed).events() if e.kind == "i"] == ["another task\r"]


def test_replay_without_input_waits_and_then_times_out(tmp_path):
    first, original = record(tmp_path, "live", toy("--prompt", "ready> "))
    prof = Profile(name="r", command=[sys.executable, "-m", "orchestra.replay", str(original), "--speed", "0"],
                   completion=re.compile("^DONE", re.M), timeout=0.5, kill_grace=0.5)
    s = AgentSession(prof, "", tmp_path, tmp_path / "r.cast")  # no task: nothing is typed
    s.start()
    drive([s])
    assert s.result().status == "timeout"
    assert "DONE" not in output_of(tmp_path / "r.cast")


def test_orchestra_replay_plays_a_transcript_to_the_terminal(tmp_path):
    first, original = record(tmp_path, "live", toy("--prompt", "ready> ", "--color"))
    done = orchestra("replay", str(original), "--speed", "0")
    assert done.returncode == 0
    assert done.stdout == output_of(original).replace("\r\n", "\n")


def test_a_killed_run_leaves_a_readable_transcript(workdir):
    token = f"never-{os.getpid()}-{time.time_ns()}"
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--no-tmux", "--done", "^DONE",
                             "--cmd", f"{sys.executable} {TOY} --hang --files a.py --done {token}"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cast = wait_for_file_text(workdir / ".orchestra" / "runs", "modified: a.py", timeout=20)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        events = list(read_cast(cast).events())
        assert any("modified: a.py" in e.data for e in events)
    finally:
        proc.kill()
        proc.wait()
        for pid, cmd in marked_processes():
            if token in cmd:
                os.kill(pid, signal.SIGKILL)


def wait_for_file_text(root, text, timeout):
    """Wait for a transcript under root to contain text (a file event, bounded by timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in root.glob("*/*.cast"):
            if text in path.read_text(encoding="utf-8", errors="replace"):
                return path
        time.sleep(0.01)
    raise AssertionError(f"no transcript under {root} showed {text!r} within {timeout}s")


@pytest.mark.parametrize("native", [True, False])
def test_events_are_the_json_python_would_write_for_any_text(native, monkeypatch):
    """The fast path for ASCII output writes what json.dumps would, whatever the text holds; the C extension
    what json.dumps(ensure_ascii=False) would, in UTF-8 (a lone surrogate escaped): the same text read back."""
    import random

    from orchestra import transcript
    from orchestra.transcript import json_string

    if not native:
        monkeypatch.setattr(transcript, "_native_json", None)
    elif transcript._native_json is None:
        pytest.skip("orchestra._cclean is not built here (tests/test_cclean.py says why that fails in CI)")

    rnd = random.Random(7)
    pieces = [chr(c) for c in range(128)] + ["\r\n"] * 30 + ["plain text " * 3] * 60 + \
        ["é", "💰", "\udc80", "\ud83d", "\\", '"', "\x1b[31m", "\x7f", "│", "\u2028", "\x85"]
    samples = ["", "\r\n", "\\r\\n", '"\\"', (("x" * 80) + "\r\n") * 50, ("\x1b[1mred\x1b[0m\r\n") * 300]
    samples += ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(1, 80))) for _ in range(3000)]
    for text in samples:
        if not native:
            assert json_string(text) == json.dumps(text).encode(), repr(text)
        elif any("\ud800" <= c <= "\udfff" for c in text):  # (json.loads pairs two surrogates up)
            assert json.loads(json_string(text)) == json.loads(json.dumps(text)), repr(text)
        else:
            assert json_string(text) == json.dumps(text, ensure_ascii=False).encode(), repr(text)


def test_events_held_for_a_moment_are_written_together_whole_by_their_due_time_or_at_close(tmp_path):
    from orchestra.transcript import HOLD_BYTES, CastWriter

    path = tmp_path / "held.cast"
    cast = CastWriter(path, 80, 24, hold=0.1)
    header = path.read_bytes()  # the header is written at once
    before = time.monotonic()
    cast.output("frame 1\r\n")
    cast.output("frame 2\r\n")
    assert path.read_bytes() == header  # held...
    assert before + 0.1 <= cast.due <= time.monotonic() + 0.1  # ...until the first one's due time
    cast.flush()
    assert output_of(path) == "frame 1\r\nframe 2\r\n" and cast.due == float("inf")
    cast.output("x" * HOLD_BYTES)  # a hold's worth is written at once
    assert output_of(path).endswith("x" * HOLD_BYTES)
    cast.output("last\r\n")
    cast.close()
    assert output_of(path).endswith("last\r\n")


def test_a_kept_alive_agents_turn_is_whole_in_its_transcript_once_it_is_idle(tmp_path):
    # the loop ends when the turn does, with the agent still there: nothing it said may stay held back
    from conftest import toy_profile
    from orchestra.session import IDLE

    s = AgentSession(toy_profile("--linger", "--files", "a.py"), "", tmp_path, tmp_path / "idle.cast", keep_alive=True)
    s.start()
    try:
        drive([s])
        assert s.phase == IDLE
        assert "modified: a.py" in output_of(tmp_path / "idle.cast") and "DONE" in output_of(tmp_path / "idle.cast")
    finally:
        s.abort(at_once=True)
        drive([s])
