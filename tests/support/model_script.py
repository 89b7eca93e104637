"""What the scripted model server answers: logged requests, rules, replies.

A script is an ordered list of rules; the first rule whose predicate matches a
request (and that has not used up its ``times``) gives the reply. Requests no
rule matches get the script's default reply, so the side requests that agent
CLIs make (titles, quota probes, commit messages) never break a scenario.
Rules are best written stateless (keyed on what the request contains, e.g.
"the last message carries a tool result") so retries and extra requests are
answered the same way.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

# --------------------------------------------------------------------------
# Logged requests
# --------------------------------------------------------------------------


@dataclass
class LoggedRequest:
    """One HTTP request as the server saw it (API keys redacted)."""

    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    body_text: str  # raw body decoded as UTF-8 (for non-JSON bodies)
    api: str | None  # "anthropic", "openai", "responses", "gemini" or None (other endpoints)
    time: float  # seconds since the server started
    status: int | None = None  # filled in once answered
    rule: str | None = None  # name of the rule that answered
    done: bool = False  # True once the whole response has been written

    @property
    def model(self) -> str | None:
        if self.api == "gemini":  # /v1beta/models/<model>:streamGenerateContent
            return self.path.rsplit("/", 1)[-1].split(":", 1)[0]
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        if self.api == "gemini":
            return ":streamGenerateContent" in self.path
        return bool(isinstance(self.body, dict) and self.body.get("stream"))

    @property
    def messages(self) -> list[dict]:
        """The conversation as chat messages, whatever the dialect: Responses API `input`
        items and Gemini `contents` are read as messages, tool results with role "tool"."""
        body = self.body if isinstance(self.body, dict) else {}
        if isinstance(body.get("messages"), list):
            return body["messages"]
        if isinstance(body.get("input"), list):
            return [m for m in map(_responses_message, body["input"]) if m]
        if isinstance(body.get("contents"), list):
            return [_gemini_message(c) for c in body["contents"] if isinstance(c, dict)]
        return []

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered to the model (every API dialect)."""
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        names = []
        for tool in tools or []:
            for fn in tool.get("functionDeclarations") or [tool]:  # gemini groups them
                fn = fn.get("function") if isinstance(fn.get("function"), dict) else fn
                if fn.get("name"):
                    names.append(fn["name"])
        return names

    @property
    def system_text(self) -> str:
        parts = []
        body = self.body if isinstance(self.body, dict) else {}
        for key in ("system", "instructions", "systemInstruction", "system_instruction"):
            if key in body:
                parts.append(_text_of(body[key]))
        parts += [_text_of(m.get("content")) for m in self.messages if m.get("role") == "system"]
        return "\n".join(p for p in parts if p)

    @property
    def last_user_text(self) -> str:
        """Text of the last user message, tool results excluded."""
        for msg in reversed(self.messages):
            if msg.get("role") == "user":
                return _text_of(msg.get("content"), tool_results=False)
        return ""

    @property
    def last_message_is_tool_result(self) -> bool:
        """True when the model is being asked to continue after a tool ran."""
        if not self.messages:
            return False
        last = self.messages[-1]
        if last.get("role") == "tool":  # openai
            return True
        content = last.get("content")
        return last.get("role") == "user" and isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        )

    @property
    def text(self) -> str:
        """Everything textual the request carries: system, messages, tool results."""
        parts = [self.system_text]
        parts += [_text_of(m.get("content")) for m in self.messages if m.get("role") != "system"]
        return "\n".join(p for p in parts if p)

    def to_dict(self) -> dict:
        return {
            "time": round(self.time, 3),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "api": self.api,
            "status": self.status,
            "rule": self.rule,
            "headers": self.headers,
            "body": self.body if self.body is not None else self.body_text,
        }

    def summary(self) -> str:
        """One line for humans: what was asked and how it was answered."""
        tools = f" tools={len(self.tool_names)}" if self.tool_names else ""
        last = self.last_user_text.replace("\n", " ")[-60:]
        return (
            f"{self.time:7.3f}s {self.method} {self.path} -> {self.status} "
            f"[{self.rule}] model={self.model} stream={self.stream}{tools} "
            f"msgs={len(self.messages)} last_user={last!r}"
        )


def _responses_message(item: Any) -> dict | None:
    """A Responses API input item as a chat message (developer instructions as system)."""
    if not isinstance(item, dict):
        return None
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        return {"role": "system" if role == "developer" else role, "content": item.get("content")}
    if kind in ("function_call", "custom_tool_call"):
        args = item.get("arguments", item.get("input"))
        return {"role": "assistant", "content": [{"type": "tool_use", "input": args}]}
    if kind in ("function_call_output", "custom_tool_call_output"):
        return {"role": "tool", "content": item.get("output")}
    return None


