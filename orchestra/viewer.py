"""tmux as a viewer only: each agent's raw bytes are streamed into a window of the run's session.

A window runs `cat` on a FIFO that orchestra writes without blocking. tmux never
runs an agent and never decides anything: if it is slow, missing or killed, the
viewer skips bytes (and says so in the window) while the run goes on.

A window's top line (its pane border) names its role and its pane title, which a rendered window's
header (`● droid · model · cwd`) sets, so it stays in sight however much follows; its last line is
orchestra's word on how the agent ended. The sessions finished runs leave are closed in bulk
(close_finished).
"""
from __future__ import annotations

import errno
import functools
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

# A person cannot read a flood; tmux rendering one would take a core from the agents.
# Past this rate the window skips bytes (and says so); the transcript keeps them all.
VIEW_RATE = 1024 * 1024  # bytes per second: 200 full 120x40 screens
VIEW_BURST = 64 * 1024
SHELL_GRACE = 2.0  # seconds a window's shell may take to start, when the run ends before it has
# A window's top line: its name and its pane title (set by a title escape in what the window is given:
# orchestra's at the start, then the agent's own or a rendered header), in sight however much scrolls by.
BORDER_FORMAT = "#[bold] #{window_name} #[nobold]#{pane_title} "
KEEP_FINISHED = 20  # tmux sessions of finished runs kept in a directory; a new run closes the oldest past it
HOME_OPTION = "@orchestra_home"  # a session's directory (of its runs): what `clean --finished` goes by
PID_OPTION = "@orchestra_pid"  # the orchestra process that made a session: while it lives, it is not finished


class ViewerWindow:
    """Where one agent's bytes go for a person to watch."""

    target = ""
    name = ""

    def write(self, data: bytes) -> None:
        pass

    def end(self, line: bytes) -> None:
        """The window's last words (how its agent ended), then close()."""
        self.close()

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

    def end(self, line: bytes) -> None:
        """Written whatever the rate (a line, after a flood it is what a person looks for), then close():
        the window's `cat` then ends by itself, as a finished program, not by a signal."""
        if self.fd is not None and not self.closing:
            if self.skipped:
                self._try(f"\r\n\x1b[7m[orchestra: viewer skipped {self.skipped} bytes; the transcript has them]"
                          "\x1b[0m\r\n".encode())
                self.skipped = 0
            self._try(line)
        self.close()

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

    def __init__(self, session: str, cols: int = 120, rows: int = 40, home: Optional[Path] = None):
        self.session = tmux_name(session)  # tmux itself turns '.' and ':' in a session name into '_'
        self.cols, self.rows = cols, rows
        self.home = home  # the directory whose runs it shows (for `orchestra clean --finished`)
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
        # sh waits for cat instead of becoming it: cat closes its output before it exits, and if it held the
        # pane's terminal last, tmux would hang the terminal up in between and the window would end "Pane
        # is dead (signal 1)", killed by the SIGHUP. sh holds the terminal until cat has ended.
        script = 'exec 3<"$1"; rm -f "$1"; rmdir "$2" 2>/dev/null; cat <&3; exit $?'
        command = ["sh", "-c", script, "orchestra-view", fifo, folder]
        target = f"{self.session}:{name}"
        if not self.created:
            args = ["new-session", "-d", "-s", self.session, "-n", name,
                    "-x", str(self.cols), "-y", str(self.rows + 1), *command,  # (+ its top line)
                    ";", "set-option", "-t", self.session, PID_OPTION, str(os.getpid())]
            if self.home is not None:
                args += [";", "set-option", "-t", self.session, HOME_OPTION, str(self.home)]
        else:
            args = ["new-window", "-d", "-t", f"{self.session}:", "-n", name, *command]
        # the window stays readable after its agent ends, its top line in sight
        args += [";", "set-option", "-w", "-t", target, "remain-on-exit", "on",
                 ";", "set-option", "-w", "-t", target, "pane-border-status", "top",
                 ";", "set-option", "-w", "-t", target, "pane-border-format", BORDER_FORMAT]
        if tmux_version() >= (3, 3):
            # orchestra's last line says how the agent ended: tmux's own ("Pane is dead (status 0, ...)")
            # would say how `cat` did. Older tmux has no such option and says it.
            args += [";", "set-option", "-w", "-t", target, "remain-on-exit-format", ""]
        ok = _tmux(*args)
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


