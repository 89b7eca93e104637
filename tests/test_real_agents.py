"""The real Claude Code, Droid, Aider, Codex, Gemini and OpenCode CLIs, driven by orchestra against a scripted model server.

Each agent runs with a temporary HOME of its own (set in its profile's env), in a
temporary git repository; only the config and environment variables differ from a
user's setup. Skipped, with the reason, when scripts/install-agents could not install one; in CI
(CI=true) failed instead, naming the missing binary and the install log (tests/support/ci.py).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestra.config import SHIPPED_CONFIG
from tests.support.agents import (ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, aider_setup, claude_setup,
                                  codex_setup, droid_setup, find_agent, gemini_setup, init_git_repo,
                                  opencode_setup, tmp_leftovers_removed)
from tests.support.model_server import (ModelServer, Rule, error, has_tool_result, last_user_text_contains,
                                        offers_tool, text, tool_call, write_file_rules)
from tests.support.ci import missing_reason
from conftest import wait_for_pane
from tests.support.model_script import aider_whole_file_rules

pytestmark = pytest.mark.real_agent

BRIEF = "Create models/user.py with a User class that has a name."
USER_PY = "class User:\n    def __init__(self, name: str) -> None:\n        self.name = name\n"
PRIMARY_REPLY = "The secondary created models/user.py; the task is done. Check the User class."


def need(*names: str) -> None:
    missing = [n for n in names if find_agent(n) is None]
    if missing:
        pytest.skip(missing_reason(missing))  # in CI: a failure (conftest.py)


@pytest.fixture
def repo(tmp_path):
    return project(tmp_path / "repo")


def project(where: Path) -> Path:
    """A git repository with a README and an empty models package, committed."""
    path = init_git_repo(where)
    (path / "README.md").write_text("# project\n")
    (path / "models").mkdir()
    (path / "models" / "__init__.py").write_text("")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "start")
    return path


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True).stdout


def primary_rules(tool: str = "Write") -> list[Rule]:
    """A primary (told apart by a tool it offers: Claude's Write, Codex's apply_patch): a brief for the
    delegation prompt, a reply to the summary."""
    return [
        Rule(offers_tool(tool) & last_user_text_contains("the secondary agent has finished"),
             text(PRIMARY_REPLY), name="primary-reply"),
        Rule(offers_tool(tool) & last_user_text_contains("You are the primary agent in Orchestra"),
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
        "codex": lambda: codex_setup(tmp_path / "home-codex", repo, f"{url}/v1"),
        "gemini": lambda: gemini_setup(tmp_path / "home-gemini", repo, url),
        "opencode": lambda: opencode_setup(tmp_path / "home-opencode", repo, f"{url}/v1"),
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
    assert summary_requests and "files modified (1): models/user.py" in summary_requests[-1].last_user_text
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
    assert aider["ended_by"]["signal"] == "exit"  # its profile has no completion pattern
    assert "its profile was tested with" not in done.stderr
    assert "feat: add models/user.py" in git(repo, "log", "--format=%s", "-1")  # aider's commit is seen
    assert run["summary_returned_to_primary"] is True


def test_interactive_claude_under_pexpect_delegates_to_droid(tmp_path, repo, tmux_sessions):
    need("claude", "droid")
    run, requests = delegate_to_droid(tmp_path, repo, "claude-tui", "Add a User model to FastAPI", tmux_sessions)
    assert run["brief"] == BRIEF
    assert (repo / "models" / "user.py").read_text() == USER_PY
    assert run["summary_returned_to_primary"] is True
    assert any("the secondary agent has finished" in r.last_user_text and "files modified (1): models/user.py" in r.last_user_text
               for r in requests)
    assert run["primary"]["status"] == "completed" and run["primary"]["exit_code"] == 0  # /exit ended it


def test_interactive_claudes_reply_to_the_summary_is_the_models_words_alone_every_time(tmp_path, tmux_sessions):
    # once in six runs the wait for it used to end on the first turn's `✻ ... for Ns` line, redrawn
    need("claude", "droid")
    for i in range(3):
        repo = project(tmp_path / f"run{i}" / "repo")
        run, _ = delegate_to_droid(tmp_path / f"run{i}", repo, "claude-tui", "Add a User model", tmux_sessions)
        assert " ".join(run["primary_reply"].split()) == PRIMARY_REPLY, (i, run["primary_reply"])
        assert run["primary"]["ended_by"]["signal"] == "completion", run["primary"]["ended_by"]
    # its window keeps the conversation after /exit, not only "Resume this session with:"
    pane = wait_for_pane(f"={run['tmux_session']}:primary", "Resume this session with:")
    assert PRIMARY_REPLY in pane, pane


def test_a_file_someone_writes_while_droid_works_is_set_apart_in_its_summary_and_the_primarys_block(
        tmp_path, repo, tmux_sessions):
    need("claude", "droid")
    final, write = write_file_rules("droid", repo, "models/user.py", USER_PY, "Created models/user.py.")

    def meanwhile(request):  # droid's last model call: droid is still at work
        (repo / "notes.md").write_text("the user's own notes, written while droid worked\n")
        return final.reply

    rules = primary_rules() + [Rule(final.when, meanwhile, name="final-text"), write]
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude", "droid"])
        done, run = orchestra(cfg, repo, "delegate", "--from", "claude", "--to", "droid", "--task", "Add a User model")
        requests = srv.requests.snapshot()
    if run.get("tmux_session"):
        tmux_sessions.append(run["tmux_session"])
    assert done.returncode == 0, (run["reason"], done.stderr)
    droid = run["secondaries"][0]
    assert droid["files_modified"] == ["models/user.py"] and droid["files_changed_by_others"] == ["notes.md"]
    assert droid["files_seen_by_git"] == ["models/user.py", "notes.md"]
    assert any("files modified (1): models/user.py also changed while it ran, by someone else or by a command it "
               "ran (1): notes.md" in r.last_user_text for r in requests)  # the block Claude got back


def test_run_droid_alone_reports_the_file_and_tokens(tmp_path, repo):
    need("droid")
    with ModelServer(write_file_rules("droid", repo, "models/user.py", USER_PY, "Done.")) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["droid"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "droid", "--task", "Create models/user.py", "--no-tmux")
    assert done.returncode == 0, agent
    assert agent["files_modified"] == ["models/user.py"] and agent["exit_code"] == 0
    assert agent["tokens"]["output"] > 0
    assert agent["ended_by"]["signal"] == "completion" and '"type":"completion"' in agent["ended_by"]["line"]
    assert "its profile was tested with" not in done.stderr  # the shipped version: the installed one


def test_a_refused_key_stops_claude_at_once_instead_of_retrying_for_minutes(tmp_path, repo):
    need("claude")
    with ModelServer([Rule(offers_tool("Write"), error(401, "invalid x-api-key", "authentication_error"))]) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "claude", "--task", "hello", "--no-tmux", timeout=60)
    assert done.returncode == 1
    assert agent["status"] == "failed" and "api_retry" in agent["reason"] and "401" in agent["reason"]
    assert agent["ended_by"]["signal"] == "error_pattern" and "api_retry" in agent["ended_by"]["pattern"]
    assert "its profile was tested with" not in done.stderr
    assert agent["duration_s"] < 10  # Claude Code alone would retry for about three minutes


def test_claude_retrying_an_overloaded_api_fails_after_max_retries_naming_them(tmp_path, repo):
    need("claude")
    with ModelServer([Rule(offers_tool("Write"), error(529, "Overloaded", "overloaded_error"))]) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude"])
        data = yaml.safe_load(cfg.read_text())
        data["agents"]["claude"]["max_retries"] = 1  # its retries come 0.5 s, then 1 s apart
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True))
        done, agent = orchestra(cfg, repo, "run", "--agent", "claude", "--task", "hello", "--no-tmux", timeout=60)
    assert done.returncode == 1 and agent["status"] == "failed", agent
    assert agent["reason"] == "API error 529 overloaded: retried 2 times in a row, more than max_retries (1)"
    assert "API error 529 overloaded: retried 2 times" in agent["errors"]
    assert agent["ended_by"]["signal"] == "max_retries" and '"error_status":529' in agent["ended_by"]["line"]


def test_claude_tui_in_an_untrusted_folder_stops_as_waiting_for_input_with_its_menu(tmp_path, repo):
    need("claude")
    untrusted = init_git_repo(tmp_path / "untrusted")  # the profile's HOME trusts only `repo`
    with ModelServer([Rule(offers_tool("Write"), text("hello"))]) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude-tui"])
        data = yaml.safe_load(cfg.read_text())
        data["agents"]["claude-tui"]["input_wait"] = 3
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True))
        done, agent = orchestra(cfg, untrusted, "run", "--agent", "claude-tui", "--task", "hello", "--no-tmux",
                                timeout=60)
    assert done.returncode == 1 and agent["status"] == "waiting_for_input", agent  # not `timeout` after 120 s
    assert "trust?" in agent["reason"] and "Yes, I trust this folder" in agent["reason"], agent["reason"]
    assert agent["ended_by"]["signal"] == "waiting_for_input" and "Enter to confirm" in agent["ended_by"]["line"]


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


POST_PY = "class Post:\n    def __init__(self, title: str) -> None:\n        self.title = title\n"


def started(agent: dict) -> float:
    from datetime import datetime
    return datetime.fromisoformat(agent["started_at"]).timestamp()


def droid_creates_in_its_own_directory(rel_path: str, content: str, final: str) -> list[Rule]:
    """Droid's Create wants an absolute path; in a worktree that is the directory droid reports as `% pwd`."""
    def create(req):
        cwd = re.search(r"% pwd\n(\S+)", req.text).group(1)
        return tool_call("Create", {"file_path": f"{cwd}/{rel_path}", "content": content})
    return [Rule(offers_tool("Create") & has_tool_result(), text(final), name="droid-final"),
            Rule(offers_tool("Create") & ~has_tool_result(), create, name="droid-create")]


