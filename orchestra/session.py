"""AgentSession: one agent under pexpect, its bytes read as they come and handled once.

The flow of every read:

    pty fd --os.read--> UTF-8 decode --> strip escapes --> searcher (prompt, completion,
               |                                           errors, questions)
               |                                       --> parser (files, errors, cost)
               +--> redact --> tmux window (raw bytes, or the parser's rendering of its lines)
                          +--> asciicast "o" event (flushed)

pexpect owns the child (pty, size, environment, exit status); orchestra reads
its fd itself through a selector (procs.selector), because pexpect's expect() keeps
everything since the last match and slows down as output grows. One `drive()` loop
reads any number of sessions, so a flooding agent never delays another's completion.
"""
from __future__ import annotations

import codecs
import errno
import os
import re
import selectors
import signal
import sys
import termios
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Optional

import pexpect

from . import agents, failures, limits, procs
from .ansi import strip
from .budget import OVER_BUDGET, Meter
from .config import DATA_DIR, Profile
from .errors import OrchestraError
from .parsers import Parsed, make_parser
from .parsers import render as draw
from .ptyslave import SlaveKeeper
from .redact import Redactor
from .searcher import multiline, needle
from .stream import Stream
from .transcript import CastWriter
from .viewer import FRAME_HOLD, ViewerWindow

READ_SIZE = 65536
DRAIN_GRACE = 1.0  # seconds to read an exited agent's last output before giving up on its EOF
# An agent's turn in the loop, in bytes: with others in the loop, one pty read's worth (a Linux pty hands
# over about 4 KB a read), so every agent with output waiting is read before a flooding one is read again
# and no completion line waits behind another agent's backlog; alone, 16 reads between two polls.
TURN_BYTES = 4096
SOLO_BYTES = 16 * 4096
MIN_READ = 1024  # a turn ends when less than this is left of it
LOOK_EVERY = 0.1  # seconds: the longest the loop goes without looking at every agent (see drive)
# What a transcript event may wait to be written with those after it: a TUI's frames cost one write per
# few frames, and a person watching the transcript (the web page) sees it this much later at most.
CAST_HOLD = 0.1
HANGUP_PROBE = 1.0  # quiet seconds after which a held slave is let go a moment: did the agent close its terminal?
MAX_ARG_BYTES = limits.ARG_BYTES  # the most one argument of a program holds here (see limits)
LINE_MAX_BYTES = limits.LINE_BYTES  # what a terminal in canonical mode keeps of a line, its Enter included
# The same question answered more than LOOP_ANSWERS times within LOOP_WINDOW seconds is a loop (an
# answer that brings its own question back): a real agent does some work between two asks.
LOOP_ANSWERS, LOOP_WINDOW = 20, 10.0
MAX_ANSWERS = 100  # answers recorded (the count of a loop is in its reason)
# What an agent waiting for a person shows last: a question, a y/n choice (at the line's end: aider's
# "(Y)es/(N)o [Yes]: y" was answered), a key to press, a menu with a selected item.
QUESTION = re.compile(r"(?:\?|(?:[\[(](?:y|yes)/(?:n|no)[\])]|\(y\)es/\(n\)o)[^:?]*[:?]?)\s*$"
                      r"|\b(?:press|hit) (?:enter|return|any key)|\benter to (?:confirm|continue|select)", re.I)
MENU = re.compile(r"^\s*[❯›▶→>]\s*\d+[.)]\s")
QUESTION_LINES = 10  # how far back a menu's selected item and its question may be

# phases
STARTING, WORKING, IDLE, EXITING, DONE = "starting", "working", "idle", "exiting", "done"


# What ended the wait for an agent (its summary's `ended_by`): a pattern on a line, an event, orchestra.
ENDED_BY = ("completion", "error_pattern", "auth_refused", "exit", "timeout", "interrupted", "waiting_for_input",
            "max_retries", "auto_answer_loop", "exit_after_completion", "line_too_long", "closed_terminal", "budget")
ENDED_LINE = 200  # characters of the line that decided, kept in the summary
ENDED_KEPT = 10 * ENDED_LINE  # ...of which this many are kept until masked (a result line may be 16 MB)


@dataclass
class Outcome:
    status: str  # completed, failed, timeout, waiting_for_input, crashed, interrupted, over_budget
    reason: str = ""
    signal: str = "interrupted"  # what ended the wait: one of ENDED_BY
    pattern: Optional[str] = None  # the regex that matched, its source (budget: the limit crossed)
    line: Optional[str] = None  # the line it matched (not masked yet: see AgentSession.result)
    decided_ms: Optional[float] = None  # from the event that carried it (a read, a deadline, the exit) to now

    def ended_by(self, mask: Callable[[str], str]) -> dict:
        line = mask(self.line)[:ENDED_LINE] if self.line is not None else None
        return {"signal": self.signal, "pattern": self.pattern, "line": line, "decided_ms": self.decided_ms}


def decided(status: str, reason: str, signal: str, since: float, pattern: "Optional[re.Pattern | str]" = None,
            line: Optional[str] = None) -> Outcome:
    """An outcome and what decided it; `since`: when the read, deadline or exit that carried it came."""
    return Outcome(status, reason, signal, pattern.pattern if isinstance(pattern, re.Pattern) else pattern,
                   line[:ENDED_KEPT] if line is not None else None,
                   round(max(0.0, time.monotonic() - since) * 1000, 3))


@dataclass
class SessionResult:
    status: str
    reason: str
    exit_code: Optional[int]
    signal: Optional[str]
    duration_s: float
    parsed: Parsed
    answers: list[dict] = field(default_factory=list)
    last_lines: list[str] = field(default_factory=list)
    viewer_skipped: int = 0
    started_at: str = ""  # wall clock, UTC, to the millisecond
    ended_by: Optional[dict] = None  # see Outcome.ended_by


