"""Turn terminal output into plain text lines: escape sequences out, carriage returns as line breaks."""
from __future__ import annotations

import re
from typing import Optional

# Cursor-forward and column moves lay out words on a line ("Done:\x1b[9Gcreated"): keep a space.
_CURSOR_GAP = re.compile(r"\x1b\[[0-9;?]*[CG]")
_MOVES = re.compile(r"\x1b\[[0-?]*[ -/]*[CG]")  # the other sequences that end in C or G
# Strings (OSC: titles, hyperlinks; DCS, PM, APC) end at BEL or ST. One that never ends (a title
# cut short, binary output) would hide everything after it, a completion line too: as terminals
# bound what such a string may hold, it also ends at a line feed and after MAX_STRING characters.
MAX_STRING = 4096
# every alternative starts with ESC, so the regex engine skips ahead to each ESC. A cursor move (CSI
# ending in C or G) is not one of them: strip() takes the others out first, then turns the moves (now
# the only ESCs left, as a rule) into gaps in a second pass that costs little, instead of a second pass
# over every escape (one pass with a function for its replacement would cost more than two).
_ESCAPES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-BD-FH-~]"  # CSI, but a cursor move (C, G): see _MOVES
    r"|[\]P^_][^\x07\x1b\n]{0,%d}(?:\x07|\x1b\\)?"  # OSC, DCS, PM, APC
    r"|[()*+][0-9A-Za-z]"                # charset selection
    r"|[@-Z\\-_=>78])" % MAX_STRING        # two-byte escapes
)
# A TUI's redraw (Ink's log-update) erases the last frame's lines with an "erase line, cursor up" pair for
# each, all on one line: one str.replace takes them out four times faster than the regex does (8 against
# 2 us for 40 of them, measured here).
_ERASE_UP = "\x1b[2K\x1b[1A"
# Other control characters and stray ESCs go, and a lone carriage return or a backspace
# (a redraw: "░█\b\b  \b\bError:") is a line break. One bytes.translate on the UTF-8 text
# does it all: ASCII control bytes never occur inside a multi-byte character, and
# str.translate is as fast only on all-ASCII text (66 against 7 us per 4 KB with one
# box-drawing character in it, measured here).
_BREAKS = bytes.maketrans(b"\x08\r", b"\n\n")
_DELETE = bytes([*range(0, 8), 11, 12, *range(14, 32), 127])
# With no lone carriage return (the usual case), deleting every "\r" turns "\r\n" into
# "\n" in the same single pass: half the cost of a replace() before the translate().
_DELETE_WITH_CR = _DELETE + b"\r"
_LONE_CR = re.compile(rb"\r(?!\n)")
# Printable ASCII, tabs, CRs and LFs: output whose cleaning is deleting its CRs (Cleaner.feed_plain)
_PLAIN = bytes(range(32, 127)) + b"\t\r\n"
# the start of a sequence that the next read may finish
_UNFINISHED = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|[\]P^_][^\x07\x1b\n]{0,%d}\x1b?|[()*+])?\Z" % MAX_STRING)
_MAX_ESCAPE = MAX_STRING + 8  # an unfinished escape longer than this is noise, not a sequence


# The same five steps in C (orchestra/_cclean.c: one pass over the text, as a rule), built by pip where it
# can be (setup.py): 7 against 53-55 us per 4 KB of ANSI or TUI output (bench/per_read.py). Without it, the
# Python below.
try:
    from ._cclean import clean as _native
except ImportError:  # pragma: no cover (no compiler at install time)
    _native = None


def native() -> bool:
    """Whether the C cleaner does the cleaning here (orchestra doctor says which)."""
    return _native is not None


def strip(text: str) -> str:
    """Plain text of a complete piece of output."""
    if _native is not None:
        return _native(text)
    return _controls(_unescape(text) if "\x1b" in text else text)


def _unescape(text: str) -> str:
    """The text without its escape sequences (a cursor gap left as a space). No sequence spans a line
    feed, so this is the same line by line."""
    if _ERASE_UP in text:
        text = text.replace(_ERASE_UP, "")
    text = _ESCAPES.sub("", text)
    if "\x1b" in text:
        text = _CURSOR_GAP.sub(" ", text)
        if "\x1b" in text:
            text = _MOVES.sub("", text)
    return text


