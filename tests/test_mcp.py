"""`orchestra mcp`: the protocol on stdio, runs that outlive the server, one run per request_id, tool errors.

The secondary is the toy agent (tests/agents/toy_agent.py); it waits on a FIFO where a test needs
a run that is still going. The real Claude Code as the client: test_mcp_real.py.
"""
from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import TOY
from orchestra.session import MAX_ARG_BYTES

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from orchestra.mcp_server import PROGRESS_EVERY, TEXT_MAX, summary_result

TOOLS = {"delegate", "wait", "status", "result", "cancel", "agents", "send"}


def config(tmp_path: Path, *worker_args: str) -> Path:
    path = tmp_path / "orchestra.yaml"
    path.write_text(yaml.safe_dump({
        "agents": {"worker": {"command": [sys.executable, str(TOY), "--task", "{task}", *worker_args],
                              "completion": "^DONE", "timeout": 60, "linger": 0.5, "kill_grace": 1}},
        "routing": {"rules": [], "default": "worker"}}))
    return path


@pytest.fixture
def project(tmp_path):
    """The directory served; whatever runs a test started there are ended with it, and their tmux sessions."""
    from conftest import tmux
    from orchestra import jobs

    path = tmp_path / "project"
    path.mkdir()
    yield path
    for run_id in runs_of(path):
        if jobs.result(path, run_id).get("status") == "running":
            jobs.cancel(path, run_id)
        tmux("kill-session", "-t", f"=orchestra-{run_id}")


@pytest.fixture
def gate(tmp_path):
    """A FIFO the toy worker blocks on until the test opens it: a run that is still going."""
    path = tmp_path / "gate"
    os.mkfifo(path)
    yield path
    release(path)  # whatever happened, no worker stays blocked


