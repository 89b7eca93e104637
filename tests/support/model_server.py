"""A scripted model server for driving real agent CLIs in tests.

Speaks enough of the Anthropic Messages API, the OpenAI chat-completions
API (streaming and not), the OpenAI Responses API (streamed) and the Gemini
API (generateContent, streamed and not) for Claude Code, Droid, Aider, Codex
CLI and Gemini CLI, answers from a Script (see model_script.py), and logs
every request:

    with ModelServer(write_file_rules("claude", repo, "a.py", "x = 1\\n", "Done")) as srv:
        run_agent(env={"ANTHROPIC_BASE_URL": srv.url, ...})
        assert srv.requests.model_calls()[-1].last_message_is_tool_result

Standard library only. Bound to 127.0.0.1 on a free port; every connection
and handler thread is closed and joined on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.model_script import (  # re-exported for test convenience
    AnyReply,
    ErrorReply,
    LoggedRequest,
    Reply,
    RequestLog,
    Rule,
    Script,
    ScriptLike,
    ToolCall,
    Usage,
    always,
    always_error,
    api_is,
    as_script,
    demo_script,
    error,
    has_tool_result,
    is_streaming,
    last_user_text_contains,
    model_contains,
    offers_tool,
    script_from_json,
    system_contains,
    text,
    text_contains,
    tool_call,
    write_file_rules,
)

__all__ = [
    "ModelServer", "LoggedRequest", "RequestLog", "Rule", "Script", "Reply", "ErrorReply",
    "ToolCall", "Usage", "always", "always_error", "api_is", "error", "has_tool_result",
    "is_streaming", "last_user_text_contains", "model_contains", "offers_tool",
    "system_contains", "text", "text_contains", "tool_call", "write_file_rules",
]

# Header names whose values are secrets; matched case-insensitively, plus any
# name containing one of SECRET_HINTS.
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie"}
SECRET_HINTS = ("key", "token", "secret")

MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "gpt-4o-mini"]

# Size of the pieces streamed text is cut into, so parsers see several deltas.
STREAM_PIECE = 24


# --------------------------------------------------------------------------
# Wire formats (pure functions of the reply; no I/O)
# --------------------------------------------------------------------------


def estimate_tokens(obj: Any) -> int:
    """Rough token count (~4 characters per token); agents only need plausible numbers."""
    size = len(obj) if isinstance(obj, str) else len(json.dumps(obj, ensure_ascii=False))
    return max(1, size // 4)


def usage_for(reply: Reply, req: LoggedRequest) -> Usage:
    if reply.usage is not None:
        return reply.usage
    out = estimate_tokens(reply.text) if reply.text else 0
    out += sum(estimate_tokens(c.input) + 5 for c in reply.tool_calls)
    prompt = {k: v for k, v in (req.body or {}).items()
              if k in ("system", "messages", "instructions", "input", "systemInstruction", "contents")}
    return Usage(estimate_tokens(prompt), max(1, out))


def _pieces(s: str, size: int = STREAM_PIECE) -> list[str]:
    return [s[i:i + size] for i in range(0, len(s), size)] or [""]


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def anthropic_usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def anthropic_content(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        blocks.append({"type": "tool_use", "id": _new_id("toolu_"), "name": call.name,
                       "input": call.input})
    return blocks


def anthropic_message(reply: Reply, model: str, usage: Usage) -> dict[str, Any]:
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": anthropic_content(reply),
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage(usage),
    }


def anthropic_events(reply: Reply, model: str, usage: Usage) -> Iterator[tuple[str, dict]]:
    """The SSE events of a streamed Messages response, as (event, data) pairs."""
    start = anthropic_message(reply, model, Usage(usage.input_tokens, 1))
    blocks, start["content"], start["stop_reason"] = start["content"], [], None
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(blocks):
        first: dict[str, Any]
        if block["type"] == "text":
            first = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        else:
            first = {**block, "input": {}}
            raw = json.dumps(block["input"], ensure_ascii=False)
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(raw)]
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": first}
        for delta in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
        "usage": anthropic_usage(usage),
    }
    yield "message_stop", {"type": "message_stop"}


def anthropic_error(err: ErrorReply) -> dict[str, Any]:
    return {"type": "error", "error": {"type": err.type, "message": err.text}}


def openai_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _openai_tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"index": i, "id": _new_id("call_"), "type": "function",
         "function": {"name": c.name, "arguments": json.dumps(c.input, ensure_ascii=False)}}
        for i, c in enumerate(reply.tool_calls)
    ]


def _openai_finish(reply: Reply) -> str:
    return "tool_calls" if reply.tool_calls else "stop"


def openai_completion(reply: Reply, model: str, usage: Usage) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {k: v for k, v in c.items() if k != "index"} for c in _openai_tool_calls(reply)
        ]
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _openai_finish(reply)}],
        "usage": openai_usage(usage),
    }


def openai_chunks(reply: Reply, model: str, usage: Usage, include_usage: bool) -> Iterator[dict]:
    """Streamed chat-completion chunks (without the final `[DONE]`)."""
    base = {"id": _new_id("chatcmpl-"), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> dict:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}

    yield chunk({"role": "assistant", "content": ""})
    if reply.text:
        for piece in _pieces(reply.text):
            yield chunk({"content": piece})
    if reply.tool_calls:
        yield chunk({"tool_calls": _openai_tool_calls(reply)})
    if include_usage:
        # OpenAI's shape: the finish chunk, then a usage-only chunk with no choices.
        yield chunk({}, _openai_finish(reply))
        yield {**base, "choices": [], "usage": openai_usage(usage)}
    else:
        # Not asked for, but cheap: clients that ignore it lose nothing.
        yield chunk({}, _openai_finish(reply), usage=openai_usage(usage))


def openai_error(err: ErrorReply) -> dict[str, Any]:
    return {"error": {"message": err.text, "type": err.type, "param": None, "code": err.status}}


def responses_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def responses_events(reply: Reply, model: str, usage: Usage) -> Iterator[dict]:
    """The SSE events of a streamed Responses API answer (OpenAI's order and fields):
    response.created, then per output item `added`, its deltas, `done`; response.completed
    with usage. Codex CLI takes the items from `output_item.done` and needs `completed`."""
    response = {"id": _new_id("resp_"), "object": "response", "created_at": int(time.time()),
                "model": model, "status": "in_progress", "output": [], "usage": None}
    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> dict:
        return {"type": kind, "sequence_number": next(seq), **fields}

    yield event("response.created", response=dict(response))
    yield event("response.in_progress", response=dict(response))
    output: list[dict] = []
    if reply.text:
        item_id = _new_id("msg_")
        index = len(output)
        item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        yield event("response.output_item.added", output_index=index, item=item)
        part = {"type": "output_text", "text": "", "annotations": []}
        ids = {"item_id": item_id, "output_index": index, "content_index": 0}
        yield event("response.content_part.added", **ids, part=part)
        for piece in _pieces(reply.text):
            yield event("response.output_text.delta", **ids, delta=piece)
        yield event("response.output_text.done", **ids, text=reply.text)
        part = {**part, "text": reply.text}
        yield event("response.content_part.done", **ids, part=part)
        item = {**item, "status": "completed", "content": [part]}
        yield event("response.output_item.done", output_index=index, item=item)
        output.append(item)
    for call in reply.tool_calls:
        index = len(output)
        if call.name == "tool_search":  # Codex's tool search (`execution: client`): arguments an object
            item = {"id": _new_id("tsc_"), "type": "tool_search_call", "status": "completed",
                    "call_id": _new_id("call_"), "execution": "client", "arguments": call.input}
            yield event("response.output_item.added", output_index=index, item={**item, "status": "in_progress"})
            yield event("response.output_item.done", output_index=index, item=item)
            output.append(item)
            continue
        if isinstance(call.input, str):  # a freeform tool: its input is the text itself
            item = {"id": _new_id("ctc_"), "type": "custom_tool_call", "status": "in_progress",
                    "name": call.name, "call_id": _new_id("call_"), "input": ""}
            yield event("response.output_item.added", output_index=index, item=item)
            for piece in _pieces(call.input):
                yield event("response.custom_tool_call_input.delta", item_id=item["id"], output_index=index,
                            delta=piece)
            yield event("response.custom_tool_call_input.done", item_id=item["id"], output_index=index,
                        input=call.input)
            item = {**item, "status": "completed", "input": call.input}
            yield event("response.output_item.done", output_index=index, item=item)
            output.append(item)
            continue
        args = json.dumps(call.input, ensure_ascii=False)
        item = {"id": _new_id("fc_"), "type": "function_call", "status": "in_progress",
                "name": call.name, "call_id": _new_id("call_"), "arguments": ""}
        if call.namespace:
            item["namespace"] = call.namespace
        yield event("response.output_item.added", output_index=index, item=item)
        for piece in _pieces(args):
            yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                        delta=piece)
        yield event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                    arguments=args)
        item = {**item, "status": "completed", "arguments": args}
        yield event("response.output_item.done", output_index=index, item=item)
        output.append(item)
    yield event("response.completed", response={**response, "status": "completed", "output": output,
                                                "usage": responses_usage(usage)})


def gemini_usage(usage: Usage) -> dict[str, int]:
    return {"promptTokenCount": usage.input_tokens, "candidatesTokenCount": usage.output_tokens,
            "totalTokenCount": usage.input_tokens + usage.output_tokens}


def gemini_chunks(reply: Reply, model: str, usage: Usage) -> Iterator[dict]:
    """GenerateContentResponse objects: the text in pieces, then the function calls, the last
    one with finishReason and usageMetadata (streamGenerateContent sends each as an SSE event)."""
    parts: list[dict] = [{"text": p} for p in _pieces(reply.text)] if reply.text else []
    parts += [{"functionCall": {"name": c.name, "args": c.input}} for c in reply.tool_calls]
    parts = parts or [{"text": ""}]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
        chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model,
                                 "responseId": _new_id("")}
        if last:
            candidate["finishReason"] = "STOP"
            chunk["usageMetadata"] = gemini_usage(usage)
        yield chunk


def gemini_response(reply: Reply, model: str, usage: Usage) -> dict[str, Any]:
    """The whole answer as one GenerateContentResponse (generateContent, not streamed)."""
    parts: list[dict] = [{"text": reply.text}] if reply.text else []
    parts += [{"functionCall": {"name": c.name, "args": c.input}} for c in reply.tool_calls]
    return {"candidates": [{"content": {"role": "model", "parts": parts or [{"text": ""}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": gemini_usage(usage), "modelVersion": model}


# Google's RPC status names, by HTTP status.
GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def gemini_error(err: ErrorReply) -> dict[str, Any]:
    return {"error": {"code": err.status, "message": err.text,
                      "status": GEMINI_STATUS.get(err.status, "UNKNOWN")}}


def models_list() -> dict[str, Any]:
    """Both dialects' fields in one list, so either client can read it."""
    data = [_model_entry(m) for m in MODELS]
    return {"object": "list", "data": data, "has_more": False,
            "first_id": MODELS[0], "last_id": MODELS[-1]}


def _model_entry(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "type": "model", "object": "model", "display_name": model_id,
            "created_at": "2025-01-01T00:00:00Z", "created": 1735689600, "owned_by": "scripted"}


def requested_json_schema(req: LoggedRequest) -> dict[str, Any] | None:
    """The JSON schema a request demands its reply to follow, if any.

    Anthropic: output_config.format (Claude Code's session-title request);
    OpenAI: response_format.json_schema.schema.
    """
    body = req.body if isinstance(req.body, dict) else {}
    fmt = (body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return fmt["schema"]
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        return (rf.get("json_schema") or {}).get("schema")
    return None


def sample_for_schema(schema: dict[str, Any]) -> Any:
    """A minimal value that satisfies a (simple) JSON schema."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: sample_for_schema(props.get(k, {})) for k in schema.get("required", props)}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return "scripted"


def fit_structured_output(reply: AnyReply, req: LoggedRequest, rule: str) -> AnyReply:
    """Make the default reply valid JSON when the request demands a schema.

    Side requests (e.g. Claude Code's session title) parse their answer as
    JSON; a plain "OK" would not parse. Scripted rules are left untouched.
    """
    schema = requested_json_schema(req)
    if rule != "default" or schema is None or not isinstance(reply, Reply) or reply.tool_calls:
        return reply
    try:
        json.loads(reply.text)
        return reply
    except ValueError:
        return Reply(text=json.dumps(sample_for_schema(schema)), usage=reply.usage)


def redact_headers(headers: Any) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        low = name.lower()
        secret = low in SECRET_HEADERS or any(h in low for h in SECRET_HINTS)
        out[low] = "***" if secret else value
    return out


def api_of(method: str, path: str) -> str | None:
    if method != "POST":
        return None
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith((":streamGenerateContent", ":generateContent")):
        return "gemini"
    return None


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    # Non-daemon handler threads are the ones socketserver tracks, so that
    # server_close() joins them; close_connections() makes sure none is left
    # blocked on an idle keep-alive connection.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, owner: ModelServer, port: int) -> None:
        self.owner = owner
        self.open_connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        self.closing = False
        super().__init__(("127.0.0.1", port), _Handler)

    def register(self, conn: socket.socket) -> None:
        with self.conn_lock:
            self.open_connections.add(conn)
            if self.closing:  # accepted while closing: don't let it block
                _hang_up(conn)

    def unregister(self, conn: socket.socket) -> None:
        with self.conn_lock:
            self.open_connections.discard(conn)

    def close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections."""
        with self.conn_lock:
            self.closing = True
            for conn in self.open_connections:
                _hang_up(conn)


def _hang_up(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the agents' HTTP clients expect
    server: _HTTPServer
    timeout = 120  # a silent client must not pin a thread forever

    def setup(self) -> None:
        super().setup()
        self.server.register(self.connection)

    def finish(self) -> None:
        self.server.unregister(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # everything goes to ModelServer.requests instead

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_POST

    # -- request ----------------------------------------------------------

    def _handle(self) -> None:
        req = self._read_request()
        self.server.owner._record(req)
        try:
            self._dispatch(req)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the agent hung up mid-answer; nothing to do
        finally:
            req.done = True
            self.server.owner.requests.notify()

    def _read_request(self) -> LoggedRequest:
        parts = urlsplit(self.path)
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return LoggedRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=redact_headers(self.headers),
            body=body,
            body_text=raw.decode("utf-8", "replace") if body is None else "",
            api=api_of(self.command, parts.path),
            time=time.monotonic() - self.server.owner.started_at,
        )

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            raw = self._read_chunked()
        else:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        encoding = self.headers.get("content-encoding", "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        return raw

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(data)
            data += self.rfile.read(size)
            self.rfile.readline()

    # -- routing ----------------------------------------------------------

    def _dispatch(self, req: LoggedRequest) -> None:
        path = req.path.rstrip("/")
        if req.api is not None:
            self._answer_model_call(req)
        elif req.method == "POST" and path.endswith(":countTokens"):  # gemini
            self._send_json(req, 200, {"totalTokens": estimate_tokens(req.body)}, "count_tokens")
        elif req.method == "POST" and path.endswith("/messages/count_tokens"):
            prompt = {k: v for k, v in (req.body or {}).items() if k in ("system", "messages", "tools")}
            self._send_json(req, 200, {"input_tokens": estimate_tokens(prompt)}, "count_tokens")
        elif req.method == "GET" and path.endswith("/models"):
            self._send_json(req, 200, models_list(), "models")
        elif req.method == "GET" and "/models/" in path:
            self._send_json(req, 200, _model_entry(path.rsplit("/", 1)[-1]), "model")
        elif req.method in ("GET", "HEAD") and path in ("", "/v1", "/api/hello"):
            # /api/hello: Claude Code's connectivity probe (HEAD) when
            # non-essential traffic is not disabled.
            self._send_json(req, 200, {"ok": True}, "probe")
        else:
            body = {"type": "error", "error": {"type": "not_found_error",
                                               "message": f"no route for {req.method} {req.path}"}}
            self._send_json(req, 404, body, "unknown")

    def _answer_model_call(self, req: LoggedRequest) -> None:
        rule, reply = self.server.owner.script.answer(req)
        reply = fit_structured_output(reply, req, rule)
        model = req.model or "scripted-model"
        if isinstance(reply, ErrorReply):
            shape = {"anthropic": anthropic_error, "gemini": gemini_error}.get(req.api, openai_error)
            self._send_json(req, reply.status, shape(reply), rule, dict(reply.headers))
            return
        usage = usage_for(reply, req)
        if req.api == "responses":  # Codex CLI streams always
            events = responses_events(reply, model, usage)
            self._send_sse(req, rule, (f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events))
        elif req.api == "gemini":
            if req.stream:
                chunks = gemini_chunks(reply, model, usage)
                self._send_sse(req, rule, (f"data: {json.dumps(c)}\n\n" for c in chunks))
            else:
                self._send_json(req, 200, gemini_response(reply, model, usage), rule)
        elif req.api == "anthropic":
            if req.stream:
                events = anthropic_events(reply, model, usage)
                self._send_sse(req, rule, (f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events))
            else:
                self._send_json(req, 200, anthropic_message(reply, model, usage), rule)
        elif req.stream:
            options = (req.body or {}).get("stream_options") or {}
            chunks = openai_chunks(reply, model, usage, bool(options.get("include_usage")))
            lines = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
            self._send_sse(req, rule, iter(lines))
        else:
            self._send_json(req, 200, openai_completion(reply, model, usage), rule)

    # -- response ---------------------------------------------------------

    def _mark(self, req: LoggedRequest, status: int, rule: str) -> None:
        req.status, req.rule = status, rule

    def _common_headers(self) -> None:
        self.send_header("request-id", _new_id("req_"))
        self.send_header("x-request-id", _new_id("req_"))

    def _send_json(self, req: LoggedRequest, status: int, body: Any, rule: str,
                   headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self._mark(req, status, rule)
        self.send_response(status)
        self._common_headers()
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if req.method != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _send_sse(self, req: LoggedRequest, rule: str, events: Iterator[str]) -> None:
        # Chunked encoding keeps the connection reusable, like the real APIs.
        self._mark(req, 200, rule)
        self.send_response(200)
        self._common_headers()
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in events:
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class ModelServer:
    """Scripted model server on 127.0.0.1; use as a context manager.

    srv.url            http://127.0.0.1:PORT  (Anthropic base URL)
    srv.openai_url     http://127.0.0.1:PORT/v1  (OpenAI base URL)
    srv.requests       RequestLog of every request, in arrival order
    srv.script         the Script answering model calls (may be swapped)
    """

    def __init__(self, script: ScriptLike = "OK", port: int = 0) -> None:
        self.script: Script = as_script(script)
        self.requests = RequestLog()
        self.started_at = time.monotonic()
        self.on_request: Any = None  # optional callable(LoggedRequest), e.g. to print
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> ModelServer:
        self._httpd = _HTTPServer(self, self._port)
        self.started_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"model-server-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is None:
            return
        httpd, self._httpd = self._httpd, None
        httpd.shutdown()  # returns once serve_forever has stopped accepting
        httpd.close_connections()
        httpd.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, req: LoggedRequest) -> None:
        self.requests.append(req)
        if self.on_request is not None:
            self.on_request(req)


# --------------------------------------------------------------------------
# Standalone use: python -m tests.support.model_server --port 0 --script demo
# --------------------------------------------------------------------------


def load_script(name: str) -> Script:
    """'demo' (echo), 'ok' (always "OK"), 'error:STATUS', or a JSON script file."""
    if name == "demo":
        return demo_script()
    if name == "ok":
        return as_script("OK")
    if name.startswith("error:"):
        return always_error(int(name.split(":", 1)[1]))
    return script_from_json(json.loads(Path(name).read_text()))


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Scripted model server (Anthropic + OpenAI APIs)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", default="demo",
                        help="demo | ok | error:STATUS | path to a JSON script")
    parser.add_argument("--log", type=Path, help="append every request as a JSON line here")
    args = parser.parse_args(argv)

    srv = ModelServer(load_script(args.script), port=args.port)
    log_file = args.log.open("a") if args.log else None

    def report(req: LoggedRequest) -> None:
        print(f"{req.method} {req.path} api={req.api} model={req.model}", file=sys.stderr, flush=True)

    def write_log(req: LoggedRequest) -> None:
        if log_file is not None:
            log_file.write(json.dumps(req.to_dict()) + "\n")
            log_file.flush()

    srv.on_request = report
    signal.signal(signal.SIGTERM, _raise_interrupt)  # so `kill` still writes the log
    with srv:
        print(srv.url, flush=True)
        try:
            threading.Event().wait()  # until Ctrl-C
        except KeyboardInterrupt:
            pass
        finally:
            for req in srv.requests:
                write_log(req)  # written at the end so status and rule are filled in
            if log_file is not None:
                log_file.close()


if __name__ == "__main__":
    main()
