"""The command line's exit status and usage errors: a script can tell what happened; configs it did not write."""
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest

from conftest import ROOT, orchestra, toy, write_config
from orchestra.config import SHIPPED_CONFIG


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


# -- configs the user did not write ----------------------------------------------------------------------------

@pytest.fixture
def home(tmp_path):
    """An environment whose HOME and XDG_CONFIG_HOME are a temporary folder: its own user config and trust record."""
    folder = tmp_path / "home"
    (folder / ".config").mkdir(parents=True)
    return dict(os.environ, HOME=str(folder), XDG_CONFIG_HOME=str(folder / ".config"),
                ORCHESTRA_AGENTS_DIR=str(tmp_path / "no-agents"))


def project_config(workdir, marker):
    """A repository's own orchestra.yaml whose agent, when run, leaves a file behind."""
    return write_config(workdir / "orchestra.yaml", {"mine": {
        "command": [sys.executable, "-c", f"open({str(marker)!r}, 'w').close(); print('DONE')"],
        "completion": "^DONE"}}, "routing: {default: mine}\n")


def test_a_project_config_is_refused_until_the_user_trusts_it(workdir, tmp_path, home):
    marker = tmp_path / "ran"
    cfg = project_config(workdir, marker)
    for args in (["run", "--agent", "mine", "--task", "t", "--no-tmux"], ["route", "--task", "t"], ["doctor"],
                 ["delegate", "--to", "mine", "--no-analyze", "--task", "t", "--no-tmux"]):
        done = orchestra(*args, cwd=workdir, env=home)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert f"{cfg}: this project's config is not trusted yet" in done.stderr, done.stderr
        assert f"orchestra trust {cfg}" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists() and not (workdir / ".orchestra").exists()
    trusted = orchestra("trust", cwd=workdir, env=home)
    assert trusted.returncode == 0, trusted.stderr
    assert f"Trusted {cfg}" in trusted.stdout and "mine: runs" in trusted.stdout  # what it will run
    record = Path(home["XDG_CONFIG_HOME"]) / "orchestra" / "trusted.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert json.loads(record.read_text())["files"][str(cfg)]["sha256"] == hashlib.sha256(cfg.read_bytes()).hexdigest()
    done = orchestra("run", "--agent", "mine", "--task", "t", "--no-tmux", "--json", cwd=workdir, env=home)
    assert done.returncode == 0, done.stderr
    assert marker.exists()


def test_a_trusted_project_config_that_changes_must_be_trusted_again(workdir, tmp_path, home):
    cfg = project_config(workdir, tmp_path / "ran")
    assert orchestra("trust", str(cfg), cwd=tmp_path, env=home).returncode == 0
    assert orchestra("route", "--task", "t", cwd=workdir, env=home).returncode == 0
    cfg.write_text(cfg.read_text().replace("default: mine", "default: droid"))
    done = orchestra("route", "--task", "t", cwd=workdir, env=home)
    assert done.returncode == 2 and "has changed since you trusted it" in done.stderr, done.stderr
    assert f"orchestra trust {cfg}" in done.stderr
    assert orchestra("trust", cwd=workdir, env=home).returncode == 0
    done = orchestra("route", "--task", "t", cwd=workdir, env=home)
    assert done.returncode == 0 and "📍 droid" in done.stdout, done.stdout + done.stderr


def test_the_users_own_config_and_a_config_option_need_no_trust(workdir, tmp_path, home):
    marker = tmp_path / "ran"
    user = Path(home["XDG_CONFIG_HOME"]) / "orchestra" / "config.yaml"
    user.parent.mkdir()
    project_config(tmp_path, marker).rename(user)
    done = orchestra("run", "--agent", "mine", "--task", "t", "--no-tmux", "--json", cwd=workdir, env=home)
    assert done.returncode == 0 and marker.exists(), done.stderr
    marker.unlink()
    cfg = project_config(workdir, marker)  # untrusted, but --config stands in for it
    other = write_config(tmp_path / "other.yaml", {"theirs": {"command": [sys.executable, "-c", "print('DONE')"],
                                                              "completion": "^DONE"}})
    done = orchestra("run", "--config", str(other), "--agent", "theirs", "--task", "t", "--no-tmux", "--json",
                     cwd=workdir, env=home)
    assert done.returncode == 0, done.stderr
    done = orchestra("run", "--config", str(cfg), "--agent", "mine", "--task", "t", "--no-tmux", "--json",
                     cwd=workdir, env=home)
    assert done.returncode == 0 and marker.exists(), done.stderr


def test_a_project_config_of_one_profile_keeps_the_shipped_ones_and_the_demo(workdir, tmp_path, home):
    project_config(workdir, tmp_path / "ran")
    assert orchestra("trust", cwd=workdir, env=home).returncode == 0
    done = orchestra("delegate", "--demo", "--task", "Add a User model", "--no-tmux", "--json", cwd=workdir, env=home)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"


