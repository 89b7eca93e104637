"""AgentSession on real child processes: prompt, send, completion, exit status, time, parsing."""
import json
import re
import sys
import time


from conftest import toy_profile
from orchestra.config import AutoAnswer, Profile
from orchestra.session import AgentSession, drive
from orchestra.transcript import read_cast


def profile(*args, **fields) -> Profile:
    return toy_profile(*args, **{"timeout": 5, "kill_grace": 1, **fields})


def run(prof, tmp_path, task="the task", **kw):
    s = AgentSession(prof, task, tmp_path, tmp_path / "t.cast", **kw)
    s.start()
    drive([s])
    return s, s.result()


def test_waits_for_the_prompt_then_types_the_task(tmp_path):
    prof = profile("--prompt", "ready> ", prompt=re.compile(r"ready> $", re.M))
    s, r = run(prof, tmp_path, task='quote " $(touch pwned) `x`; -rf')
    assert r.status == "completed"
    assert r.last_lines[0] == 'ready> working on: quote " $(touch pwned) `x`; -rf'
    assert not (tmp_path / "pwned").exists()
    inputs = [e.data for e in read_cast(tmp_path / "t.cast").events() if e.kind == "i"]
    assert inputs == ['quote " $(touch pwned) `x`; -rf\r']


def test_task_in_argv_arrives_as_one_argument(tmp_path):
    s, r = run(profile("--task", "{task}"), tmp_path, task="two words\nand a line")
    assert r.status == "completed"
    assert "working on: two words" in r.last_lines and "and a line" in r.last_lines


def test_parser_sees_the_files_the_agent_reports(tmp_path):
    s, r = run(profile("--files", "a.py,pkg/b.py", "--color"), tmp_path)
    assert r.parsed.files == ["a.py", "pkg/b.py"]


def test_records_exit_status_and_measured_time(tmp_path):
    started = time.monotonic()
    s, r = run(profile("--exit", "0"), tmp_path)
    assert r.exit_code == 0 and r.signal is None
    assert 0 < r.duration_s <= time.monotonic() - started


def test_an_agent_that_lingers_after_completion_is_ended(tmp_path):
    s, r = run(profile("--linger"), tmp_path)
    assert r.status == "completed"
    assert r.signal == "SIGTERM"  # it was asked to stop, and stopped
    assert not s.child.isalive()


def test_an_agent_that_ignores_sigterm_is_killed(tmp_path):
    s, r = run(profile("--linger", "--ignore-term", kill_grace=0.3), tmp_path)
    assert r.status == "completed" and r.signal == "SIGKILL"


def test_no_completion_pattern_means_exit_is_completion(tmp_path):
    s, r = run(profile(completion=None), tmp_path)
    assert r.status == "completed"


def test_exit_without_completion_line_is_a_failure(tmp_path):
    s, r = run(profile("--done", "bye"), tmp_path)
    assert r.status == "failed" and "completion pattern" in r.reason


def test_non_zero_exit_is_a_crash_with_the_last_lines(tmp_path):
    s, r = run(profile("--done", "oops", "--exit", "3"), tmp_path)
    assert r.status == "crashed" and r.exit_code == 3
    assert any("oops" in e for e in r.parsed.errors)


def test_death_by_signal_is_a_crash(tmp_path):
    s, r = run(profile("--kill-self", "SIGSEGV"), tmp_path)
    assert r.status == "crashed" and r.signal == "SIGSEGV"


def test_a_hanging_agent_times_out_and_its_group_is_killed(tmp_path):
    s, r = run(profile("--hang", timeout=0.5), tmp_path)
    assert r.status == "timeout"
    assert not s.child.isalive()


def test_an_error_pattern_fails_the_task_at_once(tmp_path):
    s, r = run(profile("--hang", "--files", "x.py", errors=[re.compile(r"^modified: x\.py")]), tmp_path)
    assert r.status == "failed" and "modified: x.py" in r.reason
    assert r.duration_s < 5


def test_auto_answers_questions_and_logs_each_answer(tmp_path):
    prof = profile("--task", "{task}", "--ask", "Apply edit? (Y)es/(N)o ",
                   auto_answers=[AutoAnswer(re.compile(r"\(Y\)es/\(N\)o", re.M), "y\r")])
    s, r = run(prof, tmp_path)
    assert r.status == "completed"
    assert "got answer: y" in r.last_lines
    assert r.answers[0]["answer"] == "y" and "(Y)es/(N)o" in r.answers[0]["question"]


def test_an_unanswered_question_is_reported_as_waiting_for_input(tmp_path):
    s, r = run(profile("--task", "{task}", "--ask", "Delete everything? [y/N] ", timeout=0.5), tmp_path)
    assert r.status == "timeout"
    assert "waiting for input: Delete everything? [y/N]" in r.reason


