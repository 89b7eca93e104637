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

import orchestra

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
# A window ends when its pipe is closed: its `cat` and shell exit, and tmux takes the pane's death (on Debian, by
# running its utempter helper and waiting for it), about 2 ms of CPU a window, tmux's most of it. A process that
# ends with its command (orchestra.ends_with_command: the CLI) leaves its windows' pipes for its exit to close,
# so the windows end once orchestra has returned instead of taking a core from the run's way out.


# A TUI drawn by Ink's log-update (a progress bar alike) begins each frame by erasing the frame before it,
# bottom up: "erase line, cursor up" for each of its lines but the first, then "erase line, column 1". tmux
# costs about as much CPU per byte it is given as orchestra does reading it (measured here: 88 ms/MB, however
# the bytes are cut into writes), and a frame that the next one erases whole is drawn for nothing: a window
# may hold such frames for FRAME_HOLD seconds and give tmux the last of them (see TmuxWindow.flush).
FRAME_HOLD = 0.1
_FRAME_START = re.compile(rb"(?:\x1b\[2K\x1b\[1A)*\x1b\[2K\x1b\[G")
_ERASE_LINE = b"\x1b[2K"
# What moves the cursor to another line, or changes the screen's lines, other than a line feed: a CSI sequence
# for cursor up, down, to a row; erase the screen; insert, delete, scroll lines; scroll margins; modes (the other
# screen); save and restore the cursor. Then ESC 7 and 8, index, next line, reverse index, reset; vertical tab
# and form feed (line feeds to a tty). Possessive quantifiers (Python 3.11) make the CSI search 3x faster.
try:
    _MOVES_LINES = re.compile(rb"\x1b\[[0-?]*+[ -/]*+[ABEFHJLMSTdfhlrsu]")
except re.error:  # Python 3.10
    _MOVES_LINES = re.compile(rb"\x1b\[[0-?]*[ -/]*[ABEFHJLMSTdfhlrsu]")
_MOVES_ESC = re.compile(rb"\x1b[78DEMc]")


def _moves_lines(data: bytes, start: int) -> bool:
    return b"\x0b" in data or b"\x0c" in data or _MOVES_LINES.search(data, start) is not None or \
        _MOVES_ESC.search(data, start) is not None


class ViewerWindow:
    """Where one agent's bytes go for a person to watch."""

    target = ""
    name = ""
    hold = 0.0  # seconds a TUI's frame may be held (see TmuxWindow.write); 0: every byte written at once
    due = float("inf")  # when the frames held must be written (flush())

    def write(self, data: bytes) -> None:
        pass

    def flush(self) -> None:
        """Write the frames held."""

    def end(self, line: bytes) -> None:
        """The window's last words (how its agent ended), then close()."""
        self.close()

    def close(self) -> None:
        pass


class TmuxWindow(ViewerWindow):
    def __init__(self, target: str, fifo: str, rows: int = 0):
        self.target = target
        self.rows = rows  # the pane's height: a frame of more lines is never left out (see flush)
        self.name = target.split(":", 1)[1]
        self.fifo = fifo
        # O_RDWR: never blocks for the reader to appear, never gets SIGPIPE if it goes away.
        self.fd: Optional[int] = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self.skipped = 0  # bytes dropped since the last notice
        self.skipped_total = 0
        self.given = 0  # bytes written to the pipe
        self.budget = float(VIEW_BURST)
        self.refilled = time.monotonic()
        self.closing = False  # close() was called; writes are over
        self.hold = 0.0
        self.due = float("inf")
        # frames held: (where its drawing starts, after its erase; how many lines its erase erases; its bytes)
        self._frames: list[tuple[int, int, list[bytes]]] = []

    def write(self, data: bytes) -> None:
        if self.fd is None or self.closing or not data:
            return
        if not self.hold:
            self._give(data)
            return
        # cut at each frame's start (a frame whose erase a read cut in two is taken for more of the one before)
        pos, at = 0, data.find(_ERASE_LINE)
        while at != -1:
            start = _FRAME_START.match(data, at)
            if start is None:
                at = data.find(_ERASE_LINE, at + 1)
                continue
            self._then(data[pos:at])
            self._frames.append((start.end() - at, start.group().count(_ERASE_LINE), []))
            if self.due == float("inf"):
                self.due = time.monotonic() + self.hold
            pos, at = at, data.find(_ERASE_LINE, start.end())
        self._then(data[pos:] if pos else data)

    def _then(self, data: bytes) -> None:
        """What follows a frame held is held after it, in order; with none held, it is written at once."""
        if self._frames:
            self._frames[-1][2].append(data)
        elif data:
            self._give(data)

    def flush(self) -> None:
        """Write the frames held. A frame that draws no line its erase has not cleared, and that the next
        frame's erase takes out whole, leaves the screen as the next frame's erase found it: such frames
        are not written (the first one's erase is, before the next one's drawing). Any other frame is
        written as it came: one that moves the cursor up or down other than by its line feeds, or one
        whose lines may not all be on the screen."""
        frames, self._frames, self.due = self._frames, [], float("inf")
        if not frames or self.fd is None or self.closing:
            return
        texts = [b"".join(parts) if len(parts) > 1 else parts[0] for _, _, parts in frames]
        lines = [text.count(b"\n", start) + 1 for text, (start, _, _) in zip(texts, frames)]
        out, i = [], 0
        while i < len(frames):
            j = i
            while j + 1 < len(frames) and frames[j + 1][1] == lines[j] <= frames[j][1] <= self.rows and \
                    not _moves_lines(texts[j], frames[j][0]):
                j += 1
            out.append(texts[i] if j == i else texts[i][:frames[i][0]] + texts[j][frames[j][0]:])
            i = j + 1
        self._give(b"".join(out))

    def _give(self, data: bytes) -> None:
        """Into the pipe, VIEW_RATE bytes a second at most (past it, skipped and said)."""
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
        the window's `cat` then ends by itself, as a finished program, not by a signal (once the pipe is
        closed: see orchestra.ends_with_command)."""
        self.flush()
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
        self.given += n
        if n < len(data):
            self._drop(len(data) - n)
        return True

    def close(self) -> None:
        """Done writing. Until the window's shell has opened the FIFO (and removed it, see
        TmuxViewer.open_window) the pipe stays open, or what was written would be lost: the
        viewer closes it when the run ends (TmuxViewer.close). Left open in a process whose exit
        closes it (orchestra.ends_with_command)."""
        self.flush()
        if self.fd is not None and not orchestra.ends_with_command and not os.path.exists(self.fifo):
            os.close(self.fd)
            self.fd = None
        self.closing = True

    def finish(self, deadline: float, leave_open: bool = False) -> None:
        """Close the pipe once the window's shell has opened it, waiting until deadline at most; leave_open:
        leave it open once the shell has (for the process's exit to close)."""
        while self.fd is not None and os.path.exists(self.fifo) and time.monotonic() < deadline:
            time.sleep(0.01)  # no inotify in the standard library: look again, briefly
        came = not os.path.exists(self.fifo)
        if self.fd is not None and not (leave_open and came):
            os.close(self.fd)
            self.fd = None
        if not came:  # the shell never came, and will not remove it
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
        window = TmuxWindow(f"{self.session}:{name}", fifo, self.rows)  # opened before cat, so cat never sees EOF early
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
        given SHELL_GRACE seconds), or leave them to the process's exit (orchestra.ends_with_command);
        the windows stay until `orchestra clean` or the user closes them."""
        deadline = time.monotonic() + SHELL_GRACE
        for window in self.windows:
            window.close()
            window.finish(deadline, leave_open=orchestra.ends_with_command)

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
