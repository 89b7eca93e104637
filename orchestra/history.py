"""Saved transcripts after the fact: finding a run's, and parsing one into a summary."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from . import failures
from .config import Config, Profile
from .errors import OrchestraError
from .parsers import make_parser
from .redact import Redactor, secrets_from_env
from . import runfolder
from .runfolder import fix_rounds, load, run_agents
from .searcher import multiline
from .session import ENDED_KEPT, ENDED_LINE
from .stream import Stream
from .summary import AgentSummary, cost_of, split_paths
from .transcript import event_bytes, read_cast

CHUNK = 65536


def find_transcripts(workdir: Path, target: str, role: Optional[str] = None) -> list[tuple[str, Path]]:
    """(what it is, path) for a .cast file given directly; for a RUN_ID its agents' transcripts in the
    order they started (the primary's reply turn after the secondaries), or the one `role` names: a
    role (primary, secondary-1), an agent (droid) or a transcript's name (primary-reply)."""
    path = Path(target)
    if path.suffix == ".cast" or path.is_file():
        if not path.is_file():
            raise OrchestraError(f"{path}: transcript not found")
        return [(path.stem, path)]
    run = load(workdir, target)
    found: list[tuple[str, str, Path]] = []  # (role, agent, path)
    for a in run_agents(run):
        for key in ("transcript", "reply_transcript"):
            if a.get(key):
                found.append((Path(a[key]).stem if key == "reply_transcript" else str(a.get("role") or Path(a[key]).stem),
                              str(a.get("agent") or "?"), runfolder.home(workdir) / a[key]))
        for r in fix_rounds(a):  # after the agent they fixed
            found.append((str(r.get("role") or Path(r["transcript"]).stem), str(r.get("agent") or "?"),
                          runfolder.home(workdir) / r["transcript"]))
        for turn in a.get("turns") or []:  # its follow-up turns (orchestra send): secondary-1-turn-2
            if isinstance(turn, dict) and isinstance(turn.get("transcript"), str):
                found.append((Path(turn["transcript"]).stem, str(a.get("agent") or "?"),
                              runfolder.home(workdir) / turn["transcript"]))
    if not found:
        raise OrchestraError(f"run {target}: its run.json names no transcript")
    order = {"primary": 0, "primary-reply": 2}
    found.sort(key=lambda f: order.get(f[0], 1))
    if role:
        chosen = [f for f in found if role in (f[0], f[1], f[2].stem)]
        if not chosen:
            valid = ", ".join(dict.fromkeys(name for f in found for name in (f[0], f[2].stem)))
            raise OrchestraError(f"run {target} has no agent '{role}': give --agent one of {valid}")
        found = chosen[:1]
    return [(f"{r} ({agent})", p) for r, agent, p in found]


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
