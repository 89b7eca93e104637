"""A run folder, `.orchestra/runs/<run id>/`: the one place that knows its id, its paths, how its
record (run.json, live then final) is written and read, whether the process writing it still lives,
and how runs are listed. It imports nothing of orchestra's but errors and procs, so every module
that touches runs (run, jobs, history, delegate, mcp_server, web) can use it.

    new_run_id / make       a fresh folder (its own, even for two runs started in one second)
    write_record            run.json whole or not at all (a reader never sees half of one)
    load / list_runs        a record as readers use it: any odd field made harmless, a dead
                            writer's `running` shown as `lost`, a folder without run.json `incomplete`
    live markers            .orchestra/live/<id>: the runs under way, what `status` reads
    become_worker / tell_starter    a run started in the background says "started" to its starter
"""
from __future__ import annotations

import fcntl
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional

from .errors import OrchestraError
from .procs import command_line, marked, process_alive

ORCHESTRA_DIR = Path(".orchestra")
RUNS_DIR = ORCHESTRA_DIR / "runs"
# One empty file per run under way, named for it: what `orchestra status` reads, however many runs are done
LIVE_DIR = ORCHESTRA_DIR / "live"
RECORD = "run.json"
# Held (flock) by the run's orchestra process until its final record is written, and let go by the
# kernel if that process dies: one event, on Linux and macOS alike, for "the run has ended".
LOCK = "run.lock"
LOG = "orchestra.log"  # a detached run's own output
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # as new_run_id makes them
# a record's status while its run goes on, and once its orchestra process is gone without finishing it
RUNNING, LOST = "running", "lost"
# Every agent of a run gets this variable in its environment (`<run id>.<orchestra pid>`), and so does
# everything it starts: how a run finds what its agents left running outside their process groups.
RUN_MARK = "ORCHESTRA_RUN"
INCOMPLETE = ("no run.json: orchestra ended before writing it (killed, out of memory, a power cut), or the run "
              "is still going")


def home(workdir: Path) -> Path:
    """Where the runs of a directory are kept: the top of the git repository it is in, so one repository has
    one .orchestra/ whichever subdirectory a run starts from; outside a repository the directory itself."""
    workdir = Path(workdir).resolve()
    not_homes = _not_homes()
    for folder in (workdir, *workdir.parents):
        if folder in not_homes:
            break
        if (folder / ".git").exists():
            return folder
    return workdir


@lru_cache(maxsize=1)
def _not_homes() -> frozenset:
    """Folders whose repository, if they have one, is never a run's home: a home directory kept in git (its
    dotfiles) or a stray one in the temp directory would otherwise gather the runs of every folder below."""
    import tempfile

    found = {Path("/")}
    for folder in (os.path.expanduser("~"), tempfile.gettempdir()):
        try:
            found.add(Path(folder).resolve())
        except OSError:
            pass
    return frozenset(found)


def new_run_id() -> str:
    """The local time it starts, then its 256th of a second and 4 random hex digits: ids sort in the order
    runs started (`latest`, `runs`), to 4 ms, and two runs started at once still differ."""
    import secrets
    from datetime import datetime

    now = datetime.now()
    return now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond * 256 // 1_000_000:02x}" + secrets.token_hex(2)


def folder(workdir: Path, run_id: str) -> Path:
    return home(workdir) / RUNS_DIR / run_id


def make(workdir: Path, run_id: Optional[str] = None) -> tuple[str, Path]:
    """A new run folder (or the one named, made by the command that started this run in the background),
    readable by its owner only. Raises OrchestraError when it cannot be made."""
    workdir = home(workdir)
    runs = workdir / RUNS_DIR
    try:
        runs.mkdir(parents=True, exist_ok=True)
        # keep .orchestra/ (runs, worktrees) out of git's view without editing the user's .gitignore
        ignore = workdir / ORCHESTRA_DIR / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        if run_id:
            path = runs / run_id
            path.mkdir(mode=0o700, exist_ok=True)
            return run_id, path
        while True:  # two runs started in the same second still get their own folders
            run_id = new_run_id()
            try:
                (runs / run_id).mkdir(mode=0o700)
                return run_id, runs / run_id
            except FileExistsError:
                continue
    except OSError as exc:
        raise OrchestraError(f"cannot keep this run's record in {runs}: {exc.strerror or exc} "
                             "(orchestra writes transcripts and run.json there; pick another --workdir)") from None


