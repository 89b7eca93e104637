"""The real Claude Code, then the real Codex CLI, as the primary, delegating through `orchestra mcp`
to the real Droid.

Each runs against one scripted model server with Droid, each with its own HOME: Claude's requests
are told from Droid's by the tools they offer (Claude's ToolSearch and Write, Droid's Create),
Codex's by their API (the Responses API). The primary's script plays a model that delegates: MCP
tools are deferred in both CLIs, so it first loads the tool (Claude Code 2.1.328: ToolSearch;
Codex 0.169.0: its tool_search tool), then calls delegate, then answers.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import MARK
from test_real_agents import USER_PY, need, repo, tmp_leftovers, write_config  # noqa: F401 (fixtures)
from orchestra import jobs
from test_mcp import config as toy_config, gate, release, runs_of  # noqa: F401 (gate: its fixture)
from tests.support.agents import agents_dir, claude_setup, codex_setup
from tests.support.model_server import (ModelServer, Rule, api_is, offers_tool, text, tool_call,
                                        write_file_rules)
from tests.support.model_script import When

pytestmark = pytest.mark.real_agent

BRIEF = "Create models/user.py with a User class that has a name."
CLAUDE_FINAL = "Droid created models/user.py; the delegated task is done."
DELEGATE = "mcp__orchestra__delegate"


def last_tool_result(req) -> str:
    """The text of the tool result the request ends with ("" if it ends otherwise)."""
    if not req.messages or not isinstance(req.messages[-1].get("content"), list):
        return ""
    parts = []
    for block in req.messages[-1]["content"]:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                parts.append(content)
            else:
                parts += [c.get("text", "") for c in content or [] if isinstance(c, dict)]
    return "\n".join(parts)


def claude_primary_rules(request_id: str) -> list[Rule]:
    claude = offers_tool("Write") & ~offers_tool("Create")  # Droid offers a ToolSearch too
    delegated = When(lambda r: '"run_id"' in last_tool_result(r), "delegate's result")
    return [
        Rule(claude & delegated, text(CLAUDE_FINAL), name="claude-final"),
        Rule(claude & offers_tool(DELEGATE),
             tool_call(DELEGATE, {"task": BRIEF, "to": "droid", "request_id": request_id}), name="claude-delegates"),
        Rule(claude & ~offers_tool(DELEGATE),
             tool_call("ToolSearch", {"query": f"select:{DELEGATE}", "max_results": 5}), name="claude-loads-tool"),
    ]


def test_claude_delegates_to_droid_through_orchestra_mcp_and_gets_the_summary(tmp_path, repo, tmux_sessions):
    need("claude", "droid")
    rules = claude_primary_rules("user-model-1") + write_file_rules("droid", repo, "models/user.py", USER_PY,
                                                                    "Created models/user.py.")
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["droid"])
        claude = claude_setup(tmp_path / "home-claude", repo, srv.url)
        env = dict(claude.env)
        # what orchestra's server and its worker need from the test's environment: the agents' cache
        # (HOME is Claude's own here), the tests' own tmux server, and the mark that finds leftovers
        env.update({"ORCHESTRA_AGENTS_DIR": str(agents_dir()),
                    "TMUX_TMPDIR": os.environ["TMUX_TMPDIR"], MARK: os.environ[MARK]})
        mcp_config = tmp_path / "mcp.json"
        mcp_config.write_text(json.dumps({"mcpServers": {"orchestra": {
            "command": sys.executable, "args": ["-m", "orchestra", "mcp", "--config", str(cfg)]}}}))
        done = subprocess.run(
            claude.command("-p", "--output-format", "stream-json", "--verbose", "--mcp-config", str(mcp_config),
                           "--strict-mcp-config", "--allowedTools", f"{DELEGATE},mcp__orchestra__wait", "--",
                           "Add a User model; hand the work to another agent."),
            cwd=repo, env=env, capture_output=True, text=True, timeout=180)
        requests = srv.requests.snapshot()
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    runs_dir = repo / ".orchestra" / "runs"
    runs = sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []
    for run in runs:
        tmux_sessions.append(f"orchestra-{run.name}")
    # Claude loaded the deferred tool, called it, and its model was given orchestra's summary
    seen = [last_tool_result(r) for r in requests if '"run_id"' in last_tool_result(r)]
    assert seen, [r.summary() for r in requests] + [done.stdout[-3000:], done.stderr[-2000:]]
    # Claude Code 2.1.328 gives its model the tool's structured content (JSON), not its text
    (tmp_path / "tool-result.json").write_text(seen[-1])  # what the model saw, kept for a look
    result = json.loads(seen[-1])
    delegated_to_droid(result, runs, repo)
    # and Claude's own reply came back
    final = [e for e in events if e.get("type") == "result"]
    assert final and final[-1]["result"] == CLAUDE_FINAL and done.returncode == 0, done.stdout[-3000:]


def delegated_to_droid(result: dict, runs: list, repo) -> None:
    """What the model got back, the file and the one run's record: Droid did the brief, in one run."""
    assert result["status"] == "completed", result
    droid = result["agents"][0]
    assert droid["agent"] == "droid" and droid["status"] == "completed"
    assert droid["files_modified"] == ["models/user.py"] and droid["tokens"]["output"] > 0
    assert result["watch"] == f"tmux attach -t orchestra-{runs[0].name}"
    assert (repo / "models" / "user.py").read_text() == USER_PY
    assert len(runs) == 1  # one run
    record = json.loads((runs[0] / "run.json").read_text())
    assert record["status"] == "completed" and record["secondaries"][0]["agent"] == "droid"
    assert record["task"] == BRIEF and record["primary"] is None  # the calling agent was the primary


