"""Past runs of a working directory, and parsing saved transcripts after the fact."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from . import failures
from .config import Config, Profile
from .errors import OrchestraError
from .parsers import make_parser
from .redact import Redactor, secrets_from_env
from .run import RUNS_DIR, process_alive
from .searcher import multiline
from .session import ENDED_KEPT, ENDED_LINE
from .stream import Stream
from .summary import LOST, RUNNING, AgentSummary, cost_of, split_paths
from .transcript import event_bytes, header_of, read_cast
from .worktree import RUN_ID

CHUNK = 65536


INCOMPLETE = ("no run.json: orchestra ended before writing it (killed, out of memory, a power cut), or the run "
              "is still going")


def list_runs(workdir: Path) -> list[dict]:
    """Every run folder, oldest first: its record, or what the folder tells without one (incomplete)."""
    runs = []
    root = workdir / RUNS_DIR
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and RUN_ID.fullmatch(p.name)) if root.is_dir() else []:
        try:
            runs.append(load_run(workdir, folder.name))
        except OrchestraError:
            runs.append({"run_id": folder.name, "status": "unreadable", "task": ""})
    return runs


def load_run(workdir: Path, run_id: str) -> dict:
    """A run's record (run.json); for a run that has none, what its folder tells (incomplete_run)."""
    if not RUN_ID.fullmatch(run_id):
        raise OrchestraError(f"{run_id!r} is not a run id (like 20261125-064850-c62a32; see `orchestra runs`)")
    path = workdir / RUNS_DIR / run_id / "run.json"
    if not path.parent.is_dir():
        raise OrchestraError(f"no run '{run_id}' in {workdir / RUNS_DIR} (see `orchestra runs`)")
    if not path.exists():
        return incomplete_run(workdir, path.parent)
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OrchestraError(f"{path}: cannot read: {exc}") from None
    if not _is_run(run):
        raise OrchestraError(f"{path}: not a run record (a JSON object with a run_id): damaged or not orchestra's")
    return lost_or_live(run)


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


