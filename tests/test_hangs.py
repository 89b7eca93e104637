"""Nothing hangs: auto-answer loops, catastrophic patterns, unanswered questions and silent retries."""
import re

import pytest

from conftest import orchestra, toy, toy_profile as profile
from orchestra.config import AutoAnswer, Profile
from orchestra import session
from orchestra.session import AgentSession, drive




def run(prof, tmp_path, task="the task"):
    s = AgentSession(prof, task, tmp_path, tmp_path / "t.cast")
    s.start()
    drive([s])
    return s, s.result()


# -- auto-answer loops (finding 11) and catastrophic patterns (finding 12) ---------------------------

@pytest.mark.parametrize("args, message", [
    (["--done", "(a+)+$"], "Invalid value for --done: '(a+)+$': the nested repeat '(a+)+'"),
    (["--done", "DONE", "--prompt", "z*"], "Invalid value for --prompt: 'z*' can match the empty string"),
])
def test_run_cmd_refuses_a_pattern_that_could_hang_it(workdir, args, message):
    done = orchestra("run", "--no-tmux", "--task", "t", "--cmd", "echo aaaaaaaaaaaaaaaaaaaaaaaaaaab", *args,
                     cwd=workdir, timeout=30)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (workdir / ".orchestra").exists()  # refused before anything started


@pytest.mark.timeout(30)
def test_a_pattern_matching_the_empty_string_does_not_hold_the_loop(tmp_path):
    # a profile made in code is not checked like the config: the loop itself must not spin on it
    prof = profile("--task", "{task}", "--ask", "Continue? ", timeout=1,
                   auto_answers=[AutoAnswer(re.compile("z*", re.M), "y\r")])
    s, r = run(prof, tmp_path)
    assert r.status == "timeout" and r.answers == [], r.reason


def test_an_answer_that_brings_its_question_back_is_a_loop_and_fails(tmp_path):
    prof = profile("--task", "{task}", "--ask", "Apply edit? (y/n) ", "--ask-again",
                   auto_answers=[AutoAnswer(re.compile(r"\(y/n\)", re.M), "y\r")])
    s, r = run(prof, tmp_path)
    assert r.status == "failed" and r.reason.startswith("auto-answer loop: Apply edit? (y/n)"), r.reason
    assert len(r.answers) == session.LOOP_ANSWERS  # answered that often, then stopped; not 147,000 times


# -- a question nobody answers (finding 13) -------------------------------------------------------

def test_a_question_ending_in_a_newline_ends_as_waiting_for_input_after_the_quiet_time(tmp_path):
    prof = profile("--task", "{task}", "--ask", "Overwrite models/user.py? (y/n)\n", input_wait=0.3)
    s, r = run(prof, tmp_path)
    assert r.status == "waiting_for_input", r.reason  # not `timeout` after 20 s
    assert r.reason.startswith("waiting for input: Overwrite models/user.py? (y/n)")
    assert r.reason in r.parsed.errors


def test_a_numbered_menu_ends_as_waiting_for_input_with_its_question(tmp_path):
    menu = ("Do you trust the files in this folder?\n\n\u276f 1. Yes, proceed\n  2. No, exit\n\n"
            "Enter to confirm \u00b7 Esc to exit\n")
    s, r = run(profile("--task", "{task}", "--ask", menu, input_wait=0.3), tmp_path)
    assert r.status == "waiting_for_input", r.reason
    assert "waiting for input: Do you trust the files in this folder? | \u276f 1. Yes, proceed" in r.reason


def test_an_agent_quiet_after_an_ordinary_line_is_not_ended_early(tmp_path):
    # silence alone is not a question: a headless agent prints nothing while its model thinks
    s, r = run(profile("--task", "{task}", "--hang", input_wait=0.2, timeout=1.5), tmp_path)
    assert r.status == "timeout" and "waiting for input" not in r.reason, r.reason


def test_a_stalled_progress_line_is_not_called_waiting_for_input(tmp_path):
    s, r = run(profile("--task", "{task}", "--ask", "Downloading model... 45%", input_wait=0.2, timeout=1),
               tmp_path)
    assert r.status == "timeout" and "waiting for input" not in r.reason, r.reason



# -- retries (finding 14) -------------------------------------------------------------------------

RETRY = "retrying: API error 529 overloaded"


def retrying(*args, **fields) -> Profile:
    return profile("--task", "{task}", *args, retry=re.compile("^retrying: ", re.M), **fields)


def test_more_retries_in_a_row_than_the_profile_tolerates_fail_naming_them(tmp_path):
    s, r = run(retrying(*["--line", RETRY] * 5, "--hang", max_retries=2), tmp_path)
    assert r.status == "failed", r.reason
    assert r.reason == f"{RETRY}: retried 3 times in a row, more than max_retries (2)"
    assert f"{RETRY}: retried 3 times" in r.parsed.errors


def test_retries_the_agent_recovered_from_are_named_in_the_errors(tmp_path):
    s, r = run(retrying("--line", RETRY, "--line", RETRY, max_retries=2), tmp_path)
    assert r.status == "completed" and r.parsed.errors == [f"{RETRY}: retried 2 times"]


def test_retries_with_other_output_between_them_are_not_in_a_row(tmp_path):
    s, r = run(retrying(*["--line", RETRY, "--line", "step done"] * 3, max_retries=1), tmp_path)
    assert r.status == "completed" and r.parsed.errors == [f"{RETRY}: retried 3 times"]


def test_the_status_line_shows_the_retries_while_the_agent_retries(workdir):
    import os
    import sys

    import pexpect
    import yaml

    gate = workdir / "gate"
    os.mkfifo(gate)
    cfg = workdir / "o.yaml"
    cfg.write_text(yaml.safe_dump({"agents": {"toy": {
        "command": toy("--task", "{task}", "--line", RETRY, "--line", RETRY, "--wait-fifo", str(gate)),
        "completion": "^DONE", "retry": "^retrying: ", "max_retries": 5}}}))
    child = pexpect.spawn(sys.executable, ["-m", "orchestra", "run", "--no-tmux", "--agent", "toy", "--task", "t",
                                           "--config", str(cfg)], cwd=str(workdir), timeout=30, encoding="utf-8")
    try:
        child.expect(f"⏳ toy \\d+\\.\\ds │ ↻ retry 2 of 5: {RETRY}")
        with open(gate, "w") as fh:
            fh.write("go")
        child.expect("completed task")
        child.expect(f"{RETRY}: retried 2 times")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
