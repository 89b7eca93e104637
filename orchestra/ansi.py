"""Turn terminal output into plain text lines: escape sequences out, carriage returns as line breaks."""
from __future__ import annotations

import re

# Cursor-forward and column moves lay out words on a line ("Done:\x1b[9Gcreated"): keep a space.
_CURSOR_GAP = re.compile(r"\x1b\[[0-9;?]*[CG]")
# every alternative starts with ESC, so the regex engine skips ahead to each ESC
_ESCAPES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]"         # CSI
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)"     # OSC (window titles, hyperlinks)
    r"|[P^_][^\x1b]*\x1b\\"              # DCS, PM, APC
    r"|[()*+][0-9A-Za-z]"                # charset selection
    r"|[@-Z\\-_=>78])"                   # two-byte escapes
)
# Other control characters and stray ESCs go, and a lone carriage return or a
# backspace (a redraw) is a line break; one str.translate does it all, ten times faster than a regex.
_CONTROLS = {c: None for c in [*range(0, 9), 11, 12, *range(14, 32), 127]}
_CONTROLS[13] = "\n"
_CONTROLS[8] = "\n"  # backspaces redraw a spinner in place ("░█\b\b  \b\bError:"): a break too
# With no lone carriage return (the usual case), deleting every "\r" turns "\r\n" into
# "\n" in the same single pass: half the cost of a replace() before the translate().
_CONTROLS_NO_CR = dict(_CONTROLS)
_CONTROLS_NO_CR[13] = None
_LONE_CR = re.compile("\r(?!\n)")
# The same two tables for bytes. str.translate is fast on ASCII only: on text with a box-drawing
# character in it, it costs 66 us per 4 KB against 7 for the same table on the UTF-8 bytes
# (measured here), and ASCII control bytes never occur inside a UTF-8 multi-byte character.
_B_BREAKS = bytes.maketrans(b"\x08\r", b"\n\n")
_B_DELETE = bytes(c for c, to in _CONTROLS.items() if to is None)
_B_DELETE_NO_CR = _B_DELETE + b"\r"
# the start of a sequence that the next read may finish
_UNFINISHED = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[P^_][^\x1b]*\x1b?|[()*+])?\Z")
_MAX_ESCAPE = 2048  # an unfinished escape longer than this is noise, not a sequence


def strip(text: str) -> str:
    """Plain text of a complete piece of output."""
    if "\x1b" in text:
        text = _ESCAPES.sub("", _CURSOR_GAP.sub(" ", text))
    no_cr = _LONE_CR.search(text) is None
    if text.isascii():
        return text.translate(_CONTROLS_NO_CR) if no_cr else text.replace("\r\n", "\n").translate(_CONTROLS)
    data = text.encode("utf-8", "surrogatepass")
    if no_cr:
        data = data.translate(_B_BREAKS, _B_DELETE_NO_CR)
    else:
        data = data.replace(b"\r\n", b"\n").translate(_B_BREAKS, _B_DELETE)
    return data.decode("utf-8", "surrogatepass")


class Cleaner:
    """strip() for a stream: an escape sequence cut by a read is held until it is whole."""

    def __init__(self) -> None:
        self.carry = ""

    def feed(self, text: str) -> str:
        if self.carry:
            text, self.carry = self.carry + text, ""
        esc = text.rfind("\x1b", max(len(text) - _MAX_ESCAPE, 0))
        if esc != -1 and _UNFINISHED.match(text, esc):
            text, self.carry = text[:esc], text[esc:]
        if text.endswith("\r"):  # maybe the first half of "\r\n"
            text, self.carry = text[:-1], "\r" + self.carry
        return strip(text)

    def flush(self) -> str:
        out, self.carry = self.carry, ""
        return strip(out)