def release(fifo: Path, wait: bool = False) -> None:
    """Let the worker blocked on fifo go on (an open and a close: it reads the end); wait=True blocks until
    the worker has opened it, else nothing happens when nobody waits on it yet."""
    try:
        fd = os.open(fifo, os.O_WRONLY if wait else os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


class RawServer:
    """`orchestra mcp` driven with plain JSON-RPC lines, as a client that is not the SDK would."""

    def __init__(self, cwd: Path, cfg: Path | None):
        config_option = ["--config", str(cfg)] if cfg else []  # none: the project's orchestra.yaml, when trusted
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestra", "mcp", *config_option], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.next_id = 0
        self.buffer = b""

    def send(self, method: str, params: dict | None = None, notify: bool = False) -> int:
        msg = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if not notify:
            self.next_id += 1
            msg["id"] = self.next_id
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()
        return self.next_id

    def read(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"no message from the server in {timeout}s; stderr: {self.stderr()}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError(f"the server closed its output; stderr: {self.stderr()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def answer(self, request_id: int, seen: list | None = None) -> dict:
        """The response to request_id; notifications before it go to seen."""
        while True:
            msg = self.read()
            if msg.get("id") == request_id:
                return msg
            if seen is not None:
                seen.append(msg)

    def initialize(self) -> dict:
        reply = self.answer(self.send("initialize", {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}))
        self.send("notifications/initialized", notify=True)
        return reply

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def sdk_client(cwd: Path, cfg: Path) -> Client:
    params = StdioServerParameters(command=sys.executable, args=["-m", "orchestra", "mcp", "--config", str(cfg)],
                                   cwd=str(cwd), env=dict(os.environ))
    return Client(params)


def runs_of(project: Path) -> list[str]:
    folder = project / ".orchestra" / "runs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_initialize_tools_list_tools_call_and_progress_over_plain_json_rpc(tmp_path, project, gate):
    server = RawServer(project, config(tmp_path, "--wait-fifo", str(gate), "--files", "a.py"))
    try:
        init = server.initialize()["result"]
        assert init["serverInfo"]["name"] == "orchestra" and "tools" in init["capabilities"]
        tools = {t["name"]: t for t in server.answer(server.send("tools/list"))["result"]["tools"]}
        assert set(tools) == TOOLS
        assert "call wait(run_id)" in tools["delegate"]["description"]  # a model learns it may have to wait
        assert tools["delegate"]["inputSchema"]["required"] == ["task"]
        call = server.send("tools/call", {"name": "delegate", "arguments": {"task": "make a.py", "to": "worker"},
                                          "_meta": {"progressToken": "p1"}})
        first = server.read()  # sent as soon as the run is under way
        assert first["method"] == "notifications/progress" and first["params"]["progressToken"] == "p1"
        run_id = runs_of(project)[0]
        assert first["params"]["message"].startswith(f"run {run_id}: "), first
        then = server.read(timeout=PROGRESS_EVERY + 30)  # and every PROGRESS_EVERY seconds while it works
        assert then["method"] == "notifications/progress" and then["params"]["progress"] > first["params"]["progress"]
        assert "worker working" in then["params"]["message"], then  # the agent, its phase, its latest line
        assert then["params"]["message"].endswith("working on: make a.py"), then
        release(gate, wait=True)
        reply = server.answer(call)["result"]
    finally:
        server.close()
    assert not reply.get("isError"), reply
    data = reply["structuredContent"]
    assert data["run_id"] == run_id and data["status"] == "completed"
    assert data["agents"][0]["files_modified"] == ["a.py"] and data["agents"][0]["agent"] == "worker"
    text = reply["content"][0]["text"]
    assert f"Run {run_id}: completed." in text and "files modified (1): a.py" in text


def test_a_run_goes_on_when_the_server_is_killed_and_a_new_server_returns_its_summary(
        tmp_path, project, gate):
    cfg = config(tmp_path, "--wait-fifo", str(gate), "--files", "a.py")
    server = RawServer(project, cfg)
    try:
        server.initialize()
        reply = server.answer(server.send("tools/call", {"name": "delegate", "arguments": {
            "task": "make a.py", "to": "worker", "wait_s": 0}}))["result"]
        assert reply["structuredContent"]["status"] == "running"
        run_id = reply["structuredContent"]["run_id"]
        assert f'call wait(run_id="{run_id}")' in reply["content"][0]["text"]
        server.proc.kill()  # the client's server dies in the middle of the delegation
        server.proc.wait()
    finally:
        server.close()
    release(gate, wait=True)  # the run was not stopped with it: its agent goes on and finishes

    async def again():
        async with sdk_client(project, cfg) as client:
            waited = await client.call_tool("wait", {"run_id": run_id, "wait_s": 60})
            return waited, await client.call_tool("result", {"run_id": run_id})

    waited, result = asyncio.run(again())
    assert waited.structured_content["status"] == "completed", waited
    assert result.structured_content["status"] == "completed"
    assert result.structured_content["agents"][0]["files_modified"] == ["a.py"]
    assert (project / "a.py").exists()


def test_the_server_ends_when_its_client_closes_it_mid_wait_and_the_run_goes_on(tmp_path, project, gate):
    server = RawServer(project, config(tmp_path, "--wait-fifo", str(gate), "--files", "a.py"))
    try:
        server.initialize()
        server.send("tools/call", {"name": "delegate", "arguments": {"task": "make a.py", "to": "worker", "wait_s": 600},
                                   "_meta": {"progressToken": 1}})
        assert server.read()["method"] == "notifications/progress"  # the run is under way, the call waits
        server.proc.stdin.close()  # the client goes (Claude Code quits)
        server.proc.wait(timeout=10)  # and so does the server, not 600 s later
    finally:
        server.close()
    run_id = runs_of(project)[0]
    release(gate, wait=True)
    done = subprocess.run([sys.executable, "-m", "orchestra", "wait", run_id, "--timeout", "60", "--json"],
                          cwd=project, capture_output=True, text=True, timeout=90)
    assert json.loads(done.stdout)["status"] == "completed" and (project / "a.py").exists()


def test_a_retried_delegate_with_the_same_request_id_starts_one_run(tmp_path, project, gate):
    cfg = config(tmp_path, "--wait-fifo", str(gate))

    async def calls():
        async with sdk_client(project, cfg) as client:
            args = {"task": "make a.py", "to": "worker", "wait_s": 0, "request_id": "task-7"}
            both = await asyncio.gather(client.call_tool("delegate", args), client.call_tool("delegate", args))
            later = await client.call_tool("delegate", args)
            other = await client.call_tool("delegate", {**args, "request_id": "task-8"})
            cancelled = [await client.call_tool("cancel", {"run_id": run_id}) for run_id in runs_of(project)]
            return both, later, other, cancelled

    (a, b), later, other, cancelled = asyncio.run(calls())
    ids = {r.structured_content["run_id"] for r in (a, b, later)}
    assert len(ids) == 1, ids  # at the same time or later: one run
    assert other.structured_content["run_id"] not in ids
    assert len(runs_of(project)) == 2
    assert [c.structured_content["status"] for c in cancelled] == ["interrupted", "interrupted"]


def test_bad_input_is_a_tool_error_that_says_what_to_do(tmp_path, project):
    cfg = config(tmp_path)

    async def calls():
        async with sdk_client(project, cfg) as client:
            return [await client.call_tool(name, args) for name, args in (
                ("delegate", {"task": "  ", "to": "worker"}),
                ("delegate", {"task": "x", "to": "nobody"}),
                ("delegate", {"task": "x" * (MAX_ARG_BYTES + 1), "to": "worker"}),
                ("delegate", {"task": "x", "to": "worker", "wait_s": -1}),
                ("result", {"run_id": "20990101-000000-abcdef"}),
                ("result", {"run_id": "../../etc"}),
            )]

    empty, unknown, too_long, bad_wait, no_run, not_an_id = asyncio.run(calls())
    for reply in (empty, unknown, too_long, bad_wait, no_run, not_an_id):
        assert reply.is_error
    assert "task is empty" in empty.content[0].text
    assert "No agent named 'nobody'" in unknown.content[0].text
    assert "worker" in unknown.content[0].text.split("Installed: ")[1].split(";")[0].split(", ")
    assert f"{MAX_ARG_BYTES + 1} bytes" in too_long.content[0].text and "file" in too_long.content[0].text
    assert "wait_s must be a number of seconds, 0 or more; got -1" in bad_wait.content[0].text
    assert "no run '20990101-000000-abcdef'" in no_run.content[0].text
    assert "not a run id" in not_an_id.content[0].text
    assert runs_of(project) == []  # nothing was started


def test_a_delegation_whose_agent_has_no_key_is_a_tool_error_naming_the_variable(tmp_path, project, monkeypatch):
    cfg = config(tmp_path)
    data = yaml.safe_load(cfg.read_text())
    data["agents"]["worker"]["api_key_env"] = "ORCHESTRA_TEST_UNSET_KEY"  # the agent `auto` routes to
    cfg.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("ORCHESTRA_TEST_UNSET_KEY", raising=False)

    async def call():
        async with sdk_client(project, cfg) as client:
            return await client.call_tool("delegate", {"task": "x", "to": "auto"})

    reply = asyncio.run(call())
    assert reply.is_error, reply
    assert "agent 'worker': the API key variable ORCHESTRA_TEST_UNSET_KEY is not set" in reply.content[0].text
    assert runs_of(project) == []  # nothing was started


def test_a_project_config_the_user_has_not_trusted_is_a_tool_error_until_they_do(tmp_path, project, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # the server's and `orchestra trust`'s
    cfg = config(tmp_path, "--files", "a.py").rename(project / "orchestra.yaml")
    server = RawServer(project, None)
    try:
        server.initialize()
        for name, args in (("agents", {}), ("delegate", {"task": "make a.py", "to": "worker"})):
            reply = server.answer(server.send("tools/call", {"name": name, "arguments": args}))["result"]
            text = reply["content"][0]["text"]
            assert reply["isError"] and f"{cfg}: this project's config is not trusted yet" in text, reply
            assert f"orchestra trust {cfg}" in text
        assert runs_of(project) == []  # nothing was started
        trusted = subprocess.run([sys.executable, "-m", "orchestra", "trust"], cwd=project, capture_output=True,
                                 text=True, timeout=60)
        assert trusted.returncode == 0, trusted.stderr
        reply = server.answer(server.send("tools/call", {"name": "delegate", "arguments": {
            "task": "make a.py", "to": "worker", "wait_s": 60}}))["result"]
    finally:
        server.close()
    assert not reply.get("isError") and reply["structuredContent"]["status"] == "completed", reply
    assert reply["structuredContent"]["agents"][0]["files_modified"] == ["a.py"]


def test_agents_says_which_agent_is_not_logged_in_and_how_to_log_in(tmp_path, project):
    cfg = config(tmp_path)
    body = yaml.safe_load(cfg.read_text())
    body["agents"]["worker"]["login"] = [{"env": "ORCHESTRA_TEST_NO_SUCH_TOKEN"}]
    cfg.write_text(yaml.safe_dump(body))
    server = RawServer(project, cfg)
    try:
        server.initialize()
        reply = server.answer(server.send("tools/call", {"name": "agents", "arguments": {}}))["result"]
    finally:
        server.close()
    row = next(a for a in reply["structuredContent"]["agents"] if a["agent"] == "worker")
    assert row["login_missing"] == "not logged in: needs one of ORCHESTRA_TEST_NO_SUCH_TOKEN set"
    assert "- worker: installed, but not logged in: needs one of ORCHESTRA_TEST_NO_SUCH_TOKEN set" in \
        reply["content"][0]["text"]


@pytest.mark.parametrize("secondaries", [1, 8, 64])
def test_the_summary_a_model_gets_is_bounded_whatever_the_secondaries_did(secondaries):
    agent = {"agent": "worker", "role": "secondary-1", "status": "failed", "reason": "r" * 10_000,
             "files_modified": [f"gen/{'d' * 300}/file-{i}.py" for i in range(50_000)],
             "errors": ["e" * 100_000] * 1000, "reply": "y" * 1_000_000, "cost_usd": 1.5, "cost_source": "reported",
             "tokens": {"input": 1, "output": 2}, "duration_s": 3.0, "transcript": "t.cast"}
    record = {"run_id": "20261129-000000-abcdef", "status": "partial", "reason": "x" * 10_000,
              "secondaries": [dict(agent, role=f"secondary-{i}") for i in range(1, secondaries + 1)],
              "total_cost_usd": 12.0, "duration_s": 4.0, "tmux_session": "orchestra-20261129-000000-abcdef"}
    result = summary_result(record)
    text = result.content[0].text
    assert len(text) <= TEXT_MAX, len(text)
    assert "tmux attach -t orchestra-20261129-000000-abcdef" in text and text.count("worker] status: failed") == secondaries
    if secondaries <= 8:  # with more, each gets a line's worth: its status, and the record for the rest
        assert "files modified (50000; the whole list: " in text and "errors (1000; all of them: " in text
    assert len(json.dumps(result.structured_content)) < 50_000
    assert result.structured_content["agents"][0]["files_more"] >= 49_980


def test_a_request_id_reused_for_another_task_is_refused_and_a_result_names_its_task(tmp_path, project):
    cfg = config(tmp_path, "--files", "a.py")

    async def calls():
        async with sdk_client(project, cfg) as client:
            first = await client.call_tool("delegate", {"task": "make a.py", "to": "worker", "wait_s": 60,
                                                        "request_id": "task-1"})
            retry = await client.call_tool("delegate", {"task": "make a.py", "to": "worker", "wait_s": 60,
                                                        "request_id": "task-1"})
            reused = await client.call_tool("delegate", {"task": "make b.py", "to": "worker", "wait_s": 60,
                                                         "request_id": "task-1"})
            return first, retry, reused

    first, retry, reused = asyncio.run(calls())
    assert first.structured_content["status"] == "completed"
    assert retry.structured_content["run_id"] == first.structured_content["run_id"]
    assert first.structured_content["task"] == "make a.py" and "Task: make a.py" in first.content[0].text
    assert reused.is_error and "was used for another task" in reused.content[0].text
    assert "make a.py" in reused.content[0].text and "new request_id" in reused.content[0].text
    assert len(runs_of(project)) == 1


def slow_starting_worker(tmp_path: Path, gate_file: Path) -> Path:
    """A worker profile whose version check waits until gate_file exists: an MCP delegate stays in its
    worker's start-up as long as the test likes."""
    cli = tmp_path / "bin" / "slowstart"
    cli.parent.mkdir(exist_ok=True)
    cli.write_text(f"#!/bin/sh\nif [ \"$1\" = --version ]; then\n  while [ ! -e '{gate_file}' ]; do sleep 0.05; done\n"
                   f"  echo 'slowstart 1.0.0'; exit 0\nfi\nexec '{sys.executable}' '{TOY}' --task \"$1\" --files a.py\n")
    cli.chmod(0o755)
    path = tmp_path / "orchestra.yaml"
    path.write_text(yaml.safe_dump({
        "agents": {"worker": {"command": [str(cli), "{task}"], "binary": str(cli), "version": "1.0.0",
                              "completion": "^DONE", "timeout": 60, "linger": 0.5, "kill_grace": 1}},
        "routing": {"rules": [], "default": "worker"}}))
    return path


def test_a_server_killed_while_its_run_starts_and_a_retry_make_one_run(tmp_path, project):
    gate_file = tmp_path / "go"
    cfg = slow_starting_worker(tmp_path, gate_file)
    args = {"task": "make a.py", "to": "worker", "wait_s": 0, "request_id": "task-9"}
    server = RawServer(project, cfg)
    try:
        server.initialize()
        server.send("tools/call", {"name": "delegate", "arguments": args})
        deadline = time.monotonic() + 30
        while not runs_of(project):  # the run's folder is made: its start-up is under way
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.01)
        server.proc.kill()
        server.proc.wait()
    finally:
        server.close()

    async def retry():
        async with sdk_client(project, cfg) as client:
            call = asyncio.ensure_future(client.call_tool("delegate", {**args, "wait_s": 60}))
            await asyncio.sleep(0)  # (the retry is on its way before the start-up may end)
            gate_file.touch()
            return await call

    again = asyncio.run(retry())
    assert not again.is_error, again.content[0].text
    assert again.structured_content["status"] == "completed", again.structured_content
    assert runs_of(project) == [again.structured_content["run_id"]]  # one run, whatever died when


def test_every_bad_line_or_call_gets_an_answer_and_leaves_nothing_behind(tmp_path, project):
    server = RawServer(project, config(tmp_path, "--files", "a.py"))
    try:
        server.initialize()
        nul = server.answer(server.send("tools/call", {"name": "delegate", "arguments": {
            "task": "make\u0000 a.py", "to": "worker"}}))["result"]
        assert nul["isError"] and "NUL character (at character 5)" in nul["content"][0]["text"]
        server.proc.stdin.write(b"this is not json\n")
        server.proc.stdin.flush()
        parse = server.read()
        assert parse["error"]["code"] == -32700 and parse["id"] is None
        server.proc.stdin.write(b'{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"delegate",'
                                b'"arguments":{"task":"make a.py \\ud83d","to":"worker"}}}\n')
        server.proc.stdin.flush()
        half = server.read()
        assert half["id"] == 77 and half["error"]["code"] == -32602
        assert "params.arguments.task" in half["error"]["message"] and "half a character" in half["error"]["message"]
        fine = server.answer(server.send("tools/call", {"name": "agents", "arguments": {}}))["result"]
        assert not fine.get("isError") and "worker" in fine["content"][0]["text"]  # it still serves
    finally:
        server.close()
    assert runs_of(project) == []  # no ghost run