def test_claude_splits_the_task_between_droid_and_aider_working_at_once_in_worktrees(tmp_path, repo, tmux_sessions):
    need("claude", "droid", "aider")
    (repo / "models" / "post.py").write_text("")  # aider edits the files it is given
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "empty post.py")
    briefs = "DELEGATE: Create models/user.py with a User class.\nEND\nDELEGATE: Create models/post.py with a Post class.\nEND"
    rules = [
        Rule(offers_tool("Write") & last_user_text_contains("secondary agents have finished"), text(PRIMARY_REPLY)),
        Rule(offers_tool("Write") & last_user_text_contains("Split the task into 2"), text(briefs)),
        *droid_creates_in_its_own_directory("models/user.py", USER_PY, "Created models/user.py."),
        *aider_whole_file_rules("models/post.py", POST_PY, "Here is the Post model."),
    ]
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude", "droid", "aider"])
        data = yaml.safe_load(cfg.read_text())
        data["agents"]["aider"]["command"] = data["agents"]["aider"]["command"] + ["models/post.py"]
        cfg.write_text(yaml.safe_dump(data, allow_unicode=True))
        done, run = orchestra(cfg, repo, "delegate", "--from", "claude", "--to", "droid", "--to", "aider",
                              "--task", "Add User and Post models", "--merge")
        requests = srv.requests.snapshot()
    if run.get("tmux_session"):
        tmux_sessions.append(run["tmux_session"])
    assert done.returncode == 0, (run["reason"], run.get("merge_stopped"), done.stderr)
    rid = run["run_id"]
    droid, aider = run["secondaries"]
    assert (droid["agent"], droid["status"], droid["files_modified"]) == ("droid", "completed", ["models/user.py"])
    assert (aider["agent"], aider["status"], aider["files_modified"]) == ("aider", "completed", ["models/post.py"])
    assert droid["branch"] == f"orchestra/{rid}/droid" and aider["branch"] == f"orchestra/{rid}/aider"
    # each wrote in its own worktree, not in the user's checkout; --merge brought both back
    assert droid["workdir"] != aider["workdir"] and str(repo) not in (droid["workdir"], aider["workdir"])
    assert [m["merged"] for m in run["merges"]] == [True, True]
    assert (repo / "models" / "user.py").read_text() == USER_PY
    assert (repo / "models" / "post.py").read_text() == POST_PY
    subjects = git(repo, "log", "--format=%s")
    assert f"orchestra: merge orchestra/{rid}/droid (droid)" in subjects
    assert f"orchestra: merge orchestra/{rid}/aider (aider)" in subjects
    assert "feat: add models/post.py" in git(repo, "log", "--format=%s", aider["branch"])  # aider's own commit
    # the two ran at once: aider was started before droid had finished
    assert started(aider) < started(droid) + droid["duration_s"]
    summary = [r for r in requests if "secondary agents have finished" in r.last_user_text][-1].last_user_text
    assert "[secondary-1: droid]" in summary and "[secondary-2: aider]" in summary
    assert run["summary_returned_to_primary"] is True
    cleaned = subprocess.run([sys.executable, "-m", "orchestra", "clean", rid], cwd=repo, capture_output=True,
                             text=True, timeout=60)
    assert cleaned.returncode == 0 and len(git(repo, "worktree", "list").splitlines()) == 1


