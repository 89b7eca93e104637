"""From an agent's bytes to plain lines, parsed as they pass: the same for live agents, replays and saved files."""
from __future__ import annotations

import codecs
import collections
from typing import Optional

from .ansi import Cleaner
from .parsers import Parser
from .redact import Redactor
from .searcher import Searcher

LAST_LINES = 20
LAST_CHARS = 16384  # of a block of lines, what last_lines may need (a block can be one 16 MB line)


class Stream:
    """Decode (UTF-8, bad bytes replaced), strip escapes, cut into lines, feed the parser."""

    def __init__(self, parser: Parser):
        self.parser = parser
        self._undecoded_bytes = b""  # the start of a character cut by a read (what an incremental decoder holds)
        self.cleaner = Cleaner()
        self.searcher = Searcher()
        self._recent: collections.deque = collections.deque(maxlen=LAST_LINES)  # blocks, newest last
        self.plain = False  # the last piece fed was printable ASCII, tabs, CRs and LFs only (see feed)
        self.clean = ""  # the cleaned text of the last piece fed

    def feed(self, data: bytes, final: bool = False) -> tuple[str, str]:
        """Returns the decoded text (for the recording) and the lines it completed."""
        # plain output (printable ASCII, tabs, CR LF) is cleaned on its bytes, and its
        # transcript JSON then needs no search for what to escape (`plain`)
        clean = None if final or self._undecoded_bytes else self.cleaner.feed_plain(data)
        self.plain = clean is not None
        if self.plain:
            text = data.decode("ascii")
        else:
            # what codecs' incremental decoder does, without its Python layer: a read's cut character is kept
            # for the next, bad bytes become U+FFFD
            if self._undecoded_bytes:
                data = self._undecoded_bytes + data
            text, used = codecs.utf_8_decode(data, "replace", final)
            self._undecoded_bytes = data[used:]
            clean = self.cleaner.feed(text)
        if final:
            clean += self.cleaner.flush()
            if not clean.endswith("\n") and (clean or self.searcher.tail):
                clean += "\n"  # the unfinished last line is a line now
        self.clean = clean
        if self.parser.sees_screen:
            self.parser.feed_screen(text)
        lines = self.searcher.feed(clean)
        if lines:
            self.parser.feed(lines)
            self._recent.append(lines[-LAST_CHARS:])  # cut into lines only when someone asks
        return text, lines

    @property
    def last_lines(self) -> list[str]:
        """The last non-empty lines, newest last."""
        return self.lines_shown()

    @property
    def latest(self) -> str:
        """The newest line, finished or not: for a status line."""
        return self.latest_shown()

    # For a person, masked before a long line is cut: a key that a cut left in pieces would no
    # longer be whole for the mask, and a JSON agent's lines are long.

    def lines_shown(self, redactor: Optional[Redactor] = None) -> list[str]:
        """last_lines, masked as one block (a key a hard wrap put on two lines is whole in it)."""
        text = "".join(self._recent)
        lines = [line.rstrip()[:500] for line in (redactor.text(text) if redactor else text).split("\n")
                 if line.strip()]
        return lines[-LAST_LINES:]

    def latest_shown(self, redactor: Optional[Redactor] = None) -> str:
        tail = self.searcher.tail.strip()
        if tail:  # a line under way: it may end in the start of a key
            return (redactor.text(tail[-LAST_CHARS:], more=True) if redactor else tail)[-200:]
        last = self.lines_shown(redactor)
        return last[-1] if last else ""
