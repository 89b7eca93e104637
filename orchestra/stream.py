"""From an agent's bytes to plain lines, parsed as they pass: the same for live agents, replays and saved files."""
from __future__ import annotations

import codecs
import collections
import re

from .ansi import Cleaner
from .parsers import Parser
from .searcher import Searcher

LAST_LINES = 20
_PRINTABLE = bytes(range(32, 127))
_PLAIN_CONTROLS = b"\t\r\n"
_LONE_CR = re.compile(rb"\r(?!\n)")


class Stream:
    """Decode (UTF-8, bad bytes replaced), strip escapes, cut into lines, feed the parser."""

    def __init__(self, parser: Parser):
        self.parser = parser
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.cleaner = Cleaner()
        self.searcher = Searcher()
        self._recent: collections.deque = collections.deque(maxlen=LAST_LINES)  # blocks, newest last
        self.plain = False  # the last piece fed was printable ASCII, tabs, CRs and LFs only (see feed)
        self._undecoded = False  # the decoder holds the start of a character cut by a read

    def feed(self, data: bytes, final: bool = False) -> tuple[str, str]:
        """Returns the decoded text (for the recording) and the lines it completed."""
        # Most output is lines of printable ASCII ending in CR LF: for those, deleting the
        # CRs is all the cleaning there is, and a byte replace does it faster than the
        # general strip; the transcript's JSON then needs no search for what to escape
        # (`plain`). One bytes.translate tells such output apart.
        if data and not final and not self._undecoded and not self.cleaner.carry \
                and not data.translate(None, _PRINTABLE).translate(None, _PLAIN_CONTROLS) \
                and _lone_cr_at_most_last(data):
            self.plain = True
            text = data.decode("ascii")
            if data.endswith(b"\r"):  # maybe the first half of a CR LF: the next read tells
                data, self.cleaner.carry = data[:-1], "\r"
            clean = data.replace(b"\r", b"").decode("ascii")
        else:
            self.plain = False
            text = self.decoder.decode(data, final)
            self._undecoded = bool(self.decoder.getstate()[0])
            clean = self.cleaner.feed(text)
        if final:
            clean += self.cleaner.flush()
            if not clean.endswith("\n") and (clean or self.searcher.tail):
                clean += "\n"  # the unfinished last line is a line now
        lines = self.searcher.feed(clean)
        if lines:
            self.parser.feed(lines)
            self._recent.append(lines)  # cut into lines only when someone asks
        return text, lines

    @property
    def last_lines(self) -> list[str]:
        """The last non-empty lines, newest last."""
        lines = [line.rstrip()[:500] for line in "".join(self._recent).split("\n") if line.strip()]
        return lines[-LAST_LINES:]

    @property
    def latest(self) -> str:
        """The newest line, finished or not: for a status line."""
        tail = self.searcher.tail.strip()
        if tail:
            return tail[-200:]
        last = self.last_lines
        return last[-1] if last else ""


def _lone_cr_at_most_last(data: bytes) -> bool:
    """No CR in data is followed by anything but LF (a CR at the very end may be half of a CR LF)."""
    m = _LONE_CR.search(data)
    return m is None or m.start() == len(data) - 1