# -- Codex CLI and Gemini CLI ----------------------------------------------------------------

@pytest.fixture
def tmp_leftovers():
    with tmp_leftovers_removed():
        yield


def test_run_codex_alone_creates_the_file_that_git_sees(tmp_path, repo, tmp_leftovers):
    need("codex")
    with ModelServer(write_file_rules("codex", repo, "models/user.py", USER_PY, "Created models/user.py.")) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["codex"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "codex", "--task", "Create models/user.py", "--no-tmux")
        requests = srv.requests.model_calls()
    assert done.returncode == 0, agent
    assert (repo / "models" / "user.py").read_text() == USER_PY
    assert agent["status"] == "completed" and agent["exit_code"] == 0
    assert agent["files_modified"] == ["models/user.py"]
    assert agent["files_seen_by_git"] == ["models/user.py"] and agent["files_claimed"] == ["models/user.py"]
    assert agent["session_id"] and agent["tokens"]["input"] > 0 and agent["tokens"]["output"] > 0
    assert agent["cost_source"] == "estimated"  # codex reports tokens, no cost: priced from the config
    assert "Created models/user.py." in agent["reply"]
    assert agent["ended_by"]["signal"] == "completion" and '"type":"turn.completed"' in agent["ended_by"]["line"]
    assert "its profile was tested with" not in done.stderr  # the shipped version: the installed one
    assert [r.api for r in requests] == ["responses", "responses"]
    assert requests[-1].last_message_is_tool_result and "Create models/user.py" in requests[0].last_user_text


