"""Cursor agent: `cursor-agent -p --output-format stream-json` events, and its `-p` text."""
from __future__ import annotations

from .base import JsonLinesParser, add_tokens, tool_file


class CursorParser(JsonLinesParser):
    name = "cursor"

    def feed(self, lines: str) -> None:
        if "{" not in lines:  # plain `-p` text output: the answer itself
            self.parsed.add_reply(lines)
            return
        super().feed(lines)

    def event(self, event: dict) -> None:
        p = self.parsed
        kind = event.get("type")
        if event.get("session_id"):
            p.session_id = event["session_id"]
        if kind == "system":
            p.model = event.get("model") or p.model
            p.set_cwd(event.get("cwd"))
        elif kind == "tool_call" and event.get("subtype") == "completed":
            call = event.get("tool_call") or {}
            for key, body in call.items():
                if not isinstance(body, dict):
                    continue
                args = body.get("args") or {}
                name = {"editToolCall": "edit", "writeToolCall": "write", "deleteToolCall": "edit"}.get(key, key)
                path = tool_file(name, args)
                if path:
                    p.add_file(path)
        elif kind == "assistant":
            for block in (event.get("message") or {}).get("content") or []:
                if isinstance(block, dict) and block.get("type") == "text":
                    p.add_reply(block.get("text", "") + "\n")
        elif kind == "result":
            if isinstance(event.get("result"), str):
                p.set_reply(event["result"])
            usage = event.get("usage") or {}
            add_tokens(p, usage.get("inputTokens", usage.get("input_tokens")),
                       usage.get("outputTokens", usage.get("output_tokens")))
            p.is_error = bool(event.get("is_error")) or event.get("subtype") not in (None, "success")
            if p.is_error:
                p.add_error(str(event.get("result") or event.get("subtype")))