def _controls(text: str) -> str:
    """The text without control characters, a lone CR or a backspace read as a line break."""
    data = text.encode("utf-8", "surrogatepass")
    if _LONE_CR.search(data) is None:
        data = data.translate(_BREAKS, _DELETE_WITH_CR)
    else:
        data = data.replace(b"\r\n", b"\n").translate(_BREAKS, _DELETE)
    return data.decode("utf-8", "surrogatepass")


# A TUI redraws its screen (Ink: erase the frame's lines, draw them all again), and most lines of a frame
# are the lines of the frame before: a read's lines are looked up among those cleaned lately, whole (escapes
# and control characters out), and only the others are cleaned. A line is the same clean wherever it is in
# a read: a "\r" at its end is half of a CR LF (a read whose last line ends in one is cleaned whole), and
# no escape sequence spans a line feed. Output whose lines do not come back is cleaned whole, trying the
# lines again every LINES_RETRY reads.
SEEN_LINES = 1024  # lines kept, cleared when full
SEEN_LINE = 1024  # characters: a read with a longer line is cleaned whole
LINES_MIN = 8  # lines in a read, at least, for the lookup to pay
LINES_RETRY = 64


class Cleaner:
    """strip() for a stream: an escape sequence cut by a read is held until it is whole."""

    def __init__(self) -> None:
        self.carry = ""
        self._seen: dict[str, str] = {}  # a line as written -> the same clean
        self._whole = 0  # reads to clean whole before looking lines up again
        self._missed = 0  # reads in a row whose lines were mostly not seen before

    def feed(self, text: str) -> str:
        if self.carry:
            text, self.carry = self.carry + text, ""
        esc = text.rfind("\x1b", max(len(text) - _MAX_ESCAPE, 0))
        if esc != -1 and _UNFINISHED.match(text, esc):
            text, self.carry = text[:esc], text[esc:]
        if text.endswith("\r"):  # maybe the first half of "\r\n"
            text, self.carry = text[:-1], "\r" + self.carry
        if _native is not None:  # faster whole than the lines looked up
            return _native(text)
        if "\x1b" not in text:
            return _controls(text)
        if self._whole or text.count("\n") < LINES_MIN:
            self._whole = max(0, self._whole - 1)
            return _controls(_unescape(text))
        return self._lines(text)

    def _lines(self, text: str) -> str:
        lines = text.split("\n")
        if lines[-1].endswith("\r"):  # the first of "\r\r" at the end (feed holds the second): a lone CR
            return _controls(_unescape(text))
        seen = self._seen
        got = list(map(seen.get, lines))
        misses = got.count(None)
        if not misses:
            return "\n".join(got)
        # where they are: a few, as a rule (the unfinished lines at the read's ends, a line that changed)
        at = [-1]
        for _ in range(misses):
            at.append(got.index(None, at[-1] + 1))
        del at[0]
        missing = [lines[i] for i in at]
        if max(map(len, missing)) > SEEN_LINE:
            return _controls(_unescape(text))
        if misses * 2 > len(lines):  # mostly new lines, twice in a row: not a redraw
            self._missed += 1
            if self._missed > 1:
                self._whole, self._missed = LINES_RETRY, 0
        else:
            self._missed = 0
        # their escapes out in one pass (it keeps every line feed), and their control characters; line by
        # line where one is a lone CR or a backspace (a line break: the lines could not be told apart again)
        unescaped = _unescape("\n".join([line[:-1] if line.endswith("\r") else line for line in missing]))
        if "\r" in unescaped or "\b" in unescaped:
            cleaned = [_controls(line) for line in unescaped.split("\n")]
        else:
            cleaned = _controls(unescaped).split("\n")
        if len(seen) + misses > SEEN_LINES:
            seen.clear()
        seen.update(zip(missing, cleaned))
        for i, line in zip(at, cleaned):
            got[i] = line
        return "\n".join(got)

    def feed_plain(self, data: bytes) -> Optional[str]:
        """feed() for a read of printable ASCII, tabs and CR LF only, or None for any other read.

        Most output is such lines, and deleting their CRs is all the cleaning they need: one
        bytes.translate tells them apart and one bytes.replace cleans them, faster than strip()."""
        if self.carry or b"\x1b" in data or data.translate(None, _PLAIN):  # (an ESC is found soonest)
            return None
        lone = _LONE_CR.search(data)
        if lone is not None and lone.start() != len(data) - 1:
            return None
        if lone is not None:  # a CR at the very end, maybe the first half of "\r\n"
            data, self.carry = data[:-1], "\r"
        return data.replace(b"\r", b"").decode("ascii")

    def flush(self) -> str:
        out, self.carry = self.carry, ""
        return strip(out)
