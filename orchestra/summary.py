"""The summary schema: one per agent, one per run; the same for --json, run.json and `summarize`.

Files modified come from the agent's own report and, in a git repository, from
git (changed and new files, before vs after): git's list says what changed, the
agent's named edits say which of it is the agent's (attribute()).
"""
from __future__ import annotations

import copy
import fnmatch
import os
import subprocess
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Optional

from .config import Config
from .parsers import Parsed

def as_dict(record) -> dict:
    """dataclasses.asdict(record), made without its deep copy of every string and number (a run's record
    holds thousands: several milliseconds each time one is written): dicts, lists and tuples are copied,
    anything else mutable deep-copied, as asdict does."""
    return {f.name: _copied(getattr(record, f.name)) for f in fields(record)}


def _copied(value):
    if value is None or isinstance(value, (str, int, float)):  # (bool is an int)
        return value
    if type(value) is dict:
        return {_copied(k): _copied(v) for k, v in value.items()}
    if type(value) is list:
        return [_copied(v) for v in value]
    if type(value) is tuple:
        return tuple(_copied(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return as_dict(value)
    return copy.deepcopy(value)


STATUSES = ("completed", "partial", "failed", "timeout", "waiting_for_input", "crashed", "interrupted", "over_budget")


@dataclass
class AgentSummary:
    agent: str
    role: str
    status: str
    reason: str = ""
    # what ended the wait: {"signal", "pattern", "line" (masked, 200 characters), "decided_ms"} (session.Outcome)
    ended_by: Optional[dict] = None
    files_modified: list[str] = field(default_factory=list)
    # changed in its working directory while it ran, not by the edits it named: someone else's, or a command's
    files_changed_by_others: list[str] = field(default_factory=list)
    files_note: str = ""  # said when files_modified may hold another writer's files
    runs_alongside: list[str] = field(default_factory=list)  # other runs of its directory under way meanwhile
    files_claimed: list[str] = field(default_factory=list)
    files_seen_by_git: Optional[list[str]] = None
    files_outside_workdir: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cost_usd: Optional[float] = None
    cost_source: str = "unknown"  # reported, estimated, unknown
    tokens: dict = field(default_factory=lambda: {"input": None, "output": None})
    duration_s: float = 0.0
    started_at: str = ""  # when it was spawned (UTC, ms): with duration_s, shows which agents overlapped
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    transcript: str = ""
    reply_transcript: Optional[str] = None  # a headless primary's resumed turn
    tmux_target: Optional[str] = None
    answers: list[dict] = field(default_factory=list)
    session_id: Optional[str] = None
    last_lines: list[str] = field(default_factory=list)
    reply: str = ""
    workdir: str = ""
    branch: Optional[str] = None
    node: Optional[dict] = None  # on a Ray cluster (--cluster): the node it ran on, {"id", "ip"}
    # its acceptance checks (checks.py): true all passed, false one failed, null none given or it did not complete
    verified: Optional[bool] = None
    checks: list[dict] = field(default_factory=list)  # the last time they ran: command, exit_code, duration_s, output
    fix_rounds: list[dict] = field(default_factory=list)  # each: round, then its own summary, checks and verified
    # its limits and what it spent against each (budget.Meter.state), when it had a budget
    budget: Optional[dict] = None

    def to_dict(self) -> dict:
        return as_dict(self)


@dataclass
class RunSummary:
    run_id: str
    task: str
    status: str
    reason: str = ""
    brief: Optional[str] = None
    briefs: list[str] = field(default_factory=list)  # one per secondary, when there are several
    route: Optional[dict] = None
    routes: list[dict] = field(default_factory=list)  # one per routed secondary, when there are several
    primary: Optional[dict] = None
    secondaries: list[dict] = field(default_factory=list)
    summary_returned_to_primary: bool = False
    primary_reply: Optional[str] = None
    total_cost_usd: Optional[float] = None
    duration_s: float = 0.0
    started_at: str = ""
    workdir: str = ""
    tmux_session: Optional[str] = None
    base: Optional[dict] = None  # several secondaries: the branch and commit their worktrees start from
    worktrees: list[dict] = field(default_factory=list)
    merges: list[dict] = field(default_factory=list)  # per branch: commits, files, merges_cleanly, conflicts, merged
    merge_stopped: Optional[str] = None
    verified: Optional[bool] = None  # false if an agent's checks, or the merged checkout's, failed
    merged_checks: list[dict] = field(default_factory=list)  # --merge: the checks again, on the merged checkout
    pid: Optional[int] = None  # the orchestra process that ran it (a record still `running` without it: lost)
    pid_started: Optional[int] = None  # when that process started (clock ticks since boot): tells a reused pid

    def to_dict(self) -> dict:
        return as_dict(self)


def describe_ended_by(ended: Optional[dict], line: bool = True, limit: int = 200) -> str:
    """ended_by in words: `completion /"type":"result"/ (decided in 0.42 ms) on: {"type":"result",...`."""
    if not isinstance(ended, dict):  # a run recorded before it was kept, or damaged
        return "not recorded"
    text = str(ended.get("signal") or "?")
    if ended.get("pattern"):
        pattern = str(ended["pattern"])
        text += f" /{pattern if len(pattern) <= limit else pattern[:limit] + '...'}/"
    if isinstance(ended.get("decided_ms"), (int, float)):
        text += f" (decided in {ended['decided_ms']:g} ms)"
    if line and ended.get("line"):
        text += f" on: {ended['line']}"
    return text


# ended_by's signal said to a person, and what it means: ok (a completion), waiting (for an answer),
# stopped (someone stopped it), error (anything else). One place, for every page that shows it.
SIGNAL_WORDS = {
    "completion": ("finished: its completion line appeared", "ok"),
    "error_pattern": ("failed: an error line appeared", "error"),
    "auth_refused": ("failed: the API refused its key", "error"),
    "exit": ("its process exited before any pattern decided", "error"),
    "timeout": ("timed out", "error"),
    "interrupted": ("interrupted", "stopped"),
    "waiting_for_input": ("waiting for input: it asked a question and went quiet", "waiting"),
    "max_retries": ("gave up after its retries", "error"),
    "auto_answer_loop": ("stopped: it asked the same question again and again", "error"),
    "exit_after_completion": ("failed: it exited non-zero after its completion line", "error"),
    "line_too_long": ("failed: the typed text was longer than its terminal takes in a line", "error"),
    "closed_terminal": ("failed: it closed its terminal unfinished", "error"),
    "budget": ("stopped: it crossed a limit of its budget", "stopped"),
}


def ended_by_words(ended: Optional[dict], status: str = "") -> dict:
    """ended_by for a page: `words` (plain), `kind` (ok, waiting, stopped, error: its colour), `line` (what
    decided, masked) and `detail` (describe_ended_by without the line: the pattern and how soon)."""
    if not isinstance(ended, dict):
        return {"words": "not recorded", "kind": "unknown", "line": None, "detail": ""}
    words, kind = SIGNAL_WORDS.get(str(ended.get("signal")), (str(ended.get("signal") or "?"), "error"))
    if ended.get("signal") == "exit" and status == "completed":
        words, kind = "its process exited (its work done)", "ok"
    return {"words": words, "kind": kind, "line": ended.get("line"), "detail": describe_ended_by(ended, line=False)}


def cost_of(parsed: Parsed, agent: str, config: Optional[Config]) -> tuple[Optional[float], str]:
    if parsed.cost_usd is not None:
        return round(parsed.cost_usd, 6), "reported"
    price = config.prices.get(agent) if config else None
    if price and parsed.tokens_in is not None and parsed.tokens_out is not None:
        cost = (parsed.tokens_in * price.input_per_mtok + parsed.tokens_out * price.output_per_mtok) / 1e6
        return round(cost, 6), "estimated"
    return None, "unknown"


def split_paths(claimed: list[str], workdir: Path) -> tuple[list[str], list[str]]:
    """Claimed paths made relative to workdir; those that point outside it are set apart, never opened."""
    root = os.path.normpath(str(workdir))
    inside, outside = [], []
    for path in claimed:
        full = os.path.normpath(path if os.path.isabs(path) else os.path.join(root, path))
        if full == root or not full.startswith(root + os.sep):
            outside.append(path)
        else:
            rel = os.path.relpath(full, root)
            if rel not in inside:
                inside.append(rel)
    return inside, outside


def without_ignored(paths: list[str], globs: list[str]) -> list[str]:
    """Paths that match none of the globs (checked on the whole path and on each part)."""
    if not globs:
        return list(paths)
    return [p for p in paths
            if not any(fnmatch.fnmatch(p, g) or any(fnmatch.fnmatch(part, g) for part in p.split("/")) for g in globs)]


def total_cost(summaries: list[AgentSummary]) -> Optional[float]:
    costs = [s.cost_usd for s in summaries if s.cost_usd is not None]
    return round(sum(costs), 6) if costs else None


# How the files set apart are shown, wherever they are (the block a primary gets, show, MCP results)
OTHERS_LABEL = "also changed while it ran, by someone else or by a command it ran"


def attribute(claimed: list[str], seen: Optional[list[str]], names_files: bool, alone: bool,
              alongside: list[str]) -> tuple[list[str], list[str], str]:
    """An agent's files (files_modified), the files set apart (files_changed_by_others), and what to say.

    Without git, what it claimed. In a worktree of its own, all that git saw change. An agent whose
    parser names every edit it makes: the files it named that git saw change; the rest of git's list
    is another writer's (you, another run) or a command's it ran (a shell command names no file), and
    is set apart. An agent that names no files (a --cmd program, a TUI's screen): git's list, which
    holds whatever anyone else wrote meanwhile; said when other runs of the directory were under way."""
    if seen is None:
        return list(claimed), [], ""
    if alone:
        return list(seen), [], ""
    if names_files:
        named = set(claimed)
        return [p for p in seen if p in named], [p for p in seen if p not in named], ""
    note = ""
    if alongside:
        runs = f"run{'s' if len(alongside) > 1 else ''} {', '.join(alongside)}"
        note = (f"this agent names no files: these are all the files git saw change while it ran, and {runs} "
                f"worked in this directory at the same time, so other writers' files may be among them "
                f"(a run isolated in a worktree of its own keeps them apart)")
    return list(seen), [], note


def apart_lines(agent: dict, more: str, shown: int = 10) -> list[str]:
    """An agent's record's files set apart and its files note, as a terminal shows them (`more`: where
    the whole list is)."""
    others = agent.get("files_changed_by_others") or []
    lines = [f"   ⚠️  {OTHERS_LABEL}: " + ", ".join(others[:shown])
             + (f" ... and {len(others) - shown} more ({more})" if len(others) > shown else "")] if others else []
    return lines + ([f"   ⚠️  {agent['files_note']}"] if agent.get("files_note") else [])


class GitSnapshot:
    """What a git working tree looked like before an agent ran, to tell what it changed. alone: the
    tree is the agent's own (a worktree made for it), so whatever changed in it is its work. top: that
    worktree's top, made clean at `head`: one `git status` then tells what changed, as long as the agent
    committed nothing."""

    def __init__(self, workdir: Path, head: Optional[str], dirty: dict[str, str], alone: bool = False,
                 top: Optional[Path] = None):
        self.workdir, self.head, self.dirty, self.alone, self.top = workdir, head, dirty, alone, top
        self.on: Optional[str] = None  # the branch HEAD was on, still at `head`, when changed() last asked git

    @classmethod
    def take(cls, workdir: Path) -> Optional["GitSnapshot"]:
        if _git(workdir, "rev-parse", "--is-inside-work-tree") != "true":
            return None
        head = _git(workdir, "rev-parse", "--verify", "-q", "HEAD") or None
        return cls(workdir, head, {p: _digest(workdir / p) for p in _changed_paths(workdir, head)})

    def changed(self) -> list[str]:
        """Files changed or created since the snapshot, relative to workdir, committed or not."""
        if self.top is not None and self.head and not self.dirty:
            found = _status_since(Path(self.top), Path(self.workdir), self.head)
            if found is not None:
                seen, self.on = found
                return sorted(seen)
        now = _changed_paths(self.workdir, self.head)
        return sorted(p for p in now if p not in self.dirty or self.dirty[p] != _digest(self.workdir / p))


def _changed_paths(workdir: Path, head: Optional[str]) -> set[str]:
    paths = set(_git_list(workdir, "ls-files", "--others", "--exclude-standard", "-z"))
    if head:
        paths |= set(_git_list(workdir, "diff", "--name-only", "--relative", "-z", head))
    else:
        paths |= set(_git_list(workdir, "ls-files", "-z"))
    return {p for p in paths if not p.startswith(".orchestra/")}


# what one call says of a worktree: its HEAD, its changed files (staged or not) and its untracked ones
STATUS = ["git", "--no-optional-locks", "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all",
          "--no-renames"]


def _status_since(top: Path, workdir: Path, head: str) -> Optional[tuple[set[str], str]]:
    """What _changed_paths(workdir, head) says, in one git call, for a worktree whose HEAD is still `head`:
    its tracked files changed (staged or not) and its untracked ones, under workdir; and the branch HEAD is
    on. None when only the two calls can say it: HEAD moved (the agent committed), a rename or a conflict,
    or a file staged and then changed again (whether it now differs from HEAD, only a diff tells)."""
    try:
        done = subprocess.run(STATUS, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    oid, branch, paths = None, "", []
    for entry in done.stdout.split(b"\0"):
        if entry.startswith(b"# branch.oid "):
            oid = entry[len(b"# branch.oid "):].decode()
        elif entry.startswith(b"# branch.head "):
            branch = entry[len(b"# branch.head "):].decode("utf-8", "replace")
        elif entry.startswith(b"1 "):
            fields = entry.split(b" ", 8)
            if len(fields) < 9:
                return None
            staged, unstaged = fields[1][:1], fields[1][1:2]
            if staged == b"A" and unstaged == b"D":
                continue  # added, then deleted: not there before, not there now
            if staged not in (b".", b"A") and unstaged != b".":
                return None
            paths.append(fields[8])
        elif entry.startswith(b"? "):
            paths.append(entry[2:])
        elif entry and not entry.startswith(b"#"):
            return None
    if oid != head:
        return None
    prefix = os.path.relpath(workdir, top)
    prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"
    seen = set()
    for raw in paths:
        path = raw.decode("utf-8", "replace")
        if path.startswith(prefix) and not path[len(prefix):].startswith(".orchestra/"):
            seen.add(path[len(prefix):])
    return seen, branch


def _digest(path: Path) -> str:
    """A file's fingerprint: what its inode says (size, times, inode number), never its content, so
    a snapshot costs the same for a 1 GB untracked file as for an empty one. Any write changes the
    ctime, which nothing but the kernel sets; a file rewritten with the same bytes counts as changed."""
    try:
        st = os.lstat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _git(workdir: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=workdir, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _git_list(workdir: Path, *args: str) -> list[str]:
    try:
        done = subprocess.run(["git", *args], cwd=workdir, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [p.decode("utf-8", "replace") for p in done.stdout.split(b"\0") if p]
