"""Codex CLI: `codex exec --json` events (tested with 0.169.0).

thread.started {thread_id} · turn.started · item.started / item.completed {item: agent_message,
command_execution, file_change, reasoning, error, ...} · turn.completed {usage} · turn.failed {error}
· error {message} (also each retry: "Reconnecting... 2/5 (...)").
"""
from __future__ import annotations

import json
import re

from .base import JsonLinesParser, add_tokens

RECONNECTING = "Reconnecting..."


class CodexParser(JsonLinesParser):
    name = "codex"
    STATUS = re.compile(r"unexpected status (\d{3})\s*([A-Za-z][A-Za-z ]*)")

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
            p.add_error(str((event.get("error") or {}).get("message") or "turn failed"))
        elif kind == "error":
            message = str(event.get("message") or event)
            if not message.startswith(RECONNECTING):  # a retry, counted by the profile's retry pattern
                p.is_error = True
                p.add_error(message)

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
