"""Facts about processes: whether one still runs (and is the one we mean), when it ends, which carry
a mark in their environment, and ending a set of them. The one place that reads /proc.

Linux: /proc and pidfds. Elsewhere (macOS, the BSDs), or with ORCHESTRA_PORTABLE=1 (how Linux CI takes
the path a Mac takes): psutil for the facts, kqueue or polling for an exit, and for a loop over its own
children a SIGCHLD self-pipe (ChildExits).
"""
from __future__ import annotations

import os
import select
import selectors
import signal
import threading
import time
from typing import Optional

STRAGGLER_GRACE = 1.0  # seconds between SIGTERM and SIGKILL in end_processes
PORTABLE = os.environ.get("ORCHESTRA_PORTABLE") == "1" or not os.path.isdir("/proc/self")
HAS_PIDFD = hasattr(os, "pidfd_open") and not PORTABLE
# The longest a loop over children without pidfds sleeps before it looks whether one ended anyway: a
# SIGCHLD can only be heard where the main thread installed the handler (not in the MCP server's threads).
EXIT_BACKSTOP = 0.25


def pidfd_open(pid: int) -> int:
    """A pidfd for pid (raises ProcessLookupError if it is gone), or -1 where there are none."""
    if not HAS_PIDFD:
        return -1
    return os.pidfd_open(pid)


def exit_watch(pid: int) -> int:
    """A pidfd for a child of ours (not reaped yet, so never gone), or -1: no pidfds here, or the kernel
    has none (before Linux 5.3); the loop then hears of its exit from ChildExits."""
    try:
        return pidfd_open(pid)
    except OSError:
        return -1


def selector() -> selectors.BaseSelector:
    """A read loop's selector: epoll on Linux; kqueue on macOS and the BSDs, whose poll(2) cannot watch a
    pty; poll (or select) in the portable path on Linux, which has no kqueue."""
    if not PORTABLE:
        return selectors.DefaultSelector()
    for name in ("KqueueSelector", "PollSelector", "SelectSelector"):
        if hasattr(selectors, name):
            return getattr(selectors, name)()
    raise RuntimeError("no selector")  # pragma: no cover - select() is everywhere


class ChildExits:
    """A pipe that becomes readable when a child of this process ends (SIGCHLD), for a read loop's
    selector where pidfds are missing (kqueue cannot watch a process through a selector). Which child
    ended is then learnt by asking each (waitpid, as pexpect's isalive() does).

    The handler is installed while at least one is open, and only from the main thread (Python's rule):
    opened elsewhere with none installed, fileno() is -1 and the loop looks every EXIT_BACKSTOP seconds."""

    _writers: set[int] = set()
    _installed = False
    _previous = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.read_fd = self.write_fd = -1
        with ChildExits._lock:
            if not ChildExits._installed:
                if threading.current_thread() is not threading.main_thread():
                    return
                ChildExits._previous = signal.signal(signal.SIGCHLD, ChildExits._heard)
                ChildExits._installed = True
            self.read_fd, self.write_fd = os.pipe()
            for fd in (self.read_fd, self.write_fd):
                os.set_blocking(fd, False)
            ChildExits._writers.add(self.write_fd)

    def fileno(self) -> int:
        return self.read_fd

    def clear(self) -> None:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        with ChildExits._lock:
            if self.write_fd < 0:
                return
            ChildExits._writers.discard(self.write_fd)
            if not ChildExits._writers and threading.current_thread() is threading.main_thread():
                # (a handler left in place would make other code's system calls see EINTR for nothing)
                signal.signal(signal.SIGCHLD, ChildExits._previous or signal.SIG_DFL)
                ChildExits._installed = False
            os.close(self.write_fd)
            os.close(self.read_fd)
            self.read_fd = self.write_fd = -1

    def __enter__(self) -> "ChildExits":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _heard(signum, frame) -> None:
        for fd in list(ChildExits._writers):
            try:
                os.write(fd, b"x")
            except OSError:  # full (readable already) or closed meanwhile
                pass
        previous = ChildExits._previous
        if callable(previous):
            previous(signum, frame)


def _psutil():
    import psutil  # (only off Linux's /proc: it costs an import)

    return psutil


