"""Find prompt, completion, error and question patterns in a stream of plain text.

Like pexpect's searcher, it does not care whether the text comes from a live
agent or a replay. Unlike pexpect's buffer, it keeps only the unfinished last
line and searches each new piece of text plus a seam before it, so the work per
read stays flat however long the agent runs.

A long unfinished line (a JSON event carrying a big file or a long answer) is
kept in pieces, up to MAX_LINE, and handed whole to the whole-line patterns and
the parser when it ends: an agent's result line often puts its cost and verdict
before the words a completion pattern looks for. Past MAX_LINE its start is
dropped; what is searched of it then never begins a line, so a `^` cannot
match in its middle.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

SEAM = 4096  # a match may straddle two reads by up to this many characters
LONG = 65536  # an unfinished line longer than this is kept in pieces (no copy of it per read)
MAX_LINE = 16 * 1024 * 1024  # longest line handed whole to whole-line patterns and the parser


@dataclass
class Match:
    index: int  # which pattern, in the order given in its list
    partial: bool  # from the list that may match an unfinished line
    match: re.Match
    end: int  # absolute offset of the match's end in the stream


class Searcher:
    def __init__(self) -> None:
        self.tail = ""  # the unfinished last line; of a long one, its last SEAM + 1 characters
        self.tail_offset = 0  # absolute offset of tail[0]
        self.consumed = 0  # matches must start at or after this absolute offset
        self._held: list[str] = []  # a long unfinished line's earlier pieces, before tail
        self._held_len = 0
        self._cut = False  # the unfinished line lost its start (longer than MAX_LINE)
        self._buf = ""
        self._buf_offset = 0
        self._from = 0  # where in _buf a match may start: 1 when _buf[0] is not a line's start
        self._new_at = 0
        self._lines_end = 0  # end of the complete lines in _buf
        self.lines_searched = 0  # absolute offset up to which whole lines were searched

    @property
    def end(self) -> int:
        return self.tail_offset + len(self.tail)

    def feed(self, text: str) -> str:
        """Take the next piece of text; return the lines it completed (with their newlines)."""
        nl = text.rfind("\n")
        mid_line = bool(self._held) or self._cut  # tail is the end of a line whose start is elsewhere
        if self._held and nl != -1:  # a long line ends: whole, once
            head = "".join(self._held)
            buf = head + self.tail + text
            base = self.tail_offset - len(head)
            mid_line = self._cut
            self._held, self._held_len = [], 0
        else:
            buf = self.tail + text if self.tail else text
            base = self.tail_offset
        self._buf, self._buf_offset, self._new_at = buf, base, len(buf) - len(text)
        self._from = 1 if mid_line else 0
        if nl == -1:
            lines, tail_at = "", 0
        else:
            tail_at = len(buf) - len(text) + nl + 1
            lines = buf[:tail_at]
            if mid_line:  # the parser gets whole lines only: not what is left of a cut one
                lines = lines[lines.find("\n") + 1:]
            self._cut = False
        self._lines_end = tail_at
        tail = buf[tail_at:] if tail_at else buf
        if len(tail) > LONG or (self._held and nl == -1):
            keep = SEAM + 1  # one character more than the seam: the context that tells a line's start
            self._held.append(tail[:-keep])
            self._held_len += len(tail) - keep
            tail_at += len(tail) - keep
            tail = tail[-keep:]
            if self._held_len + keep > MAX_LINE:
                self._held, self._held_len, self._cut = [], 0, True
        self.tail, self.tail_offset = tail, base + tail_at
        return lines

    def search(self, partial: Sequence[Optional[re.Pattern]],
               whole: Sequence[Optional[re.Pattern]] = ()) -> Optional[Match]:
        """The earliest match not searched or consumed yet.

        `partial` patterns (prompts, questions) may match the unfinished last
        line; `whole` patterns (completion, errors) only complete lines, so the
        line is all there when they fire, however long it is.
        """
        buf, base = self._buf, self._buf_offset
        best: Optional[Match] = None
        start = max(self._new_at - SEAM, self.consumed - base, self._from)
        for i, pattern in enumerate(partial):
            if pattern is not None:
                m = pattern.search(buf, start)
                if m and (best is None or m.start() < best.match.start()):
                    best = Match(i, True, m, base + m.end())
        if self._lines_end:
            start = max(self.lines_searched - base, self.consumed - base, self._from)
            for i, pattern in enumerate(whole):
                if pattern is not None:
                    word = needle(pattern)
                    if word and buf.find(word, start, self._lines_end) == -1:
                        continue  # a substring test is many times cheaper than the regex
                    m = pattern.search(buf, start, self._lines_end)
                    if m and (best is None or m.start() < best.match.start()):
                        best = Match(i, False, m, base + m.end())
        return best

    def searched(self) -> None:
        """Every complete line so far has been searched by the whole-line patterns."""
        if self._lines_end:
            self.lines_searched = max(self.lines_searched, self._buf_offset + self._lines_end)

    def consume(self, upto: int) -> None:
        self.consumed = max(self.consumed, upto)

    def consume_all(self) -> None:
        self.consume(self._buf_offset + len(self._buf))


def multiline(pattern: Optional[re.Pattern]) -> Optional[re.Pattern]:
    """The pattern with ^ and $ meaning a line's start and end: the searcher hands it many lines at once,
    so without re.M a `^` pattern would match only when its line happened to begin a read."""
    if pattern is None or pattern.flags & re.M:
        return pattern
    return re.compile(pattern.pattern, pattern.flags | re.M)


@lru_cache(maxsize=256)
def needle(pattern: re.Pattern) -> str:
    """A literal every match must contain (the longest run of literal characters at the pattern's top
    level), or "". Looked for before the regex runs: a line without it is never tried, so a pattern
    like `.*DONE`, which costs the square of a line's length where it fails, costs a find() instead."""
    if pattern.flags & re.IGNORECASE:
        return ""
    try:
        from re import _parser as sre_parse  # Python 3.11+
    except ImportError:  # pragma: no cover
        import sre_parse  # type: ignore
    try:
        items = list(sre_parse.parse(pattern.pattern, pattern.flags))
    except Exception:  # an exotic pattern: no shortcut
        return ""
    best, run = "", []
    for op, arg in [*items, (None, None)]:
        if str(op) == "LITERAL":
            run.append(chr(arg))
            continue
        if len(run) > len(best):
            best = "".join(run)
        run = []
    return best if len(best) >= 3 else ""
