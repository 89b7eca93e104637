"""OpenCode: `opencode run --format json` events (tested with 1.18.33).

Each line has `type`, `sessionID` and a `part`: step_start · text {text} · tool_use {tool, state:
{status, input}} · step_finish {reason: tool-calls|stop, tokens {input, output}, cost} · and
error {error: {name, data: {message, statusCode}}}. It exits when the run is over.
"""
from __future__ import annotations

from .base import JsonLinesParser, add_tokens, tool_file


class OpenCodeParser(JsonLinesParser):
    name = "opencode"

    def event(self, event: dict) -> None:
        p = self.parsed
        kind = event.get("type")
        part = event.get("part") or {}
        if event.get("sessionID"):
            p.session_id = event["sessionID"]
        if kind == "text":
            p.add_reply(str(part.get("text", "")) + "\n")
        elif kind == "tool_use":
            state = part.get("state") or {}
            path = tool_file(str(part.get("tool", "")), state.get("input"))
            if path and state.get("status") == "completed":
                p.add_file(path)
            elif state.get("status") == "error":
                p.add_error(f"tool {part.get('tool')}: {state.get('error') or 'failed'}")
        elif kind == "step_finish":
            tokens = part.get("tokens") or {}
            add_tokens(p, tokens.get("input"), tokens.get("output"))
            cost = part.get("cost")
            if isinstance(cost, (int, float)) and cost > 0:  # 0: a model it has no price for
                p.cost_usd = (p.cost_usd or 0.0) + float(cost)
            if part.get("reason") == "stop" and p.is_error is None:
                p.is_error = False
        elif kind == "error":
            error = event.get("error") or {}
            data = error.get("data") or {}
            status = data.get("statusCode")
            p.is_error = True
            p.add_error(f"{'API error ' + str(status) + ': ' if status else ''}"
                        f"{data.get('message') or error.get('name') or 'error'}")