# -- Codex CLI 0.169.0 as the primary -------------------------------------------------------------

CODEX_FINAL = "Droid created models/user.py; the delegated task is done (Codex)."
CODEX_NAMESPACE = "mcp__orchestra"  # Codex groups a server's tools in a namespace named so


def input_items(req, kind: str) -> list[dict]:
    return [i for i in (req.body or {}).get("input", []) if isinstance(i, dict) and i.get("type") == kind]


def last_function_output(req) -> str:
    """The text of the function call output the Responses API request ends with ("" if none): a
    string, or a list of input_text parts (Codex 0.169.0 sends both shapes)."""
    last = ((req.body or {}).get("input") or [{}])[-1]
    if last.get("type") != "function_call_output":
        return ""
    output = last.get("output")
    if isinstance(output, str):
        return output
    return "\n".join(part.get("text", "") for part in output or [] if isinstance(part, dict))


def loaded_namespaces(req) -> set[str]:
    return {tool.get("name") for item in input_items(req, "tool_search_output") for tool in item.get("tools") or []}


def codex_primary_rules(request_id: str) -> list[Rule]:
    codex = api_is("responses")  # Droid speaks the Messages API
    loaded = When(lambda r: CODEX_NAMESPACE in loaded_namespaces(r), "orchestra's tools loaded")
    delegated = When(lambda r: "run_id" in last_function_output(r), "delegate's result")
    return [
        Rule(codex & delegated, text(CODEX_FINAL), name="codex-final"),
        Rule(codex & loaded, tool_call("delegate", {"task": BRIEF, "to": "droid", "request_id": request_id},
                                       namespace=CODEX_NAMESPACE), name="codex-delegates"),
        Rule(codex & ~loaded, tool_call("tool_search", {"query": "orchestra delegate", "limit": 8}),
             name="codex-loads-tool"),
    ]


def codex_with_orchestra(tmp_path, repo, srv, cfg, tool_timeout_sec: str = "600.0"):
    """Codex pointed at the scripted server, with orchestra's MCP server in its config.toml as the
    README says; its setup and the environment to run it with."""
    codex = codex_setup(tmp_path / "home-codex", repo, srv.openai_url)
    # Codex hands an MCP server only HOME, LANG, PATH, SHELL, TERM and TMPDIR of its
    # environment; env_vars names more: here what orchestra's server and its worker need from the
    # test's environment (the agents' cache, the tests' own tmux server, the mark that finds leftovers)
    env = dict(codex.env, ORCHESTRA_AGENTS_DIR=str(agents_dir()), TMUX_TMPDIR=os.environ["TMUX_TMPDIR"])
    env[MARK] = os.environ[MARK]
    config = codex.home / ".codex" / "config.toml"
    config.write_text(config.read_text() + "\n".join([
        "", "[mcp_servers.orchestra]",
        f"command = {json.dumps(sys.executable)}",  # a JSON string is a TOML string
        f"args = {json.dumps(['-m', 'orchestra', 'mcp', '--config', str(cfg)])}",
        f"cwd = {json.dumps(str(repo))}",
        f"tool_timeout_sec = {tool_timeout_sec}",
        "required = true",  # wait for the server before the first turn, so the model sees its tools
        'default_tools_approval_mode = "approve"',  # exec mode approves nothing by itself
        f"env_vars = {json.dumps(['ORCHESTRA_AGENTS_DIR', 'TMUX_TMPDIR', MARK])}", ""]))
    return codex, env


