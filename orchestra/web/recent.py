"""Where a terminal can start a long transcript and still draw its current screen right.

A player fed a transcript from its first byte does work in proportion to all the agent ever wrote (20 MB
froze a tab for a minute); a person opening a live terminal wants its last screen. So the page's terminal
starts at a recent point: the last full-screen clear in the transcript's last LIVE_TAIL bytes (what
follows draws the whole screen), else the first line start there (line output: the last lines fill the
screen). What a fresh terminal would lack there is the modes set before it and still in force (the
alternate screen, a scroll region, autowrap, the cursor's visibility, origin mode): replayed first.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import BinaryIO

LIVE_TAIL = 262144  # bytes of transcript at most before the start point a terminal is fed (about 30 ms of a player's work)
SCAN = 1 << 20  # bytes read at a time looking back for the modes in force
MODES_BACK = 64 << 20  # how far back at most (a fast search: about 0.1 s here)
REGION_BACK = 1 << 20  # ... for a scroll region (a regular expression: about 8 ms a MB)
# A full-screen clear: erase all, a terminal reset, the alternate screen entered (cleared), home and erase below.
CLEAR = re.compile(r"\x1b\[2J|\x1bc|\x1b\[\?1049h|\x1b\[(?:1;1)?H\x1b\[0?J")
# In the transcript's JSON text (an escape is written \u001b, as json.dumps and asciinema write it): a DEC
# mode set or reset, a scroll region (DECSTBM), a terminal reset (before which nothing is in force).
PRIVATE = b"\\u001b[?"
PRIVATE_MODE = re.compile(rb"\\u001b\[\?([0-9;]*)([hl])")
REGION = re.compile(rb"\\u001b\[([0-9;]*)r")
RESET = b"\\u001bc"
KINDS = {"1049": "screen", "1047": "screen", "47": "screen", "7": "autowrap", "25": "cursor", "6": "origin"}
ORDER = ("screen", "region", "autowrap", "cursor", "origin")  # the screen first: the others apply to it


@dataclass
class Start:
    offset: int  # of the first event sent, in the file
    cut: int  # characters of its text left out (up to a line start)
    skipped: int  # bytes of transcript before it


def recent_start(fh: BinaryIO, body: int, size: int, clears: bool = True) -> Start:
    """The start point of a transcript whose events begin at byte `body` and end at `size` (the file's
    size now). clears: the output is drawn raw (a clear counts); a rendering is lines only."""
    if size - body <= LIVE_TAIL:
        return Start(body, 0, 0)
    low = size - LIVE_TAIL
    fh.seek(low)
    data = fh.read(LIVE_TAIL)
    while b"\n" not in data[:-1] and low > body:  # one event longer than the tail: back to its start
        low = max(body, low - SCAN)
        fh.seek(low)
        data = fh.read(size - low)
    first = 0 if low == body else data.index(b"\n") + 1
    events: list[tuple[int, str]] = []
    at = low + first
    for line in data[first:].split(b"\n")[:-1]:  # whole lines: the last may be being written
        try:
            _, kind, text = json.loads(line)
        except (ValueError, TypeError):
            text, kind = "", ""
        events.append((at, text if kind == "o" and isinstance(text, str) else ""))
        at += len(line) + 1
    if not events:
        return Start(body, 0, 0)
    for offset, text in reversed(events) if clears else ():
        if CLEAR.search(text):
            return Start(offset, 0, offset - body)
    for offset, text in events:
        if "\n" in text:
            return Start(offset, text.index("\n") + 1, offset - body)
    return Start(events[0][0], 0, events[0][0] - body)


def modes_at(fh: BinaryIO, body: int, offset: int) -> str:
    """What puts a fresh terminal in the modes in force at `offset`: the last setting of each before it,
    looking back a SCAN at a time until each is found, a terminal reset, the first event, or MODES_BACK
    bytes (a scroll region: REGION_BACK; only it needs a costly search)."""
    found: dict[str, str] = {}
    end, floor = offset, max(body, offset - MODES_BACK)
    while end > floor and len(found) < len(ORDER):
        low = max(floor, end - SCAN)
        fh.seek(low)
        data = fh.read(min(offset, end + 64) - low)
        own = end - low  # a sequence that starts at `own` or later was looked at in the chunk after
        reset = data.rfind(RESET, 0, own + len(RESET) - 1)
        first = max(reset, 0)
        if offset - end < REGION_BACK and "region" not in found:
            regions = [m for m in REGION.finditer(data, first) if m.start() < own]
            if regions:
                found["region"] = f"\x1b[{regions[-1].group(1).decode()}r"
        at = own + len(PRIVATE) - 1
        while (at := data.rfind(PRIVATE, first, at)) >= 0:  # (a few: a program sets its modes now and then)
            m = PRIVATE_MODE.match(data, at)
            at += len(PRIVATE) - 1  # the next one looked for starts before this one
            for param in reversed(m.group(1).decode().split(";")) if m else ():
                if param in KINDS:
                    found.setdefault(KINDS[param], f"\x1b[?{param}{m.group(2).decode()}")
        if reset >= 0:
            break
        end = low
    return _sequences(found)


def _sequences(found: dict[str, str]) -> str:
    return "".join(found[k] for k in ORDER if k in found)


def file_size(fh: BinaryIO) -> int:
    return os.fstat(fh.fileno()).st_size
