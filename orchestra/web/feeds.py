"""What `orchestra web` reads: the run folders' records and their growing transcripts. Nothing else.

No web library here: the runs index and the transcript tail are plain Python, used by the server
(orchestra/web/server.py), the tests and bench/web.py alike.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Iterator, Optional

from ..errors import OrchestraError
from .. import budget, runfolder
from ..runfolder import RUN_ID, RUNNING, RUNS_DIR, lost_or_live, run_agents, run_terminals
from ..summary import ended_by_words
from ..transcript import event_bytes, header_of
from ..views import RAW, RENDERED, Renderer, can_render, cast_view
from ..worktree import BranchReport, next_steps
from .recent import file_size, modes_at, recent_start

CHUNK = 65536  # read from a transcript at a time: what one client holds of it, however long it grows
MESSAGE = 262144  # characters of output sent in one message at most
LEFT_OUT = "\x1b[2m⋯ {size} of earlier output left out here: the recording has it\x1b[0m\r\n"
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


def run_files(run: dict) -> list[str]:
    """Every file the run's agents modified, each once, in their order."""
    files: list[str] = []
    for a in run_agents(run):
        for f in a.get("files_modified") or []:
            if f not in files:
                files.append(f)
    return files


# a status's colour on the pages: ok (green), running (blue), waiting and warn (amber), error (red)
STATUS_KIND = {"completed": "ok", RUNNING: "running", "waiting_for_input": "waiting", "partial": "warn",
               "interrupted": "warn", "incomplete": "warn"}


def verdict(run: dict) -> dict:
    """What became of a run, said first on its page and in its row: `label` (its badge), `kind` (the
    badge's colour) and `text` (a sentence). A run whose agents completed but whose --merge stopped is
    not a success: its badge says so."""
    status = str(run.get("status") or "unknown")
    label, kind, text = status.replace("_", " "), STATUS_KIND.get(status, "error"), str(run.get("reason") or "")
    if run.get("merge_stopped"):
        label, kind = "merge stopped", "error"
        done = "The agents completed" if status == "completed" else f"The run ended {status.replace('_', ' ')}"
        text = f"{done}; the merge stopped {run['merge_stopped']}."
    elif status == "completed" and not text:
        text = "Completed."
    elif status == RUNNING and not text:
        text = "Under way."
    return {"label": label, "kind": kind, "text": text}


def runs_row(run: dict) -> dict:
    """A run as the runs page shows it: small, whatever the record holds."""
    agents = run_agents(run)
    files = run_files(run)
    return {
        "run_id": run.get("run_id"), "status": run.get("status"), "verdict": verdict(run),
        "reason": str(run.get("reason") or "")[:300],
        "task": str(run.get("task") or "")[:300], "started_at": run.get("started_at"),
        "total_cost_usd": run.get("total_cost_usd"), "duration_s": run.get("duration_s"),
        "files": files[:FILES_SHOWN], "files_count": len(files),
        "agents": [{"agent": a.get("agent"), "role": a.get("role"), "status": a.get("status"),
                    "phase": a.get("phase")} for a in agents],
        "verified": run.get("verified") if isinstance(run.get("verified"), bool) else None,
    }


def run_page(workdir: Path, run_id: str) -> dict:
    """A run's record for its page, each agent with the name of its transcript in the run folder
    (`cast`), how it can be shown (`view`, `views`), its terminal's size (`cols`, `rows_used`) and
    what ended it in words (`ended`); the run with its `verdict`, `files`, and per branch its state in
    words and what merges it by hand (`next_steps`)."""
    run = runfolder.load(workdir, run_id)
    folder = runfolder.folder(workdir, run_id)
    for a in run_terminals(run):  # a fix round is one more terminal
        name = transcript_name(a)
        a["cast"] = name if name and (folder / f"{name}.cast").is_file() else None
        header = header_of(folder / f"{name}.cast") if a["cast"] else {}
        parser, view = cast_view(header) if a["cast"] else (None, RAW)
        a["view"], a["views"] = view, [RENDERED, RAW] if can_render(parser) else [RAW]
        if a["cast"]:
            a["cols"], a["rows"] = _terminal_size(header)
            if a.get("status") not in (RUNNING, "incomplete"):  # a live terminal's rows are all its own
                a["rows_used"] = {v: rows_used(folder / f"{name}.cast", v, a["rows"], a["cols"]) for v in a["views"]}
        a["budget_text"] = budget.describe(a.get("budget"))  # spent against its limits, live or final
        if a.get("status") not in (RUNNING, "incomplete", "lost") and "ended_by" in a:
            a["ended"] = ended_by_words(a.get("ended_by"), str(a.get("status") or ""))
    run["verdict"] = verdict(run)
    run["files"] = run_files(run)
    for m in run.get("merges") or []:
        if isinstance(m, dict):
            report = BranchReport.from_dict(m)
            m["state"] = report.describe(run.get("merge_stopped"))
            m["kind"] = "ok" if report.merged or (report.merges_cleanly and not report.conflicts_with_earlier
                                                  and not run.get("merge_stopped")) else "warn"
    run["next_steps"] = next_steps(run)
    return run


def transcript_name(agent: dict) -> str:
    """The name of an agent's transcript in its run folder (its window's: primary, secondary-1, or for
    `run` the agent's own, slow.sh say): what the page's URLs carry. A file name, never a path."""
    return Path(str(agent.get("transcript") or "")).stem