def codex_exec(codex, env, repo, prompt: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    done = subprocess.run(codex.command("exec", "--json", "--skip-git-repo-check", "--", prompt), cwd=repo,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    return done, [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_codex_delegates_to_droid_through_orchestra_mcp_and_gets_the_summary(
        tmp_path, repo, tmux_sessions, tmp_leftovers):
    need("codex", "droid")
    rules = codex_primary_rules("user-model-codex") + write_file_rules("droid", repo, "models/user.py", USER_PY,
                                                                      "Created models/user.py.")
    with ModelServer(rules) as srv:
        cfg = write_config(tmp_path, repo, srv.url, ["droid"])
        codex, env = codex_with_orchestra(tmp_path, repo, srv, cfg)
        done, events = codex_exec(codex, env, repo, "Add a User model; hand the work to another agent.")
        requests = srv.requests.snapshot()
    runs_dir = repo / ".orchestra" / "runs"
    runs = sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []
    for run in runs:
        tmux_sessions.append(f"orchestra-{run.name}")
    codex_calls = [r for r in requests if r.api == "responses"]
    debug = [r.summary() for r in requests] + [done.stdout[-3000:], done.stderr[-2000:]]
    # with required = true the server is up before Codex's first request: its tools are announced there
    assert codex_calls and "mcp__orchestra" in codex_calls[0].system_text, debug
    # Codex ran the tool search, the model called delegate in the mcp__orchestra namespace, and was
    # given orchestra's summary
    seen = [r for r in codex_calls if "run_id" in last_function_output(r)]
    assert seen, debug
    output = seen[-1].body["input"][-1]["output"]
    (tmp_path / "tool-result.json").write_text(json.dumps(output))  # what the model saw, kept for a look
    # Codex 0.169.0 gives its model one string: a "Wall time" line, then the tool's structured content
    # (JSON), not its text content
    assert isinstance(output, str) and re.match(r"Wall time: [\d.]+ seconds\nOutput:\n\{", output), output
    result = json.loads(output.split("\n", 2)[2])
    delegated_to_droid(result, runs, repo)
    # and Codex's own reply came back
    replies = [e["item"]["text"] for e in events
               if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message"]
    assert replies and replies[-1] == CODEX_FINAL and done.returncode == 0, done.stdout[-3000:]
    assert events[-1]["type"] == "turn.completed"


def output_json(req) -> dict:
    """The JSON after Codex's "Wall time ... Output:" line in the function call output."""
    text = last_function_output(req)
    return json.loads(text.split("Output:\n", 1)[1]) if "Output:\n{" in text else {}


def test_codex_tool_timeout_fires_first_and_the_retry_with_the_request_id_gets_the_same_run(
        tmp_path, repo, gate, tmux_sessions, tmp_leftovers):
    """Codex's own tool timeout, an integer here (Codex 0.169.0 takes 2 as 2.0), ends the delegate call
    while orchestra still waits (wait_s 30); the run goes on, and the model's retry with the same
    request_id gets it back: nothing is lost."""
    need("codex")
    args = {"task": "make a.py", "to": "worker", "request_id": "a-py-1"}
    codex_only = api_is("responses")
    loaded = When(lambda r: CODEX_NAMESPACE in loaded_namespaces(r), "orchestra's tools loaded")
    answered = When(lambda r: bool(last_function_output(r)), "a tool's output")

    def wait_for_it(req):
        release(gate, wait=True)  # the worker, blocked on it since it started, may finish now
        return tool_call("wait", {"run_id": output_json(req)["run_id"], "wait_s": 1}, namespace=CODEX_NAMESPACE)

    rules = [
        Rule(codex_only & When(lambda r: output_json(r).get("status") == "completed", "the summary"),
             text("a.py is made."), name="final"),
        Rule(codex_only & When(lambda r: output_json(r).get("status") == "running", "still running"),
             wait_for_it, name="wait"),
        Rule(codex_only & When(lambda r: "timed out awaiting tools/call" in last_function_output(r), "timed out"),
             tool_call("delegate", {**args, "wait_s": 0}, namespace=CODEX_NAMESPACE), name="retry"),
        Rule(codex_only & loaded & ~answered, tool_call("delegate", {**args, "wait_s": 30}, namespace=CODEX_NAMESPACE),
             name="delegate"),
        Rule(codex_only & ~loaded, tool_call("tool_search", {"query": "orchestra delegate"}), name="search"),
    ]
    with ModelServer(rules) as srv:
        cfg = toy_config(tmp_path, "--wait-fifo", str(gate), "--files", "a.py")
        codex, env = codex_with_orchestra(tmp_path, repo, srv, cfg, tool_timeout_sec="2")
        try:
            done, events = codex_exec(codex, env, repo, "Make a.py; hand it to another agent.")
        finally:
            runs = runs_of(repo)
            tmux_sessions.extend(f"orchestra-{run_id}" for run_id in runs)
            for run_id in runs:
                if jobs.result(repo, run_id).get("status") == "running":
                    jobs.cancel(repo, run_id)
        requests = [r for r in srv.requests.snapshot() if r.api == "responses"]
    debug = [r.summary() for r in requests] + [done.stdout[-3000:], done.stderr[-2000:]]
    assert [r.rule for r in requests] == ["search", "delegate", "retry", "wait", "final"], debug
    # the integer timeout was Codex's, not its 60 s default, and it fired before orchestra answered
    assert "timed out awaiting tools/call after 2s" in last_function_output(requests[2]), debug
    assert len(runs) == 1  # the retry got the run the first call started
    assert output_json(requests[3])["run_id"] == runs[0] == output_json(requests[4])["run_id"]
    assert output_json(requests[4])["agents"][0]["files_modified"] == ["a.py"]
    assert (repo / "a.py").exists()
    assert events[-2]["item"]["text"] == "a.py is made." and done.returncode == 0, done.stdout[-3000:]