def write_atomically(path: Path, text: str, mode: Optional[int] = None) -> None:
    """A reader sees the old file or the new one, never half of one (and two writers at once, one or the other's
    whole). mode: the new file's, else the umask's."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        if mode is not None:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode))
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def write_record(run_dir: Path, record: dict) -> Path:
    path = Path(run_dir) / RECORD
    write_atomically(path, json.dumps(record, indent=2, ensure_ascii=False))
    return path


def hold_lock(path: Path) -> Optional[int]:
    """An exclusive lock on path, held as long as the returned fd is open (none if it cannot be had)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by the agents (PEP 446)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


# -- the runs under way ----------------------------------------------------------------------------


def mark_live(workdir: Path, run_id: str) -> Path:
    marker = home(workdir) / LIVE_DIR / run_id
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # `status` without a run id will not list it; its record still says running
    return marker


def unmark_live(workdir: Path, run_id: str) -> None:
    try:
        (home(workdir) / LIVE_DIR / run_id).unlink()
    except OSError:
        pass


def live_ids(workdir: Path) -> list[str]:
    live = home(workdir) / LIVE_DIR
    try:
        return sorted(name for name in os.listdir(live) if RUN_ID.fullmatch(name))
    except OSError:
        return []


def made_since(workdir: Path, run_id: str) -> list[str]:
    """The runs of the directory whose folders were made in the same second as run_id's, or later
    (a run id begins with that second)."""
    try:
        names = os.listdir(Path(workdir) / RUNS_DIR)
    except OSError:
        return []
    return sorted(name for name in names if RUN_ID.fullmatch(name) and name[:15] >= run_id[:15])


# -- reading records ---------------------------------------------------------------------------------


def check_id(run_id: str) -> None:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise OrchestraError(f"{run_id!r} is not a run id (like 20261125-064850-c62a32; see `orchestra runs`)")


def resolve(workdir: Path, given: str) -> str:
    """The run id a user means: `latest` (the newest run), a whole id, or the start of one that only one
    run's id starts with."""
    if RUN_ID.fullmatch(given):
        return given
    root = home(workdir) / RUNS_DIR
    try:
        ids = sorted(e.name for e in os.scandir(root) if RUN_ID.fullmatch(e.name) and e.is_dir())
    except OSError:
        ids = []
    if given == "latest":
        if not ids:
            raise OrchestraError(f"no runs yet in {root}")
        return ids[-1]
    matches = [i for i in ids if i.startswith(given)] if given and given.replace("-", "").isalnum() else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[-5:]) + (" ..." if len(matches) > 5 else "")
        raise OrchestraError(f"{given!r} is the start of {len(matches)} run ids ({shown}): give more of it")
    check_id(given)
    return given


def load(workdir: Path, run_id: str) -> dict:
    """A run's record (run.json) as readers use it; for a run that has none, what its folder tells."""
    check_id(run_id)
    return _load_in(home(workdir), run_id)


def _load_in(top: Path, run_id: str) -> dict:
    """load() in the home `top` (a listing finds it once, not once a run)."""
    path = os.path.join(top, RUNS_DIR, run_id, RECORD)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(path)):
            raise OrchestraError(f"no run '{run_id}' in {top / RUNS_DIR} (see `orchestra runs`)") from None
        return incomplete_run(top, top / RUNS_DIR / run_id)
    except OSError as exc:
        raise OrchestraError(f"{path}: cannot read: {exc}") from None
    try:
        run = json.loads(text)
    except ValueError as exc:
        raise OrchestraError(f"{path}: cannot read: {exc}") from None
    if not isinstance(run, dict) or not isinstance(run.get("run_id"), str):
        raise OrchestraError(f"{path}: not a run record (a JSON object with a run_id): damaged or not orchestra's")
    return lost_or_live(tidy(run))


