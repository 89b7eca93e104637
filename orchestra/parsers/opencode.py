"""OpenCode: `opencode run --format json` events (tested with 1.18.33).

Each line has `type`, `sessionID` and a `part`: step_start · text {text} · tool_use {tool, state:
{status, input}} · step_finish {reason: tool-calls|stop, tokens {input, output}, cost} · and
error {error: {name, data: {message, statusCode}}}. It exits when the run is over.
"""
from __future__ import annotations

from . import render as draw
from .base import JsonLinesParser, add_tokens, tool_file


def render(event: dict) -> str:
    """One `run --format json` event as a person reads it (see parsers/render.py). A step's finish draws
    that step's tokens; the parser's drawing gives the run's (OpenCodeParser.draw)."""
    kind = event.get("type")
    part = event.get("part") or {}
    if kind == "text":
        return draw.text(part.get("text"))
    if kind == "reasoning":
        return draw.note("✻ " + draw.short(part.get("text"), 200))
    if kind == "tool_use":
        state = part.get("state") or {}
        call = draw.tool(part.get("tool") or "?", state.get("input"))
        if state.get("status") == "error":
            return call + draw.result(state.get("error") or "failed", True)
        return call + draw.result(state.get("output") or state.get("title") or state.get("status") or "done")
    if kind == "step_finish" and part.get("reason") == "stop":
        tokens = part.get("tokens") or {}
        cost = part.get("cost")
        return draw.done(True, "completed", None, cost if isinstance(cost, (int, float)) and cost > 0 else None,
                         tokens=(tokens.get("input"), tokens.get("output")))
    if kind == "error":
        error = event.get("error") or {}
        data = error.get("data") or {}
        status = data.get("statusCode")
        return draw.error(f"{'API error ' + str(status) + ': ' if status else ''}"
                          f"{data.get('message') or error.get('name') or 'error'}")
    return ""


class OpenCodeParser(JsonLinesParser):
    name = "opencode"
    reports_cost = True
    reports_tokens = True
    render = staticmethod(render)
    first_at = None  # the time of its first event (ms): its events carry one each, its result no duration

    def draw(self, event: dict) -> str:
        at, head = event.get("timestamp"), ""
        if self.first_at is None and isinstance(at, (int, float)):
            self.first_at = at  # its run's time is counted from here (it prints no start event)
            head = draw.header(f"opencode · session {event.get('sessionID') or '?'}")
        part = event.get("part") or {}
        if event.get("type") == "step_finish" and part.get("reason") == "stop":
            p = self.parsed  # the run so far, this step included (event() ran first)
            seconds = (at - self.first_at) / 1000 if isinstance(at, (int, float)) and self.first_at else None
            return head + draw.done(True, "completed", None, p.cost_usd, seconds, (p.tokens_in, p.tokens_out))
        return head + render(event)

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
            message = str(data.get("message") or error.get("name") or "error")
            p.is_error = True
            p.add_error(f"{'API error ' + str(status) + ': ' if status else ''}{message}")
            url = (data.get("metadata") or {}).get("url")
            self.api_failed(self.line, message, status if isinstance(status, int) else None,
                            unreachable=message.startswith("Cannot connect to API"),
                            url=url if isinstance(url, str) else None)