def cast_path(workdir: Path, run_id: str, name: str) -> Path:
    """A run's transcript by its name, if the run's record names it: whatever characters the name holds
    (an agent may be called slow.sh), the file is in the run's folder."""
    try:
        names = {transcript_name(a) for a in run_terminals(runfolder.load(Path(workdir), run_id))}
    except OrchestraError:
        names = set()
    path = runfolder.folder(workdir, run_id) / f"{name}.cast"
    if not name or name not in names or not path.is_file():
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
        if transcript_name(a) == name:
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
        self.body = self.fh.tell()  # where the events begin
        self.cut = 0  # characters of the next event's text left out
        self.prelude = ""  # sent before the next event's text

    def start_recent(self) -> int:
        """Go to a recent point of a long transcript instead of its first byte (recent.py): what is sent
        first is then a line saying how much was left out and the modes in force there. Returns the bytes
        left out (0: from the first byte)."""
        start = recent_start(self.fh, self.body, file_size(self.fh), clears=self.renderer is None)
        self.fh.seek(start.offset)
        self.cut = start.cut
        if start.skipped:
            modes = modes_at(self.fh, self.body, start.offset) if self.renderer is None else ""
            self.fh.seek(start.offset)
            self.prelude = LEFT_OUT.format(size=_megabytes(start.skipped)) + modes
        return start.skipped

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
            if self.cut:
                text, self.cut = text[self.cut:], 0
            text = self.shown(kind, text)
            if not text:
                continue
            if out and len(out[-1][2]) < MESSAGE:
                out[-1][0], out[-1][2] = self.last_time, out[-1][2] + text
            else:
                out.append([self.last_time, "o", text])
        if self.prelude:
            out[:1] = [[self.last_time, "o", self.prelude + (out[0][2] if out else "")]]
            self.prelude = ""
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


def _megabytes(n: int) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{max(1, round(n / 1024))} KB"


def last_screen(path: Path, view: str = RAW) -> dict:
    """A transcript's last screen as a player's poster draws it: the terminal's size and the text that
    draws it, from the recent point a live terminal starts at (read up to the file's size now)."""
    tail = CastTail(path, view)
    try:
        tail.start_recent()
        size = file_size(tail.fh)
        text = []
        while tail.fh.tell() < size:
            read_from = tail.fh.tell()
            text += [e[2] for e in tail.read()]
            if tail.fh.tell() == read_from:  # (cut short since it was measured)
                break
        text += [e[2] for e in tail.finish()]
        return {"width": tail.start()["width"], "height": tail.start()["height"], "text": "".join(text)}
    finally:
        tail.close()


def recorded_cast(path: Path) -> Iterator[bytes]:
    """A transcript as it is recorded now, a chunk at a time: up to its last whole event (a live one
    grows while it is sent; a player given half an event fails)."""
    with open(path, "rb") as fh:
        end = file_size(fh)
        while end > 0:  # back to the end of the last whole line
            fh.seek(max(0, end - CHUNK))
            data = fh.read(end - fh.tell())
            if b"\n" in data:
                end -= len(data) - data.rfind(b"\n") - 1
                break
            end -= len(data)
        fh.seek(0)
        while end > 0:
            data = fh.read(min(CHUNK, end))
            if not data:
                break
            end -= len(data)
            yield data


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


def _terminal_size(header: dict) -> tuple[int, int]:
    def number(key: str, default: int) -> int:
        value = header.get(key)
        return value if isinstance(value, int) and 0 < value <= 1000 else default
    return number("width", 120), number("height", 40)


_ROW_MOVES = re.compile(r"\x1b\[(\d*)(?:;\d*)?([HfABEF])|\x1b\[[0-9;?]*[A-Za-z]|\x1b[^\[]|\r|\n|[^\x1b\r\n]+")
ROWS_READ = 2 * 1024 * 1024  # of a transcript read to tell the rows it used; past that, all of them
_rows_seen: dict[tuple, tuple] = {}  # (transcript, view) -> (its size then, rows used)


def rows_used(path: Path, view: str, height: int, width: int) -> int:
    """How many rows of its terminal a finished transcript used, as `view` shows it (the lowest row its
    cursor reached, by newlines, wrapping and cursor moves), up to `height`: the page sizes its terminal
    to that. Read once per size of the file, and only until every row is used."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return height
    known = _rows_seen.get((str(path), view))
    if known and known[0] == size:
        return known[1]
    used, row, col = 1, 0, 0
    tail = CastTail(path, view)
    try:
        while used < height:
            events = tail.read() or tail.finish()
            if not events or tail.fh.tell() > ROWS_READ:
                used = height if events else used
                break
            for m in _ROW_MOVES.finditer("".join(event[2] for event in events)):
                token, move = m.group(0), m.group(2)
                if move:
                    n = int(m.group(1) or 1)
                    row = n - 1 if move in "Hf" else row - n if move in "AF" else row + n
                    col = 0 if move in "HfEF" else col
                elif token == "\n":
                    row += 1
                elif token == "\r":
                    col = 0
                elif token[0] != "\x1b":
                    col += len(token)
                    if col > width:
                        row, col = row + (col - 1) // width, (col - 1) % width + 1
                row = min(max(row, 0), height - 1)
                used = max(used, row + 1)
    finally:
        tail.close()
    _rows_seen[(str(path), view)] = (size, min(used, height))
    return min(used, height)
