"""Replays of recorded sessions.

`python -m orchestra.replay FILE.cast --speed X` is a replay agent: a child
process that re-emits a recording's output with its timing scaled, and that
waits for input wherever the recording has "i" events, so a recording can
stand in for a real agent in a profile and exercise the whole pipeline.
"""
from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import time
import tty
from pathlib import Path
from typing import Callable, Iterator, Optional

from .transcript import event_bytes, read_cast


def steps(path: Path) -> Iterator[tuple[float, str, str]]:
    """("o", text) and ("i", input) steps with the delay before each; adjacent inputs are one step."""
    last_t = 0.0
    pending_input: Optional[list] = None
    for ev in read_cast(path).events():
        if ev.kind == "i":
            if pending_input is None:
                pending_input = [ev.time - last_t, ""]
            pending_input[1] += ev.data
            last_t = ev.time
            continue
        if pending_input is not None:
            yield pending_input[0], "i", pending_input[1]
            pending_input = None
        if ev.kind == "o":
            yield max(ev.time - last_t, 0.0), "o", ev.data
            last_t = ev.time
    if pending_input is not None:
        yield pending_input[0], "i", pending_input[1]


def play(path: Path, write: Callable[[bytes], None], speed: float = 1.0,
         wait_input: Optional[Callable[[str], None]] = None, max_delay: Optional[float] = None) -> None:
    """Re-emit a recording; speed 0 means no delays at all."""
    due = time.monotonic()
    for delay, kind, data in steps(path):
        if speed > 0:
            delay = delay / speed
            if max_delay is not None:
                delay = min(delay, max_delay)
            due += delay
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # the recording's own timing, not a wait for an event
        if kind == "o":
            write(event_bytes(data))
        elif wait_input is not None:
            wait_input(data)
            due = time.monotonic()


def _wait_for_input(recorded: str) -> None:
    """Block until the input that the recording shows arrives: up to its final Enter, if it had one."""
    end = recorded[-1:] if recorded[-1:] in ("\r", "\n") else ""
    got = b""
    while True:
        select.select([0], [], [])
        chunk = os.read(0, 65536)
        if not chunk:
            return
        got += chunk
        if not end or b"\r" in got or b"\n" in got:
            return


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orchestra.replay",
                                 description="Re-emit a recorded agent session, as a stand-in agent.")
    ap.add_argument("cast", type=Path)
    ap.add_argument("--speed", type=float, default=1.0, help="timing factor; 0 = no delays")
    ap.add_argument("--max-delay", type=float, default=None, help="cap any single pause (seconds)")
    ap.add_argument("--task", default=None, help="accepted for profiles that pass a task in argv; not used")
    ap.add_argument("--exit-code", type=int, default=0)
    args = ap.parse_args(argv)
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)  # bytes out exactly as recorded, input unechoed, as a TUI agent would
    out = sys.stdout.buffer
    def write(data: bytes) -> None:
        out.write(data)
        out.flush()
    try:
        play(args.cast, write, args.speed, _wait_for_input, args.max_delay)
    except (BrokenPipeError, KeyboardInterrupt):
        return 1
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
