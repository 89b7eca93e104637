"""Droid: `droid exec -o stream-json` events, `-o json` result, and plain `exec` text."""
from __future__ import annotations

import re

from . import render as draw
from .base import JsonLinesParser, add_tokens, tool_file


def render(event: dict) -> str:
    """One `-o stream-json` event as a person reads it (see parsers/render.py)."""
    kind = event.get("type")
    if kind == "system":
        return draw.header(f"droid · {event.get('model') or '?'} · {event.get('cwd') or ''}")
    if kind == "message":
        if event.get("role") == "user":
            return draw.sent(str(event.get("text", "")))
        return draw.text(event.get("text"))
    if kind == "tool_call":
        return draw.tool(event.get("toolName") or event.get("toolId") or "?", event.get("parameters"))
    if kind == "tool_result":
        return draw.result(event.get("value"), bool(event.get("isError")))
    if kind in ("completion", "result"):
        ok = not event.get("is_error")
        usage = event.get("usage") or {}
        return draw.done(ok, "completed" if ok else "failed", event.get("numTurns", event.get("num_turns")), None,
                         draw.seconds(event.get("durationMs", event.get("duration_ms"))),
                         (usage.get("input_tokens"), usage.get("output_tokens")),
                         detail="" if ok else str(event.get("result") or ""))
    if kind == "error":
        return draw.error(event.get("message") or event.get("error") or event)
    return ""


class DroidParser(JsonLinesParser):
    name = "droid"
    reports_tokens = True
    render = staticmethod(render)
    STATUS = re.compile(r"(\d{3}) [{\[]")
    shows_task = True  # its stream repeats the user message
    TEXT_FILE = re.compile(r"^\s*(?:Created|Modified|Edited|Wrote)\s+(?:file\s+)?(\S+)\s*$", re.M)

    def text(self, lines: str) -> None:  # plain `droid exec` text
        for m in self.TEXT_FILE.finditer(lines):
            self.parsed.add_file(m.group(1))
        self.parsed.add_reply(lines)

    def event(self, event: dict) -> None:
        p = self.parsed
        kind = event.get("type")
        if event.get("session_id"):
            p.session_id = event["session_id"]
        if kind == "system":
            p.model = event.get("model") or p.model
            p.set_cwd(event.get("cwd"))
        elif kind == "tool_call":
            path = tool_file(str(event.get("toolName", "")), event.get("parameters"))
            if path:
                p.add_file(path)
        elif kind == "message" and event.get("role") == "assistant":
            p.add_reply(str(event.get("text", "")) + "\n")
        elif kind in ("completion", "result"):
            if isinstance(event.get("finalText"), str):
                p.set_reply(event["finalText"])
            elif isinstance(event.get("result"), str):
                p.set_reply(event["result"])
            usage = event.get("usage") or {}
            add_tokens(p, usage.get("input_tokens"), usage.get("output_tokens"))
            if event.get("is_error"):
                p.is_error = True
                p.add_error(str(event.get("result") or "error"))
            elif p.is_error is None:
                p.is_error = False
        elif kind == "error":
            p.is_error = True
            message = str(event.get("message") or event.get("error") or event)
            p.add_error(message)
            # `401 {"type":"error",...}`: the API's answer after its status; `Connection error.`: none came
            status = self.STATUS.match(message)
            self.api_failed(self.line, message, int(status.group(1)) if status else None,
                            unreachable=message.startswith("Connection error"))
