"""What every parser reports, and the shape a parser has.

A parser reads plain text lines (escape sequences stripped, carriage returns
turned into line breaks) as they pass, in blocks of complete lines. It never
spawns anything and never sees the whole transcript at once. A parser of a
full-screen agent (sees_screen) is also given the output with its escape
sequences, to play into a virtual terminal (screen.py).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import render

MAX_REPLY = 64 * 1024  # the reply text kept for briefs and for the primary
MAX_ERRORS = 50
KEY_REFUSED = (401, 403)  # HTTP statuses no retry mends: the key is wrong or not allowed


@dataclass
class ApiFailure:
    """A request of the agent's that the API refused or that never reached it, as the agent's output says."""
    line: str  # the line that says it
    detail: str  # the agent's words
    status: Optional[int] = None  # the HTTP status, when there was an answer
    key_refused: bool = False  # 401, 403, or the agent's own word for it: no retry will mend it
    unreachable: bool = False  # no connection could be made
    url: Optional[str] = None  # the address it names, if it names one


@dataclass
class Parsed:
    files: list[str] = field(default_factory=list)  # claimed by the agent, in order, unique
    errors: list[str] = field(default_factory=list)
    cost_usd: Optional[float] = None
    tokens_in: Optional[int] = None
    tokens_out: Optional[int] = None
    session_id: Optional[str] = None
    reply_parts: list[str] = field(default_factory=list, repr=False)  # the agent's answer text, newest last
    is_error: Optional[bool] = None  # the agent's own verdict, where it gives one
    model: Optional[str] = None
    cwd: Optional[str] = None  # the working directory the agent reports (its init event): its paths' root
    api_failure: Optional[ApiFailure] = None  # the last refused key or connection that could not be made

    def set_cwd(self, value: Any) -> None:
        if isinstance(value, str) and os.path.isabs(value):
            self.cwd = value

    def add_file(self, path: str) -> None:
        path = path.strip().strip("'\"`")
        if path and path not in self.files:
            self.files.append(path)

    def add_error(self, text: str) -> None:
        text = text.strip()
        if text and text not in self.errors and len(self.errors) < MAX_ERRORS:
            self.errors.append(text[:2000])

    @property
    def reply(self) -> str:
        return "".join(self.reply_parts)[-MAX_REPLY:]

    def add_reply(self, text: str) -> None:
        """Keep the last MAX_REPLY characters without copying them on every call."""
        self.reply_parts.append(text)
        self._reply_len = getattr(self, "_reply_len", 0) + len(text)
        while self._reply_len - len(self.reply_parts[0]) >= MAX_REPLY:
            self._reply_len -= len(self.reply_parts.pop(0))

    def set_reply(self, text: str) -> None:
        self.reply_parts, self._reply_len = [text[-MAX_REPLY:]], min(len(text), MAX_REPLY)


def _as_is(value: Any) -> Any:
    return value


class Parser:
    name = "base"
    # Whether every file the agent edits is named in what this parser reads (its tool calls, its edit
    # lines): then the files git saw change that it did not name are someone else's, or a command's.
    # False: git's list of what changed is all there is to tell its work by (summary.attribute).
    names_files = False
    # render(event) -> str: a readable drawing of one of the agent's events (parsers/render.py), for
    # parsers of JSON events; None: the agent's window shows its raw bytes, always
    render: Optional[Callable[[dict], str]] = None
    # True: also fed the output as written, escape sequences and all (feed_screen), and the judge of
    # when a turn is over (turn_over): for a full-screen agent whose words are where its screen puts them
    sees_screen = False
    # Its events repeat the message the agent was given, and render draws it (`» ...`); else a rendered
    # window is shown the message given on the command line by orchestra itself (AgentSession.start).
    shows_task = False
    # What it reads from the agent's output as the agent goes: a cost limit needs a cost or tokens
    # (times prices), a token limit tokens (budget.enforceable)
    reports_cost = False
    reports_tokens = False

    def __init__(self, profile: Any = None):
        self.profile = profile
        self.parsed = Parsed()
        self.rendered: Optional[list[str]] = None  # the drawing of what was fed, once rendering() was called
        self.mask: Callable[[Any], Any] = _as_is

    def rendering(self, mask: Optional[Callable[[Any], Any]] = None) -> "Parser":
        """Draw what is fed from now on (take it with take_rendered()): the same events, parsed once.
        mask: applied to each event before it is drawn (Redactor.data): a drawing keeps a piece of a
        long string (a line of a tool's result, the start of a command) and colours each line of
        another, either of which leaves a key that a mask of the drawing would not know."""
        self.rendered = []
        self.mask = mask or _as_is
        return self

    def take_rendered(self) -> str:
        out, self.rendered = "".join(self.rendered or ()), []
        return out

    def feed(self, lines: str) -> None:
        """lines: one or more complete lines, each ending in a newline."""
        raise NotImplementedError

    def feed_screen(self, text: str) -> None:
        """text: the decoded output as the agent wrote it (with sees_screen)."""

    def typed(self, text: str) -> None:
        """A message (the task, or a later turn's) was typed at the agent's prompt."""

    def turn_over(self) -> Optional[str]:
        """With sees_screen: the line that shows the turn of the last message typed is over, or None."""
        return None

    def new_turn(self) -> None:
        """A new message was sent: the next reply replaces the last one."""
        self.parsed.set_reply("")
        self.parsed.is_error = None
        self.parsed.api_failure = None

    def api_failed(self, line: str, detail: str, status: Optional[int] = None, key_refused: bool = False,
                   unreachable: bool = False, url: Optional[str] = None) -> None:
        """The agent says a request failed. A refused key (401, 403) or a connection that could not be made
        is kept (parsed.api_failure): a session ends the agent on a refused key at once, and says either
        in words that name what to fix (orchestra/failures.py); any other failure is the agent's to retry."""
        key_refused = key_refused or status in KEY_REFUSED
        if key_refused or unreachable:
            self.parsed.api_failure = ApiFailure(line.strip(), detail.strip(), status, key_refused,
                                                 unreachable and not key_refused, url)

    def retry(self, line: str) -> str:
        """What a line the profile's `retry` pattern matched says was retried, in words that stay
        the same from one retry of it to the next ("API error 529 overloaded"); "": the line itself."""
        return ""

    def result(self) -> Parsed:
        return self.parsed


class JsonLinesParser(Parser):
    """For agents that print one JSON object per line; other lines are noise."""

    line = ""  # the line of the event being read
    names_files = True  # each edit is a tool call event that names its file

    def feed(self, lines: str) -> None:
        drawn = self.rendered
        if "{" not in lines:
            self.text(lines)
            if drawn is not None:
                drawn.append(render.lines(lines))
            return
        for line in lines.splitlines():
            stripped = line.strip()
            event = None
            if stripped.startswith("{"):
                try:
                    event = json.loads(stripped)
                except ValueError:
                    pass
            if not isinstance(event, dict):
                if drawn is not None and stripped:
                    drawn.append(render.lines(line))  # not an event (a wrapper's message): as it is
                continue
            try:
                self.line = stripped
                self.event(event)
            except (TypeError, AttributeError, ValueError, KeyError) as exc:
                # a line of the right type with the wrong shape: note it, keep reading
                self.parsed.add_error(f"unreadable {event.get('type', 'event')!s:.40} event: {exc}")
            if drawn is not None:
                try:
                    drawn.append(self.draw(self.mask(event)))
                except (TypeError, AttributeError, ValueError, KeyError):
                    drawn.append(render.note(self.mask(stripped)[:200]))

    def draw(self, event: dict) -> str:
        """The event as its window shows it: `render(event)`, unless the drawing needs what came before."""
        return type(self).render(event)

    def text(self, lines: str) -> None:
        """Lines with no JSON event in them: noise, unless the agent also prints plain text."""

    def event(self, event: dict) -> None:
        raise NotImplementedError


TOOL_PATH_KEYS = ("file_path", "path", "filePath", "notebook_path", "target_file")
FILE_TOOLS = {"write", "edit", "multiedit", "create", "notebookedit", "applypatch", "str_replace_editor",
              "write_file", "replace", "edit_file", "editfile", "createfile"}


def tool_file(name: str, params: Any) -> Optional[str]:
    """The path a file-changing tool call names, if it is one."""
    if not isinstance(params, dict) or name.lower().replace("_", "") not in {t.replace("_", "") for t in FILE_TOOLS}:
        return None
    for key in TOOL_PATH_KEYS:
        value = params.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def as_int(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def add_tokens(parsed: Parsed, tokens_in: Any, tokens_out: Any) -> None:
    tin, tout = as_int(tokens_in), as_int(tokens_out)
    if tin is not None:
        parsed.tokens_in = (parsed.tokens_in or 0) + tin
    if tout is not None:
        parsed.tokens_out = (parsed.tokens_out or 0) + tout

