"""A small virtual terminal: what a full-screen agent's output leaves on its screen.

A TUI (Claude Code's) draws with cursor moves and rewrites only the cells that
changed, and redraws old turns whenever its screen scrolls: the plain text of its
output (ansi.strip) holds its words cut up, repeated and mixed with spinners. Played
into a grid of cells, the same output gives the rows a person sees. Only what such
TUIs use is handled: cursor moves, erasing, scroll regions, the alternate screen,
the window title; colours and modes are ignored.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterator

HISTORY = 5000  # rows kept that scrolled off the top of the main screen

# a control character, an escape sequence (CSI; OSC, DCS, PM, APC strings; charset; two-byte), or printable text
_TOKEN = re.compile(
    r"\x1b\[([0-?]*)[ -/]*([@-~])"
    r"|\x1b([\]P^_])([^\x07\x1b]*)(?:\x07|\x1b\\)"
    r"|\x1b[()*+]."
    r"|\x1b(.)"
    r"|([\x00-\x1f\x7f])"
    r"|([^\x00-\x1f\x7f\x1b]+)", re.S)
# what a read may leave unfinished at its end, held for the next one
_UNFINISHED = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|[\]P^_][^\x07\x1b]{0,4096}\x1b?|[()*+])?\Z")


def width(ch: str) -> int:
    """Cells a character takes: 2 for East Asian wide ones (and emoji), 0 for combining marks."""
    if ch < "\u0300":
        return 1
    if unicodedata.combining(ch) or ch in "\u200b\u200c\u200d\ufe0e\ufe0f":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


class Screen:
    def __init__(self, cols: int = 120, rows: int = 40):
        self.cols, self.rows = max(1, cols), max(1, rows)
        self.grid = self._blank_grid()
        self.history: list[str] = []  # of the main screen, oldest first
        self.saved_main: list[list[str]] | None = None  # the main screen while the alternate one shows
        self.x = self.y = 0  # x == cols: a character written in the last column waits to wrap
        self.top, self.bottom = 0, self.rows - 1  # the scroll region
        self.saved = (0, 0)
        self.title = ""
        self.carry = ""

    # -- reading ------------------------------------------------------------

    def row(self, y: int) -> str:
        return "".join(self.grid[y]).rstrip()

    def lines(self) -> Iterator[str]:
        """Every row, newest (the screen's bottom) first, then the history above it (the main screen's:
        the alternate screen has none)."""
        for y in range(self.rows - 1, -1, -1):
            yield self.row(y)
        if self.saved_main is None:
            yield from reversed(self.history)

    def text(self) -> str:
        """The history and the screen, top to bottom (for a person, or a test)."""
        return "\n".join([*self.history, *(self.row(y) for y in range(self.rows))]).rstrip() + "\n"

    # -- writing ------------------------------------------------------------

    def feed(self, text: str) -> None:
        if self.carry:
            text, self.carry = self.carry + text, ""
        esc = text.rfind("\x1b", max(0, len(text) - 4200))
        if esc != -1 and _UNFINISHED.match(text, esc):
            text, self.carry = text[:esc], text[esc:]
        for m in _TOKEN.finditer(text):
            printable = m.group(7)
            if printable is not None:
                self._put(printable)
            elif m.group(6) is not None:
                self._control(m.group(6))
            elif m.group(2) is not None:
                self._csi(m.group(1), m.group(2))
            elif m.group(3) is not None:
                if m.group(3) == "]" and m.group(4)[:2] in ("0;", "2;"):
                    self.title = m.group(4)[2:]
            elif m.group(5) is not None:
                self._escape(m.group(5))

    def _blank_grid(self) -> list[list[str]]:
        return [[" "] * self.cols for _ in range(self.rows)]

    def _put(self, text: str) -> None:
        if text.isascii():  # one cell each: written a row's part at a time
            while text:
                if self.x >= self.cols:
                    self.x = 0
                    self._line_feed()
                n = min(len(text), self.cols - self.x)
                self.grid[self.y][self.x:self.x + n] = text[:n]
                self.x += n
                text = text[n:]
            return
        for ch in text:
            w = width(ch) if ch >= "\u0300" else 1
            if w == 0:
                continue
            if self.x + w > self.cols:  # the pending wrap, or a wide character that does not fit
                self.x = 0
                self._line_feed()
            row = self.grid[self.y]
            row[self.x] = ch
            if w == 2:
                row[self.x + 1] = ""  # the right half of a wide character
            self.x += w

    def _control(self, ch: str) -> None:
        if ch == "\r":
            self.x = 0
        elif ch in "\n\x0b\x0c":
            self._line_feed()
        elif ch == "\b":
            self.x = max(0, min(self.x, self.cols - 1) - 1)
        elif ch == "\t":
            self.x = min(self.cols - 1, (self.x // 8 + 1) * 8)

    def _escape(self, ch: str) -> None:
        if ch == "7":
            self.saved = (self.x, self.y)
        elif ch == "8":
            self.x, self.y = self.saved
        elif ch == "D":
            self._line_feed()
        elif ch == "E":
            self.x = 0
            self._line_feed()
        elif ch == "M":
            if self.y == self.top:
                self._scroll_down(1)
            else:
                self.y = max(0, self.y - 1)
        elif ch == "c":
            self.__init__(self.cols, self.rows)

    def _csi(self, params: str, final: str) -> None:
        private = params.startswith(("?", ">", "<", "="))
        args = [int(p) if p.isdigit() else 0 for p in params.lstrip("?><=").split(";")] if params else []
        n = max(1, args[0]) if args else 1
        if private:
            if final in "hl" and any(a in (47, 1047, 1049) for a in args):
                self._alternate(final == "h")
            return
        x = min(self.x, self.cols - 1)
        if final == "A":
            self.x, self.y = x, max(self.top if self.y >= self.top else 0, self.y - n)
        elif final in "Be":
            self.x, self.y = x, min(self.bottom if self.y <= self.bottom else self.rows - 1, self.y + n)
        elif final in "Ca":
            self.x = min(self.cols - 1, x + n)
        elif final == "D":
            self.x = max(0, x - n)
        elif final == "E":
            self.x, self.y = 0, min(self.rows - 1, self.y + n)
        elif final == "F":
            self.x, self.y = 0, max(0, self.y - n)
        elif final in "G`":
            self.x = min(self.cols, n) - 1
        elif final == "d":
            self.y = min(self.rows, n) - 1
        elif final in "Hf":
            row, col = (args + [0, 0])[:2]
            self.y, self.x = min(self.rows, max(1, row)) - 1, min(self.cols, max(1, col)) - 1
        elif final == "J":
            self._erase_display(args[0] if args else 0)
        elif final == "K":
            self._erase_line(args[0] if args else 0)
        elif final == "X":
            self.grid[self.y][x:x + n] = [" "] * min(n, self.cols - x)
        elif final == "P":
            row = self.grid[self.y]
            del row[x:x + n]
            row.extend([" "] * (self.cols - len(row)))
        elif final == "@":
            row = self.grid[self.y]
            row[x:x] = [" "] * n
            del row[self.cols:]
        elif final == "L" and self.top <= self.y <= self.bottom:
            for _ in range(min(n, self.bottom - self.y + 1)):
                del self.grid[self.bottom]
                self.grid.insert(self.y, [" "] * self.cols)
        elif final == "M" and self.top <= self.y <= self.bottom:
            for _ in range(min(n, self.bottom - self.y + 1)):
                del self.grid[self.y]
                self.grid.insert(self.bottom, [" "] * self.cols)
        elif final == "S":
            for _ in range(min(n, self.rows)):
                self._scroll_up()
        elif final == "T":
            self._scroll_down(n)
        elif final == "r":
            top, bottom = (args + [0, 0])[:2]
            top, bottom = max(1, top) - 1, (min(self.rows, bottom) if bottom else self.rows) - 1
            if top < bottom:
                self.top, self.bottom = top, bottom
                self.x = self.y = 0
        elif final == "s":
            self.saved = (self.x, self.y)
        elif final == "u":
            self.x, self.y = self.saved

    def _alternate(self, on: bool) -> None:
        if on and self.saved_main is None:
            self.saved_main, self.grid = self.grid, self._blank_grid()
        elif not on and self.saved_main is not None:
            self.grid, self.saved_main = self.saved_main, None

    def _line_feed(self) -> None:
        if self.y == self.bottom:
            self._scroll_up()
        elif self.y < self.rows - 1:
            self.y += 1

    def _scroll_up(self) -> None:
        gone = self.grid.pop(self.top)
        self.grid.insert(self.bottom, [" "] * self.cols)
        if self.top == 0 and self.saved_main is None:  # what leaves the main screen stays above it
            self.history.append("".join(gone).rstrip())
            if len(self.history) > HISTORY:
                del self.history[:len(self.history) - HISTORY]

    def _scroll_down(self, n: int) -> None:
        for _ in range(min(n, self.bottom - self.top + 1)):
            del self.grid[self.bottom]
            self.grid.insert(self.top, [" "] * self.cols)

    def _erase_display(self, how: int) -> None:
        if how == 3:
            self.history = []
            return
        if how == 2:
            self.grid = self._blank_grid()
            return
        self._erase_line(how)
        rows = range(self.y + 1, self.rows) if how == 0 else range(0, self.y)
        for y in rows:
            self.grid[y] = [" "] * self.cols

    def _erase_line(self, how: int) -> None:
        row, x = self.grid[self.y], min(self.x, self.cols - 1)
        if how == 0:
            row[x:] = [" "] * (self.cols - x)
        elif how == 1:
            row[:x + 1] = [" "] * (x + 1)
        else:
            self.grid[self.y] = [" "] * self.cols
