"""Runs in the background: start one detached, wait for it, see how it goes, cancel it.

A detached run is an ordinary `orchestra delegate` or `orchestra run` process (the worker) in a
session of its own, with no terminal, its output in <run dir>/orchestra.log. It writes the live
record (run.json) as every run does. Everything here reads that record and follows the worker's
pid, so nothing depends on the process that started it: a terminal that closes, an MCP server
that dies and is started again.

    start     make the run's folder, start the worker, and return once its live record exists
              (the worker says so on a pipe) or with the worker's own error if it failed first
    wait      block on the worker's exit (a pidfd), waking every `every` seconds for progress
    status    the runs under way (.orchestra/live/), or one run
    cancel    SIGINT to the worker: it ends its agents and writes `interrupted`, as Ctrl-C would
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from . import runfolder
from .errors import OrchestraError
from .procs import exit_within, marked
from .runfolder import LOCK, LOG, RUNNING, WORKER_ENV

CANCEL_WAIT = 30.0  # seconds cancel() waits for the worker to write its record (its agents' kill_grace)


# -- the starter's side --------------------------------------------------------------------------

def start(workdir: Path, argv: list[str], env: Optional[dict] = None, cwd: Optional[Path] = None,
          run_id: Optional[str] = None) -> str:
    """Start `orchestra <argv>` detached, its run in workdir (in the folder of run_id if given, made
    beforehand); return its run id once its live record exists. It is started in cwd (workdir unless
    said: argv's relative paths, --workdir too, are read from there). Raises OrchestraError with the
    worker's own message if it failed before its run started."""
    workdir = Path(workdir).resolve()
    run_id, run_dir = runfolder.make(workdir, run_id)
    try:
        log = open(os.open(run_dir / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    except OSError as exc:
        raise OrchestraError(f"cannot keep a run's record in {run_dir}: {exc.strerror or exc}") from None
    read, write = os.pipe()
    try:
        subprocess.Popen([sys.executable, "-m", "orchestra", *argv], cwd=cwd or workdir,
                         env={**(os.environ if env is None else env), WORKER_ENV: f"{run_id}:{write}"},
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write,),
                         start_new_session=True)  # its own session: no terminal, no hangup when ours goes
    except (OSError, ValueError) as exc:  # (ValueError: a NUL in an argument)
        os.close(read)
        shutil.rmtree(run_dir, ignore_errors=True)
        raise OrchestraError(f"cannot start orchestra in the background: {exc}") from None
    finally:
        os.close(write)
        log.close()
    with os.fdopen(read, "rb") as pipe:  # (a starter killed meanwhile: the worker goes on, found by its mark)
        said = pipe.read().decode("utf-8", "replace")  # until the worker has said it, or has exited
    if said == "started":
        return run_id
    if not (run_dir / runfolder.RECORD).exists():
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran: no run to list
    raise OrchestraError(said or f"orchestra exited before its run started (its output: {run_dir / LOG})")


def worker_of(run_id: str) -> Optional[int]:
    """The pid of the worker started for run_id, if it runs: found by what start() put in its environment,
    whatever became of the process that started it."""
    found = marked(WORKER_ENV, f"{run_id}:", prefix=True)
    return min(found) if found else None


def wait(workdir: Path, run_id: str, timeout: float, progress: Optional[Callable[[dict], None]] = None,
         every: float = 5.0) -> dict:
    """The run's record once it has ended, or its live record (status running) when timeout passes first."""
    deadline = time.monotonic() + max(0.0, timeout)
    record = runfolder.load(workdir, run_id)
    if record.get("status") != RUNNING:
        return record
    ended = _ending(runfolder.folder(workdir, run_id) / LOCK, record["pid"])
    while record.get("status") == RUNNING:
        left = deadline - time.monotonic()
        if left <= 0:
            return record
        step = min(left, every) if progress else left
        if ended.wait(None if step == float("inf") else step):
            final = runfolder.load(workdir, run_id)  # its final record (or lost, if it died without one)
            if final.get("status") == RUNNING:
                # a process killed outright lets go of its lock before it has quite ended: see it end
                exit_within(final.get("pid") or record["pid"], 5.0)
                final = runfolder.load(workdir, run_id)
            return final
        record = runfolder.load(workdir, run_id)
        if progress and record.get("status") == RUNNING and time.monotonic() < deadline:
            progress(record)
    return record


_endings: dict[str, threading.Event] = {}  # lock path -> its event, while its run goes on
_endings_guard = threading.Lock()


def _ending(lock: Path, pid: int) -> threading.Event:
    """An event set when the run has ended: its lock let go (the final record written, or its process
    dead), or for a run without one, its process gone. A thread blocks on it, so a wait that gives up
    leaves nothing to undo (the thread ends with the run); one thread a run, however many waits (an
    MCP server waits in slices, between progress reports)."""
    key = str(lock)
    with _endings_guard:
        ended = _endings.get(key)
        if ended is not None:
            return ended
        ended = _endings[key] = threading.Event()

    def follow() -> None:
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            while not exit_within(pid, 3600):
                pass
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
            finally:
                os.close(fd)
        with _endings_guard:
            _endings.pop(key, None)
        ended.set()

    threading.Thread(target=follow, name=f"orchestra-wait-{pid}", daemon=True).start()
    return ended


def status(workdir: Path, run_id: Optional[str] = None) -> list[dict]:
    """One run's record, or every run under way in the directory. A lost run (its process died without
    finishing it) is in the list once, saying what to do: its marker goes with that answer."""
    if run_id:
        return [runfolder.load(workdir, run_id)]
    found = []
    for entry in runfolder.live_ids(workdir):
        try:
            record = runfolder.load(workdir, entry)
        except OrchestraError:
            runfolder.unmark_live(workdir, entry)  # a marker whose run folder was removed
            continue
        if record.get("status") != RUNNING:
            runfolder.unmark_live(workdir, entry)
            if record.get("status") != runfolder.LOST:
                continue  # it ended between the listing and the reading
        found.append(record)
    return found


def result(workdir: Path, run_id: str) -> dict:
    return runfolder.load(workdir, run_id)


def cancel(workdir: Path, run_id: str, timeout: float = CANCEL_WAIT) -> dict:
    """End a run as Ctrl-C would (its record says interrupted); returns the record once written."""
    record = runfolder.load(workdir, run_id)
    if record.get("status") != RUNNING:
        raise OrchestraError(f"run {run_id} is not running (it is {record.get('status')})")
    try:
        os.kill(record["pid"], signal.SIGINT)
    except ProcessLookupError:
        return runfolder.load(workdir, run_id)
    except PermissionError:
        raise OrchestraError(f"run {run_id}: its process {record['pid']} is not yours to signal") from None
    return wait(workdir, run_id, timeout)
