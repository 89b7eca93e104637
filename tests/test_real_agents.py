"""The real Claude Code, Droid and Aider CLIs, driven by orchestra against a scripted model server.

Each agent runs with a temporary HOME of its own (set in its profile's env), in a
temporary git repository; only the config and environment variables differ from a
user's setup. Skipped, with the reason, when scripts/install-agents could not install one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestra.config import SHIPPED_CONFIG
from tests.support.agents import (ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, aider_setup, claude_setup, droid_setup,
                                  find_agent, init_git_repo)
from tests.support.model_server import (ModelServer, Rule, error, has_tool_result, last_user_text_contains,
                                        offers_tool, text, write_file_rules)

pytestmark = pytest.mark.real_agent

BRIEF = "Create models/user.py with a User class that has a name."
USER_PY = "class User:\n    def __init__(self, name: str) -> None:\n        self.name = name\n"
PRIMARY_REPLY = "The secondary created models/user.py; the task is done. Check the User class."


def need(*names: str) -> None:
    missing = [n for n in names if find_agent(n) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/install-agents installs them)")


@pytest.fixture
def repo(tmp_path):
    path = init_git_repo(tmp_path / "repo")
    (path / "README.md").write_text("# project\n")
    (path / "models").mkdir()
    (path / "models" / "__init__.py").write_text("")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "start")
    return path


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True).stdout


def primary_rules() -> list[Rule]:
    """Claude as the primary: a brief for the delegation prompt, a reply to the summary."""
    return [
        Rule(offers_tool("Write") & last_user_text_contains("the secondary agent has finished"),
             text(PRIMARY_REPLY), name="primary-reply"),
        Rule(offers_tool("Write") & last_user_text_contains("You are the primary agent in Orchestra"),
             text(f"Here is the plan.\nDELEGATE: {BRIEF}\nEND"), name="primary-brief"),
    ]


def agent_env(setup) -> dict:
    env = {k: v for k, v in setup.env.items() if k not in ("PATH", "LANG", "USER", "LOGNAME", "SHELL")}
    return env


def write_config(tmp_path: Path, repo: Path, url: str, names: list[str]) -> Path:
    """The shipped profiles, each given its own HOME and the scripted server's address."""
    cfg = yaml.safe_load(SHIPPED_CONFIG.read_text())
    setups = {
        "claude": lambda: claude_setup(tmp_path / "home-claude", repo, url),
        "claude-tui": lambda: claude_setup(tmp_path / "home-claude-tui", repo, url),
        "droid": lambda: droid_setup(tmp_path / "home-droid", repo, url),
        "aider": lambda: aider_setup(tmp_path / "home-aider", repo, f"{url}/v1"),
    }
    for name in names:
        setup = setups[name]()
        env = agent_env(setup)
        if name == "droid":
            env["DROID_MODEL"] = setup.argv[setup.argv.index("-m") + 1]
        if name == "aider":
            env.update({"AIDER_MODEL": "openai/gpt-4o-mini", "AIDER_EDIT_FORMAT": "whole",
                        "AIDER_MODEL_METADATA_FILE": str(tmp_path / "home-aider" / "aider-model-metadata.json")})
        cfg["agents"][name]["env"] = {**cfg["agents"][name].get("env", {}), **env}
        cfg["agents"][name]["timeout"] = 120
    path = tmp_path / "orchestra.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def orchestra(cfg: Path, repo: Path, *args: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess, dict]:
    env = dict(os.environ, ANTHROPIC_API_KEY=ANTHROPIC_TEST_KEY, OPENAI_API_KEY=OPENAI_TEST_KEY)
    done = subprocess.run([sys.executable, "-m", "orchestra", *args, "--config", str(cfg), "--json"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    try:
        return done, json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from orchestra (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


def delegate_to_droid(tmp_path, repo, primary, task, tmux_sessions):
    """`orchestra delegate --from PRIMARY --to droid`, droid scripted to create models/user.py."""
    rules = primary_rules() + write_file_rules("droid", repo, "models/user.py", USER_PY, "Created models/user.py.")
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, [primary, "droid"])
        done, run = orchestra(cfg, repo, "delegate", "--from", primary, "--to", "droid", "--task", task)
        requests = srv.requests.snapshot()
    if run.get("tmux_session"):
        tmux_sessions.append(run["tmux_session"])
    assert done.returncode == 0, (run["reason"], done.stderr)
    return run, requests


def test_claude_delegates_to_droid_which_creates_the_file(tmp_path, repo, tmux_sessions):
    need("claude", "droid")
    run, requests = delegate_to_droid(tmp_path, repo, "claude", "Add a User model to FastAPI with CRUD endpoints",
                                      tmux_sessions)
    assert (repo / "models" / "user.py").read_text() == USER_PY
    assert run["status"] == "completed" and run["brief"] == BRIEF
    droid = run["secondaries"][0]
    assert droid["agent"] == "droid" and droid["status"] == "completed"
    assert droid["files_modified"] == ["models/user.py"]
    assert droid["files_claimed"] == ["models/user.py"] and droid["files_seen_by_git"] == ["models/user.py"]
    assert droid["tokens"]["input"] > 0 and droid["tokens"]["output"] > 0
    assert droid["cost_source"] == "estimated"  # droid reports tokens, no cost: priced from the config
    primary = run["primary"]
    assert primary["agent"] == "claude" and primary["cost_source"] == "reported" and primary["cost_usd"] > 0
    assert primary["session_id"]
    # the summary reached the primary: the server saw it in Claude's resumed session
    assert run["summary_returned_to_primary"] is True
    assert PRIMARY_REPLY in run["primary_reply"]
    summary_requests = [r for r in requests if "the secondary agent has finished" in r.last_user_text]
    assert summary_requests and "files: models/user.py" in summary_requests[-1].last_user_text
    assert "status: completed" in summary_requests[-1].last_user_text
    # and the resumed request carried the earlier conversation
    assert any("You are the primary agent" in json.dumps(m) for m in summary_requests[-1].messages)


def test_claude_delegates_to_aider_which_commits(tmp_path, repo, tmux_sessions):
    need("claude", "aider")
    (repo / "models" / "user.py").write_text("")  # aider edits the files it is given
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "empty user.py")
    rules = primary_rules() + write_file_rules("aider", repo, "models/user.py", USER_PY, "Here is the model.")
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude", "aider"])
        data = yaml.safe_load(cfg.read_text())
        data["agents"]["aider"]["command"] = data["agents"]["aider"]["command"] + ["models/user.py"]
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True))
        done, run = orchestra(cfg, repo, "delegate", "--from", "claude", "--to", "aider", "--task", "Add a User model")
    if run.get("tmux_session"):
        tmux_sessions.append(run["tmux_session"])
    assert done.returncode == 0, (run["reason"], done.stderr)
    assert (repo / "models" / "user.py").read_text() == USER_PY
    aider = run["secondaries"][0]
    assert aider["files_modified"] == ["models/user.py"] and aider["files_claimed"] == ["models/user.py"]
    assert aider["cost_source"] == "reported" and aider["cost_usd"] > 0
    assert aider["tokens"]["input"] > 0
    assert "feat: add models/user.py" in git(repo, "log", "--format=%s", "-1")  # aider's commit is seen
    assert run["summary_returned_to_primary"] is True