def unreadable(run_id: str, why: str = "") -> dict:
    """The row of a run whose record cannot be read: one odd record is one such row, never more."""
    return {"run_id": run_id, "status": "unreadable", "reason": why, "task": "", "primary": None, "secondaries": [],
            "total_cost_usd": None, "duration_s": None}


def _run_names(top: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(top / RUNS_DIR) if RUN_ID.fullmatch(e.name) and e.is_dir())
    except OSError:
        return []


def list_runs(workdir: Path) -> list[dict]:
    """Every run folder, oldest first: its record, or what the folder tells without one (incomplete)."""
    top = home(workdir)
    runs = []
    for name in _run_names(top):
        try:
            runs.append(_load_in(top, name))
        except OrchestraError as exc:
            runs.append(unreadable(name, str(exc)))
    return runs


# -- the runs listed: a row each, kept for the finished ones -------------------------------------------

# A finished run's row, under its run.json's fingerprint: `orchestra runs` reads a record again only when
# it changed (a follow-up turn, a hand edit), not a thousand records at every listing.
ROWS = ORCHESTRA_DIR / "rows.json"
ROWS_VERSION = 1


def row_of(run: dict) -> dict:
    """What `orchestra runs` shows of a run (its record as load() gives it)."""
    return {"run_id": run.get("run_id"), "status": run.get("status"), "verified": run.get("verified"),
            "agents": [str(a.get("agent") or "?") for a in run_agents(run)],
            "total_cost_usd": run.get("total_cost_usd"), "duration_s": run.get("duration_s"), "task": run.get("task")}


def rows(workdir: Path) -> list[dict]:
    """row_of() every run folder, oldest first. A finished run's row comes from ROWS while its run.json has
    the size, times and inode it had when the row was made (a record is rewritten whole, renamed over the
    old one, so a new one never has the old one's inode; an edit in place changes its ctime); any other
    is read. A run under way, lost, incomplete or unreadable is read at every listing, never kept."""
    top = home(workdir)
    kept_path = top / ROWS
    try:
        with open(kept_path, encoding="utf-8") as fh:
            kept = json.load(fh)
        kept = kept["rows"] if kept.get("version") == ROWS_VERSION and isinstance(kept.get("rows"), dict) else {}
    except (OSError, ValueError, AttributeError, TypeError):
        kept = {}
    found, out = {}, []
    runs_dir = os.path.join(top, RUNS_DIR)
    for name in _run_names(top):
        try:
            st = os.stat(os.path.join(runs_dir, name, RECORD))
            mark = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
        except OSError:
            mark = None
        had = kept.get(name)
        if mark is not None and isinstance(had, list) and len(had) == 2 and had[0] == mark and isinstance(had[1], dict):
            found[name] = had
            out.append(had[1])
            continue
        try:
            run = _load_in(top, name)
        except OrchestraError as exc:
            run = unreadable(name, str(exc))
        row = row_of(run)
        out.append(row)
        if mark is not None and run.get("status") not in (RUNNING, LOST, "unreadable", "incomplete"):
            found[name] = [mark, row]
    if found != kept:
        try:
            write_atomically(kept_path, json.dumps({"version": ROWS_VERSION, "rows": found}, ensure_ascii=False),
                             mode=0o600)
        except OSError:
            pass  # listed all the same; read again next time
    return out


def run_agents(run: dict) -> list[dict]:
    """The run's agents as recorded (a damaged entry, not an object, is left out)."""
    primary = run.get("primary")
    secondaries = run.get("secondaries")
    agents = ([primary] if isinstance(primary, dict) else []) + (secondaries if isinstance(secondaries, list) else [])
    return [a for a in agents if isinstance(a, dict)]