def incomplete_run(workdir: Path, folder: Path) -> dict:
    """What a run folder without run.json still tells: the run's id and start (from the id), its
    transcripts, whose they are (their headers' titles) and how long each went on (its last event)."""
    agents = []
    for cast in sorted(folder.glob("*.cast")):
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
    started = datetime.strptime(folder.name[:15], "%Y%m%d-%H%M%S")  # the id is the local time it started
    return {"run_id": folder.name, "status": "incomplete", "reason": INCOMPLETE, "task": None,
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


def _is_run(run) -> bool:
    return isinstance(run, dict) and isinstance(run.get("run_id"), str)


def run_agents(run: dict) -> list[dict]:
    """The run's agents as recorded (a damaged entry, not an object, is left out)."""
    agents = ([run["primary"]] if run.get("primary") else []) + list(run.get("secondaries") or [])
    return [a for a in agents if isinstance(a, dict)]


def find_transcript(workdir: Path, target: str, role: Optional[str] = None) -> Path:
    """A .cast file given directly, or a run's transcript by RUN_ID (and role)."""
    path = Path(target)
    if path.suffix == ".cast" or path.is_file():
        if not path.is_file():
            raise OrchestraError(f"{path}: transcript not found")
        return path
    run = load_run(workdir, target)
    agents = run_agents(run)
    if role:
        agents = [a for a in agents if role in (a.get("role"), a.get("agent"), Path(a.get("transcript", "")).stem)]
    if not agents:
        raise OrchestraError(f"run {target} has no agent '{role}'" if role else f"run {target} has no transcript")
    if not agents[0].get("transcript"):
        raise OrchestraError(f"run {target}: its run.json names no transcript for that agent")
    return workdir / agents[0]["transcript"]


def summarize_file(config: Config, profile: Profile, path: Path) -> AgentSummary:
    """Parse a saved transcript (asciicast, JSON lines or raw terminal output) like a live stream."""
    stream = Stream(make_parser(profile.parser, profile))
    completed = profile.completion is None
    line = None  # the completion line
    retry = multiline(profile.retry)
    retries: dict[str, int] = {}  # what the agent retried (its parser's words) -> how often

    def feed(data: bytes, final: bool = False) -> None:
        nonlocal completed, line
        _, lines = stream.feed(data, final)
        found = profile.completion.search(lines) if not completed and lines else None
        if found:
            completed = True
            start = lines.rfind("\n", 0, found.start()) + 1
            line = lines[start:min(lines.find("\n", found.end()) + 1 or len(lines), start + ENDED_KEPT)].strip()
        if retry is not None and lines and retry.search(lines):
            for retried in filter(retry.search, lines.splitlines()):
                what = stream.parser.retry(retried.strip()) or retried.strip()[:200]
                retries[what] = retries.get(what, 0) + 1

    started_in = None  # the directory orchestra started the agent in, which its transcript's header names
    try:
        if _is_cast(path):
            cast = read_cast(path)
            own = cast.header.get("orchestra")
            started_in = own.get("cwd") if isinstance(own, dict) else None
            for ev in cast.events():
                if ev.kind == "o":
                    feed(event_bytes(ev.data))
        else:
            with open(path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    feed(chunk)
    except OSError as exc:
        raise OrchestraError(f"{path}: cannot read: {exc}") from None
    feed(b"", final=True)
    parsed = stream.parser.result()
    # the agent's paths are its own working directory's, which its init event may name, or else the
    # transcript's header: not this one
    if not parsed.cwd:
        parsed.set_cwd(started_in)
    inside, outside = split_paths(parsed.files, Path(parsed.cwd) if parsed.cwd else Path.cwd())
    cost, source = cost_of(parsed, profile.name, config)
    # a refused key or an API it could not reach, and what it retried, in the words a live run gives; the
    # address is the transcript's (the agent's environment then is not this one)
    failure = failures.describe(parsed.api_failure, profile, {}, probe=False) if parsed.api_failure else ""
    errors = [*([failure] if failure else []), *parsed.errors,
              *(failures.retried(what, count) for what, count in retries.items())]
    last = stream.last_lines[-1] if stream.last_lines else ""
    if parsed.is_error:
        status, reason = "failed", "the agent reported an error"
    elif completed or parsed.is_error is False:  # no completion line, but the agent's own verdict
        status, reason = "completed", ""
    elif parsed.api_failure is not None and parsed.api_failure.key_refused:
        status, reason = "failed", failure
    elif retry is not None and retry.search(last):
        what = stream.parser.retry(last.strip()) or last.strip()[:200]
        status, reason = "failed", f"the transcript ends while the agent retries: {failures.retried(what, retries[what])}"
    else:
        status, reason = "failed", "the transcript has no completion pattern (cut short?)"
    # a transcript is not waited for: what ended it is its completion line, or its end
    ended_by = {"signal": "completion" if line is not None else "exit", "decided_ms": None,
                "pattern": profile.completion.pattern if line is not None else None,
                "line": Redactor(secrets_from_env(os.environ, [profile.api_key_env])).text(line)[:ENDED_LINE]
                if line is not None else None}
    return AgentSummary(
        agent=profile.name, role="transcript", status=status, reason=reason, ended_by=ended_by,
        files_modified=inside, files_claimed=inside,
        files_outside_workdir=outside, errors=list(dict.fromkeys(errors)), cost_usd=cost, cost_source=source,
        tokens={"input": parsed.tokens_in, "output": parsed.tokens_out}, transcript=str(path),
        session_id=parsed.session_id, last_lines=list(stream.last_lines), reply=parsed.reply[-4000:],
    )


def _is_cast(path: Path) -> bool:
    with open(path, "rb") as fh:
        first = fh.readline(4096)
    try:
        header = json.loads(first)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("version") == 2
