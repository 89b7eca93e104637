"""What a parser's `render(event)` uses to draw an agent's JSON events as lines a person reads.

Rendered lines end in CR LF: a terminal that does not translate LF (a browser's) shows them as
tmux does. Colours only where they tell something: tool calls, retries, errors, the result.
"""
from __future__ import annotations

import re
from typing import Any, Optional

RESET, DIM, BOLD = "\x1b[0m", "\x1b[2m", "\x1b[1m"
RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN = (f"\x1b[{n}m" for n in (31, 32, 33, 34, 35, 36))
TARGET_KEYS = ("file_path", "path", "filePath", "notebook_path", "target_file", "command", "pattern", "url",
               "query", "description", "prompt")
RESULT_CHARS = 160  # of a tool's result, on one line
TEXT_CHARS = 4000  # of an agent's reply text at a time


def lines(text: str, colour: str = "", indent: str = "") -> str:
    """text as terminal lines (CR LF), each coloured and indented; empty text draws nothing."""
    text = text.rstrip("\n")
    if not text.strip():
        return ""
    body = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if colour:
        return "".join(f"{indent}{colour}{line}{RESET}\r\n" for line in body)
    return "".join(f"{indent}{line}\r\n" for line in body)


def short(text: Any, limit: int = RESULT_CHARS) -> str:
    """The first line of text, at most limit characters, saying how much more there was."""
    text = str(text if text is not None else "").strip()
    first, _, rest = text.partition("\n")
    more = rest.count("\n") + 1 if rest.strip() else 0
    cut = first[:limit] + ("…" if len(first) > limit else "")
    return cut + (f" {DIM}(+{more} line{'s' if more != 1 else ''}){RESET}" if more else "")


def target(params: Any) -> str:
    """What a tool call acts on: the file it writes, the command it runs, the pattern it looks for."""
    if not isinstance(params, dict):
        return ""
    for key in TARGET_KEYS:
        value = params.get(key)
        if isinstance(value, str) and value.strip():
            return short(value, 200)
    return ""


def tool(name: Any, params: Any = None, what: str = "") -> str:
    """▸ Write models/user.py"""
    what = what or target(params)
    return f"{CYAN}▸ {BOLD}{name}{RESET}{CYAN}{' ' + what if what else ''}{RESET}\r\n"


def result(text: Any, error: bool = False) -> str:
    """  └ the tool's result, on one line (an error in red)."""
    if error:
        return f"  {RED}└ ✗ {short(text)}{RESET}\r\n"
    return f"  {DIM}└ {short(text)}{RESET}\r\n"


def text(value: Any) -> str:
    """The agent's own words."""
    value = str(value or "")
    return lines(value[:TEXT_CHARS] + ("…" if len(value) > TEXT_CHARS else ""))


def note(value: str) -> str:
    """Something about the session, not from the model (its model, its task)."""
    return lines(value, DIM)


def title(value: str) -> str:
    """The escape a program sets its terminal's title with (a tmux window keeps it on its top line);
    control characters out, as one would end the escape or act."""
    return "\x1b]2;" + re.sub(r"[\x00-\x1f\x7f-\x9f]+", " ", value).strip()[:200] + "\x1b\\"


def header(value: str) -> str:
    """● droid · model · cwd: what the session is, its window's first line and its title."""
    return title(f"● {value}") + note(f"● {value}")


def retry(value: str) -> str:
    return f"{YELLOW}↻ {value}{RESET}\r\n"


def warning(value: Any) -> str:
    """Something the agent says went wrong that does not end its turn."""
    return f"{YELLOW}⚠ {short(value, 500)}{RESET}\r\n"


def error(value: Any) -> str:
    return f"{RED}{BOLD}✗ {short(value, 500)}{RESET}\r\n"


def done(ok: bool, what: str, turns: Any = None, cost: Any = None, seconds: Optional[float] = None,
         tokens: tuple = (None, None), detail: str = "") -> str:
    """■ completed · 2 turns · $0.0385 · 0.2s"""
    parts = [what]
    if isinstance(turns, int):
        parts.append(f"{turns} turn{'s' if turns != 1 else ''}")
    if isinstance(cost, (int, float)):
        parts.append(f"${cost:.4f}")
    tin, tout = tokens
    if isinstance(tin, int) or isinstance(tout, int):
        parts.append(f"{tin if tin is not None else '?'} in / {tout if tout is not None else '?'} out tokens")
    if isinstance(seconds, (int, float)):
        parts.append(f"{seconds:.1f}s")
    colour = GREEN if ok else RED
    head = f"{colour}{BOLD}■ {' · '.join(parts)}{RESET}\r\n"
    return head + (lines(detail, colour, "  ") if detail and not ok else "")


def sent(value: str) -> str:
    """What orchestra typed to the agent (a task, a summary for the primary)."""
    return f"{MAGENTA}» {short(value, 300)}{RESET}\r\n"


def ended(agent: str, status: str, reason: str = "") -> str:
    """The last line of an agent's window: how orchestra judged its end (not how tmux saw `cat` end)."""
    colour = GREEN if status == "completed" else RED
    return f"{RESET}{colour}── orchestra: {agent} {status}{': ' + short(reason, 300) if reason else ''} ──{RESET}\r\n"


def seconds(ms: Any) -> Optional[float]:
    return ms / 1000 if isinstance(ms, (int, float)) and not isinstance(ms, bool) else None