def test_codex_as_the_primary_delegates_to_gemini_and_gets_the_summary_back_by_resuming(
        tmp_path, repo, tmux_sessions, tmp_leftovers):
    need("codex", "gemini")
    rules = primary_rules("apply_patch") + write_file_rules("gemini", repo, "models/user.py", USER_PY, "Created models/user.py.")
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["codex", "gemini"])
        done, run = orchestra(cfg, repo, "delegate", "--from", "codex", "--to", "gemini", "--task",
                              "Add a User model to FastAPI with CRUD endpoints")
        requests = srv.requests.model_calls()
    if run.get("tmux_session"):
        tmux_sessions.append(run["tmux_session"])
    assert done.returncode == 0, (run["reason"], done.stderr)
    assert run["brief"] == BRIEF
    assert (repo / "models" / "user.py").read_text() == USER_PY
    gemini = run["secondaries"][0]
    assert (gemini["agent"], gemini["status"]) == ("gemini", "completed")
    assert gemini["files_modified"] == ["models/user.py"] and gemini["files_claimed"] == ["models/user.py"]
    assert gemini["tokens"]["input"] > 0 and gemini["cost_source"] == "estimated"
    assert gemini["ended_by"]["signal"] == "completion" and '"status":"success"' in gemini["ended_by"]["line"]
    primary = run["primary"]
    assert primary["agent"] == "codex" and primary["session_id"]
    assert primary["ended_by"]["signal"] == "completion" and "turn.completed" in primary["ended_by"]["line"]
    # the summary went back into Codex's own thread (`codex exec resume`), and its reply came back
    assert run["summary_returned_to_primary"] is True
    assert PRIMARY_REPLY in run["primary_reply"]
    resumed = [r for r in requests if r.api == "responses" and "the secondary agent has finished" in r.last_user_text]
    assert resumed and "files modified (1): models/user.py" in resumed[-1].last_user_text
    assert "status: completed" in resumed[-1].last_user_text
    assert any("You are the primary agent" in json.dumps(m) for m in resumed[-1].messages)  # the same thread
    assert resumed[-1].headers.get("thread-id") == primary["session_id"]


