"""What `orchestra web` reads: the run folders' records and their growing transcripts. Nothing else.

No web library here: the runs index and the transcript tail are plain Python, used by the server
(orchestra/web/server.py), the tests and bench/web.py alike.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator, Optional

from ..errors import OrchestraError
from .. import runfolder
from ..runfolder import RUN_ID, RUNNING, RUNS_DIR, lost_or_live, run_agents
from ..transcript import event_bytes, header_of
from ..views import RAW, RENDERED, Renderer, can_render, cast_view

CHUNK = 65536  # read from a transcript at a time: what one client holds of it, however long it grows
MESSAGE = 262144  # characters of output sent in one message at most
FILES_SHOWN = 10


class RunsIndex:
    """Every run of a directory, as rows for the runs page; each record read again only when it changed.
    One index serves every page: each remembers which version of each row it was sent (`since`)."""

    def __init__(self, workdir: Path, every: float = 0.0):
        self.workdir = Path(workdir)
        self.root = runfolder.home(self.workdir) / RUNS_DIR
        self.every = every  # scan() looks again at most this often
        self.scanned = float("-inf")
        self._seen: dict[str, tuple] = {}  # run id -> the stamp of what its row was made from
        self._raw: dict[str, dict] = {}  # run id -> its record as read (before lost_or_live)
        self.rows: dict[str, dict] = {}
        self.versions: dict[str, int] = {}
        self._version = 0

    def scan(self) -> None:
        now = time.monotonic()
        if now - self.scanned < self.every:
            return
        self.scanned = now
        try:
            names = {e.name for e in os.scandir(self.root) if RUN_ID.fullmatch(e.name) and e.is_dir()}
        except OSError:
            names = set()
        for run_id in names:
            stamp = _stamp(self.root / run_id)
            if stamp != self._seen.get(run_id):
                self._seen[run_id] = stamp
                try:
                    self._raw[run_id] = runfolder.load(self.workdir, run_id)
                except OrchestraError as exc:
                    self._raw[run_id] = runfolder.unreadable(run_id, str(exc))
            elif self._raw[run_id].get("status") != RUNNING:
                continue  # unchanged and over: its row stands (1,000 past runs cost a stat each, no more)
            run = self._raw[run_id]
            if run.get("status") == RUNNING:  # its process may have died since: the file does not say
                run = lost_or_live(run)
            try:
                row = runs_row(run)
            except (TypeError, ValueError, AttributeError, KeyError) as exc:  # an odd record: one odd row
                row = runs_row(runfolder.unreadable(run_id, f"run.json: {exc}"))
            if row != self.rows.get(run_id):
                self.rows[run_id] = row
                self._version += 1
                self.versions[run_id] = self._version
        for run_id in [r for r in self.rows if r not in names]:
            for table in (self.rows, self.versions, self._seen, self._raw):
                table.pop(run_id, None)

    def since(self, sent: dict) -> tuple[list[dict], list[str]]:
        """(rows new or changed since `sent` (run id -> version) was last updated, ids of runs gone);
        updates `sent`. Newest first."""
        changed = [r for r, v in self.versions.items() if sent.get(r) != v]
        gone = [r for r in sent if r not in self.rows]
        for r in gone:
            del sent[r]
        for r in changed:
            sent[r] = self.versions[r]
        return [self.rows[r] for r in sorted(changed, reverse=True)], gone


def _stamp(folder: Path) -> tuple:
    """What changes when a run's record does: run.json's size and time, or (none yet) the folder's."""
    try:
        st = os.stat(folder / "run.json")
        return ("run.json", st.st_mtime_ns, st.st_size)
    except OSError:
        try:
            return ("folder", os.stat(folder).st_mtime_ns)
        except OSError:
            return ("gone",)


def runs_row(run: dict) -> dict:
    """A run as the runs page shows it: small, whatever the record holds."""
    agents = run_agents(run)
    files: list[str] = []
    for a in agents:
        for f in a.get("files_modified") or []:
            if f not in files:
                files.append(f)
    return {
        "run_id": run.get("run_id"), "status": run.get("status"), "reason": str(run.get("reason") or "")[:300],
        "task": str(run.get("task") or "")[:300], "started_at": run.get("started_at"),
        "total_cost_usd": run.get("total_cost_usd"), "duration_s": run.get("duration_s"),
        "files": files[:FILES_SHOWN], "files_count": len(files),
        "agents": [{"agent": a.get("agent"), "role": a.get("role"), "status": a.get("status"),
                    "phase": a.get("phase")} for a in agents],
    }


