"""Budgets and follow-ups with the real Claude Code against the scripted model server: a limit crossed
mid-task ends it at once, and `orchestra send` resumes its session for a second turn (CLI and MCP)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from test_mcp import RawServer
from test_real_agents import git, need, orchestra, project, write_config
from tests.support.model_server import ModelServer, Rule, Usage, has_tool_result, last_user_text_contains, \
    offers_tool, text, text_contains, tool_call

pytestmark = pytest.mark.real_agent

CALL = Usage(1000, 100)  # what the scripted model reports for each call: 1,100 tokens


def write(repo, name: str, content: str, usage=CALL, delay: float = 0.0):
    """A model call that writes repo/name with Claude's Write tool (after `delay` seconds)."""
    reply = tool_call("Write", {"file_path": str(repo / name), "content": content})
    reply = type(reply)(reply.text, reply.tool_calls, usage)

    def answer(req):
        time.sleep(delay)  # (in the server's handler thread: the model taking its time)
        return reply
    return answer


def output_time(cast, needle: str) -> float:
    """When (seconds from its start) a transcript's output first showed needle."""
    seen = ""
    for line in cast.read_text().splitlines()[1:]:
        at, kind, data = json.loads(line)
        if kind == "o":
            seen += data
            if needle in seen:
                return at
    raise AssertionError(f"{cast} never showed {needle!r}")


@pytest.fixture
def repo(tmp_path):
    return project(tmp_path / "repo")


def test_claude_crossing_its_token_limit_is_decided_within_a_second_and_ended_with_its_work_kept(tmp_path, repo):
    need("claude")
    rules = [Rule(offers_tool("Write"), write(repo, "one.py", "ONE = 1\n"), times=1, name="one"),
             Rule(offers_tool("Write"), write(repo, "two.py", "TWO = 2\n"), times=1, name="two"),
             # if it were not ended, its next call would come, slowly, and write three.py
             Rule(offers_tool("Write"), write(repo, "three.py", "THREE = 3\n", delay=3), times=1, name="three"),
             Rule(offers_tool("Write"), text("All three written.", CALL), name="done")]
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude"])
        done, agent = orchestra(cfg, repo, "run", "--agent", "claude", "--no-tmux", "--max-tokens", "1500",
                                "--task", "Write one.py, two.py and three.py")
        calls = [r for r in srv.requests.model_calls() if "Write" in r.tool_names]
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert agent["status"] == "over_budget", agent
    ended = agent["ended_by"]
    assert ended["signal"] == "budget" and ended["pattern"] == "max_tokens 1500", ended
    assert ended["line"].startswith("spent 2") and "over the limit of 1500" in ended["line"], ended
    assert ended["decided_ms"] < 1000  # decided on the read that carried the second call's usage
    assert agent["budget"]["max_tokens"] == 1500 and agent["budget"]["spent_tokens"] > 1500
    assert (repo / "one.py").read_text() == "ONE = 1\n"  # its work so far is kept
    assert "one.py" in agent["files_modified"]
    assert not (repo / "three.py").exists()
    assert len(calls) <= 3, [c.summary() for c in calls]  # the third, if asked at all, was never used
    # ended at once after the read that crossed (its time in the transcript, from its start): by SIGTERM, or
    # by SIGKILL after kill_grace (2 s); Claude's own exit on a loaded machine has taken a second of it
    crossed = output_time(repo / agent["transcript"], "two.py")
    assert agent["duration_s"] - crossed < 2.0 + 1.0, (agent["duration_s"], crossed)
    assert "over its budget" in agent["reason"]