def _gemini_message(content: dict) -> dict:
    """A Gemini `contents` entry as a chat message; one carrying function responses is a tool result."""
    parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
    if any("functionResponse" in p for p in parts):
        return {"role": "tool", "content": [json.dumps(p["functionResponse"], ensure_ascii=False)
                                            for p in parts if "functionResponse" in p]}
    blocks: list[dict] = []
    for part in parts:
        if isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif isinstance(part.get("functionCall"), dict):
            blocks.append({"type": "tool_use", "input": part["functionCall"].get("args")})
    return {"role": "assistant" if content.get("role") == "model" else "user", "content": blocks}


def _text_of(content: Any, tool_results: bool = True) -> str:
    """Flatten message content (string or list of blocks/parts) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if isinstance(content.get("parts"), list):  # gemini's systemInstruction
            content = content["parts"]
        else:
            content = [content]
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif not isinstance(block, dict):
            continue
        elif block.get("type") == "tool_result":
            if tool_results:
                parts.append(_text_of(block.get("content")))
        elif block.get("type") == "tool_use":
            parts.append(json.dumps(block.get("input"), ensure_ascii=False))
        elif isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n".join(p for p in parts if p)


class RequestLog:
    """Thread-safe, append-only list of LoggedRequest with a blocking wait."""

    def __init__(self) -> None:
        self._items: list[LoggedRequest] = []
        self._cond = threading.Condition()

    def append(self, req: LoggedRequest) -> None:
        with self._cond:
            self._items.append(req)
            self._cond.notify_all()

    def notify(self) -> None:
        """Wake waiters after a logged request was updated (e.g. answered)."""
        with self._cond:
            self._cond.notify_all()

    def snapshot(self) -> list[LoggedRequest]:
        with self._cond:
            return list(self._items)

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def __getitem__(self, index: int) -> LoggedRequest:
        with self._cond:
            return self._items[index]

    def model_calls(self) -> list[LoggedRequest]:
        """Requests to the model endpoints only (messages, chat completions, responses, gemini)."""
        return [r for r in self.snapshot() if r.api is not None]

    def wait_for(
        self, predicate: Callable[[LoggedRequest], bool], timeout: float = 10.0
    ) -> LoggedRequest:
        """Block until a fully answered request matches; raise TimeoutError if none does."""
        def find() -> LoggedRequest | None:
            return next((r for r in self._items if r.done and predicate(r)), None)

        with self._cond:
            found = self._cond.wait_for(find, timeout)
        if found is None:
            raise TimeoutError(f"no matching request within {timeout}s")
        return found


# --------------------------------------------------------------------------
# Predicates
# --------------------------------------------------------------------------


class When:
    """A named predicate on a request; combine with &, | and ~."""

    def __init__(self, fn: Callable[[LoggedRequest], bool], desc: str) -> None:
        self._fn = fn
        self.desc = desc

    def __call__(self, req: LoggedRequest) -> bool:
        return bool(self._fn(req))

    def __and__(self, other: When) -> When:
        return When(lambda r: self(r) and other(r), f"({self.desc} & {other.desc})")

    def __or__(self, other: When) -> When:
        return When(lambda r: self(r) or other(r), f"({self.desc} | {other.desc})")

    def __invert__(self) -> When:
        return When(lambda r: not self(r), f"~{self.desc}")

    def __repr__(self) -> str:
        return f"When({self.desc})"


def always() -> When:
    return When(lambda r: True, "always")


def api_is(name: str) -> When:
    """name: "anthropic", "openai", "responses" or "gemini"."""
    return When(lambda r: r.api == name, f"api={name}")


def last_user_text_contains(text: str) -> When:
    return When(lambda r: text in r.last_user_text, f"last_user~{text!r}")


def text_contains(text: str) -> When:
    """Anywhere in the request: system prompt, any message, tool results."""
    return When(lambda r: text in r.text, f"text~{text!r}")


def system_contains(text: str) -> When:
    return When(lambda r: text in r.system_text, f"system~{text!r}")


def has_tool_result() -> When:
    """The last message carries a tool result (the model continues after a tool)."""
    return When(lambda r: r.last_message_is_tool_result, "tool_result")


def offers_tool(name: str) -> When:
    return When(lambda r: name in r.tool_names, f"tool:{name}")


def model_contains(text: str) -> When:
    return When(lambda r: text in (r.model or ""), f"model~{text!r}")


def is_streaming() -> When:
    return When(lambda r: r.stream, "stream")


# --------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any] | str  # a str: a freeform (custom) tool's input, e.g. Codex's apply_patch
    namespace: str | None = None  # Responses API: the namespace of a tool loaded by tool search


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Reply:
    """A successful model turn: optional text, then optional tool calls."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None  # None: estimated from the request and reply sizes

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tool_calls else "end_turn"


