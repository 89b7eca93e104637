"""The platform's bounds on what reaches an agent whole: one argument of a program (with all of them and
the environment together), and one line typed at a terminal in canonical (line) mode.

Linux bounds one argument (MAX_ARG_STRLEN, 32 pages) and one typed line (N_TTY_BUF_SIZE, 4096 bytes with
its Enter; its fpathconf says 255, which is not what the kernel keeps). macOS has no bound on one argument,
only ARG_MAX (1 MiB) for the arguments and the environment together, and a terminal keeps MAX_CANON (1024)
bytes of a line, which fpathconf reports.
"""
from __future__ import annotations

import os
import sys

LINUX = sys.platform.startswith("linux")
POINTER = 8  # execve counts a pointer per argument and per variable besides their text (64-bit)

# the most one argument can hold (its closing NUL not counted), and what says so
ARG_BYTES = 32 * os.sysconf("SC_PAGE_SIZE") - 1 if LINUX else os.sysconf("SC_ARG_MAX") - 1
ARG_BOUND = "Linux's MAX_ARG_STRLEN" if LINUX else f"{sys.platform}'s ARG_MAX, for all arguments and the environment together"
ARGV_BYTES = os.sysconf("SC_ARG_MAX")  # all arguments and the environment together, pointers included

LINE_BYTES = 4096 if LINUX else 1024  # what one typed line holds, its Enter included, where the terminal does not say
POSIX_MAX_CANON = 255  # the least any terminal keeps


def line_bytes(fd: int) -> tuple[int, str]:
    """What a terminal in canonical mode keeps of one typed line (its Enter included), and what says so."""
    if LINUX:
        return LINE_BYTES, "Linux's N_TTY_BUF_SIZE"
    try:
        return os.fpathconf(fd, "PC_MAX_CANON"), "the terminal's MAX_CANON"
    except (OSError, ValueError):
        return POSIX_MAX_CANON, "POSIX's least MAX_CANON"


def exec_bytes(argv: list[str], env: dict) -> int:
    """What execve counts of a program's arguments and environment against ARG_MAX."""
    size = sum(len(a.encode("utf-8", "surrogateescape")) + 1 + POINTER for a in argv)
    return size + sum(len(f"{k}={v}".encode("utf-8", "surrogateescape")) + 1 + POINTER for k, v in env.items())