def test_send_resumes_claudes_own_session_for_a_second_turn_that_changes_a_file(tmp_path, repo):
    need("claude")
    rules = [
        # turn 2: the model sees the first turn in the conversation (its session was resumed)
        Rule(offers_tool("Write") & last_user_text_contains("Rename the name attribute")
             & ~has_tool_result(), write(repo, "models/user.py", "class User:\n    title = ''\n"), name="turn2-write"),
        Rule(offers_tool("Write") & has_tool_result() & text_contains("Rename the name attribute"),
             text("Renamed it to title."), name="turn2-done"),
        Rule(offers_tool("Write") & ~has_tool_result(), write(repo, "models/user.py", "class User:\n    name = ''\n"),
             name="turn1-write"),
        Rule(offers_tool("Write") & has_tool_result(), text("Created models/user.py."), name="turn1-done"),
    ]
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude"])
        done, first = orchestra(cfg, repo, "run", "--agent", "claude", "--no-tmux", "--task", "Create models/user.py")
        assert done.returncode == 0 and first["files_modified"] == ["models/user.py"], first
        done, record = orchestra(cfg, repo, "send", first["run_id"], "--no-tmux",
                                 "--task", "Rename the name attribute to title")
        requests = srv.requests.model_calls()
    assert done.returncode == 0, (done.stdout, done.stderr)
    agent = record["secondaries"][0]
    assert agent["files_modified"] == ["models/user.py"] and agent["status"] == "completed"  # its first turn, kept
    [turn] = agent["turns"]
    assert turn["turn"] == 2 and turn["status"] == "completed", turn
    assert turn["message"] == "Rename the name attribute to title"
    assert turn["files_modified"] == ["models/user.py"]  # what this turn changed
    assert turn["transcript"] == f".orchestra/runs/{first['run_id']}/agent-turn-2.cast"
    assert (repo / turn["transcript"]).is_file()
    assert turn["reply"].strip() == "Renamed it to title."
    assert isinstance(turn["cost_usd"], float) and turn["cost_source"] == "reported"
    assert "title" in (repo / "models" / "user.py").read_text()
    assert record["status"] == "completed" and record["pid"] != first.get("pid")
    resumed = [r for r in requests if "Rename the name attribute" in r.last_user_text]
    # the same conversation: the first turn's task and tool call are in the resumed request
    assert resumed and "Create models/user.py" in resumed[0].text, resumed[0].summary()
    shown = subprocess.run([sys.executable, "-m", "orchestra", "show", first["run_id"]], cwd=repo,
                           capture_output=True, text=True)
    assert "↪ turn 2: completed" in shown.stdout, shown.stdout


def test_mcp_send_through_the_json_rpc_pipe_returns_the_turns_own_summary(tmp_path, repo, tmux_sessions):
    need("claude")
    rules = [
        Rule(offers_tool("Write") & last_user_text_contains("Add a docstring") & ~has_tool_result(),
             write(repo, "models/user.py", '"""Users."""\nclass User:\n    pass\n'), name="turn2-write"),
        Rule(offers_tool("Write") & has_tool_result() & text_contains("Add a docstring"),
             text("Added the docstring."), name="turn2-done"),
        Rule(offers_tool("Write") & ~has_tool_result(), write(repo, "models/user.py", "class User:\n    pass\n"),
             name="turn1-write"),
        Rule(offers_tool("Write") & has_tool_result(), text("Created models/user.py."), name="turn1-done"),
    ]
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["claude"])
        server = RawServer(repo, cfg)
        try:
            server.initialize()
            tools = {t["name"]: t for t in server.answer(server.send("tools/list"))["result"]["tools"]}
            assert tools["send"]["inputSchema"]["required"] == ["run_id", "message"]
            first = server.answer(server.send("tools/call", {"name": "delegate", "arguments": {
                "task": "Create models/user.py", "to": "claude", "wait_s": 120}}))["result"]
            assert first["structuredContent"]["status"] == "completed", first
            run_id = first["structuredContent"]["run_id"]
            tmux_sessions.append(f"orchestra-{run_id}")
            reply = server.answer(server.send("tools/call", {"name": "send", "arguments": {
                "run_id": run_id, "message": "Add a docstring to models/user.py", "wait_s": 120}}))["result"]
            refused = server.answer(server.send("tools/call", {"name": "send", "arguments": {
                "run_id": run_id, "message": "x", "agent": "secondary-9"}}))["result"]
        finally:
            server.close()
    assert not reply.get("isError"), reply
    data = reply["structuredContent"]
    assert data["run_id"] == run_id and data["status"] == "completed" and data["turn"] == 2, data
    assert data["agent"]["files_modified"] == ["models/user.py"] and data["agent"]["status"] == "completed"
    words = reply["content"][0]["text"]
    assert f"Run {run_id}, secondary-1 (claude), turn 2" in words and "files modified (1): models/user.py" in words
    assert "Added the docstring." in words
    assert refused.get("isError") and "secondary-9" in refused["content"][0]["text"]
    assert '"""Users."""' in (repo / "models" / "user.py").read_text()
    assert git(repo, "status", "--porcelain")  # in place: the user's checkout holds the change
    record = json.loads((repo / ".orchestra" / "runs" / run_id / "run.json").read_text())
    turn = record["secondaries"][0]["turns"][0]
    assert turn["transcript"].endswith("secondary-1-turn-2.cast")
    assert turn["tmux_target"] == f"orchestra-{run_id}:secondary-1-turn-2"  # a window of the run's own session
