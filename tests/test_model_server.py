"""The scripted model server on its own: wire formats, scripting, logging, shutdown."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.model_server import (
    ModelServer,
    Reply,
    Rule,
    Script,
    ToolCall,
    Usage,
    always_error,
    error,
    last_user_text_contains,
    load_script,
    text,
    tool_call,
    write_file_rules,
)

pytestmark = pytest.mark.timeout(30)

KEY = "sk-ant-api03-secret-value-1234567890"


def post(srv: ModelServer, path: str, body: dict, headers: dict | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json", **(headers or {})})
    return conn.getresponse()


def anthropic_body(content: Any = "hello", stream: bool = False, **extra: Any) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": content}], **extra}


def openai_body(content: str = "hello", stream: bool = False, **extra: Any) -> dict:
    return {"model": "gpt-4o-mini", "stream": stream,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}],
            **extra}


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event, data) pairs of an SSE body."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event"), fields["data"]))
    return events


# -- Anthropic ---------------------------------------------------------------


def test_anthropic_non_streaming_text_with_usage() -> None:
    with ModelServer("Hello there") as srv:
        resp = post(srv, "/v1/messages", anthropic_body())
        data = json.loads(resp.read())
    assert resp.status == 200
    assert data["type"] == "message" and data["role"] == "assistant"
    assert data["content"] == [{"type": "text", "text": "Hello there"}]
    assert data["stop_reason"] == "end_turn"
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0


def test_anthropic_streaming_tool_call_events() -> None:
    call = tool_call("Write", {"file_path": "/tmp/x/models/user.py", "content": "class User:\n    pass\n"},
                     text="Writing the file now.")
    with ModelServer(call) as srv:
        resp = post(srv, "/v1/messages?beta=true", anthropic_body(stream=True))
        assert (resp.getheader("content-type") or "").startswith("text/event-stream")
        events = sse_events(resp.read())

    names = [e for e, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    data = [json.loads(d) for _, d in events]
    assert all(d["type"] == e for (e, _), d in zip(events, data))
    starts = [d["content_block"] for d in data if d["type"] == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    assert starts[1]["name"] == "Write" and starts[1]["id"].startswith("toolu_")
    text_out = "".join(d["delta"]["text"] for d in data if d.get("delta", {}).get("type") == "text_delta")
    json_out = "".join(d["delta"]["partial_json"] for d in data
                       if d.get("delta", {}).get("type") == "input_json_delta")
    assert text_out == "Writing the file now."
    assert json.loads(json_out) == call.tool_calls[0].input
    assert len([d for d in data if d["type"] == "content_block_delta"]) > 2  # really streamed in pieces
    final = data[-2]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["output_tokens"] > 0
    assert data[0]["message"]["usage"]["input_tokens"] > 0
    assert srv.requests[0].query == {"beta": "true"}


def test_scripted_usage_is_reported_verbatim() -> None:
    with ModelServer(text("hi", usage=Usage(1234, 56))) as srv:
        data = json.loads(post(srv, "/v1/messages", anthropic_body()).read())
        events = sse_events(post(srv, "/v1/messages", anthropic_body(stream=True)).read())
    assert data["usage"]["input_tokens"] == 1234 and data["usage"]["output_tokens"] == 56
    delta = next(json.loads(d) for e, d in events if e == "message_delta")
    assert delta["usage"]["output_tokens"] == 56


# -- OpenAI ------------------------------------------------------------------


def test_openai_non_streaming() -> None:
    with ModelServer("models/user.py\n```\nx = 1\n```\n") as srv:
        resp = post(srv, "/v1/chat/completions", openai_body())
        data = json.loads(resp.read())
    assert resp.status == 200
    choice = data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "models/user.py\n```\nx = 1\n```\n"}
    assert choice["finish_reason"] == "stop"
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_streaming(include_usage: bool) -> None:
    body = openai_body(stream=True, stream_options={"include_usage": include_usage})
    with ModelServer("A fairly long reply that will be streamed in several pieces.") as srv:
        events = sse_events(post(srv, "/v1/chat/completions", body).read())
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == "A fairly long reply that will be streamed in several pieces."
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    if include_usage:
        assert chunks[-1]["choices"] == []  # OpenAI's shape: a usage-only last chunk


# -- OpenAI Responses API (Codex CLI) ------------------------------------------


def responses_body(*items: dict, **extra: Any) -> dict:
    return {"model": "gpt-5.5", "stream": True, "instructions": "be brief",
            "tools": [{"type": "function", "name": "exec_command", "parameters": {}},
                      {"type": "custom", "name": "apply_patch"}],
            "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
                      *items], **extra}


def user_item(value: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}


def test_responses_stream_a_text_then_completed_with_usage() -> None:
    with ModelServer(text("A reply long enough to come in several pieces.", usage=Usage(120, 9))) as srv:
        resp = post(srv, "/v1/responses", responses_body(user_item("hello")))
        events = sse_events(resp.read())
    assert resp.status == 200 and (resp.getheader("content-type") or "").startswith("text/event-stream")
    data = [json.loads(d) for _, d in events]
    assert all(d["type"] == e for (e, _), d in zip(events, data))  # `event:` names the data's type
    kinds = [d["type"] for d in data]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-2:] == ["response.output_item.done", "response.completed"]
    assert "".join(d["delta"] for d in data if d["type"] == "response.output_text.delta") == \
        "A reply long enough to come in several pieces."
    assert kinds.count("response.output_text.delta") > 1
    item = data[-2]["item"]
    assert item["type"] == "message" and item["role"] == "assistant"
    assert item["content"][0] == {"type": "output_text", "text": "A reply long enough to come in several pieces.",
                                  "annotations": []}
    usage = data[-1]["response"]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (120, 9, 129)
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    logged = srv.requests[0]
    assert logged.api == "responses" and logged.model == "gpt-5.5" and logged.stream
    assert logged.last_user_text == "hello" and logged.system_text == "be brief\nrules"
    assert logged.tool_names == ["exec_command", "apply_patch"]


def test_responses_function_and_freeform_tool_calls() -> None:
    reply = Reply(tool_calls=(ToolCall("exec_command", {"cmd": "ls"}), ToolCall("apply_patch", "*** Begin Patch\n")))
    with ModelServer(reply) as srv:
        data = [json.loads(d) for _, d in sse_events(post(srv, "/v1/responses", responses_body(user_item("go"))).read())]
    done = [d["item"] for d in data if d["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["function_call", "custom_tool_call"]
    assert done[0]["name"] == "exec_command" and json.loads(done[0]["arguments"]) == {"cmd": "ls"}
    assert done[1]["name"] == "apply_patch" and done[1]["input"] == "*** Begin Patch\n"
    assert all(i["call_id"].startswith("call_") for i in done)
    assert data[-1]["response"]["output"] == done


def test_responses_tool_search_and_a_call_into_the_namespace_it_loaded() -> None:
    # Codex CLI 0.169.0 defers MCP tools behind its tool_search tool (execution: client, arguments an
    # object), then takes a call to a loaded tool as a function_call naming its namespace
    reply = Reply(tool_calls=(ToolCall("tool_search", {"query": "orchestra delegate", "limit": 8}),
                              ToolCall("delegate", {"task": "x"}, namespace="mcp__orchestra")))
    with ModelServer(reply) as srv:
        data = [json.loads(d) for _, d in sse_events(post(srv, "/v1/responses", responses_body(user_item("go"))).read())]
    done = [d["item"] for d in data if d["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["tool_search_call", "function_call"]
    assert done[0]["execution"] == "client" and done[0]["arguments"] == {"query": "orchestra delegate", "limit": 8}
    assert (done[1]["namespace"], done[1]["name"]) == ("mcp__orchestra", "delegate")
    assert data[-1]["response"]["output"] == done


def test_responses_tool_output_is_read_as_a_tool_result() -> None:
    call = {"type": "custom_tool_call", "name": "apply_patch", "call_id": "call_1", "input": "*** Begin Patch"}
    output = {"type": "custom_tool_call_output", "call_id": "call_1", "output": "Success. Updated A models/user.py"}
    with ModelServer(write_file_rules("codex", "/unused", "models/user.py", "x = 1\n", "Created it.")) as srv:
        first = [json.loads(d) for _, d in sse_events(
            post(srv, "/v1/responses", responses_body(user_item("Create models/user.py"))).read())]
        second = [json.loads(d) for _, d in sse_events(
            post(srv, "/v1/responses", responses_body(user_item("Create models/user.py"), call, output)).read())]
    patch = next(d["item"] for d in first if d["type"] == "response.output_item.done")
    assert patch["input"] == "*** Begin Patch\n*** Add File: models/user.py\n+x = 1\n*** End Patch\n"
    assert next(d["item"] for d in second if d["type"] == "response.output_item.done")["content"][0]["text"] == \
        "Created it."
    assert [r.rule for r in srv.requests] == ["apply_patch-models/user.py", "final-text"]
    assert srv.requests[1].last_message_is_tool_result and "Updated A models/user.py" in srv.requests[1].text


def test_responses_error_is_an_openai_error_object() -> None:
    with ModelServer(always_error(401, "invalid api key")) as srv:
        resp = post(srv, "/v1/responses", responses_body(user_item("hi")))
        data = json.loads(resp.read())
    assert resp.status == 401 and data["error"]["message"] == "invalid api key"


# -- Gemini API (Gemini CLI) ---------------------------------------------------


def gemini_body(*contents: dict) -> dict:
    return {"systemInstruction": {"role": "user", "parts": [{"text": "be brief"}]},
            "tools": [{"functionDeclarations": [{"name": "write_file"}, {"name": "read_file"}]}],
            "contents": list(contents) or [{"role": "user", "parts": [{"text": "hello"}]}]}


GEMINI_STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def test_gemini_stream_text_in_pieces_then_finish_and_usage() -> None:
    with ModelServer(text("A reply long enough to come in several pieces.", usage=Usage(70, 8))) as srv:
        resp = post(srv, GEMINI_STREAM, gemini_body(), {"x-goog-api-key": KEY})
        chunks = [json.loads(d) for _, d in sse_events(resp.read())]
    assert resp.status == 200 and len(chunks) > 1
    parts = [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks]
    assert "".join(parts) == "A reply long enough to come in several pieces."
    assert all(c["candidates"][0]["content"]["role"] == "model" for c in chunks)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["usageMetadata"] == {"promptTokenCount": 70, "candidatesTokenCount": 8, "totalTokenCount": 78}
    logged = srv.requests[0]
    assert (logged.api, logged.model, logged.stream) == ("gemini", "gemini-2.5-flash", True)
    assert logged.query == {"alt": "sse"} and logged.headers["x-goog-api-key"] == "***"
    assert logged.system_text == "be brief" and logged.last_user_text == "hello"
    assert logged.tool_names == ["write_file", "read_file"]


def test_gemini_write_file_call_then_text_after_the_function_response(tmp_path: Path) -> None:
    rules = write_file_rules("gemini", tmp_path, "models/user.py", "x = 1\n", "Created it.")
    response = {"role": "user", "parts": [{"functionResponse": {"name": "write_file", "response": {"output": "ok"}}}]}
    call = {"role": "model", "parts": [{"functionCall": {"name": "write_file", "args": {}}}]}
    with ModelServer(Script(rules)) as srv:
        first = [json.loads(d) for _, d in sse_events(post(srv, GEMINI_STREAM, gemini_body()).read())]
        second = json.loads(post(srv, "/v1beta/models/gemini-2.5-flash:generateContent",
                                 gemini_body({"role": "user", "parts": [{"text": "go"}]}, call, response)).read())
    (chunk,) = first
    assert chunk["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "write_file", "args": {
        "file_path": str(tmp_path.resolve() / "models/user.py"), "content": "x = 1\n"}}}]
    assert second["candidates"][0]["content"]["parts"] == [{"text": "Created it."}]
    assert not srv.requests[1].stream and srv.requests[1].last_message_is_tool_result


def test_gemini_error_is_a_google_status_and_count_tokens_answers() -> None:
    with ModelServer(always_error(401, "invalid api key")) as srv:
        resp = post(srv, GEMINI_STREAM, gemini_body())
        data = json.loads(resp.read())
        counted = json.loads(post(srv, "/v1beta/models/gemini-2.5-flash:countTokens", gemini_body()).read())
    assert resp.status == 401
    assert data == {"error": {"code": 401, "message": "invalid api key", "status": "UNAUTHENTICATED"}}
    assert counted["totalTokens"] > 0


# -- Logging -----------------------------------------------------------------


def test_requests_are_logged_with_keys_redacted() -> None:
    with ModelServer("ok") as srv:
        post(srv, "/v1/messages", anthropic_body("first question"), {"x-api-key": KEY}).read()
        post(srv, "/v1/chat/completions", openai_body("second question"),
             {"authorization": f"Bearer {KEY}"}).read()
        logged = srv.requests.snapshot()

    assert [r.api for r in logged] == ["anthropic", "openai"]
    assert logged[0].headers["x-api-key"] == "***"
    assert logged[1].headers["authorization"] == "***"
    assert logged[0].headers["content-type"] == "application/json"
    assert KEY not in json.dumps([r.to_dict() for r in logged])
    assert logged[0].body["messages"][0]["content"] == "first question"
    assert logged[1].last_user_text == "second question"
    assert logged[1].system_text == "be brief"
    assert all(r.status == 200 and r.rule == "default" and r.done for r in logged)


def test_wait_for_blocks_until_a_matching_request_is_answered() -> None:
    with ModelServer("ok") as srv:
        thread = threading.Thread(target=lambda: post(srv, "/v1/messages", anthropic_body("ping")).read())
        thread.start()
        req = srv.requests.wait_for(lambda r: "ping" in r.last_user_text, timeout=10)
        thread.join()
        assert req.done and req.status == 200
        with pytest.raises(TimeoutError):
            srv.requests.wait_for(lambda r: "never" in r.text, timeout=0.2)


# -- Errors --------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [(401, "authentication_error"), (500, "api_error"),
                                              (529, "overloaded_error")])
def test_anthropic_error_replies(status: int, kind: str) -> None:
    with ModelServer(always_error(status)) as srv:
        resp = post(srv, "/v1/messages", anthropic_body(stream=True))
        data = json.loads(resp.read())
    assert resp.status == status
    assert data == {"type": "error", "error": {"type": kind, "message": data["error"]["message"]}}
    assert data["error"]["message"]
    assert srv.requests[0].status == status


def test_openai_error_reply_and_extra_headers() -> None:
    script = Script(default=error(500, "boom", headers={"x-should-retry": "false"}))
    with ModelServer(script) as srv:
        resp = post(srv, "/v1/chat/completions", openai_body(stream=True))
        data = json.loads(resp.read())
    assert resp.status == 500 and resp.getheader("x-should-retry") == "false"
    assert data["error"]["message"] == "boom" and data["error"]["code"] == 500


# -- Scripting -------------------------------------------------------------------


def tool_result_body(tool: str = "Write") -> dict:
    return anthropic_body(
        [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "File created"}],
        tools=[{"name": tool, "input_schema": {}}],
    )


def test_claude_write_file_scenario(tmp_path: Path) -> None:
    rules = write_file_rules("claude", tmp_path, "models/user.py", "x = 1\n", "DELEGATE: a\nEND")
    with ModelServer(Script(rules, default=text("side answer"))) as srv:
        first = json.loads(post(srv, "/v1/messages", anthropic_body(
            "Create models/user.py", tools=[{"name": "Write", "input_schema": {}}])).read())
        second = json.loads(post(srv, "/v1/messages", tool_result_body()).read())
        side = json.loads(post(srv, "/v1/messages", anthropic_body("Write a title")).read())

    (use,) = first["content"]
    assert use["type"] == "tool_use" and use["name"] == "Write"
    assert use["input"] == {"file_path": str(tmp_path.resolve() / "models/user.py"), "content": "x = 1\n"}
    assert first["stop_reason"] == "tool_use"
    assert second["content"] == [{"type": "text", "text": "DELEGATE: a\nEND"}]
    assert side["content"][0]["text"] == "side answer"  # no tools offered: a side request
    assert [r.rule for r in srv.requests] == ["Write-models/user.py", "final-text", "default"]


def test_droid_scenario_uses_create(tmp_path: Path) -> None:
    rules = write_file_rules("droid", tmp_path, "a.py", "x = 1\n", "done")
    with ModelServer(Script(rules)) as srv:
        data = json.loads(post(srv, "/v1/messages", anthropic_body(
            "go", tools=[{"name": "Create", "input_schema": {}}])).read())
    assert data["content"][0]["name"] == "Create"
    assert data["content"][0]["input"]["file_path"] == str(tmp_path.resolve() / "a.py")


def test_aider_scenario_whole_file_and_commit_message(tmp_path: Path) -> None:
    rules = write_file_rules("aider", tmp_path, "models/user.py", "class User:\n    pass\n", "Done.")
    with ModelServer(Script(rules)) as srv:
        edit = json.loads(post(srv, "/v1/chat/completions", openai_body("Create models/user.py")).read())
        commit = json.loads(post(srv, "/v1/chat/completions", {
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "Generate a one-line commit message"},
                         {"role": "user", "content": "diff"}]}).read())
    reply = edit["choices"][0]["message"]["content"]
    assert reply == "Done.\n\nmodels/user.py\n```\nclass User:\n    pass\n```\n"
    assert commit["choices"][0]["message"]["content"] == "feat: add models/user.py"


def test_rules_are_ordered_and_times_limited() -> None:
    script = Script([
        Rule(last_user_text_contains("again"), text("first time"), times=1),
        Rule(last_user_text_contains("again"), text("later times")),
    ])
    with ModelServer(script) as srv:
        answers = [json.loads(post(srv, "/v1/messages", anthropic_body("again")).read())["content"][0]["text"]
                   for _ in range(3)]
    assert answers == ["first time", "later times", "later times"]


def test_json_script_file(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({
        "rules": [{"when": {"last_user_contains": "fail"}, "reply": {"error": {"status": 529}}},
                  {"when": {"api": "anthropic"}, "reply": {"tool_calls": [{"name": "Write", "input": {}}]}}],
        "default": {"text": "openai says hi"},
    }))
    with ModelServer(load_script(str(path))) as srv:
        assert post(srv, "/v1/messages", anthropic_body("please fail")).status == 529
        ok = json.loads(post(srv, "/v1/messages", anthropic_body("hi")).read())
        oa = json.loads(post(srv, "/v1/chat/completions", openai_body()).read())
    assert ok["content"][0]["name"] == "Write"
    assert oa["choices"][0]["message"]["content"] == "openai says hi"


# -- Other endpoints and HTTP behaviour ----------------------------------------------


def test_side_endpoints_and_unknown_paths() -> None:
    with ModelServer("ok") as srv:
        counted = json.loads(post(srv, "/v1/messages/count_tokens?beta=true", anthropic_body()).read())
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/v1/models")
        models = json.loads(conn.getresponse().read())
        conn.request("GET", "/v1/nope")
        missing = conn.getresponse()
        missing.read()
    assert counted["input_tokens"] > 0
    assert {"claude-sonnet-4-5", "gpt-4o-mini"} <= {m["id"] for m in models["data"]}
    assert missing.status == 404
    assert [(r.method, r.path, r.status) for r in srv.requests][-1] == ("GET", "/v1/nope", 404)


def test_keep_alive_after_a_stream() -> None:
    with ModelServer("streamed") as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        for _ in range(2):  # the second request reuses the connection of the chunked stream
            conn.request("POST", "/v1/messages", json.dumps(anthropic_body(stream=True)))
            assert b"message_stop" in conn.getresponse().read()
        conn.close()
    assert len(srv.requests) == 2


def test_shutdown_leaves_no_threads_or_socket() -> None:
    before = set(threading.enumerate())
    with ModelServer("ok") as srv:
        port = srv.port
        idle = socket.create_connection(("127.0.0.1", port))  # an idle keep-alive client
        post(srv, "/v1/messages", anthropic_body()).read()
    leftover = [t for t in threading.enumerate() if t not in before]
    assert leftover == []
    idle.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_default_reply_follows_a_requested_json_schema() -> None:
    # Claude Code's session-title side request demands {"title": string}.
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    fmt = {"format": {"type": "json_schema", "schema": schema}}
    body = anthropic_body("name this session", output_config=fmt)
    with ModelServer("OK") as srv:
        data = json.loads(post(srv, "/v1/messages", body).read())
    assert json.loads(data["content"][0]["text"]) == {"title": "scripted"}
