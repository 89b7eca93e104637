"""Claude Code: `-p --output-format stream-json` / `json` events, and its interactive screen."""
from __future__ import annotations

import json
import re

from . import render as draw
from .base import JsonLinesParser, Parser, add_tokens, tool_file


def render(event: dict) -> str:
    """One stream-json event as a person reads it (see parsers/render.py)."""
    kind, sub = event.get("type"), event.get("subtype")
    if kind == "system" and sub == "init":
        return draw.note(f"● claude · {event.get('model') or '?'} · {event.get('cwd') or ''}")
    if kind == "system" and sub == "api_retry":
        status = event.get("error_status")
        what = f"API error {status} {event.get('error') or ''}" if status else f"API request failed ({event.get('error')})"
        delay = draw.seconds(event.get("retry_delay_ms"))
        return draw.retry(f"retry {event.get('attempt', '?')} of {event.get('max_retries', '?')}: {what.strip()}"
                          + (f" (next in {delay:.1f}s)" if delay is not None else ""))
    if kind == "assistant":
        out = []
        for block in (event.get("message") or {}).get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                out.append(draw.text(block.get("text")))
            elif block.get("type") == "tool_use":
                out.append(draw.tool(block.get("name", "?"), block.get("input")))
            elif block.get("type") == "thinking" and block.get("thinking"):
                out.append(draw.note("✻ " + draw.short(block["thinking"], 200)))
        return "".join(out)
    if kind == "user":
        out = []
        for block in (event.get("message") or {}).get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                content = block.get("content")
                if isinstance(content, list):  # [{"type": "text", "text": ...}]
                    content = "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
                out.append(draw.result(content, bool(block.get("is_error"))))
        return "".join(out)
    if kind == "result":
        ok = not event.get("is_error") and sub in (None, "success")
        status = event.get("api_error_status")
        detail = "" if ok else f"{'API error ' + str(status) + ': ' if status else ''}{event.get('result') or sub}"
        return draw.done(ok, "completed" if ok else f"failed ({sub or 'error'})", event.get("num_turns"),
                         _run_cost(event), draw.seconds(event.get("duration_ms")), detail=detail)
    return ""


class ClaudeParser(JsonLinesParser):
    """stream-json: system/init, assistant (text and tool_use), user (tool_result), result.
    --output-format json prints only the result object: the same code reads it."""

    name = "claude"
    render = staticmethod(render)

    def event(self, event: dict) -> None:
        p = self.parsed
        kind = event.get("type")
        if event.get("session_id"):
            p.session_id = event["session_id"]
        if kind == "system" and event.get("subtype") == "init":
            p.model = event.get("model") or p.model
            p.set_cwd(event.get("cwd"))
        elif kind == "system" and event.get("subtype") == "api_retry":
            # a refused key it would retry for minutes; no HTTP status: the request never got an answer
            status = event.get("error_status")
            status = status if isinstance(status, int) else None
            error = str(event.get("error") or "unknown")
            self.api_failed(self.line, error if status else f"no HTTP answer ({error})", status,
                            unreachable=status is None)
        elif kind == "assistant":
            for block in (event.get("message") or {}).get("content") or []:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text":
                    p.add_reply(block.get("text", "") + "\n")
                elif block.get("type") == "tool_use":
                    path = tool_file(str(block.get("name", "")), block.get("input"))
                    if path:
                        p.add_file(path)
        elif kind == "result":
            if isinstance(event.get("result"), str):
                p.set_reply(event["result"])
            cost = _run_cost(event)
            if cost is not None:
                p.cost_usd = (p.cost_usd or 0.0) + cost
            usage = event.get("usage") or {}
            add_tokens(p, _input_tokens(usage), usage.get("output_tokens"))
            p.is_error = bool(event.get("is_error")) or event.get("subtype") not in (None, "success")
            if p.is_error:
                detail = event.get("result") or event.get("subtype") or "error"
                status = event.get("api_error_status")
                p.add_error(f"{'API error ' + str(status) + ': ' if status else ''}{detail}")
                if isinstance(status, int):
                    self.api_failed(self.line, str(detail), status)


    def retry(self, line: str) -> str:
        """`{"type":"system","subtype":"api_retry","attempt":2,"error_status":529,"error":"overloaded"...}`"""
        try:
            event = json.loads(line[line.index("{"):])
        except ValueError:
            return ""
        if not isinstance(event, dict) or event.get("subtype") != "api_retry":
            return ""
        status, error = event.get("error_status"), event.get("error") or "unknown"
        return f"API error {status} {error}" if status else f"API request failed ({error}: no HTTP status)"


def _run_cost(result: dict):
    """This run's cost. After --resume, total_cost_usd covers the whole session so far;
    model_usage_since_last_result (stream-json) has this run alone."""
    since = result.get("model_usage_since_last_result")
    if isinstance(since, dict) and since:
        costs = [m.get("costUSD") for m in since.values() if isinstance(m, dict)]
        if all(isinstance(c, (int, float)) for c in costs):
            return float(sum(costs))
    value = result.get("total_cost_usd")
    return float(value) if isinstance(value, (int, float)) else None


def _input_tokens(usage: dict):
    parts = [usage.get(k) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
    parts = [int(x) for x in parts if isinstance(x, (int, float))]
    return sum(parts) if parts else None


class ClaudeScreenParser(Parser):
    """The interactive screen: `● Write(models/user.py)` for edits, the reply text between them."""

    name = "claude-tui"
    TOOL = re.compile(r"^\s*●\s*(Write|Edit|MultiEdit|Update|Create)\((.+?)\)\s*$", re.M)
    ERROR = re.compile(r"^\s*(?:⎿\s*)?(API Error:.*|Error:.*)$", re.M)
    # its status line while it retries: "✻ 401 invalid x-api-key · retrying in 3s · attempt 3/10" (the status
    # shows from a redraw on, the first attempt says only "API error")
    RETRYING = re.compile(r"(?:^|\s)(\d{3}) ([^·\n]*?)\s*· retrying in \d+s · attempt \d+/\d+", re.M)
    NOISE = re.compile(r"^\s*(?:[❯>│╭╰─]|esc to interrupt|\? for shortcuts)")

    def feed(self, lines: str) -> None:
        p = self.parsed
        for m in self.TOOL.finditer(lines):
            p.add_file(m.group(2))
        for m in self.ERROR.finditer(lines):
            p.add_error(m.group(1))
        for m in self.RETRYING.finditer(lines):
            start = lines.rfind("\n", 0, m.start()) + 1
            self.api_failed(lines[start:lines.find("\n", m.end())], m.group(2), int(m.group(1)))
        for line in lines.splitlines():
            if line.strip() and not self.NOISE.match(line):
                p.add_reply(line.strip() + "\n")
