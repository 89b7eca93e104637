"""From an agent's bytes to plain lines, parsed as they pass: the same for live agents, replays and saved files."""
from __future__ import annotations

import codecs
import collections

from .ansi import Cleaner
from .parsers import Parser
from .searcher import Searcher

LAST_LINES = 20


class Stream:
    """Decode (UTF-8, bad bytes replaced), strip escapes, cut into lines, feed the parser."""

    def __init__(self, parser: Parser):
        self.parser = parser
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.cleaner = Cleaner()
        self.searcher = Searcher()
        self.last_lines: collections.deque = collections.deque(maxlen=LAST_LINES)

    def feed(self, data: bytes, final: bool = False) -> tuple[str, str]:
        """Returns the decoded text (for the recording) and the lines it completed."""
        text = self.decoder.decode(data, final)
        clean = self.cleaner.feed(text)
        if final:
            clean += self.cleaner.flush()
            if not clean.endswith("\n") and (clean or self.searcher.tail):
                clean += "\n"  # the unfinished last line is a line now
        lines = self.searcher.feed(clean)
        if lines:
            self.parser.feed(lines)
            for line in lines.rsplit("\n", LAST_LINES + 1)[-LAST_LINES - 1:]:
                if line.strip():
                    self.last_lines.append(line.rstrip()[:500])
        return text, lines

    @property
    def latest(self) -> str:
        """The newest line, finished or not: for a status line."""
        tail = self.searcher.tail.strip()
        return tail[-200:] if tail else (self.last_lines[-1] if self.last_lines else "")