class AgentSession:
    """Spawn an agent, give it a task, and follow it until its turn is over."""

    def __init__(self, profile: Profile, task: str, workdir: Path, transcript: Path,
                 window: Optional[ViewerWindow] = None, env: Optional[dict] = None,
                 redactor: Optional[Redactor] = None, keep_alive: bool = False,
                 argv_values: Optional[dict] = None):
        self.profile = profile
        self.task = task
        self.workdir = Path(workdir)
        self.transcript_path = Path(transcript)
        self.window = window or ViewerWindow()
        self.env = env if env is not None else dict(os.environ)
        self.redactor = redactor if redactor is not None else Redactor()
        self.keep_alive = keep_alive  # stay open after the turn, for another turn
        self.argv_values = argv_values or {}
        self.command_override: Optional[list] = None  # e.g. the profile's resume command
        self.parser = make_parser(profile.parser, profile)
        # a rendered window shows what the parser draws of the lines it parses anyway (no second parse)
        self.rendered_view = profile.view == "rendered" and self.parser.render is not None
        self.drawn_latest = ""  # the last line its rendered window shows
        if self.rendered_view:
            self.parser.rendering(self.redactor.data if self.redactor else None)
        self.stream = Stream(self.parser)
        self._shown_decoder = codecs.getincrementaldecoder("utf-8")("replace")  # for the masked bytes
        self.searcher = self.stream.searcher
        self.answers: list[dict] = []
        self._phase = STARTING
        self.on_phase: Optional[Callable[["AgentSession"], None]] = None  # told each change of phase
        # told once it has ended and its transcript and terminal are closed (its summary can be made)
        self.on_done: Optional[Callable[["AgentSession"], None]] = None
        self.outcome: Optional[Outcome] = None
        self.child: Optional[pexpect.spawn] = None
        self.cast: Optional[CastWriter] = None
        self.fd = -1
        self.pidfd = -1
        self.slave = -1  # the pty's slave, held open until the exit is seen (the portable path: see ptyslave)
        self.slave_name = ""  # its path, to take it again after a probe for a hang-up
        self.probed_at = 0.0  # when the held slave was last let go to look for a hang-up
        self.eof = False
        self.exited = False
        self.outbuf = b""
        self.pending_submit = ""
        self.echo: list = []
        self.deadline = float("inf")
        self.escalation: list[int] = []  # signals still to send while exiting
        self.signalled = False  # orchestra signalled it while it ran: its exit is then not its own verdict
        self.abort_deadline = 0.0  # abort_begin(): when abort_end() stops waiting and sends SIGKILL
        self.draining = False  # exited; reading its last output until EOF
        self.started_at = 0.0
        self.started_wall = 0.0
        self.ended_at = 0.0
        self.turn_started_at = 0.0
        self.on_output: Optional[Callable[["AgentSession"], None]] = None
        self.meter: Optional[Meter] = None  # its budget, if it has one: ended `over_budget` when it crosses it
        # (partial, whole) pattern lists, built once: _on_match reads indexes in this order
        answers = [multiline(a.pattern) for a in profile.auto_answers]
        errors = [multiline(e) for e in profile.errors]
        retry = multiline(profile.retry)
        self._starting_watch = ([*answers, multiline(profile.prompt)], [*errors, None, retry])
        # a parser that sees the screen judges the turn's end itself: a TUI redraws earlier turns' ends
        completion = None if self.parser.sees_screen else multiline(profile.completion)
        self._working_watch = (answers, [*errors, completion, retry])
        # what a read that may end its turn holds (see decisive): the literal each such pattern must match
        self._decisive = [word.encode() for word in map(needle, filter(None, [*errors, completion])) if word]
        self.asked: dict[str, list[float]] = {}  # question line -> when it was answered lately
        self.answered = ("", "")  # the last line answered (by an auto-answer or the task), and what was sent
        self.last_output = 0.0  # when the agent last wrote something
        self.read_at = 0.0  # when the read being handled was taken: what a decision on it is timed from
        self.exit_seen = 0.0  # when its exit was seen (its pidfd)
        self.quiet_checked = 0.0  # the last_output whose quiet time was judged
        self.retries: dict[str, int] = {}  # what the agent retried (its parser's words) -> how often
        self.retry_streak = 0  # retries in a row, with nothing else printed between them
        self.retry_end = -1  # where the last retry line (and the blank lines after it) ended
        self.last_retry = ""

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        if value != self._phase:
            self._phase = value
            self._hold()
            if self.on_phase is not None:
                self.on_phase(self)

    def _hold(self) -> None:
        """Transcript events (a few frames a write) and a TUI's frames (see viewer) are held only in the phases
        whose on_time writes them; in any other, what is held is written now and nothing more is held."""
        holding = self._phase in (STARTING, WORKING, EXITING)
        if self.cast is not None:
            self.cast.hold = CAST_HOLD if holding else 0.0
            if not holding:
                self.cast.flush()
        self.window.hold = FRAME_HOLD if holding else 0.0
        if not holding:
            self.window.flush()

    # -- start and send ---------------------------------------------------

    def argv(self, template: Optional[list] = None) -> list[str]:
        values = {"{task}": self.task or "", "{task_file}": str(self.task_file), "{workdir}": str(self.workdir),
                  "{python}": sys.executable,
                  "{fixtures}": str(DATA_DIR / "fixtures"), "{wrappers}": str(DATA_DIR / "wrappers"),
                  **self.argv_values}
        out = []
        for part in template or self.profile.command:
            for key, value in values.items():
                if key in part:
                    part = part.replace(key, value)
            out.append(part)
        return out

    @property
    def task_in_argv(self) -> bool:
        """The task reaches the agent through its argv ({task}, or {task_file}), not typed."""
        return any("{task}" in part or "{task_file}" in part for part in (self.command_override or self.profile.command))

    @property
    def task_file(self) -> Path:
        """Where {task_file} puts the task: beside the agent's transcript, in the run's folder."""
        return self.transcript_path.with_name(self.transcript_path.stem + ".task.txt")

    def start(self) -> None:
        problem = task_problem(self.profile, self.task or "", self.command_override)
        if problem:
            raise OrchestraError(f"agent '{self.profile.name}': {problem}")
        argv = self.argv(self.command_override)
        if self.profile.binary:  # the CLI a wrapper runs: say which one is missing
            agents.require(self.profile.binary, self.profile.name, self.profile.install, self.env)
        binary = agents.require(argv[0], self.profile.name, self.profile.install, self.env)
        env = dict(self.env)
        env.update({"TERM": "xterm-256color", "COLUMNS": str(self.profile.cols), "LINES": str(self.profile.rows)})
        env["PATH"] = agents.search_path(env)
        problem = _unspawnable(argv, env, self.workdir, self.task_in_argv)
        if problem:
            raise OrchestraError(f"agent '{self.profile.name}': {problem}")
        if any("{task_file}" in part for part in (self.command_override or self.profile.command)):
            _write_private(self.task_file, self.task or "")
        shown = " ".join(self.redactor.text(a) for a in ([self.profile.name] if self.task_in_argv else argv))
        self.cast = CastWriter(self.transcript_path, self.profile.cols, self.profile.rows,
                               title=f"orchestra: {self.profile.name}", command=shown,
                               orchestra={"agent": self.profile.name, "parser": self.profile.parser,
                                          "view": "rendered" if self.rendered_view else "raw",
                                          # the root of its paths, for `summarize` elsewhere: not every
                                          # agent reports the directory it works in
                                          "cwd": os.path.abspath(self.workdir)})
        self._hold()
        parent = os.getpid()
        keeper = SlaveKeeper() if procs.PORTABLE else None
        try:
            self.child = pexpect.spawn(binary, argv[1:], cwd=str(self.workdir), env=env, echo=False,
                                       dimensions=(self.profile.rows, self.profile.cols), encoding=None,
                                       preexec_fn=keeper.preexec if keeper else None)
        except BaseException as exc:
            if os.getpid() != parent:
                # pexpect forks, then changes directory and execs; what fails in between is raised in
                # the forked copy of orchestra, which must never go on to run orchestra's code (its
                # error handling would end the parent's other agents). Say why on the pty, and exit.
                os.write(2, f"orchestra: cannot start {binary}: {exc}\r\n".encode(errors="replace"))
                os._exit(127)
            self.cast.close()
            if keeper:
                keeper.close()
            if isinstance(exc, (pexpect.ExceptionPexpect, OSError)):
                raise OrchestraError(f"agent '{self.profile.name}': cannot start {binary}: {exc}") from None
            raise
        # no fixed sleeps anywhere: the delays pexpect adds by default are off
        self.child.delaybeforesend = None
        self.child.delayafterclose = 0
        self.child.ptyproc.delayafterclose = 0
        self.fd = self.child.child_fd
        os.set_blocking(self.fd, False)
        self.slave = keeper.received() if keeper else -1
        if self.slave >= 0:
            try:
                self.slave_name = os.ttyname(self.slave)
            except OSError:
                pass  # then no probe: a closed terminal is seen at the exit or the timeout
        self.pidfd = procs.exit_watch(self.child.pid)
        self.started_at = self.turn_started_at = time.monotonic()
        self.started_wall = time.time()
        self.deadline = self.started_at + self.profile.timeout
        self._show_start()
        if self.task_in_argv or not self.task:
            self.phase = WORKING  # nothing to type (an empty task is not typed either)
        elif self.profile.prompt is None:
            self.phase = WORKING
            self.type_message(self.task)
        # else: the task is typed when the prompt shows

    def _show_start(self) -> None:
        """The window's title until the agent (or its rendered header) sets one, and, in a rendered window,
        the message it was given on its command line, as a typed one is shown (`» ...`)."""
        self.window.write(draw.title(f"● {self.profile.name} · {self.redactor.text(str(self.workdir))}").encode())
        if self.rendered_view and self.task_in_argv and (self.task or "").strip() and not self.parser.shows_task:
            self.window.write(draw.sent(self.redactor.text(self.task)).encode())

    def send(self, text: str, submit: Optional[str] = None) -> None:
        """Queue text for the agent; it is written as the pty accepts it, never blocking the loop.

        A TUI given text and Enter in one read may take it all as a paste; with
        submit_on_echo, Enter follows once the agent has drawn the text."""
        submit = self.profile.submit if submit is None else submit
        if self.profile.submit_on_echo and text.strip() and submit:
            # Enter once the end of the text is drawn (the last word: wrapping breaks at spaces)
            self.pending_submit = submit
            self.echo = [re.compile(re.escape(text.split()[-1][-20:])), self.profile.paste_marker]
            self.searcher.consume_all()
            submit = ""
        self.cast.input(self.redactor.text(text + submit))
        if self.rendered_view and text.strip():
            self.window.write(draw.sent(self.redactor.text(text)).encode())
        self.outbuf += (text + submit).encode("utf-8")
        self._flush_out()

    def type_message(self, text: str, since: Optional[float] = None) -> None:
        """Type a task or a turn's message at the agent's prompt, whole, or end the turn failed, saying why.

        A terminal in canonical (line) mode keeps a bounded part of a line (4096 bytes on Linux, 1024
        on macOS, its Enter included: limits.line_bytes) and drops the rest without a word; a TUI in
        raw mode takes any length. So the mode is read when the text is typed.
        since: when the read that showed the prompt was taken (else: now)."""
        size = len((text + self.profile.submit).encode("utf-8", "surrogateescape"))
        bound, source = limits.line_bytes(self.fd) if self.fd >= 0 else (LINE_MAX_BYTES, "")
        if size > bound and _canonical(self.fd):
            self.outcome = decided("failed", (
                f"the text to type is {size} bytes with its Enter, and the agent reads its input a line at a "
                f"time (its terminal is in canonical mode), which keeps at most {bound} bytes of a line "
                f"({source}): "
                "it would get the text cut, so it was not typed. Put {task_file} (or {task}) in the profile's "
                "command to give it the task whole"), "line_too_long", since or time.monotonic())
            self._begin_exit(ask=False)
            return
        self.parser.typed(text)
        self.send(text)

    def send_turn(self, text: str, timeout: Optional[float] = None) -> None:
        """Start another turn of a kept-alive agent: type text and wait for completion again."""
        if self.phase != IDLE:
            raise OrchestraError(f"agent '{self.profile.name}' is not waiting for another turn ({self.phase})")
        self.outcome = None
        self.parser.new_turn()
        self.searcher.consume_all()
        self.turn_started_at = time.monotonic()
        self.deadline = self.turn_started_at + (timeout or self.profile.timeout)
        self.phase = WORKING
        self._answering(self.stream.latest, text)  # what it showed last was its prompt
        self.type_message(text)

    # -- the loop's callbacks ---------------------------------------------

    @property
    def active(self) -> bool:
        return self.phase in (STARTING, WORKING, EXITING) or (self.draining and self.phase != DONE)

    @property
    def wake(self) -> float:
        """When on_time() has something to do: the deadline, the end of a quiet time to judge, its time budget,
        transcript events to write."""
        return min(self.deadline, self._quiet_until, self._budget_until, self._probe_at,
                   self.cast.due if self.cast is not None else float("inf"), self.window.due)

    @property
    def _budget_until(self) -> float:
        """When the agent, still at work, will have used its max_time_s."""
        if self.meter is not None and self.meter.budget.max_time_s is not None and self.phase in (STARTING, WORKING) \
                and self.started_at:
            return self.started_at + self.meter.budget.max_time_s
        return float("inf")

    @property
    def _quiet_until(self) -> float:
        """When the agent, still at work, will have been quiet for input_wait since output not judged yet."""
        if self.phase in (STARTING, WORKING) and self.last_output > self.quiet_checked and not self.exited:
            return self.last_output + self.profile.input_wait
        return float("inf")

    @property
    def _probe_at(self) -> float:
        """When to look whether the agent, quiet while orchestra holds its slave, closed its terminal."""
        if self.slave >= 0 and self.slave_name and self.phase in (STARTING, WORKING) and not self.exited:
            return max(self.last_output, self.started_at, self.probed_at) + HANGUP_PROBE
        return float("inf")

    def _probe_hangup(self, now: float) -> None:
        """Let the held slave go for a moment: if the agent holds none of its terminal any more, the pty
        hangs up (its EOF is read next, as where no slave is held); else take the slave again at once.

        Only while the agent has been quiet and nothing waits to be read: the last close of a slave can
        throw away unread output (ptyslave), and there is none then. An agent that writes and exits in
        the microseconds between the look and the close is the one case left unguarded."""
        self.probed_at = now
        if _readable(self.fd):
            return  # read first: the loop does, then this waits for quiet again
        os.close(self.slave)
        self.slave = -1
        if _readable(self.fd):  # hung up: nobody else has the terminal open
            return
        try:
            self.slave = os.open(self.slave_name, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            self.slave_name = ""  # gone in between (the agent let it go): its hang-up is read next

    def on_readable(self, turn: int = SOLO_BYTES) -> bool:
        """Read what is there, each read handled at once, `turn` bytes at most; True if there may be more."""
        self.last_output = time.monotonic()  # once per turn, not per read: for the quiet time
        # A pty read returns at most about 4 KB; reading again at once, while the child keeps writing,
        # saves a poll per read (even after a short read: more has often come while it was handled).
        got = 0
        while turn - got >= MIN_READ:
            data = self.read_once(min(READ_SIZE, turn - got))
            if data is None:
                return False
            if not data:
                self._on_eof()
                return False
            got += len(data)
            self._handle(data)
        return True

    def read_once(self, size: int) -> Optional[bytes]:
        """One read of `size` bytes at most: the bytes, b"" at the end (a hang-up), None if nothing is there."""
        if self.fd < 0 or self.eof:
            return None
        try:
            return os.read(self.fd, size)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            return b""

    def took(self, data: bytes, at: float) -> None:
        """Handle a read_once() taken at `at` (with other agents' reads of the same poll, see drive)."""
        self.last_output = at
        if data:
            self._handle(data)
        else:
            self._on_eof()

    def decisive(self, data: bytes) -> bool:
        """The read holds what a completion or error pattern must contain: it may end the agent's turn.
        (Only an ordering hint: a line cut by a read, or a word cut by an escape sequence, is not seen.)"""
        return self.phase == WORKING and any(word in data for word in self._decisive)

    def on_writable(self) -> None:
        if self.phase != DONE:
            self._flush_out()

    def on_exit(self) -> None:
        """The child process ended (its pidfd became readable, or it was found ended after a SIGCHLD)."""
        if self.exited or self.child is None:
            return
        self.child.isalive()  # reaps it and records the exit status
        self.exited = True
        self.exit_seen = time.monotonic()
        self._signal_group(signal.SIGKILL)  # anything it left behind in its group
        if not self.eof:
            # what it wrote last; while orchestra holds the slave, which is let go next, all of it (or
            # what comes within DRAIN_GRACE: a straggler that escaped the group may write forever)
            until = self.exit_seen + DRAIN_GRACE
            while self.on_readable() and self.slave >= 0 and time.monotonic() < until:
                pass
        self._release_slave()
        if self.eof or self.fd < 0:
            self._finish()
            return
        # Its last output may still be on its way through the pty (the kernel moves it on
        # later, and later still on a busy machine): read on until EOF, for DRAIN_GRACE at most.
        self.draining = True
        self.deadline = time.monotonic() + DRAIN_GRACE

    def on_time(self, now: float) -> None:
        if self.cast is not None and now >= self.cast.due:
            self.cast.flush()
        if now >= self.window.due:
            self.window.flush()
        if now >= self._probe_at:
            self._probe_hangup(now)
        budget_until = self._budget_until
        if now >= budget_until:
            self._over_budget(self.meter.time_up(now - self.started_at), budget_until)
            return
        quiet_until = self._quiet_until
        if now >= quiet_until:
            self.quiet_checked = self.last_output  # judged once; new output arms it again
            question, shape, line = self._asked()
            if question:
                self.outcome = decided("waiting_for_input", f"waiting for input: {question} (nothing more for "
                                       f"{self.profile.input_wait:g}s: field 'input_wait'; not answered blindly)",
                                       "waiting_for_input", quiet_until, shape, line)
                self._begin_exit(ask=False)
                return
        if now < self.deadline:
            return
        if self.draining:
            self._finish()
        elif self.phase in (STARTING, WORKING):
            self._timed_out()
        elif self.phase == EXITING:
            self._escalate()

    # -- reading ------------------------------------------------------------

    def _handle(self, data: bytes, final: bool = False) -> None:
        now = self.read_at = time.monotonic()
        # patterns and parsers see what the agent wrote; what is stored and shown is masked
        text, lines = self.stream.feed(data, final)
        plain = self.stream.plain
        if self.redactor:
            shown = self.redactor.feed(data, self.stream.clean)
            if final:
                shown += self.redactor.flush()
            if shown is not data or not plain or self._shown_decoder.getstate()[0]:
                text, plain = self._shown_decoder.decode(shown, final), False
            # (else: plain ASCII, unchanged; the decoder holds nothing and would give it back as is)
            data = shown
        if self.rendered_view:
            drawn = self.parser.take_rendered()
            if drawn:
                drawn = self.redactor.text(drawn)
                self.window.write(drawn.encode())
                shown = [line for line in strip(drawn).split("\n") if line.strip()]
                if shown:
                    self.drawn_latest = shown[-1].strip()[-200:]
        else:
            self.window.write(data)
        self.cast.output(text, now, plain)
        if self.pending_submit and not self.outbuf:
            echoed = self.searcher.search(self.echo)
            if echoed is not None:  # the typed text is on screen: press Enter
                self.searcher.consume(echoed.end)
                submit, self.pending_submit = self.pending_submit, ""
                self.cast.input(submit)
                self.outbuf += submit.encode()
                self._flush_out()
        if self.on_output is not None:
            self.on_output(self)
        if self.meter is not None and self.phase in (STARTING, WORKING):
            crossed = self.meter.crossed(self.parser.result())  # a comparison, unless its figures changed
            if crossed:
                self._over_budget(crossed, self.read_at)
        if self.phase in (STARTING, WORKING) and not self._key_refused():
            self._watch(lines)

    def _key_refused(self) -> bool:
        """Its parser read that the API refused its key (401, 403): no retry mends that, so the agent is
        ended at once, the reason naming the key's variable."""
        failure = self.parser.parsed.api_failure
        if failure is None or not failure.key_refused:
            return False
        self.outcome = decided("failed", failures.describe(failure, self.profile, self.env), "auth_refused",
                               self.read_at, line=failure.line)
        self._begin_exit(ask=False)
        return True

    def _watch(self, lines: str) -> None:
        while self.phase in (STARTING, WORKING):
            if self.phase == STARTING:
                found = self.searcher.search(*self._starting_watch)
            else:
                found = self.searcher.search(*self._working_watch)
            if found is None or found.match.end() == found.match.start():
                break  # an empty match (a profile made in code: the config refuses them) would be found forever
            self.searcher.consume(found.end)
            self._on_match(found)
        self.searcher.searched()
        if self.phase == WORKING and self.parser.sees_screen and self.parser.turn_over() is not None:
            self._turn_over(decided("completed", "", "completion", self.read_at, self.profile.completion,
                                    self.parser.turn_over()))

    def _on_match(self, found) -> None:
        p = self.profile
        text = found.match.group(0).strip()
        if found.partial and found.index < len(p.auto_answers):
            answer = p.auto_answers[found.index]
            question, now = _line_of(found.match), time.monotonic()
            if self._looping(question, now):
                self.outcome = decided("failed", f"auto-answer loop: {question[-300:]} (answered more than "
                                                 f"{LOOP_ANSWERS} times in {LOOP_WINDOW:g}s)",
                                       "auto_answer_loop", self.read_at, answer.pattern, question)
                self._begin_exit(ask=False)
                return
            if len(self.answers) < MAX_ANSWERS:
                self.answers.append({"question": text[-300:], "answer": answer.send.strip(),
                                     "at_s": round(now - self.started_at, 3)})
            self._answering(question, answer.send)
            self.send(answer.send, submit="")
        elif found.partial:  # the prompt: the agent is ready for the task
            self._answering(_line_of(found.match), self.task)
            self.searcher.consume_all()
            self.phase = WORKING
            self.type_message(self.task, self.read_at)
        elif found.index < len(p.errors):
            line = _line_of(found.match, ENDED_KEPT)
            said = failures.failure_words(self.parser.parsed.api_failure, line, p, self.env)
            self._turn_over(decided("failed", said or f"error pattern matched: {text[:500]}", "error_pattern",
                                    self.read_at, p.errors[found.index], line))
        elif found.index == len(p.errors):
            self._turn_over(decided("completed", "", "completion", self.read_at, p.completion,
                                    _line_of(found.match, ENDED_KEPT)))
        else:
            self._retried(found)

    def _answering(self, question: str, text: str) -> None:
        """The question is answered: neither it nor the echo of the answer is a question any more."""
        sent = text.strip().splitlines()[-1][-40:] if text.strip() else ""
        self.answered, self.quiet_checked = (question, sent), self.last_output

    def _looping(self, question: str, now: float) -> bool:
        """Whether this answer would be one too many to the same question, lately."""
        if len(self.asked) > 256:  # many different questions: forget the old ones
            self.asked = {q: t for q, t in self.asked.items() if now - t[-1] < LOOP_WINDOW}
        times = [t for t in self.asked.get(question, []) if now - t < LOOP_WINDOW] + [now]
        self.asked[question] = times
        return len(times) > LOOP_ANSWERS

    def _retried(self, found) -> None:
        """The agent retries a failed request (the profile's `retry` line): count it, and end it
        after more than `max_retries` in a row."""
        m, buf = found.match, found.match.string
        base = found.end - m.end()
        start, end = _line_span(m)
        line = buf[start:end].strip()
        what = self.parser.retry(line) or line[:200]
        self.retries[what] = self.retries.get(what, 0) + 1
        between = buf[max(self.retry_end - base, 0):start] if self.retry_end >= base else "?"
        self.retry_streak = self.retry_streak + 1 if not between.strip() else 1
        self.retry_end = base + (len(buf) if not buf[end:].strip() else end)
        self.last_retry = what
        limit = self.profile.max_retries
        if limit is not None and self.retry_streak > limit:
            what = failures.failure_words(self.parser.parsed.api_failure, line, self.profile, self.env) or what
            self.outcome = decided("failed", f"{failures.retried(what, self.retry_streak)} in a row, more than "
                                             f"max_retries ({limit})", "max_retries", self.read_at,
                                   self.profile.retry, line)
            self._begin_exit(ask=False)

    @property
    def retrying(self) -> str:
        """What the agent is retrying, while the retry is the last thing it printed (for a status line)."""
        if self.retry_streak and self.retry_end >= self.searcher.end:
            limit = f" of {self.profile.max_retries}" if self.profile.max_retries is not None else ""
            return f"retry {self.retry_streak}{limit}: {self.last_retry}"
        return ""

    def question(self) -> str:
        """The question or menu the agent showed last, if its last output looks like one, or ""."""
        return self._asked()[0]

    def _asked(self) -> tuple[str, Optional[re.Pattern], str]:
        """question(), the pattern that told it is one (MENU or QUESTION) and the line it matched."""
        tail = self.searcher.tail.strip()
        lines = [line.strip() for line in self.stream.last_lines[-QUESTION_LINES:]] + ([tail] if tail else [])
        lines = lines[-QUESTION_LINES:]
        answered, sent = self.answered
        if (not lines or lines[-1].startswith(("{", "[")) or (len(answered) > 2 and lines[-1].startswith(answered))
                or (sent and lines[-1].endswith(sent))):
            return "", None, ""  # a JSON event is never a question; the one answered last (and its echo) is not one now
        menu = next((i for i, line in enumerate(lines) if MENU.match(line)), None)
        if menu is None and not QUESTION.search(lines[-1]):
            return "", None, ""
        first = menu if menu is not None else len(lines) - 1
        asked = [i for i, line in enumerate(lines[:first + 1]) if "?" in line]
        return (" | ".join(line[:120] for line in lines[asked[-1] if asked else first:])[:500],
                *((MENU, lines[menu]) if menu is not None else (QUESTION, lines[-1])))

    def _on_eof(self) -> None:
        self.eof = True
        self._handle(b"", final=True)
        if self.exited:
            self._finish()
        elif self.phase != EXITING:
            # the pty closed: the process is ending; if it lingers past the grace period, end it
            self._begin_exit(ask=False, signal_now=False)

    # -- ending -------------------------------------------------------------

    def _turn_over(self, outcome: Outcome) -> None:
        self.outcome = outcome
        if self.keep_alive and outcome.status == "completed":
            self.phase = IDLE
            self.deadline = float("inf")
        else:
            self._begin_exit(ask=True)

    def _over_budget(self, crossed: tuple[str, str], since: float) -> None:
        """A limit of its budget crossed: ended as Ctrl-C would end it (SIGTERM, SIGKILL after kill_grace)."""
        limit, spent = crossed
        self.outcome = decided(OVER_BUDGET, f"over its budget: {spent} ({limit.split()[0]})", "budget", since,
                               limit, spent)
        self._begin_exit(ask=False)

    def _timed_out(self) -> None:
        waiting = self.question()  # a stalled progress line is not a question
        reason = f"no completion within {self.profile.timeout:g}s"
        if waiting:
            reason += f"; waiting for input: {waiting}"
        self.outcome = decided("timeout", reason, "timeout", self.deadline)
        self._begin_exit(ask=False)

    def close(self) -> None:
        """Ask a kept-alive agent to exit (drive() then follows it to the end)."""
        if self.phase == IDLE:
            self._begin_exit(ask=True)

    def abort(self, status: str = "interrupted", reason: str = "", at_once: bool = False) -> None:
        """End the agent now, wherever it is (Ctrl-C, SIGTERM): SIGTERM, then SIGKILL after
        `kill_grace`; at_once: SIGKILL straight away (a second Ctrl-C)."""
        self.abort_begin(status, reason, at_once)
        self.abort_end()

    def abort_begin(self, status: str = "interrupted", reason: str = "", at_once: bool = False) -> None:
        """abort()'s first half: the signal. Several agents get theirs before any is waited for."""
        if self.phase == DONE or self.child is None:
            return
        if self.phase in (STARTING, WORKING):
            self.outcome = decided(status, reason, "interrupted", time.monotonic())
        self.abort_deadline = time.monotonic() + (0 if at_once else self.profile.kill_grace)
        self._signal_group(signal.SIGKILL if at_once else signal.SIGTERM)

    def abort_end(self) -> None:
        """abort()'s second half: wait for the exit until the deadline abort_begin() set, then SIGKILL."""
        if self.phase == DONE or self.child is None:
            return
        if not procs.await_exit(self.child.pid, self.pidfd, max(0.0, self.abort_deadline - time.monotonic())):
            self._signal_group(signal.SIGKILL)
            procs.await_exit(self.child.pid, self.pidfd, 5)
        self.on_exit()
        drive([self])  # its last output, if still on its way (draining): the same loop, as briefly

    def _begin_exit(self, ask: bool, signal_now: bool = True) -> None:
        """End the agent: after its turn, let it exit by itself (or by its exit text) for
        `linger` seconds; then SIGTERM to its process group; then SIGKILL after `kill_grace`."""
        self.phase = EXITING
        if self.exited:
            self._finish()
            return
        self.escalation = [signal.SIGTERM, signal.SIGKILL]
        if ask:
            if self.profile.exit and not self.eof:
                self.send(self.profile.exit)
            self.deadline = time.monotonic() + self.profile.linger
            return
        if signal_now:
            self._escalate()
        self.deadline = time.monotonic() + self.profile.kill_grace

    def _escalate(self) -> None:
        if self.outcome is None and self.eof:  # it closed its terminal, unfinished, and stayed: say so
            unfinished = " without printing its completion pattern" if self.profile.completion else ""
            self.outcome = decided("failed", f"it closed its terminal{unfinished} and did not exit; "
                                             f"orchestra ended it after {self.profile.kill_grace:g}s",
                                   "closed_terminal", min(self.deadline, time.monotonic()))
        if self.escalation:
            self._signal_group(self.escalation.pop(0))
        self.deadline = time.monotonic() + self.profile.kill_grace

    def _signal_group(self, sig: int) -> None:
        if self.child is None:
            return
        self.signalled = self.signalled or not self.exited
        try:
            os.killpg(self.child.pid, sig)  # pexpect made the child a session and group leader
        except (ProcessLookupError, PermissionError):
            pass

    def _finish(self) -> None:
        if self.phase == DONE:
            return
        if not self.eof and self.child is not None:
            # ended without EOF (a drain timeout): what masking and decoding still hold back is final
            self.eof = True
            self._handle(b"", final=True)
            if self.phase == DONE:  # that last line completed the turn, which finished it
                return
        if self.outcome is None:
            self.outcome = self._exit_outcome()
        elif self.outcome.status == "completed" and self.parser.result().is_error:
            self.outcome = replace(self.outcome, status="failed", reason="the agent reported an error: "
                                   + (self.parser.result().errors or ["(no text)"])[-1])
        elif self.outcome.status == "completed" and not self.signalled and self.child is not None:
            # an exit of its own after its completion line is its last word; one that follows
            # orchestra's SIGTERM or SIGKILL (after linger) is not
            ended = self._exit_outcome()
            if ended.status == "crashed":
                self.outcome = replace(self.outcome, status="failed", signal="exit_after_completion",
                                       reason=f"{ended.reason} after printing its completion line",
                                       decided_ms=ended.decided_ms)
        self.phase = DONE
        self.ended_at = time.monotonic()
        # the window's last line says how orchestra judged the end (a raw window: on a line of its own)
        self.window.end((("" if self.rendered_view else "\r\n")
                         + draw.ended(self.profile.name, self.outcome.status, self.redactor.text(self.outcome.reason))
                         ).encode())
        if self.cast:
            self.cast.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
        self.pidfd = -1
        self._release_slave()
        try:
            self.child.close(force=False)
        except Exception:  # the fd may already be gone; the process is reaped
            pass
        if self.on_done is not None:
            self.on_done(self)

    def _release_slave(self) -> None:
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def _exit_outcome(self) -> Outcome:
        code, sig = self.child.exitstatus, self.child.signalstatus
        status, reason = "failed", "exited without printing its completion pattern"
        if sig is not None:
            status, reason = "crashed", f"killed by {signal.Signals(sig).name}"
        elif code:
            status, reason = "crashed", f"exited with code {code}"
        elif self.profile.completion is None:
            status, reason = "completed", ""
        elif self.parser.result().is_error:
            reason = "the agent reported an error"
        elif self.parser.result().is_error is False:  # no completion line, but its own verdict: success
            status, reason = "completed", ""
        return decided(status, reason, "exit", self.exit_seen or time.monotonic())

    @property
    def latest(self) -> str:
        """Its newest line as its window shows it (rendered, for a JSON agent), for status lines and records:
        masked (the drawing is; the stream's line is masked before it is cut)."""
        if self.rendered_view and self.drawn_latest:
            return self.drawn_latest
        return self.stream.latest_shown(self.redactor)

    def result(self) -> SessionResult:
        outcome = self.outcome or Outcome("interrupted", "did not finish")
        parsed = self.parser.result()
        for what, count in self.retries.items():
            parsed.add_error(failures.retried(what, count))
        last_lines = self.stream.lines_shown(self.redactor)
        if outcome.status in ("crashed", "failed", "timeout", "waiting_for_input", OVER_BUDGET):
            parsed.add_error(outcome.reason)
            if last_lines:
                parsed.add_error("last output: " + " | ".join(last_lines[-5:]))
        code = self.child.exitstatus if self.child is not None else None
        sig = self.child.signalstatus if self.child is not None else None
        return SessionResult(
            status=outcome.status, reason=outcome.reason, exit_code=code,
            signal=signal.Signals(sig).name if sig else None,
            duration_s=round((self.ended_at or time.monotonic()) - self.started_at, 3) if self.started_at else 0.0,
            parsed=parsed, answers=self.answers, last_lines=last_lines,
            viewer_skipped=getattr(self.window, "skipped_total", 0),
            started_at=datetime.fromtimestamp(self.started_wall, timezone.utc).isoformat(timespec="milliseconds")
            if self.started_wall else "",
            ended_by=outcome.ended_by(self.redactor.text),
        )

    # -- writing ------------------------------------------------------------

    def _flush_out(self) -> None:
        while self.outbuf and self.fd >= 0 and not self.eof:
            try:
                n = os.write(self.fd, self.outbuf)
            except BlockingIOError:
                return
            except OSError:
                self.outbuf = b""
                return
            self.outbuf = self.outbuf[n:]


def drive(sessions: Iterable[AgentSession], tick: Optional[Callable[[], None]] = None,
          tick_every: float = 0.25) -> None:
    """Read every session's output as it comes, until none of them is active.

    One selector over all ptys and the watches on the agents' exits (their pidfds; where there are none,
    a SIGCHLD self-pipe, after which each child is asked whether it ended): each read is handled at
    once, so a completion line is seen within one read of being written, whatever the other agents are
    doing. Fair turns: each poll, every agent with output waiting gets one turn of TURN_BYTES (alone in
    the loop, SOLO_BYTES), so a flooding agent is read again only after all the others were; the reads of
    a poll are taken first and then handled, those that may end an agent's turn (see decisive) before
    the others. Kept-alive (idle) sessions are still read.

    The work of a wake is the agents it woke: the others' registrations, deadlines and activity are
    looked at again after tick() (which may change any of them), when nothing was ready, and every
    LOOK_EVERY seconds; so 32 agents cost a wake no more than one.
    """
    sessions = list(sessions)
    turn = SOLO_BYTES if len(sessions) == 1 else TURN_BYTES
    selector = procs.selector()
    registered: dict[int, tuple[AgentSession, str, int]] = {}  # fd -> its owner, what it is, the events
    watched: dict[AgentSession, dict] = {}  # session -> what it has registered (fd -> as in registered)
    next_tick = time.monotonic() + tick_every if tick else float("inf")
    unwatched = not procs.HAS_PIDFD or any(s.pidfd < 0 and s.child is not None and not s.exited for s in sessions)
    with procs.ChildExits() if unwatched else nullcontext() as children:
        if children is not None and children.fileno() >= 0:
            selector.register(children.fileno(), selectors.EVENT_READ, (None, "children", 0))
        look_at = time.monotonic() if unwatched else float("inf")  # one may have ended before the pipe was there
        wakes: dict[AgentSession, float] = {}  # the active sessions, each with when on_time has work
        touched: Iterable[AgentSession] = sessions  # whose state may have changed since they were looked at
        everyone_at = 0.0  # when every session is looked at again
        try:
            while True:
                now = time.monotonic()
                if now >= everyone_at:
                    touched, everyone_at = sessions, now + LOOK_EVERY
                for s in touched:
                    if s.active:
                        wakes[s] = s.wake
                    else:
                        wakes.pop(s, None)
                if not wakes:
                    break
                if now >= look_at:
                    _look_for_exits(sessions)
                    look_at = time.monotonic() + procs.EXIT_BACKSTOP
                    everyone_at = 0.0  # (and looked at again)
                    continue
                _watch(selector, registered, watched, touched)
                soonest = min(wakes.values())
                wake = min(soonest, next_tick, look_at)
                timeout = None if wake == float("inf") else max(0.0, wake - now + 0.001)
                touched, ready = [], []
                for key, events in selector.select(timeout):
                    s, kind, _ = key.data
                    if kind == "children":
                        children.clear()
                        look_at = 0.0
                        continue
                    if s.phase == DONE:
                        continue
                    touched.append(s)
                    if kind == "exit":
                        s.on_exit()
                        continue
                    if events & selectors.EVENT_WRITE:
                        s.on_writable()
                    if events & selectors.EVENT_READ:  # (a hang-up or an error is reported as readable too)
                        ready.append(s)
                if len(ready) == 1:
                    if ready[0].phase != DONE:
                        ready[0].on_readable(turn)
                elif ready:
                    # one turn each: a read each, in the order the poll gave, then their handling, a read that
                    # may end its agent's turn first: a completion line waits for the others' reads, not
                    # for their handling
                    at = time.monotonic()
                    taken = [(s, data) for s in ready if s.phase != DONE
                             for data in (s.read_once(turn),) if data is not None]
                    taken.sort(key=lambda t: not t[0].decisive(t[1]))  # (a stable sort: else the poll's order)
                    for s, data in taken:
                        if s.phase != DONE:
                            s.took(data, at)
                if not touched:
                    everyone_at = 0.0  # a quiet wake: a deadline, or a tick
                now = time.monotonic()
                if now >= soonest:  # (the wakes looked at only when one of them is due)
                    for s, at in list(wakes.items()):
                        if now >= at and s.active:
                            s.on_time(now)
                            touched.append(s)
                if tick and now >= next_tick:
                    tick()
                    next_tick = now + tick_every
                    everyone_at = 0.0  # tick() may have changed any of them
        finally:
            selector.close()


def _watch(selector: selectors.BaseSelector, registered: dict, watched: dict, sessions: Iterable[AgentSession]) -> None:
    """Register what each of these sessions needs watched now: its pty (and whether it can take more input),
    its pidfd; and no longer what it needs no more."""
    for s in sessions:
        wanted: dict[int, tuple[AgentSession, str, int]] = {}
        if s.phase != DONE:
            if s.fd >= 0 and not s.eof:
                wanted[s.fd] = (s, "pty", selectors.EVENT_READ | (selectors.EVENT_WRITE if s.outbuf else 0))
            if s.pidfd >= 0 and not s.exited:
                wanted[s.pidfd] = (s, "exit", selectors.EVENT_READ)
        if watched.get(s) == wanted:
            continue  # (as a rule: a read changes nothing of it)
        for fd in watched.get(s, ()):
            have = registered.get(fd)
            if fd not in wanted and have is not None and have[0] is s:
                selector.unregister(fd)
                del registered[fd]
        for fd, data in wanted.items():
            have = registered.get(fd)
            if have == data:
                continue
            if have is not None and have[:2] != data[:2]:
                # the number of a closed descriptor, given again to another one: a new registration
                selector.unregister(fd)
                del registered[fd]
                have = None
            if have is None:
                selector.register(fd, data[2], data)
            else:
                selector.modify(fd, data[2], data)
            registered[fd] = data
        watched[s] = wanted


def _look_for_exits(sessions: list[AgentSession]) -> None:
    """Which children without a pidfd ended (waitpid, through pexpect): told by SIGCHLD, or looked for."""
    for s in sessions:
        if s.pidfd < 0 and s.child is not None and not s.exited and s.phase != DONE and not s.child.isalive():
            s.on_exit()


def task_problem(profile: Profile, task: str, command: Optional[list] = None, what: str = "the task") -> str:
    """Why `task` cannot reach the agent whole the way its profile gives it (command, or the
    resume command), or "". Checked before a run starts anything, and again by start()."""
    template = command or profile.command
    if any("{task}" in part for part in template):
        return argv_problem(task, what)
    if not task or any("{task_file}" in part for part in template):
        return ""
    # typed at its prompt: a control character would act (Ctrl-C, erase the line, Enter early), not arrive
    for i, ch in enumerate(task):
        if (ch < " " and ch != "\t") or ch == "\x7f":
            name = {"\n": "a newline", "\r": "a carriage return", "\x1b": "ESC", "\x7f": "DEL"}.get(
                ch, f"Ctrl-{chr(ord(ch) + 64)}")
            return (f"{what} holds a control character, {name} ({ch!r}) at character {i + 1}, and agent "
                    f"'{profile.name}' gets it typed at its prompt, where the terminal would act on it instead of "
                    "passing it on: remove it, or put {task_file} in the profile's command to give the task in a file")
    return ""


def argv_problem(text: str, what: str = "the task") -> str:
    """Why `text` cannot be one argument of a program, or ""."""
    size = len(text.encode("utf-8", "surrogateescape"))
    if size <= MAX_ARG_BYTES:
        return ""
    return (f"{what} is {size} bytes, and one argument of a program can hold at most {MAX_ARG_BYTES} bytes "
            f"({limits.ARG_BOUND}): write the long part to a file and give a task that names the file, "
            "or use a profile whose command takes {task_file} instead of {task}")


def _readable(fd: int) -> bool:
    """Whether reading `fd` would not block now (data, an EOF or a hang-up)."""
    with procs.selector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        return bool(sel.select(0))


def _canonical(fd: int) -> bool:
    """Whether the terminal reads its input a line at a time (on Linux the pty's master reports its slave's mode)."""
    try:
        return bool(termios.tcgetattr(fd)[3] & termios.ICANON)
    except termios.error:
        return False


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(text)


def _line_span(match: re.Match) -> tuple[int, int]:
    """Where the line (or lines) a match is in starts and ends (after its newline) in the searched text."""
    text = match.string
    return text.rfind("\n", 0, match.start()) + 1, (text.find("\n", match.end()) + 1) or len(text)


def _line_of(match: re.Match, limit: Optional[int] = None) -> str:
    """The whole line a match is in (a pattern may match only its `(y/n)`), or its first `limit` characters."""
    start, end = _line_span(match)
    return match.string[start:end if limit is None else min(end, start + limit)].strip()


def _unspawnable(argv: list[str], env: dict, workdir: Path, task_in_argv: bool) -> str:
    """Why the agent cannot be started as asked, or "": checked before forking (see start())."""
    if not workdir.is_dir():
        what = "is not a directory" if workdir.exists() else "does not exist"
        return f"its working directory {workdir} {what} (field 'workdir', or --workdir)"
    for part in argv:
        if "\0" in part:
            return ("the task contains a NUL byte, which a program's arguments cannot hold" if task_in_argv
                    else "its command contains a NUL byte (field 'command')")
        problem = argv_problem(part, "an argument of its command" + (" (with the task)" if task_in_argv else ""))
        if problem:
            return problem
    for key, value in env.items():
        if not key or "\0" in key or "\0" in value or "=" in key:
            return f"the environment variable {key.split(chr(0))[0]!r} is empty or has a NUL byte or '=' in it (field 'env')"
    size = limits.exec_bytes(argv, env)
    if size > limits.ARGV_BYTES:
        return (f"its arguments{' (with the task)' if task_in_argv else ''} and environment come to {size} bytes, "
                f"and a program can be given at most {limits.ARGV_BYTES} bytes of them together (ARG_MAX, with a "
                "pointer for each): shorten them (fields 'command' and 'env'), or give the task in a file "
                "({task_file})")
    return ""



