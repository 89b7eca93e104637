"""tmux as a viewer only: each agent's raw bytes are streamed into a window of the run's session.

A window runs `cat` on a FIFO that orchestra writes without blocking. tmux never
runs an agent and never decides anything: if it is slow, missing or killed, the
viewer skips bytes (and says so in the window) while the run goes on.
"""
from __future__ import annotations

import errno
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from typing import Optional

# A person cannot read a flood; tmux rendering one would take a core from the agents.
# Past this rate the window skips bytes (and says so); the transcript keeps them all.
VIEW_RATE = 1024 * 1024  # bytes per second: 200 full 120x40 screens
VIEW_BURST = 64 * 1024
SHELL_GRACE = 2.0  # seconds a window's shell may take to start, when the run ends before it has


class ViewerWindow:
    """Where one agent's bytes go for a person to watch."""

    target = ""
    name = ""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class TmuxWindow(ViewerWindow):
    def __init__(self, target: str, fifo: str):
        self.target = target
        self.name = target.split(":", 1)[1]
        self.fifo = fifo
        # O_RDWR: never blocks for the reader to appear, never gets SIGPIPE if it goes away.
        self.fd: Optional[int] = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self.skipped = 0  # bytes dropped since the last notice
        self.skipped_total = 0
        self.budget = float(VIEW_BURST)
        self.refilled = time.monotonic()
        self.closing = False  # close() was called; writes are over

    def write(self, data: bytes) -> None:
        if self.fd is None or self.closing or not data:
            return
        now = time.monotonic()
        self.budget = min(VIEW_BURST, self.budget + (now - self.refilled) * VIEW_RATE)
        self.refilled = now
        if len(data) > self.budget:
            self._drop(len(data))
            return
        self.budget -= len(data)
        if self.skipped:
            notice = f"\r\n\x1b[7m[orchestra: viewer skipped {self.skipped} bytes; the transcript has them]\x1b[0m\r\n"
            if not self._try(notice.encode()):
                self._drop(len(data))
                return
            self.skipped = 0
        if not self._try(data):
            self._drop(len(data))

    def _drop(self, n: int) -> None:
        self.skipped += n
        self.skipped_total += n

    def _try(self, data: bytes) -> bool:
        """Write all of data or, when the pipe is full, as much as fits; False if anything was dropped."""
        try:
            n = os.write(self.fd, data)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EBADF):
                self.close()
                return False
            raise
        if n < len(data):
            self._drop(len(data) - n)
        return True

    def close(self) -> None:
        """Done writing. Until the window's shell has opened the FIFO (and removed it, see
        TmuxViewer.open_window) the pipe stays open, or what was written would be lost: the
        viewer closes it when the run ends (TmuxViewer.close)."""
        if self.fd is not None and not os.path.exists(self.fifo):
            os.close(self.fd)
            self.fd = None
        self.closing = True

    def finish(self, deadline: float) -> None:
        """Close the pipe once the window's shell has opened it, waiting until deadline at most."""
        while self.fd is not None and os.path.exists(self.fifo) and time.monotonic() < deadline:
            time.sleep(0.01)  # no inotify in the standard library: look again, briefly
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if os.path.exists(self.fifo):  # the shell never came, and will not remove it
            shutil.rmtree(os.path.dirname(self.fifo), ignore_errors=True)


class TmuxViewer:
    """One tmux session per run, on the default server, so `tmux attach -t NAME` just works."""

    def __init__(self, session: str, cols: int = 120, rows: int = 40):
        self.session = tmux_name(session)  # tmux itself turns '.' and ':' in a session name into '_'
        self.cols, self.rows = cols, rows
        self.windows: list[TmuxWindow] = []
        self.created = False

    @staticmethod
    def available() -> bool:
        return shutil.which("tmux") is not None

    @property
    def attach_command(self) -> str:
        return f"tmux attach -t {shlex.quote(self.session)}"

    def open_window(self, name: str, title: str = "") -> ViewerWindow:
        name = tmux_name(name)
        # A directory of its own for each window's FIFO, which the window removes once it has opened
        # the FIFO: so orchestra never removes a FIFO that a window has yet to open, however fast
        # the agent was, and /tmp is clean once the window is up. The script is run by sh itself,
        # as separate words (tmux >= 3.0 then runs it without the user's shell: fish, csh and a
        # slow .zshenv have no say).
        folder = tempfile.mkdtemp(prefix="orchestra-view-")
        fifo = os.path.join(folder, "fifo")
        os.mkfifo(fifo, 0o600)
        window = TmuxWindow(f"{self.session}:{name}", fifo)  # opened before cat, so cat never sees EOF early
        script = 'exec 3<"$1"; rm -f "$1"; rmdir "$2" 2>/dev/null; exec cat <&3'
        command = ["sh", "-c", script, "orchestra-view", fifo, folder]
        if not self.created:
            args = ["new-session", "-d", "-s", self.session, "-n", name,
                    "-x", str(self.cols), "-y", str(self.rows), *command]
        else:
            args = ["new-window", "-d", "-t", f"{self.session}:", "-n", name, *command]
        # the window stays readable after its agent ends
        ok = _tmux(*args, ";", "set-option", "-w", "-t", f"{self.session}:{name}", "remain-on-exit", "on")
        if not ok:
            os.close(window.fd)  # (not close(): no window will ever open this FIFO)
            shutil.rmtree(folder, ignore_errors=True)
            raise OSError(f"tmux could not open window {name!r} in session {self.session!r}")
        self.created = True
        self.windows.append(window)
        return window

    def close(self) -> None:
        """Close the windows' pipes, once each window's shell has opened its own (a slow shell is
        given SHELL_GRACE seconds); the windows stay until `orchestra clean` or the user closes them."""
        deadline = time.monotonic() + SHELL_GRACE
        for window in self.windows:
            window.close()
            window.finish(deadline)

    def kill(self) -> None:
        for window in self.windows:
            window.close()
            window.finish(0)
        if self.created:
            kill_session(self.session)


def tmux_name(name: str) -> str:
    """A name tmux finds in a target as it is. tmux reads '.' and ':' in `session:window.pane`,
    a leading '-' or '+' as an offset, digits as an index, and `*?[` as a pattern: keep letters,
    digits, '_' and '-' (others become '-'), and never start with '-' or a digit alone."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", name).lstrip("-")
    return safe if safe and not safe.isdigit() else f"w{safe}"


def has_session(session: str) -> bool:
    return _tmux("has-session", "-t", f"={session}")


def kill_session(session: str) -> bool:
    return _tmux("kill-session", "-t", f"={session}")


def session_exists(session: str) -> bool:
    return _tmux("has-session", "-t", f"={session}")


def _tmux(*args: str) -> bool:
    try:
        done = subprocess.run(["tmux", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