def test_run_gemini_alone_creates_the_file_that_git_sees(tmp_path, repo):
    need("gemini")
    with ModelServer(write_file_rules("gemini", repo, "models/user.py", USER_PY, "Created models/user.py.")) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["gemini"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "gemini", "--task", "Create models/user.py", "--no-tmux")
        requests = srv.requests.model_calls()
    assert done.returncode == 0, agent
    assert (repo / "models" / "user.py").read_text() == USER_PY
    assert agent["status"] == "completed" and agent["files_modified"] == ["models/user.py"]
    assert agent["files_seen_by_git"] == ["models/user.py"] and agent["files_claimed"] == ["models/user.py"]
    assert agent["session_id"] and agent["tokens"]["input"] > 0 and agent["tokens"]["output"] > 0
    assert agent["cost_source"] == "estimated" and agent["cost_usd"] > 0
    assert "Created models/user.py." in agent["reply"]
    assert agent["ended_by"]["signal"] == "completion" and '"type":"result"' in agent["ended_by"]["line"]
    assert "its profile was tested with" not in done.stderr
    assert {r.api for r in requests} == {"gemini"} and requests[-1].last_message_is_tool_result


def test_a_refused_key_stops_codex_at_its_first_retry(tmp_path, repo):
    need("codex")
    with ModelServer([Rule(offers_tool("apply_patch"), error(401, "invalid api key"))]) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["codex"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "codex", "--task", "hello", "--no-tmux", timeout=60)
    assert done.returncode == 1 and agent["status"] == "failed", agent
    assert "Reconnecting... 1/5" in agent["reason"] and "401" in agent["reason"]
    assert agent["ended_by"]["signal"] == "error_pattern" and "Reconnecting... 1/5" in agent["ended_by"]["line"]


def test_a_refused_key_fails_gemini_with_its_own_text(tmp_path, repo):
    need("gemini")
    with ModelServer([Rule(offers_tool("write_file"), error(401, "invalid api key"))]) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["gemini"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "gemini", "--task", "hello", "--no-tmux", timeout=60)
    assert done.returncode == 1 and agent["status"] == "failed", agent
    assert any("401" in e and "invalid api key" in e for e in agent["errors"]), agent["errors"]
    # its result line is both its completion and its error pattern: the error decides
    assert agent["ended_by"]["signal"] == "error_pattern" and '"status":"error"' in agent["ended_by"]["line"]


def test_run_opencode_alone_creates_the_file_that_git_sees(tmp_path, repo, tmp_leftovers):
    need("opencode")
    with ModelServer(write_file_rules("opencode", repo, "models/user.py", USER_PY, "Created models/user.py.")) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["opencode"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "opencode", "--task", "Create models/user.py",
                                "--no-tmux")
        requests = srv.requests.model_calls()
    assert done.returncode == 0, agent
    assert (repo / "models" / "user.py").read_text() == USER_PY
    assert agent["status"] == "completed" and agent["exit_code"] == 0
    assert agent["files_modified"] == ["models/user.py"] and agent["files_claimed"] == ["models/user.py"]
    assert agent["session_id"] and agent["tokens"]["input"] > 0 and agent["tokens"]["output"] > 0
    assert "Created models/user.py." in agent["reply"]
    # no completion pattern: its exit ends the task
    assert agent["ended_by"] == {"signal": "exit", "pattern": None, "line": None,
                                 "decided_ms": agent["ended_by"]["decided_ms"]}
    assert "its profile was tested with" not in done.stderr
    assert {r.api for r in requests} == {"openai"} and any(r.last_message_is_tool_result for r in requests)


def test_a_refused_key_fails_opencode_with_its_own_text(tmp_path, repo, tmp_leftovers):
    need("opencode")
    with ModelServer(error(401, "invalid api key")) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["opencode"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "opencode", "--task", "hello", "--no-tmux", timeout=90)
    assert done.returncode == 1 and agent["status"] == "failed", agent
    assert "API error 401: invalid api key" in agent["errors"], agent["errors"]
    assert agent["ended_by"]["signal"] == "error_pattern" and '"type":"error"' in agent["ended_by"]["line"]


def test_doctor_finds_every_pinned_cli_at_the_version_its_profile_was_tested_with(tmp_path):
    names = ["claude", "droid", "aider", "codex", "gemini", "opencode"]
    need(*names)
    done = subprocess.run([sys.executable, "-m", "orchestra", "doctor", "--config", str(SHIPPED_CONFIG), "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    rows = {row["agent"]: row for row in json.loads(done.stdout)["agents"]}
    for name in names:
        row = rows[name]
        assert row["tested_version"] and row["tested_version"] in (row["version"] or ""), row
        assert row["drift"] == "", row
    assert not [w for w in json.loads(done.stdout)["warnings"] if "its profile was tested with" in w]
