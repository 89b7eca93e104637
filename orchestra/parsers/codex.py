"""Codex CLI: `codex exec --json` events (tested with 0.169.0).

thread.started {thread_id} · turn.started · item.started / item.completed {item: agent_message,
command_execution, file_change, reasoning, error, ...} · turn.completed {usage} · turn.failed {error}
· error {message} (also each retry: "Reconnecting... 2/5 (...)").
"""
from __future__ import annotations

import json
import re

from . import render as draw
from .base import JsonLinesParser, add_tokens

RECONNECTING = "Reconnecting..."


def render(event: dict) -> str:
    """One `exec --json` event as a person reads it (see parsers/render.py). Its events carry no model,
    working directory or time."""
    kind = event.get("type")
    item = event.get("item") or {}
    what = item.get("type")
    if kind == "thread.started":
        return draw.header(f"codex · thread {event.get('thread_id') or '?'}")
    if kind == "item.started":
        if what == "command_execution":
            return draw.tool("shell", what=draw.short(item.get("command"), 200))
        if what == "file_change":
            return "".join(draw.tool(c.get("kind") or "change", what=str(c.get("path") or ""))
                           for c in item.get("changes") or [] if isinstance(c, dict))
        if what not in ("agent_message", "reasoning", "error"):  # an MCP call, a web search, a plan, ...
            return draw.tool(what or "?", item)
        return ""
    if kind == "item.completed":
        failed = item.get("status") in ("failed", "declined")
        if what == "agent_message":
            return draw.text(item.get("text"))
        if what == "reasoning":
            return draw.note("✻ " + draw.short(item.get("text"), 200))
        if what == "error":  # a warning: the turn goes on
            return draw.warning(item.get("message"))
        if what == "command_execution":
            code = item.get("exit_code")
            output = str(item.get("aggregated_output") or "").strip()
            return draw.result(output or f"exit {code}", failed or (isinstance(code, int) and code != 0))
        if what == "file_change":
            return draw.result(item.get("status") or "done", failed)
        return draw.result(item.get("status") or "done", failed)
    if kind == "turn.completed":
        usage = event.get("usage") or {}
        return draw.done(True, "completed", tokens=(usage.get("input_tokens"), usage.get("output_tokens")))
    if kind == "turn.failed":
        return draw.done(False, "failed", detail=str((event.get("error") or {}).get("message") or ""))
    if kind == "error":
        message = str(event.get("message") or event)
        return draw.retry(message) if message.startswith(RECONNECTING) else draw.error(message)
    return ""


class CodexParser(JsonLinesParser):
    name = "codex"
    reports_tokens = True
    render = staticmethod(render)
    STATUS = re.compile(r"unexpected status (\d{3})\s*([A-Za-z][A-Za-z ]*)")
    LOST = re.compile(r"(Connection failed[^)]*)")
    URL = re.compile(r"\burl: ([^\s,)]+)")
    last_error = None  # the text of the last error event drawn

    def event(self, event: dict) -> None:
        p = self.parsed
        kind = event.get("type")
        if kind == "thread.started":
            p.session_id = event.get("thread_id") or p.session_id
        elif kind == "item.completed":
            item = event.get("item") or {}
            what = item.get("type")
            if what == "agent_message":
                p.add_reply(str(item.get("text", "")) + "\n")
            elif what == "file_change" and item.get("status") == "completed":
                for change in item.get("changes") or []:
                    if isinstance(change, dict) and change.get("path"):
                        p.add_file(str(change["path"]))
            # an `error` item is a warning (e.g. unknown model metadata): the turn goes on
        elif kind == "turn.completed":
            usage = event.get("usage") or {}
            add_tokens(p, usage.get("input_tokens"), usage.get("output_tokens"))
            if p.is_error is None:
                p.is_error = False
        elif kind == "turn.failed":
            p.is_error = True
            message = str((event.get("error") or {}).get("message") or "turn failed")
            p.add_error(message)
            self.failed_request(message)
        elif kind == "error":
            message = str(event.get("message") or event)
            if not message.startswith(RECONNECTING):  # a retry, counted by the profile's retry pattern
                p.is_error = True
                p.add_error(message)
            self.failed_request(message)

    def failed_request(self, message: str) -> None:
        """`unexpected status 401 Unauthorized: ..., url: URL, ...`; `waiting for network (Connection failed: ...)`."""
        status, url, lost = self.STATUS.search(message), self.URL.search(message), self.LOST.search(message)
        self.api_failed(self.line, lost.group(1) if lost else message, int(status.group(1)) if status else None,
                        unreachable=lost is not None, url=url.group(1) if url else None)

    def draw(self, event: dict) -> str:
        drawing = render(event)
        if event.get("type") == "error":
            self.last_error = str(event.get("message") or "")
        elif event.get("type") == "turn.failed" and self.last_error == (event.get("error") or {}).get("message"):
            drawing = draw.done(False, "failed")  # its error event, just drawn, said why
        return drawing

    def retry(self, line: str) -> str:
        """`{"type":"error","message":"Reconnecting... 2/5 (unexpected status 401 Unauthorized: ..."}`
        or `... waiting for network (Connection failed: error sending request)`."""
        try:
            message = str(json.loads(line[line.index("{"):]).get("message", ""))
        except (ValueError, AttributeError):
            return ""
        m = self.STATUS.search(message)
        if m:
            return f"API error {m.group(1)} {m.group(2).strip()}"
        inner = message[message.find("(") + 1:].rstrip(")") if "(" in message else message
        return f"API request failed ({inner.split(', url:')[0][:120]})"
