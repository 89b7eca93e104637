"""Keeping a Mac awake while a run works: `caffeinate -i -w <orchestra's pid>` holds off idle sleep (a
closed lid still sleeps) until released, or until orchestra ends however it ends (-w)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

MAC = sys.platform == "darwin"
_said = False  # said once a process: an MCP server makes many runs


@contextmanager
def held(say: Callable[[str], None]) -> Iterator[None]:
    """Idle sleep held off for the duration, where caffeinate exists (macOS); elsewhere nothing."""
    global _said
    caffeinate = shutil.which("caffeinate") if MAC else None
    if caffeinate is None:
        yield
        return
    try:
        hold = subprocess.Popen([caffeinate, "-i", "-w", str(os.getpid())], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        yield
        return
    if not _said:
        _said = True
        say("☕ keeping the Mac awake while the agents work (caffeinate -i; a closed lid still sleeps)")
    try:
        yield
    finally:
        hold.terminate()
        hold.wait()