def process_started(pid: int) -> Optional[float]:
    """When a process started (clock ticks since boot, from /proc; elsewhere its creation time), to tell it
    from a later one given the same pid; None when that cannot be known; -1 for one that has ended (a zombie)."""
    if PORTABLE:
        psutil = _psutil()
        try:
            p = psutil.Process(pid)
            return -1 if p.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD) else p.create_time()
        except (psutil.Error, OSError):
            return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return -1 if fields[0] in (b"Z", b"X") else int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def process_alive(pid: Optional[int], started: Optional[int] = None) -> bool:
    """Whether the process that wrote a record still runs (and is that one, not a reused pid)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # there, but another user's
    except OverflowError:
        return False
    now = process_started(pid)
    return now != -1 and (now is None or started is None or now == started)


def wait_pidfd(pidfd: int, timeout: float) -> bool:
    """Wait for a process to end, on its pidfd, at most timeout seconds."""
    if pidfd < 0:
        return True
    p = select.poll()
    p.register(pidfd, select.POLLIN)
    return bool(p.poll(int(timeout * 1000)))


def await_exit(pid: int, pidfd: int, timeout: float) -> bool:
    """Whether process pid ends within timeout seconds, on its pidfd if it has one."""
    return wait_pidfd(pidfd, timeout) if pidfd >= 0 else exit_within(pid, timeout)


def exit_within(pid: int, timeout: float) -> bool:
    """Whether process pid ends within timeout seconds: on its pidfd (Linux), kqueue (macOS, BSD),
    or else by looking every 50 ms."""
    try:
        fd = pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            return wait_pidfd(fd, float(2**31 // 1000) if timeout == float("inf") else max(0.0, timeout))
        finally:
            os.close(fd)
    if hasattr(select, "kqueue"):  # pragma: no cover - not Linux
        kq = select.kqueue()
        try:
            event = select.kevent(pid, select.KQ_FILTER_PROC, select.KQ_EV_ADD, select.KQ_NOTE_EXIT)
            return bool(kq.control([event], 1, None if timeout == float("inf") else timeout))
        except ProcessLookupError:
            return True
        finally:
            kq.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return not process_alive(pid)


def process_name(pid: int) -> Optional[str]:
    if PORTABLE:
        psutil = _psutil()
        try:
            return psutil.Process(pid).name()
        except (psutil.Error, OSError):
            return None
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return None


def terminal(pid: int) -> Optional[str]:
    """The controlling terminal of a process (its device's path), or None: it has none, or is gone."""
    psutil = _psutil()
    try:
        return psutil.Process(pid).terminal()
    except (psutil.Error, OSError):
        return None


def command_line(pid: int) -> Optional[bytes]:
    """Its argv, NUL-separated, or None if it is gone or not ours to read."""
    if PORTABLE:
        psutil = _psutil()
        try:
            return b"\0".join(a.encode(errors="replace") for a in psutil.Process(pid).cmdline())
        except (psutil.Error, OSError):
            return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def end_processes(pids: list[int], grace: float = STRAGGLER_GRACE) -> list[str]:
    """SIGTERM to each, then SIGKILL to those still there after grace (one grace for all of them).
    Returns the names of those that were there."""
    left: dict[int, int] = {}  # pid -> pidfd (-1: none, where there are none)
    names = []
    for pid in pids:
        name = process_name(pid)
        try:
            if name is None:
                continue
            names.append(name)
            left[pid] = pidfd_open(pid)
            os.kill(pid, signal.SIGTERM)
        except OSError:  # gone meanwhile
            continue
    deadline = time.monotonic() + grace
    for pid, pidfd in left.items():
        if not await_exit(pid, pidfd, max(0.0, deadline - time.monotonic())):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if pidfd >= 0:
            os.close(pidfd)
    return names


def marked(name: str, value: str, prefix: bool = False) -> dict[int, str]:
    """The processes, other than this one, whose environment holds name=value (as it was at their exec),
    or with prefix a value that starts with `value`: pid -> the value."""
    if PORTABLE:
        return _marked_portably(name, value, prefix)
    mark = f"{name}={value}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                for var in fh.read().split(b"\0"):
                    if var == mark or (prefix and var.startswith(mark)):
                        found[int(entry)] = var[len(name) + 1:].decode(errors="replace")
                        break
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def marked_pids(name: str, value: str) -> list[int]:
    """The processes, other than this one, whose environment holds name=value (as it was at their exec)."""
    return list(marked(name, value))


def _marked_portably(name: str, value: str, prefix: bool) -> dict[int, str]:
    psutil = _psutil()
    found = {}
    for p in psutil.process_iter():
        if p.pid == os.getpid():
            continue
        try:
            have = p.environ().get(name)
        except (psutil.Error, OSError):  # gone meanwhile, or not ours to read
            continue
        if have is not None and (have == value or (prefix and have.startswith(value))):
            found[p.pid] = have
    return found