@functools.lru_cache(maxsize=None)
def tmux_version() -> tuple[int, int]:
    """(major, minor) of the tmux on PATH ("tmux 3.3a", "tmux next-3.4"); (0, 0) when unknown."""
    try:
        out = subprocess.run(["tmux", "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return (0, 0)
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


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


# -- the sessions finished runs leave ------------------------------------------------------------------


def list_sessions() -> list[dict]:
    """Every session on the tmux server: its name, directory and orchestra pid (its tags, "" if untagged)."""
    try:
        done = subprocess.run(["tmux", "list-sessions", "-F", f"#{{session_name}}\t#{{{HOME_OPTION}}}\t"
                               f"#{{{PID_OPTION}}}"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:  # no server: no sessions
        return []
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    return [{"name": r[0], "home": r[1], "pid": r[2]} for r in rows if len(r) == 3]


def finished_sessions(home: Path) -> tuple[list[str], list[str], list[str]]:
    """The tmux sessions of this directory's finished runs (oldest first), the sessions of its replays that
    are over, and the sessions of its runs and replays still going."""
    from .errors import OrchestraError
    from .procs import command_line, process_alive
    from .runfolder import RUN_ID, RUNNING, RUNS_DIR, live_ids, load

    home = Path(home)
    live = set(live_ids(home))  # a run is marked live before its session is made, and unmarked at its end
    runs, replays, going = [], [], []
    for session in list_sessions():
        name = session["name"]
        if session["home"] and Path(session["home"]) != home:
            continue
        run_id = name[len("orchestra-"):]
        if name.startswith("orchestra-replay-"):
            # a replay of this directory (or one made before sessions were tagged): over once its process is
            pid = session["pid"] or name.rpartition("-")[2]
            mine = bool(session["home"]) or not session["pid"]
            alive = pid.isdigit() and process_alive(int(pid)) and b"orchestra" in (command_line(int(pid)) or b"")
            if mine:
                (going if alive else replays).append(name)
        elif name.startswith("orchestra-") and RUN_ID.fullmatch(run_id) and (home / RUNS_DIR / run_id).is_dir():
            try:
                status = load(home, run_id).get("status") if run_id in live else None
            except OrchestraError:
                status = None  # an unreadable record is no run under way
            (going if status == RUNNING else runs).append(name)  # (a lost run's is finished)
    return sorted(runs), sorted(replays), going


def close_finished(home: Path, keep: int = 0, replays: bool = True) -> tuple[list[str], list[str]]:
    """Close the tmux sessions of this directory's finished runs but the newest `keep` (and, with
    replays, those of its replays that are over). Returns the sessions closed, and those kept as under way."""
    runs, over, going = finished_sessions(home)
    doomed = runs[:max(0, len(runs) - keep)] + (over if replays else [])
    return [name for name in doomed if kill_session(name)], going


def clean_finished(workdir: Path) -> list[str]:
    """`orchestra clean --finished`: close the sessions of this directory's finished runs and replays; say
    what was closed, and what was kept."""
    from .runfolder import home

    if not TmuxViewer.available():
        return ["nothing to close: tmux is not installed"]
    closed, going = close_finished(home(workdir))
    said = [f"🧹 closed tmux session {name}" for name in closed] or ["no tmux session of a finished run here"]
    if going:
        said.append(f"   kept (under way): {', '.join(going)}")
    return said
