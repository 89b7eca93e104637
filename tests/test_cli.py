"""The command line's exit status and usage errors: a script can tell what happened."""
import json
import os
import sys

import click
import pytest

from conftest import ROOT, orchestra, toy, write_config


@pytest.mark.parametrize("command", ["run", "delegate"])
@pytest.mark.parametrize("task", ["", "  \n\t "])
def test_an_empty_task_is_a_usage_error(workdir, command, task):
    cfg = write_config(workdir / "o.yaml", {"argv": {"command": toy("--task", "{task}"), "completion": "^DONE"}})
    who = ["--agent", "argv"] if command == "run" else ["--to", "argv", "--no-analyze"]
    done = orchestra(command, "--config", str(cfg), *who, "--task", task, "--no-tmux", cwd=workdir)
    assert done.returncode == 2 and "the task is empty" in done.stderr, done.stderr
    assert not (workdir / ".orchestra").exists()


def test_summarize_exits_1_when_it_judges_the_transcript_failed(workdir):
    cfg = write_config(workdir / "o.yaml", {"toy": {"command": ["toy"], "completion": "^DONE"}})
    failed = workdir / "failed.txt"
    failed.write_text("working on: it\nsomething went wrong\n")
    done = orchestra("summarize", "--config", str(cfg), "--agent", "toy", str(failed), cwd=workdir)
    assert done.returncode == 1 and "failed" in done.stdout, done.stdout + done.stderr
    completed = workdir / "completed.txt"
    completed.write_text("working on: it\nDONE\n")
    done = orchestra("summarize", "--config", str(cfg), "--agent", "toy", str(completed), cwd=workdir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_misspelt_agent_is_said_before_any_banner_with_the_likely_one(workdir):
    done = orchestra("delegate", "--to", "drod", "--task", "hi", cwd=workdir)
    assert done.returncode == 2 and "did you mean droid?" in done.stderr
    assert "Orchestra - delegating" not in done.stdout and not (workdir / ".orchestra").exists()


def test_a_task_comes_from_standard_input_or_a_file(workdir):
    piped = orchestra("delegate", "--demo", "--task", "-", "--no-tmux", "--json", cwd=workdir, input="From stdin\n")
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["task"].strip() == "From stdin"
    task = workdir / "task.md"
    task.write_text("From a file\nof two lines\n")
    filed = orchestra("delegate", "--demo", "--task-file", str(task), "--no-tmux", "--json", cwd=workdir)
    assert json.loads(filed.stdout)["task"] == "From a file\nof two lines\n"
    both = orchestra("delegate", "--demo", "--task", "x", "--task-file", str(task), cwd=workdir)
    assert both.returncode == 2 and "not both" in both.stderr
    none = orchestra("delegate", "--demo", cwd=workdir)
    assert none.returncode == 2 and "--task-file FILE" in none.stderr


def test_run_prints_the_run_footer_and_no_cost_line_for_a_program_without_cost(workdir):
    done = orchestra("run", "--cmd", f"{sys.executable} -c \"print('DONE')\"", "--done", "^DONE", "--no-tmux",
                     cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "   Run: " in done.stdout and "(orchestra show " in done.stdout
    assert "💰 Cost" not in done.stdout


def test_summarize_takes_the_agent_from_the_transcripts_header_and_says_unknown(workdir):
    done = orchestra("summarize", str(ROOT / "fixtures" / "droid-secondary.cast"), cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "demo" not in done.stderr and "Tokens: " in done.stdout
    raw = workdir / "out.txt"
    raw.write_text("hello\nDONE\n")
    unnamed = orchestra("summarize", str(raw), cwd=workdir)
    assert unnamed.returncode == 2 and "give --agent NAME" in unnamed.stderr
    generic = orchestra("summarize", "--agent", "aider", str(raw), cwd=workdir)
    assert "None" not in generic.stdout and "unknown in, unknown out" in generic.stdout


def test_wait_on_a_cancelled_run_exits_130_as_delegate_would(workdir, tmp_path):
    from test_mcp import config as mcp_config, release

    gate = tmp_path / "gate"
    os.mkfifo(gate)
    cfg = mcp_config(tmp_path, "--wait-fifo", str(gate))
    started = orchestra("run", "--agent", "worker", "--task", "t", "--config", str(cfg), "--no-tmux", "--detach",
                        "--json", cwd=workdir)
    run_id = json.loads(started.stdout)["run_id"]
    try:
        assert orchestra("cancel", run_id, cwd=workdir).returncode == 0
    finally:
        release(gate)
    assert orchestra("wait", run_id, cwd=workdir).returncode == 130


def test_every_option_has_help_and_the_top_level_help_has_an_example():
    from orchestra.cli import cli

    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, (name, param.name)
    done = orchestra("--help")
    assert "orchestra delegate --demo --task" in done.stdout