# Error types as the Anthropic API names them, by HTTP status.
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error, shaped as the API dialect of the request expects."""

    status: int
    message: str = ""
    error_type: str | None = None  # None: derived from the status
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def type(self) -> str:
        return self.error_type or ANTHROPIC_ERROR_TYPES.get(self.status, "api_error")

    @property
    def text(self) -> str:
        return self.message or {
            401: "invalid x-api-key",
            429: "Number of requests has exceeded your rate limit",
            500: "Internal server error",
            529: "Overloaded",
        }.get(self.status, f"scripted error {self.status}")


AnyReply = Union[Reply, ErrorReply]
ReplyFn = Callable[[LoggedRequest], AnyReply]


def text(value: str, usage: Usage | None = None) -> Reply:
    return Reply(text=value, usage=usage)


def tool_call(name: str, input: dict[str, Any] | str, text: str = "", namespace: str | None = None) -> Reply:
    return Reply(text=text, tool_calls=(ToolCall(name, input, namespace),))


def error(status: int, message: str = "", error_type: str | None = None,
          headers: dict[str, str] | None = None) -> ErrorReply:
    return ErrorReply(status, message, error_type, tuple((headers or {}).items()))


# --------------------------------------------------------------------------
# Rules and scripts
# --------------------------------------------------------------------------


@dataclass
class Rule:
    when: When
    reply: AnyReply | ReplyFn
    name: str = ""
    times: int | None = None  # how often it may answer; None: unlimited
    used: int = field(default=0, init=False)

    def label(self) -> str:
        return self.name or self.when.desc


class Script:
    """Ordered rules plus a default reply; safe to share between threads."""

    def __init__(self, rules: Iterable[Rule] = (), default: AnyReply | ReplyFn = Reply("OK")):
        self.rules = list(rules)
        self.default = default
        self._lock = threading.Lock()

    def answer(self, req: LoggedRequest) -> tuple[str, AnyReply]:
        with self._lock:
            rule = next(
                (r for r in self.rules if (r.times is None or r.used < r.times) and r.when(req)),
                None,
            )
            if rule is not None:
                rule.used += 1
        if rule is None:
            return "default", _resolve(self.default, req)
        return rule.label(), _resolve(rule.reply, req)


def _resolve(reply: AnyReply | ReplyFn, req: LoggedRequest) -> AnyReply:
    return reply(req) if callable(reply) else reply


ScriptLike = Union[Script, Iterable[Rule], Reply, ErrorReply, str]


def as_script(script: ScriptLike) -> Script:
    """Accept a Script, a list of rules, a single reply, or a plain text."""
    if isinstance(script, Script):
        return script
    if isinstance(script, str):
        return Script(default=Reply(script))
    if isinstance(script, (Reply, ErrorReply)):
        return Script(default=script)
    return Script(script)


def always_error(status: int, message: str = "") -> Script:
    """Every model call fails with `status` (fault tests); other endpoints still work."""
    return Script(default=error(status, message))


# --------------------------------------------------------------------------
# Scenario builders: "write file F with content C, then say T"
# --------------------------------------------------------------------------

# The file-writing tool each agent offers, and whether it wants absolute paths.
# Claude Code's Write and Droid's Create both take {file_path, content}; both
# reject or misplace relative paths, so the builders always send absolute ones.
WRITE_TOOLS = {"claude": "Write", "droid": "Create", "gemini": "write_file", "opencode": "write"}


def write_file_rules(
    agent: str,
    workdir: str | Path,
    rel_path: str,
    content: str,
    final_text: str,
    task_contains: str | None = None,
) -> list[Rule]:
    """Rules for one turn that creates `rel_path` and ends with `final_text`.

    agent: "claude", "droid", "aider", "codex", "gemini" or "opencode". `task_contains` restricts
    the file write to requests whose last user text contains it, so later turns of the
    same conversation can be scripted with rules placed before these.
    """
    if agent == "aider":
        return aider_whole_file_rules(rel_path, content, final_text, task_contains)
    if agent == "codex":
        return codex_patch_rules(rel_path, content, final_text, task_contains)
    tool = WRITE_TOOLS[agent]
    abs_path = str(Path(workdir).resolve() / rel_path)
    write_when = offers_tool(tool) & ~has_tool_result()
    if task_contains:
        write_when = write_when & last_user_text_contains(task_contains)
    path_key = "filePath" if agent == "opencode" else "file_path"
    return [
        Rule(offers_tool(tool) & has_tool_result(), text(final_text), name="final-text"),
        Rule(write_when, tool_call(tool, {path_key: abs_path, "content": content}),
             name=f"{tool}-{rel_path}"),
    ]


def add_file_patch(rel_path: str, content: str) -> str:
    """An apply_patch input that creates `rel_path` (relative to the agent's directory)."""
    lines = "".join(f"+{line}\n" for line in content.splitlines())
    return f"*** Begin Patch\n*** Add File: {rel_path}\n{lines}*** End Patch\n"


def codex_patch_rules(
    rel_path: str, content: str, final_text: str, task_contains: str | None = None
) -> list[Rule]:
    """Codex CLI writes files with its freeform apply_patch tool (Responses API custom tool)."""
    write_when = offers_tool("apply_patch") & ~has_tool_result()
    if task_contains:
        write_when = write_when & last_user_text_contains(task_contains)
    return [
        Rule(offers_tool("apply_patch") & has_tool_result(), text(final_text), name="final-text"),
        Rule(write_when, tool_call("apply_patch", add_file_patch(rel_path, content)),
             name=f"apply_patch-{rel_path}"),
    ]


def aider_whole_file(rel_path: str, content: str, final_text: str = "") -> str:
    """A reply in aider's `whole` edit format: the path on a line, then the file fenced."""
    body = content if content.endswith("\n") else content + "\n"
    intro = f"{final_text}\n\n" if final_text else ""
    return f"{intro}{rel_path}\n```\n{body}```\n"


# Aider asks its (weak) model for a commit message with this system prompt.
AIDER_COMMIT_MARKER = "commit message"


def aider_whole_file_rules(
    rel_path: str, content: str, final_text: str, task_contains: str | None = None
) -> list[Rule]:
    edit_when = api_is("openai") & ~system_contains(AIDER_COMMIT_MARKER)
    if task_contains:
        edit_when = edit_when & last_user_text_contains(task_contains)
    return [
        Rule(api_is("openai") & system_contains(AIDER_COMMIT_MARKER),
             text(f"feat: add {rel_path}"), name="commit-message"),
        Rule(edit_when, text(aider_whole_file(rel_path, content, final_text)),
             name=f"whole-{rel_path}"),
    ]


# --------------------------------------------------------------------------
# Scripts from JSON (for `python -m tests.support.model_server --script FILE`)
# --------------------------------------------------------------------------

_JSON_PREDICATES: dict[str, Callable[[Any], When]] = {
    "api": api_is,
    "last_user_contains": last_user_text_contains,
    "contains": text_contains,
    "system_contains": system_contains,
    "has_tool_result": lambda v: has_tool_result() if v else ~has_tool_result(),
    "offers_tool": offers_tool,
    "model_contains": model_contains,
}


def _json_when(spec: dict[str, Any]) -> When:
    when = always()
    for key, value in spec.items():
        when = when & _JSON_PREDICATES[key](value)
    return when


def _json_reply(spec: dict[str, Any]) -> AnyReply:
    if "error" in spec:
        err = spec["error"]
        return error(err["status"], err.get("message", ""), err.get("type"))
    calls = tuple(ToolCall(c["name"], c.get("input", {})) for c in spec.get("tool_calls", []))
    return Reply(text=spec.get("text", ""), tool_calls=calls)


def script_from_json(data: dict[str, Any]) -> Script:
    """{"rules": [{"when": {...}, "reply": {...}, "times": N}], "default": {...}}.

    when keys: api, last_user_contains, contains, system_contains,
    has_tool_result (bool), offers_tool, model_contains (all must hold).
    reply: {"text": ..., "tool_calls": [{"name", "input"}]} or {"error": {"status", "message"}}.
    """
    rules = [
        Rule(_json_when(r.get("when", {})), _json_reply(r["reply"]), r.get("name", ""), r.get("times"))
        for r in data.get("rules", [])
    ]
    return Script(rules, default=_json_reply(data.get("default", {"text": "OK"})))


def demo_script() -> Script:
    """Echo the last user text; handy for poking at an agent by hand."""
    return Script(default=lambda r: text(f"You said: {r.last_user_text[-200:]}"))