def fix_rounds(agent: dict) -> list[dict]:
    """An agent's fix rounds (checks.py) that name a transcript: each one more terminal of the run."""
    rounds = agent.get("fix_rounds")
    return [r for r in rounds if isinstance(r, dict) and isinstance(r.get("transcript"), str) and r["transcript"]] \
        if isinstance(rounds, list) else []


def run_terminals(run: dict) -> list[dict]:
    """Every agent of the run with a transcript of its own: its agents, then their fix rounds."""
    agents = run_agents(run)
    return agents + [r for a in agents for r in fix_rounds(a)]


def lost_or_live(run: dict) -> dict:
    """A record that says running, from a process that is gone, is of a lost run: so it is shown."""
    if run.get("status") != RUNNING or process_alive(run.get("pid"), run.get("pid_started")):
        return run
    why = (f"orchestra (pid {run.get('pid')}) ended without finishing the run (killed?); its transcripts are "
           f"kept (orchestra replay {run['run_id']}), and orchestra clean {run['run_id']} ends what it left running")
    agents = {id(a): {**a, "status": LOST} for a in run_agents(run) if a.get("status") == RUNNING}
    return {**run, "status": LOST, "reason": why,
            "primary": agents.get(id(run.get("primary")), run.get("primary")),
            "secondaries": [agents.get(id(a), a) for a in run.get("secondaries") or []]}


# What readers rely on in a record, by type; a field of another type is dropped to its empty value, so
# one hand-edited or damaged run.json never breaks `runs`, `show`, `status`, the web page or MCP.
_TEXT = ("task", "status", "reason", "started_at", "workdir", "brief", "primary_reply", "tmux_session", "merge_stopped")
_NUMBER = ("total_cost_usd", "duration_s", "pid", "pid_started")
_LISTS = ("secondaries", "briefs", "routes", "worktrees", "merges")
_AGENT_TEXT = ("agent", "role", "status", "reason", "transcript", "started_at", "cost_source", "reply", "branch",
               "phase", "latest", "tmux_target", "workdir")
_AGENT_NUMBER = ("cost_usd", "duration_s", "exit_code")
_AGENT_LISTS = ("files_modified", "files_claimed", "errors", "last_lines", "files_outside_workdir")


def tidy(run: dict) -> dict:
    """The record (changed in place) with every field a reader uses of the type it expects (others untouched)."""
    run = _typed(run, _TEXT, _NUMBER)
    for key in _LISTS:
        if key in run and not isinstance(run[key], list):
            run[key] = []
    if "primary" in run and not isinstance(run["primary"], dict):
        run["primary"] = None
    run["secondaries"] = [tidy_agent(a) for a in run.get("secondaries") or [] if isinstance(a, dict)]
    if run.get("primary") is not None:
        run["primary"] = tidy_agent(run["primary"])
    for key in ("route", "base"):
        if key in run and not isinstance(run[key], (dict, type(None))):
            run[key] = None
    run["merges"] = [m for m in run.get("merges") or [] if isinstance(m, dict)]
    return run


def tidy_agent(agent: dict) -> dict:
    agent = _typed(agent, _AGENT_TEXT, _AGENT_NUMBER)
    for key in _AGENT_LISTS:
        value = agent.get(key)
        if value is not None or key in agent:
            if not isinstance(value, list):
                agent[key] = []
            elif not all(type(v) is str for v in value):
                agent[key] = [str(v) for v in value]
    if "tokens" in agent and not isinstance(agent["tokens"], dict):
        agent["tokens"] = {"input": None, "output": None}
    if "ended_by" in agent and not isinstance(agent["ended_by"], (dict, type(None))):
        agent["ended_by"] = None
    for key in ("budget", "node"):
        if key in agent and not isinstance(agent[key], (dict, type(None))):
            agent[key] = None
    if "turns" in agent:  # its follow-up turns (orchestra send), each an agent's summary
        agent["turns"] = [tidy_agent(t) for t in agent["turns"] if isinstance(t, dict)] \
            if isinstance(agent["turns"], list) else []
    return agent


