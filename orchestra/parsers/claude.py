"""Claude Code: `-p --output-format stream-json` / `json` events, and its interactive screen."""
from __future__ import annotations

import json
import re
from typing import Optional

from ..screen import Screen
from . import render as draw
from .base import JsonLinesParser, Parser, add_tokens, as_int, tool_file


def render(event: dict) -> str:
    """One stream-json event as a person reads it (see parsers/render.py)."""
    kind, sub = event.get("type"), event.get("subtype")
    if kind == "system" and sub == "init":
        return draw.header(f"claude · {event.get('model') or '?'} · {event.get('cwd') or ''}")
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
    reports_cost = True
    reports_tokens = True
    render = staticmethod(render)

    def __init__(self, profile=None):
        super().__init__(profile)
        # message id -> its (input, output) tokens, counted since the last `result`: the figures as the
        # agent goes (for a budget), which the result's own totals then replace
        self.calls: dict[str, tuple[int, int]] = {}

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
            self.running(event.get("message") or {})
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
            if self.calls:
                add_tokens(p, -sum(c[0] for c in self.calls.values()), -sum(c[1] for c in self.calls.values()))
                self.calls.clear()
            add_tokens(p, _input_tokens(usage), usage.get("output_tokens"))
            p.is_error = bool(event.get("is_error")) or event.get("subtype") not in (None, "success")
            if p.is_error:
                detail = event.get("result") or event.get("subtype") or "error"
                status = event.get("api_error_status")
                p.add_error(f"{'API error ' + str(status) + ': ' if status else ''}{detail}")
                if isinstance(status, int):
                    self.api_failed(self.line, str(detail), status)

    def running(self, message: dict) -> None:
        """A model call's usage as it comes: each of its content blocks is an `assistant` event of its own,
        with the same message id and the call's usage so far, so it is counted once, by its id."""
        usage, mid = message.get("usage"), message.get("id")
        if not isinstance(usage, dict) or not isinstance(mid, str):
            return
        now = (_input_tokens(usage) or 0, as_int(usage.get("output_tokens")) or 0)
        before = self.calls.get(mid, (0, 0))
        self.calls[mid] = now
        add_tokens(self.parsed, now[0] - before[0], now[1] - before[1])

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
    """The interactive screen, played into a virtual terminal (screen.py).

    A turn shows as the message typed, echoed as `❯ message` (the prompt box has a no-break
    space after its ❯), the model's words and tool calls each after a `●` (or `⏺`) bullet,
    and `✻ Cooked for 3s` (the profile's completion pattern) when it is over. The TUI redraws
    earlier turns when its screen scrolls, their `✻ ... for Ns` lines too: only one below this
    turn's echo ends it. Files and errors are read from the plain lines."""

    name = "claude-tui"
    sees_screen = True
    names_files = False  # a screen, not a record: a long path is drawn cut short, a redraw may skip an edit
    TOOL = re.compile(r"^\s*[●⏺]\s*(Write|Edit|MultiEdit|Update|Create)\((.+?)\)\s*$", re.M)
    ERROR = re.compile(r"^\s*(?:⎿\s*)?(API Error:.*|Error:.*)$", re.M)
    # its status line while it retries: "✻ 401 invalid x-api-key · retrying in 3s · attempt 3/10" (the status
    # shows from a redraw on, the first attempt says only "API error")
    RETRYING = re.compile(r"(?:^|\s)(\d{3}) ([^·\n]*?)\s*· retrying in \d+s · attempt \d+/\d+", re.M)
    OVER = re.compile(r"✻ \S+ for (?:\d+h )?(?:\d+m )?\d+s")  # without a profile (a saved transcript)
    BULLET = ("● ", "⏺ ")
    ECHO = "❯ "  # a message sent; "❯\u00a0" is the prompt box
    ECHO_KEY = 40  # characters of a message that tell its echo apart
    SCAN = 3000  # rows looked back for the echo

    def __init__(self, profile=None):
        super().__init__(profile)
        self.screen = Screen(getattr(profile, "cols", 120), getattr(profile, "rows", 40))
        self.over_pattern = getattr(profile, "completion", None) or self.OVER
        self.message: Optional[str] = None  # the echo that starts this turn; None: any message's
        self.over: Optional[str] = None
        self.echo_seen = False

    def feed(self, lines: str) -> None:
        p = self.parsed
        for m in self.TOOL.finditer(lines):
            p.add_file(m.group(2))
        for m in self.ERROR.finditer(lines):
            p.add_error(m.group(1))

    def feed_screen(self, text: str) -> None:
        self.screen.feed(text)
        if self.parsed.api_failure is None:  # its retry status line, as the screen shows it now
            for row in map(self.screen.row, range(self.screen.rows)):
                m = self.RETRYING.search(row)
                if m:
                    self.api_failed(row, m.group(2), int(m.group(1)))
        if self.over is None or self.message is None:
            self._judge()

    def typed(self, text: str) -> None:
        self.message = " ".join(text.split())[:self.ECHO_KEY]
        self.over, self.echo_seen = None, False

    def turn_over(self) -> Optional[str]:
        return self.over

    def _judge(self) -> None:
        """The turn is over when a completion line stands below the echo of its message:
        its reply is the bulleted text between them."""
        below: list[str] = []  # the rows under the one looked at, bottom first
        end, cut = None, False
        for n, row in enumerate(self.screen.lines()):
            if n > self.SCAN:
                return
            if row.startswith(self.ECHO) and not row.startswith(self.ECHO + "/"):  # a message, not a menu
                if not self._echoes(row[len(self.ECHO):]):
                    return  # an earlier message, with no echo of this one below it: nothing of this turn
                self.echo_seen = True
                break
            if self.over_pattern.search(row):
                end, below = row, []
            else:
                below.append(row)
        else:
            # no echo: if one was seen, a long reply pushed it off the top of an alternate screen (which
            # keeps no rows above), and earlier turns with it: what is left is this turn's, cut at the top
            if not self.echo_seen:
                return
            cut = True
        if end is not None:
            self.over = end.strip()
            self.parsed.set_reply(self.words(below[::-1], cut))

    def _echoes(self, shown: str) -> bool:
        shown = " ".join(shown.split())
        if self.message is None:
            return True
        return shown.startswith(self.message) or (len(shown) < len(self.message) and self.message.startswith(shown))

    def words(self, rows: list[str], cut: bool = False) -> str:
        """The text of the bulleted blocks in rows (the echo's own rows, blank lines and
        spinners before them are skipped); a tool call, a block with its `⎿` result, is not.
        cut: the first rows are the rest of a block whose bullet is gone."""
        blocks: list[list[str]] = [[]] if cut else []
        inside = cut
        for row in rows:
            if row.startswith(self.BULLET):
                blocks.append([row[2:]])
                inside = True
            elif inside and (row.startswith("  ") or not row.strip()):
                blocks[-1].append(row[2:])
            else:  # something else at the margin ends a block
                inside = False
        texts = ["\n".join(line.rstrip() for line in block).strip() for block in blocks
                 if block and not any(line.lstrip().startswith("⎿") for line in block)]
        return "\n\n".join(t for t in texts if t)
