"""Gemini CLI: `gemini --output-format stream-json` events (tested with 0.61.0).

init {session_id, model} · message {role, content, delta} · tool_use {tool_name, tool_id, parameters}
· tool_result {tool_id, status} · result {status: success|error, error {message}, stats {input_tokens,
output_tokens, duration_ms}}.
"""
from __future__ import annotations

import re

from . import render as draw
from .base import JsonLinesParser, add_tokens, tool_file


def render(event: dict) -> str:
    """One stream-json event as a person reads it (see parsers/render.py); a streamed piece of the reply
    (`delta`) is drawn without a line end: the next piece goes on with it."""
    kind = event.get("type")
    if kind == "init":
        return draw.header(f"gemini · {event.get('model') or '?'} · session {event.get('session_id') or '?'}")
    if kind == "message":
        content = str(event.get("content") or "")
        if event.get("role") == "user":
            return draw.sent(content)
        if event.get("delta"):
            return content.replace("\r\n", "\n").replace("\n", "\r\n")
        return draw.text(content)
    if kind == "tool_use":
        return draw.tool(event.get("tool_name") or "?", event.get("parameters"))
    if kind == "tool_result":
        if event.get("status") == "error":
            return draw.result((event.get("error") or {}).get("message") or "failed", True)
        return draw.result(event.get("output") or event.get("status") or "done")
    if kind == "error":
        said = event.get("message") or event
        return draw.warning(said) if event.get("severity") == "warning" else draw.error(said)
    if kind == "result":
        ok = event.get("status") == "success"
        stats = event.get("stats") or {}
        return draw.done(ok, "completed" if ok else "failed", None, None, draw.seconds(stats.get("duration_ms")),
                         (stats.get("input_tokens"), stats.get("output_tokens")),
                         detail="" if ok else str((event.get("error") or {}).get("message") or ""))
    return ""


class GeminiParser(JsonLinesParser):
    name = "gemini"
    reports_tokens = True
    render = staticmethod(render)
    STATUS = re.compile(r'\\?"code\\?":\s*(\d{3})\b')
    shows_task = True  # its stream repeats the user message
    mid_line = False  # the window's last drawing was a streamed reply piece with no line end

    def __init__(self, profile=None):
        super().__init__(profile)
        self.pending: dict[str, str] = {}  # tool_id -> the file its call names, until it succeeds
        self.mid_text = False  # the last reply piece was a streamed delta with no line end

    def event(self, event: dict) -> None:
        p = self.parsed
        kind = event.get("type")
        if event.get("session_id"):
            p.session_id = event["session_id"]
        if kind == "init":
            p.model = event.get("model") or p.model
        elif kind == "message" and event.get("role") == "assistant":
            p.add_reply(str(event.get("content", "")))
            self.mid_text = bool(event.get("delta"))
            if not self.mid_text:
                p.add_reply("\n")
        elif kind == "tool_use":
            self.end_text()
            path = tool_file(str(event.get("tool_name", "")), event.get("parameters"))
            if path:
                self.pending[str(event.get("tool_id"))] = path
        elif kind == "tool_result":
            path = self.pending.pop(str(event.get("tool_id")), None)
            if path and event.get("status") == "success":
                p.add_file(path)
            elif event.get("status") == "error":
                error = event.get("error") or {}
                p.add_error(f"tool {event.get('tool_id')}: {error.get('message') or error or 'failed'}")
        elif kind == "result":
            self.end_text()
            stats = event.get("stats") or {}
            add_tokens(p, stats.get("input_tokens", stats.get("input")), stats.get("output_tokens"))
            p.is_error = event.get("status") != "success"
            if p.is_error:
                error = event.get("error") or {}
                message = str(error.get("message") or error or event.get("status") or "error")
                p.add_error(message)
                status = self.STATUS.search(message)  # `[API Error: {"error":{"code":401,...}}]`
                self.api_failed(self.line, message, int(status.group(1)) if status else None)
        elif kind == "error":
            p.add_error(str(event.get("message") or event))

    def draw(self, event: dict) -> str:
        drawing = render(event)
        if not drawing:
            return ""
        start = "\r\n" if self.mid_line and not (event.get("type") == "message" and event.get("delta")) else ""
        self.mid_line = not drawing.endswith("\n")
        return start + drawing

    def end_text(self) -> None:
        if self.mid_text:
            self.parsed.add_reply("\n")
            self.mid_text = False