def _typed(record: dict, texts: tuple, numbers: tuple) -> dict:
    """record (changed in place) with its text fields text (or None) and number fields numbers (else None)."""
    for key in texts:
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            record[key] = str(value)
    for key in numbers:
        if not _is_number(record.get(key)):
            record[key] = None
    return record


def _is_number(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def incomplete_run(workdir: Path, run_dir: Path) -> dict:
    """What a run folder without run.json still tells: the run's id and start (from the id), its
    transcripts, whose they are (their headers' titles) and how long each went on (its last event)."""
    from datetime import datetime, timezone

    from .transcript import header_of  # (transcripts are read only for a folder without a record)

    agents = []
    for cast in sorted(run_dir.glob("*.cast")):
        header = header_of(cast)
        title = header.get("title")
        name = title[len("orchestra: "):] if isinstance(title, str) and title.startswith("orchestra: ") else cast.stem
        stamp = header.get("timestamp")
        agents.append({
            "agent": name, "role": cast.stem, "status": "incomplete", "transcript": os.path.relpath(cast, workdir),
            "started_at": datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")
            if isinstance(stamp, int) else "",
            "duration_s": _last_event_at(cast), "cost_usd": None, "files_modified": [], "errors": [],
        })
    primary = next((a for a in agents if a["role"] == "primary"), None)
    started = datetime.strptime(run_dir.name[:15], "%Y%m%d-%H%M%S")  # the id is the local time it started
    return {"run_id": run_dir.name, "status": "incomplete", "reason": INCOMPLETE, "task": None,
            "started_at": started.astimezone(timezone.utc).isoformat(timespec="seconds"),
            "primary": primary, "secondaries": [a for a in agents if a is not primary],
            "total_cost_usd": None, "duration_s": None}


def _last_event_at(path: Path) -> float:
    """The time of a transcript's last whole event, read from its end (a killed run may leave a cut line)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 65536))
            lines = fh.read().split(b"\n")
    except OSError:
        return 0.0
    for line in reversed(lines[1:]):  # the first is the header, or cut by the seek
        try:
            event = json.loads(line)
            return round(float(event[0]), 3)
        except (ValueError, TypeError, IndexError, KeyError):
            continue
    return 0.0


def left_running(run_id: str) -> tuple[list[int], list[int]]:
    """What carries a run's mark (whichever orchestra process ran it), and the pid of that orchestra
    process if it is still alive (then the run is going on, and what carries its mark is its agents)."""
    found = marked(RUN_MARK, f"{run_id}.", prefix=True)
    owners = set()
    for value in set(found.values()):
        pid = value.rpartition(".")[2]
        if pid.isdigit() and b"orchestra" in (command_line(int(pid)) or b""):  # not a later process with its pid
            owners.add(int(pid))
    return sorted(found), sorted(owners)


# -- a run started in the background: the worker's side -----------------------------------------------

# Given to a worker: "<run id>:<fd of the pipe to its starter>"; taken out of its environment at once,
# so its agents never see it.
WORKER_ENV = "ORCHESTRA_WORKER"
_starter_fd: Optional[int] = None


def become_worker() -> Optional[str]:
    """In a process started by jobs.start(): the run id it must use (None in any other process)."""
    global _starter_fd
    spec = os.environ.pop(WORKER_ENV, None)
    if not spec:
        return None
    run_id, _, fd = spec.partition(":")
    _starter_fd = int(fd)
    return run_id


def tell_starter(message: str) -> None:
    """Tell the starter the run is under way ("started") or why it is not; once, then the pipe closes."""
    global _starter_fd
    if _starter_fd is None:
        return
    fd, _starter_fd = _starter_fd, None
    try:
        os.write(fd, message.encode("utf-8", "replace")[:65536])
    except OSError:
        pass  # the starter has gone: the run goes on
    finally:
        os.close(fd)
