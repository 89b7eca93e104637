"""Cursor agent: `cursor-agent -p --output-format stream-json` events, and its `-p` text."""
from __future__ import annotations

from . import render as draw
from .base import JsonLinesParser, add_tokens, tool_file

TOOLS = {"editToolCall": "edit", "writeToolCall": "write", "deleteToolCall": "delete", "readToolCall": "read",
         "shellToolCall": "shell", "grepToolCall": "grep", "globToolCall": "glob", "lsToolCall": "ls"}


def render(event: dict) -> str:
    """One `--output-format stream-json` event as a person reads it (see parsers/render.py)."""
    kind, sub = event.get("type"), event.get("subtype")
    if kind == "system":
        return draw.header(f"cursor · {event.get('model') or '?'} · {event.get('cwd') or ''}")
    if kind in ("user", "assistant"):
        words = "".join(str(b.get("text", "")) for b in (event.get("message") or {}).get("content") or []
                        if isinstance(b, dict) and b.get("type") == "text")
        return draw.sent(words) if kind == "user" else draw.text(words)
    if kind == "tool_call":
        out = []
        for key, body in (event.get("tool_call") or {}).items():
            if not isinstance(body, dict):
                continue
            if sub == "started":
                out.append(draw.tool(TOOLS.get(key, key), body.get("args")))
            elif sub == "completed":
                res = body.get("result") or {}
                failed = isinstance(res, dict) and ("error" in res or "failure" in res)
                got = res.get("error") or res.get("failure") or res.get("success") if isinstance(res, dict) else res
                if isinstance(got, dict):  # {"path": ..., "linesAdded": 24, "linesRemoved": 0}
                    got = ", ".join(f"{k} {v}" for k, v in got.items() if not isinstance(v, (dict, list)))
                out.append(draw.result(got if got not in (None, "") else "done", failed))
        return "".join(out)
    if kind == "result":
        ok = not event.get("is_error") and sub in (None, "success")
        usage = event.get("usage") or {}
        return draw.done(ok, "completed" if ok else f"failed ({sub or 'error'})", None, None,
                         draw.seconds(event.get("duration_ms")),
                         (usage.get("inputTokens", usage.get("input_tokens")),
                          usage.get("outputTokens", usage.get("output_tokens"))),
                         detail="" if ok else str(event.get("result") or ""))
    return ""


class CursorParser(JsonLinesParser):
    name = "cursor"
    reports_tokens = True
    render = staticmethod(render)
    shows_task = True  # its stream repeats the user message

    def text(self, lines: str) -> None:  # plain `-p` text output: the answer itself
        self.parsed.add_reply(lines)

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