def run_page(workdir: Path, run_id: str) -> dict:
    """A run's record for its page, each agent with the name of its transcript in the run folder
    (`cast`) and how it can be shown (`view`, `views`)."""
    run = runfolder.load(workdir, run_id)
    folder = runfolder.folder(workdir, run_id)
    for a in run_agents(run):
        name = Path(str(a.get("transcript") or "")).stem
        a["cast"] = name if name and (folder / f"{name}.cast").is_file() else None
        parser, view = cast_view(header_of(folder / f"{name}.cast")) if a["cast"] else (None, RAW)
        a["view"], a["views"] = view, [RENDERED, RAW] if can_render(parser) else [RAW]
    return run


def cast_path(workdir: Path, run_id: str, name: str) -> Path:
    """A run's transcript by its name (primary, secondary-1, ...), never a path outside its folder."""
    if not RUN_ID.fullmatch(run_id) or not name.replace("-", "").replace("_", "").isalnum():
        raise OrchestraError(f"no transcript {name!r} in run {run_id!r}")
    path = runfolder.folder(workdir, run_id) / f"{name}.cast"
    if not path.is_file():
        raise OrchestraError(f"no transcript {name!r} in run {run_id!r}")
    return path


def agent_running(workdir: Path, run_id: str, name: str) -> bool:
    """Whether the agent whose transcript this is may still write to it (its run is under way and it is not done)."""
    try:
        run = runfolder.load(workdir, run_id)
    except OrchestraError:
        return False
    if run.get("status") == "incomplete":
        return False  # no record yet, or never one: a killed run's transcripts do not grow
    if run.get("status") != RUNNING:
        return False
    for a in run_agents(run):
        if Path(str(a.get("transcript") or "")).stem == name:
            return a.get("status") == RUNNING
    return True  # not in the record yet: just started


class CastTail:
    """Reads a transcript as it grows, a chunk at a time, and turns its events into what a player is sent:
    the raw output, or (rendered) what the agent's parser draws of it. Holds one chunk and one unfinished
    line at most, however long the transcript."""

    def __init__(self, path: Path, view: str = RAW):
        self.path = path
        self.fh = open(path, "rb")
        self.header = json.loads(self.fh.readline(65536) or b"{}")
        if not isinstance(self.header, dict):
            raise OrchestraError(f"{path}: not an asciicast v2 transcript")
        parser, _ = cast_view(self.header)
        self.renderer = Renderer(parser) if view == RENDERED and can_render(parser) else None
        self.view = RENDERED if self.renderer else RAW
        self.partial = b""
        self.last_time = 0.0

    def close(self) -> None:
        self.fh.close()

    def start(self) -> dict:
        """The stream's header: what a player needs to set up its terminal."""
        return {"version": 2, "width": self.header.get("width", 120), "height": self.header.get("height", 40)}

    def read(self) -> list[list]:
        """The events written since the last read (whole lines only), as [time, "o", text] events with
        consecutive output joined; [] when nothing new."""
        data = self.fh.read(CHUNK)
        if not data:
            return []
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        out: list[list] = []
        for line in lines:
            try:
                t, kind, text = json.loads(line)
            except (ValueError, TypeError):
                continue
            self.last_time = float(t) if isinstance(t, (int, float)) else self.last_time
            text = self.shown(kind, text)
            if not text:
                continue
            if out and len(out[-1][2]) < MESSAGE:
                out[-1][0], out[-1][2] = self.last_time, out[-1][2] + text
            else:
                out.append([self.last_time, "o", text])
        return out

    def shown(self, kind: str, text: str) -> str:
        if self.renderer is None:
            return text if kind == "o" else ""
        if kind == "o":
            return self.renderer.feed(event_bytes(text))
        if kind == "i":
            return self.renderer.sent(text)
        return ""

    def finish(self) -> list[list]:
        """The end of a finished transcript: what the renderer still holds (an unfinished last line)."""
        if self.renderer is None:
            return []
        rest = self.renderer.feed(b"", final=True)
        return [[self.last_time, "o", rest]] if rest else []


def rendered_cast(path: Path) -> Iterator[bytes]:
    """A whole transcript as a recording of its rendering (for playback), read a chunk at a time."""
    tail = CastTail(path, RENDERED)
    try:
        header = {**{k: v for k, v in tail.header.items() if k != "orchestra"}, **tail.start()}
        yield json.dumps(header).encode() + b"\n"
        while True:
            events = _split_events(tail.fh, tail)
            if events is None:
                break
            for event in events:
                yield json.dumps(event).encode() + b"\n"
        for event in tail.finish():
            yield json.dumps(event).encode() + b"\n"
    finally:
        tail.close()


def _split_events(fh, tail: CastTail) -> Optional[list]:
    """The next chunk's events, each kept apart with its own time (a recording's timing matters)."""
    data = fh.read(CHUNK)
    if not data:
        return None
    lines = (tail.partial + data).split(b"\n")
    tail.partial = lines.pop()
    out = []
    for line in lines:
        try:
            t, kind, text = json.loads(line)
        except (ValueError, TypeError):
            continue
        text = tail.shown(kind, text)
        if text:
            tail.last_time = float(t)
            out.append([t, "o", text])
    return out
