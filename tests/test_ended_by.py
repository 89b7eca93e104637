"""Every summary says what ended the wait for its agent: the signal, the pattern, the line, how soon."""
import json
import re
import sys

import pytest

from conftest import orchestra, toy, write_config
from orchestra.config import AutoAnswer, Profile
from orchestra.delegate import summary_block
from orchestra.procs import PORTABLE
from orchestra.redact import Redactor
from orchestra.session import ENDED_BY, AgentSession, drive
from orchestra.summary import AgentSummary


def profile(*args, **fields) -> Profile:
    fields.setdefault("completion", re.compile(r"^DONE", re.M))
    fields.setdefault("timeout", 20)
    fields.setdefault("kill_grace", 0.5)
    fields.setdefault("linger", 0.3)
    return Profile(name="toy", command=toy("--task", "{task}", *args), **fields)


def ended(prof, tmp_path, task="the task", **kw) -> dict:
    s = AgentSession(prof, task, tmp_path, tmp_path / "t.cast", **kw)
    s.start()
    drive([s])
    r = s.result()
    assert r.ended_by["signal"] in ENDED_BY
    assert isinstance(r.ended_by["decided_ms"], float) and r.ended_by["decided_ms"] >= 0, r.ended_by
    return {**r.ended_by, "status": r.status}


def test_a_completion_line_says_its_pattern_and_line(tmp_path):
    e = ended(profile("--done", "DONE: all good"), tmp_path)
    assert (e["status"], e["signal"], e["pattern"], e["line"]) == ("completed", "completion", "^DONE", "DONE: all good")


def test_an_error_pattern_says_which_pattern_and_the_whole_line(tmp_path):
    e = ended(profile("--hang", "--files", "x.py", errors=[re.compile(r"nothing"), re.compile(r"x\.py")]), tmp_path)
    assert (e["status"], e["signal"], e["pattern"], e["line"]) == ("failed", "error_pattern", r"x\.py", "modified: x.py")


def test_an_exit_without_a_completion_pattern_says_exit(tmp_path):
    e = ended(profile(completion=None), tmp_path)
    assert (e["status"], e["signal"], e["pattern"], e["line"]) == ("completed", "exit", None, None)


def test_a_crash_says_exit(tmp_path):
    e = ended(profile("--done", "oops", "--exit", "3"), tmp_path)
    assert (e["status"], e["signal"]) == ("crashed", "exit")


def test_a_timeout_says_timeout(tmp_path):
    e = ended(profile("--hang", timeout=0.5), tmp_path)
    assert (e["status"], e["signal"], e["pattern"]) == ("timeout", "timeout", None)


def test_an_abort_says_interrupted(tmp_path):
    s = AgentSession(profile("--hang"), "t", tmp_path, tmp_path / "t.cast")
    s.start()
    s.abort("interrupted", "orchestra received SIGINT")
    r = s.result()
    assert (r.status, r.ended_by["signal"]) == ("interrupted", "interrupted")


def test_a_question_left_unanswered_says_waiting_for_input_and_the_question(tmp_path):
    e = ended(profile("--ask", "Overwrite models/user.py? (y/n)\n", input_wait=0.3), tmp_path)
    assert (e["status"], e["signal"], e["line"]) == ("waiting_for_input", "waiting_for_input",
                                                     "Overwrite models/user.py? (y/n)")
    assert e["pattern"]  # the shape of a question that matched


def test_too_many_retries_say_max_retries_and_the_retry_line(tmp_path):
    retry = "retrying: API error 529 overloaded"
    e = ended(profile(*["--line", retry] * 4, "--hang", retry=re.compile("^retrying: ", re.M), max_retries=2),
              tmp_path)
    assert (e["status"], e["signal"], e["pattern"], e["line"]) == ("failed", "max_retries", "^retrying: ", retry)


def test_an_auto_answer_loop_says_so_with_the_question(tmp_path):
    prof = profile("--ask", "Apply edit? (y/n) ", "--ask-again",
                   auto_answers=[AutoAnswer(re.compile(r"\(y/n\)", re.M), "y\r")])
    e = ended(prof, tmp_path)
    assert (e["status"], e["signal"], e["pattern"]) == ("failed", "auto_answer_loop", r"\(y/n\)")
    assert e["line"].startswith("Apply edit? (y/n)")


def test_an_exit_code_after_the_completion_line_says_exit_after_completion(tmp_path):
    e = ended(profile("--exit", "3"), tmp_path)
    assert (e["status"], e["signal"], e["pattern"], e["line"]) == ("failed", "exit_after_completion", "^DONE", "DONE")


def test_a_typed_text_too_long_for_a_line_says_line_too_long(tmp_path):
    prof = Profile(name="toy", command=toy("--prompt", "> "), prompt=re.compile("> $", re.M),
                   completion=re.compile("^DONE", re.M), timeout=20, kill_grace=0.5)
    e = ended(prof, tmp_path, task="x" * 5000)
    assert (e["status"], e["signal"]) == ("failed", "line_too_long")


def test_a_closed_terminal_says_closed_terminal(tmp_path):
    prof = Profile(name="mute", command=[sys.executable, "-c", "import os, time\nfor fd in (0, 1, 2): os.close(fd)\n"
                                         "time.sleep(60)"], completion=re.compile("^DONE", re.M), timeout=30,
                   kill_grace=0.3)
    e = ended(prof, tmp_path, task="")
    assert (e["status"], e["signal"]) == ("failed", "closed_terminal")


def test_the_line_is_masked_and_cut_to_200_characters(tmp_path):
    key = "sk-ended-by-secret-0123456789"
    e = ended(profile("--done", f"DONE {key} " + "z" * 400), tmp_path, redactor=Redactor([key]))
    assert key not in e["line"] and e["line"].startswith("DONE *** zzz") and len(e["line"]) == 200


def test_the_block_given_to_the_primary_names_the_signal_and_pattern_but_stays_short():
    secondary = AgentSummary(agent="droid", role="secondary", status="completed", ended_by={
        "signal": "completion", "pattern": '"type":"completion"' + "x" * 500, "line": "y" * 200, "decided_ms": 0.4})
    block = summary_block([secondary])
    assert 'ended by: completion /"type":"completion"' in block and "y" * 50 not in block
    assert len(block) < 1000


def test_run_json_and_show_say_what_ended_the_wait(workdir):
    cfg = write_config(workdir / "o.yaml", {"toy": {"command": toy("--task", "{task}", "--done", "DONE here"),
                                                    "completion": "^DONE", "timeout": 20}})
    done = orchestra("run", "--config", str(cfg), "--agent", "toy", "--task", "t", "--no-tmux", "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    agent = json.loads(done.stdout)
    assert agent["ended_by"]["signal"] == "completion" and agent["ended_by"]["line"] == "DONE here"
    record = json.loads((workdir / ".orchestra" / "runs" / agent["run_id"] / "run.json").read_text())
    assert record["secondaries"][0]["ended_by"] == agent["ended_by"]
    shown = orchestra("show", agent["run_id"], cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"ended by: completion /\^DONE/ \(decided in [\d.]+ ms\) on: DONE here", shown.stdout), shown.stdout


def test_every_signal_that_can_end_an_agent_is_said_in_words():
    from orchestra.summary import SIGNAL_WORDS

    assert set(ENDED_BY) <= set(SIGNAL_WORDS), set(ENDED_BY) - set(SIGNAL_WORDS)
