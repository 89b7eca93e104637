"""Facts about processes: whether one still runs (and is the one we mean), when it ends, which carry
a mark in their environment, and ending a set of them. The one place that reads /proc.

Linux: /proc and pidfds. Elsewhere (macOS, the BSDs), or with ORCHESTRA_PORTABLE=1 (how Linux CI takes
the path a Mac takes): psutil for the facts, kqueue or polling for an exit.
"""
from __future__ import annotations

import os
import select
import signal
import time
from typing import Optional

STRAGGLER_GRACE = 1.0  # seconds between SIGTERM and SIGKILL in end_processes
PORTABLE = os.environ.get("ORCHESTRA_PORTABLE") == "1" or not os.path.isdir("/proc/self")
HAS_PIDFD = hasattr(os, "pidfd_open") and not PORTABLE


def pidfd_open(pid: int) -> int:
    """A pidfd for pid (raises ProcessLookupError if it is gone), or -1 where there are none."""
    if not HAS_PIDFD:
        return -1
    return os.pidfd_open(pid)


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
        left_s = max(0.0, deadline - time.monotonic())
        ended = wait_pidfd(pidfd, left_s) if pidfd >= 0 else exit_within(pid, left_s)
        if not ended:
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