def test_interactive_claude_under_pexpect_delegates_to_droid(tmp_path, repo, tmux_sessions):
    need("claude", "droid")
    run, requests = delegate_to_droid(tmp_path, repo, "claude-tui", "Add a User model to FastAPI", tmux_sessions)
    assert run["brief"] == BRIEF
    assert (repo / "models" / "user.py").read_text() == USER_PY
    assert run["summary_returned_to_primary"] is True
    assert any("the secondary agent has finished" in r.last_user_text and "files: models/user.py" in r.last_user_text
               for r in requests)
    assert run["primary"]["status"] == "completed" and run["primary"]["exit_code"] == 0  # /exit ended it


def test_run_droid_alone_reports_the_file_and_tokens(tmp_path, repo):
    need("droid")
    with ModelServer(write_file_rules("droid", repo, "models/user.py", USER_PY, "Done.")) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["droid"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "droid", "--task", "Create models/user.py", "--no-tmux")
    assert done.returncode == 0, agent
    assert agent["files_modified"] == ["models/user.py"] and agent["exit_code"] == 0
    assert agent["tokens"]["output"] > 0


def test_a_refused_key_stops_claude_at_once_instead_of_retrying_for_minutes(tmp_path, repo):
    need("claude")
    with ModelServer([Rule(offers_tool("Write"), error(401, "invalid x-api-key", "authentication_error"))]) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "claude", "--task", "hello", "--no-tmux", timeout=60)
    assert done.returncode == 1
    assert agent["status"] == "failed" and "api_retry" in agent["reason"] and "401" in agent["reason"]
    assert agent["duration_s"] < 10  # Claude Code alone would retry for about three minutes


def test_droid_api_error_is_reported_with_its_own_text(tmp_path, repo):
    # (Droid 0.225.2 retries a 500 silently for minutes; a refused key it reports at once.)
    need("droid")
    with ModelServer([Rule(offers_tool("Create"), error(401, "invalid x-api-key", "authentication_error"))]) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["droid"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "droid", "--task", "hello", "--no-tmux", timeout=60)
    assert done.returncode == 1 and agent["status"] == "failed"
    assert any("401" in e and "invalid x-api-key" in e for e in agent["errors"]), agent["errors"]


def test_aider_api_error_fails_fast_although_aider_would_exit_0(tmp_path, repo):
    need("aider")
    with ModelServer([Rule(has_tool_result() | ~has_tool_result(), error(401, "invalid key"))]) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["aider"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "aider", "--task", "hello", "--no-tmux", timeout=90)
    assert agent["status"] == "failed" and "litellm" in agent["reason"]