def test_completion_is_found_after_a_flood_without_newlines(tmp_path):
    s, r = run(profile("--flood", "3", "--flood-style", "nonl"), tmp_path)
    assert r.status == "completed"


def test_invalid_utf8_and_nul_bytes_are_replaced_not_fatal(tmp_path):
    s, r = run(profile("--flood", "0.5", "--flood-style", "binary"), tmp_path)
    assert r.status == "completed"
    for line in (tmp_path / "t.cast").read_text(encoding="utf-8").splitlines():
        json.loads(line)


def test_several_sessions_are_driven_at_once(tmp_path):
    sessions = []
    for i in range(4):
        s = AgentSession(profile("--files", f"f{i}.py"), "t", tmp_path, tmp_path / f"{i}.cast")
        s.start()
        sessions.append(s)
    drive(sessions)
    assert [s.result().status for s in sessions] == ["completed"] * 4
    assert [s.result().parsed.files for s in sessions] == [[f"f{i}.py"] for i in range(4)]


def test_an_exit_code_of_its_own_after_the_completion_line_fails_the_task(tmp_path):
    s, r = run(profile("--exit", "3"), tmp_path)
    assert r.status == "failed" and r.exit_code == 3
    assert r.reason == "exited with code 3 after printing its completion line"
    assert r.reason in r.parsed.errors


def test_an_exit_code_caused_by_orchestras_own_sigterm_after_linger_changes_nothing(tmp_path):
    s, r = run(profile("--linger", "--term-exit", "1"), tmp_path)
    assert r.status == "completed" and r.exit_code == 1


FLOODER = """
import os, sys, time
for i in range(150):  # 15 KB: more than three turns, less than a Linux pty holds (about 19 KB)
    os.write(1, b"flood %04d " % i + b"x" * 88 + b"\\n")
os.write(1, b"FLOOD-DONE\\n")
open(sys.argv[1], "w").close()
time.sleep(30)
"""
STEADY = """
import os, sys, time
while not os.path.exists(sys.argv[1]):  # its line comes after the flooder's backlog is in its pty
    time.sleep(0.005)
os.write(1, b"DONE steady\\n")
open(sys.argv[2], "w").close()
time.sleep(30)
"""


def test_another_agents_completion_line_is_handled_before_a_flooders_turn_and_its_backlog(tmp_path):
    # Both agents' output is waiting before the loop starts, the flooder's first (it is polled first):
    # the steady agent's completion is handled first, though the flooder's turn of the same poll was read
    # before it; the flooder's backlog then takes several turns.
    from orchestra.session import TURN_BYTES

    handled: list[tuple[str, int, str]] = []
    read: list[str] = []

    class Logged(AgentSession):
        def read_once(self, size: int):
            data = super().read_once(size)
            if data:
                read.append(self.profile.name)
            return data

        def _handle(self, data: bytes, final: bool = False) -> None:
            super()._handle(data, final)
            handled.append((self.profile.name, len(data), self.phase))

    flooded, wrote = tmp_path / "flooded", tmp_path / "wrote"
    flood = Profile(name="flooder", command=[sys.executable, "-c", FLOODER, str(flooded)],
                    completion=re.compile(r"^FLOOD-DONE", re.M), timeout=20, linger=0.1, kill_grace=0.5)
    steady = Profile(name="steady", command=[sys.executable, "-c", STEADY, str(flooded), str(wrote)],
                     completion=re.compile(r"^DONE", re.M), timeout=20, linger=0.1, kill_grace=0.5)
    sessions = [Logged(flood, "", tmp_path, tmp_path / "f.cast"), Logged(steady, "", tmp_path, tmp_path / "s.cast")]
    for s in sessions:
        s.start()
    deadline = time.monotonic() + 15
    while not wrote.exists():  # both backlogs written (the children say so in files)
        assert time.monotonic() < deadline, "the agents did not write their output"
        time.sleep(0.005)
    drive(sessions)
    assert [s.result().status for s in sessions] == ["completed", "completed"]
    done = next(i for i, (name, _, phase) in enumerate(handled) if name == "steady" and phase != "working")
    before = sum(n for name, n, _ in handled[:done] if name == "flooder")
    total = sum(n for name, n, _ in handled if name == "flooder")
    assert total >= 3 * TURN_BYTES  # a backlog of several turns...
    assert before == 0  # ...and none of it was handled before the other agent's line
    assert read[:2] == ["flooder", "steady"] and handled[0][0] == "steady"  # (read in the poll's order)