def test_doctor_says_which_file_each_profile_comes_from(workdir, tmp_path, home):
    user = Path(home["XDG_CONFIG_HOME"]) / "orchestra" / "config.yaml"
    user.parent.mkdir()
    write_config(user, {"droid": {"command": ["droid-of-mine"]}, "helper": {"command": ["helper"]}})
    cfg = project_config(workdir, tmp_path / "ran")
    assert orchestra("trust", cwd=workdir, env=home).returncode == 0
    report = json.loads(orchestra("doctor", "--json", cwd=workdir, env=home).stdout)
    sources = {row["agent"]: (row["source"], row["source_path"]) for row in report["agents"]}
    assert sources["droid"] == ("user", str(user)) and sources["helper"] == ("user", str(user))
    assert sources["mine"] == ("project", str(cfg))
    assert sources["claude"] == ("shipped", str(SHIPPED_CONFIG))
    assert [layer["kind"] for layer in report["layers"]] == ["shipped", "user", "project"]
    text = orchestra("doctor", cwd=workdir, env=home).stdout
    assert f"config (project): {cfg}" in text and f"config (user): {user}" in text
    assert re.search(r"^❌ droid .*droid-of-mine.*\[user\]$", text, re.M), text


def test_a_missing_key_says_where_a_user_config_goes_not_to_edit_the_installed_package(workdir, tmp_path, home):
    claude = tmp_path / "bin" / "claude"  # installed (never run: the missing key stops it first)
    claude.parent.mkdir()
    claude.write_text("#!/bin/sh\nexit 1\n")
    claude.chmod(0o755)
    env = {k: v for k, v in home.items() if k != "ANTHROPIC_API_KEY"}
    env["PATH"] = f"{claude.parent}{os.pathsep}{env['PATH']}"
    done = orchestra("run", "--agent", "claude", "--task", "t", "--no-tmux", cwd=workdir, env=env)
    assert done.returncode == 2
    user = Path(home["XDG_CONFIG_HOME"]) / "orchestra" / "config.yaml"
    assert f"copy agent 'claude' from {SHIPPED_CONFIG} into {user} under `agents:`" in done.stderr, done.stderr
    assert f"in {SHIPPED_CONFIG}" not in done.stderr


# -- the command and its placeholders ---------------------------------------------------------------------------

def test_run_help_says_what_the_task_placeholder_does():
    done = orchestra("run", "--help")
    text = " ".join(done.stdout.split())
    assert "{task} in it becomes the task text, as one argument" in text
    assert "it takes the place of {task} in the command" in text


def test_cmd_is_split_into_arguments_as_a_shell_would_and_task_fills_its_placeholder(workdir, home):
    # bash gets one argument "echo step $i; ..." and expands $i itself; {task} is one argument, spaces and all
    done = orchestra("run", "--cmd", 'bash -c "echo step $i; echo \\"got: $0\\"; echo DONE" {task}', "--done", "^DONE",
                     "--task", "two words", "--no-tmux", "--json", cwd=workdir, env={**home, "i": "7"})
    assert done.returncode == 0, done.stderr
    lines = Path(json.loads(done.stdout)["transcript"]).read_text()
    assert "step 7" in lines and "got: two words" in lines


def test_an_unknown_placeholder_in_cmd_is_refused_naming_it(workdir, home):
    done = orchestra("run", "--cmd", "echo {tsk}", "--done", "x", "--task", "t", "--no-tmux", cwd=workdir, env=home)
    assert done.returncode == 2 and "unknown placeholder {tsk}" in done.stderr and "{task}" in done.stderr


def test_a_project_config_with_a_mistake_is_not_trusted(workdir, home):
    cfg = write_config(workdir / "orchestra.yaml", {"mine": {"command": ["mycli", "{tsk}"]}})
    done = orchestra("trust", cwd=workdir, env=home)
    assert done.returncode == 2 and f"{cfg}: agent 'mine', field 'command': unknown placeholder {{tsk}}" in done.stderr
    assert not (Path(home["XDG_CONFIG_HOME"]) / "orchestra" / "trusted.json").exists()


# What a command that only reads or lists must not import: the agents' machinery, the config's YAML, the
# MCP SDK, the web server, the process-table library, asyncio (each costs milliseconds at every start)
HEAVY = ("pexpect", "yaml", "mcp", "starlette", "uvicorn", "psutil", "asyncio", "orchestra.session",
         "orchestra.config", "orchestra.run")
IMPORTED = """
import atexit, json, sys
out = sys.argv.pop()
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["orchestra", *sys.argv[1:]]
from orchestra.cli import main
main()
"""


@pytest.mark.parametrize("command", [["--help"], ["status"], ["runs"], ["status", "--json"]])
def test_help_status_and_runs_import_none_of_the_heavy_modules(workdir, command):
    (workdir / ".orchestra" / "live").mkdir(parents=True)  # (an empty directory of runs under way)
    modules = workdir / "modules.json"
    done = subprocess.run([sys.executable, "-c", IMPORTED, *command, str(modules)], cwd=workdir,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = json.loads(modules.read_text())
    assert "orchestra.cli" in imported and "click" in imported  # (it did run the command)
    assert not [m for m in imported if m in HEAVY or m.split(".")[0] in HEAVY[:7]]
