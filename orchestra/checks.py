"""Acceptance checks: commands that say whether an agent's work is done, and fix rounds until they pass.

    given       --check CMD (or MCP `checks`), else the routing rule's `checks:`, else the profile's
    run         after an agent completes, in its own working directory (its worktree when it has one):
                split as a shell would (shlex), never run by one; a timeout ends its process group;
                its output masked and only its tail kept
    fix round   the same agent resumed in its own session (its profile's `resume:`), told which checks
                failed and how their output ends; checked again, until they pass or the rounds are spent
    merged      with --merge, the checks again on the merged checkout: two green branches can merge red
"""
from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import ansi
from .errors import OrchestraError
from .report import clip, one_line

TIMEOUT = 600.0  # seconds a check may take (--check-timeout)
TAIL = 2000  # characters of a check's output kept: its end, where a failure is said
READ_KEPT = 64 * 1024  # bytes of output held while it runs (a check may print gigabytes)
KILL_GRACE = 1.0  # after SIGTERM to a timed-out check's process group, before SIGKILL
FIX_MAX = 4000  # characters of the message a fix round sends: one argument, or one typed line
FIX_INTRO = ("Orchestra ran the acceptance checks on your work and {failed} of {total} failed. Fix the cause in this "
             "working directory so that each passes; do not change or skip the checks themselves.")


@dataclass
class CheckPlan:
    """What the user asked for: --check (or MCP checks), --check-timeout, --fix-rounds."""

    given: list[str] = field(default_factory=list)
    timeout: float = TIMEOUT
    fix_rounds: int = 0

    def commands(self, profile, rule=None) -> list[str]:
        """The checks an agent gets: the command line's (or MCP's), else its routing rule's, else its profile's."""
        return list(self.given or (rule.checks if rule is not None else None) or profile.checks or [])

    def refuse(self, profiles: list, rules: list = ()) -> None:
        """Before anything starts (exit 2): a check that cannot run, --fix-rounds for an agent that cannot
        be resumed, --fix-rounds with no check to fix."""
        require(self.given, "--check")
        for rule in [] if self.given else rules:  # the command line's win: the config's do not run
            require(rule.checks, f"routing rule '{rule.name}', field checks")
        for profile in profiles:
            if not self.given:
                require(profile.checks, f"agent '{profile.name}', field checks")
            problem = resume_problem(profile, self.fix_rounds)
            if problem:
                raise OrchestraError(problem)
        if self.fix_rounds and not (self.given or any(r.checks for r in rules) or any(p.checks for p in profiles)):
            raise OrchestraError(f"--fix-rounds {self.fix_rounds} needs checks to fix: give --check CMD (or checks: "
                                 "in the agent's profile or routing rule)")


@dataclass
class CheckResult:
    command: str
    exit_code: Optional[int]  # None: it could not start, or was ended at its timeout
    duration_s: float
    output: str  # the end of its output (stdout and stderr together), masked
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """`cmd` exited 1 / timed out after 600s / could not start."""
        if self.timed_out:
            how = f"timed out after {self.duration_s:.0f}s"
        elif self.exit_code is None:
            how = "could not start"
        else:
            how = f"exited {self.exit_code}"
        return f"`{self.command}` {how}"


def split(command: str, where: str) -> list[str]:
    """A check's argv, as a shell would split it (a shell never runs it: `sh -c '...'` for one).
    Raises OrchestraError naming where it came from."""
    if not isinstance(command, str):
        raise OrchestraError(f"{where}: a check is a command line (a string), got {type(command).__name__}")
    try:
        argv = shlex.split(command)
    except ValueError as exc:  # an unclosed quote
        raise OrchestraError(f"{where}: {exc} in check {command!r} (it is split as a shell would, and never "
                             "run by one)") from None
    if not argv:
        raise OrchestraError(f"{where}: a check is empty: give a command, e.g. 'pytest -q'")
    if "\x00" in command:
        raise OrchestraError(f"{where}: check {command!r} holds a NUL character, which no program can be given")
    return argv


def require(commands: list[str], where: str) -> None:
    """Before anything starts: each check splits, and a program named without a path is installed."""
    for command in commands:
        program = split(command, where)[0]
        if "/" not in program and shutil.which(program) is None:
            raise OrchestraError(f"{where}: check {command!r}: program '{program}' not found on PATH "
                                 "(install it, or give its path)")


def run_check(command: str, workdir: Path, env: dict, timeout: float = TIMEOUT,
              mask: Callable[[str], str] = lambda text: text) -> CheckResult:
    """One check, to its end or its timeout. Its process group (a session of its own) is ended either way,
    and on any exception (Ctrl-C reaching orchestra): nothing it started outlives it in its group."""
    argv = split(command, "check")
    began = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return CheckResult(command, None, round(time.monotonic() - began, 3),
                           mask(f"cannot start {argv[0]}: {exc.strerror or exc}"))
    kept, timed_out = bytearray(), False
    deadline = began + timeout
    fd = proc.stdout.fileno()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            # a short wait when the check has exited: something it left may hold the pipe open
            ready, _, _ = select.select([fd], [], [], min(left, 0.1 if proc.poll() is not None else 1.0))
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    break
                kept += data
                if len(kept) > READ_KEPT:
                    del kept[:len(kept) - READ_KEPT]
            elif proc.poll() is not None:
                break
        if timed_out:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(KILL_GRACE)
            except subprocess.TimeoutExpired:
                pass
        else:
            proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _signal_group(proc.pid, signal.SIGKILL)  # what it left in its group, or all of it on an exception
        proc.wait()
        proc.stdout.close()
    took = round(time.monotonic() - began, 3)
    # masked before it is cut: a secret across the cut is whole here
    text = mask(ansi.strip(bytes(kept).decode("utf-8", "replace")))
    tail = text[-TAIL:] if len(text) <= TAIL else "..." + text[-(TAIL - 3):]
    return CheckResult(command, None if timed_out else proc.returncode, took, tail, timed_out)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:  # gone already
        pass


def run_all(commands: list[str], workdir: Path, env: dict, timeout: float,
            mask: Callable[[str], str], say: Callable[[str], None] = lambda line: None,
            who: str = "") -> list[CheckResult]:
    """Every check, one after another (each says something of its own when it fails)."""
    results = []
    for command in commands:
        result = run_check(command, workdir, env, timeout, mask)
        results.append(result)
        if result.passed:
            say(f"✔️  check passed{who}: {command} ({result.duration_s:.1f}s)")
        else:
            say(f"✖️  check failed{who}: {result.describe()}")
    return results


def verified(results: list) -> Optional[bool]:
    """True: all passed; False: one failed; None: no check ran. Results or their dicts."""
    if not results:
        return None
    return all((r.passed if isinstance(r, CheckResult) else r.get("exit_code") == 0) for r in results)


def fix_message(failed: list[CheckResult], total: int, typed: bool = False) -> str:
    """What a fix round tells the agent: which checks failed and how their output ends, within FIX_MAX.
    typed: the agent gets it at its prompt, as one line."""
    head = FIX_INTRO.format(failed=len(failed), total=total)
    share = max(200, (FIX_MAX - len(head)) // max(1, len(failed)) - 4)
    parts = [head]
    for r in failed:
        said = f"Check {r.describe()}. The end of its output:\n"
        tail = r.output.strip() or "(no output)"
        room = max(40, share - len(said))
        parts.append(said + (tail if len(tail) <= room else "..." + tail[-(room - 3):]))
    text = "\n\n".join(parts)
    text = one_line(text) if typed else text.replace("\x00", "")
    return clip(text, FIX_MAX)


@dataclass
class Verification:
    """One agent's checks, and its fix rounds (each an agent summary with what it changed and its checks)."""

    commands: list[str]
    checks: list[CheckResult] = field(default_factory=list)
    rounds: list = field(default_factory=list)  # the AgentSummary of each fix round, its checks and verified set

    @property
    def verified(self) -> Optional[bool]:
        return verified(self.checks)

    def apply(self, summary) -> None:
        """Onto the agent's summary: verified, checks, fix_rounds (the last checks are the ones that count)."""
        summary.checks = [c.to_dict() for c in self.checks]
        summary.verified = self.verified if summary.status == "completed" else None
        summary.fix_rounds = [{"round": n, **r.to_dict()} for n, r in enumerate(self.rounds, 1)]


class Verifier:
    """Checks for one run: each agent's after it completes, its fix rounds, and the merged checkout's.

    A fix round is an agent session like any other (run.session: its window, its transcript
    `<window>-fix-<n>.cast`, its summary), resumed as a headless primary is for its reply turn."""

    def __init__(self, run, plan: CheckPlan, say: Callable[[str], None] = lambda line: None,
                 follow: Optional[Callable[[list], None]] = None):
        from .runfolder import RUN_MARK

        self.run, self.plan, self.say = run, plan, say
        self.follow = follow or self._follow
        self.env = {**run.env, RUN_MARK: run.mark}  # what the run's end finds, if a check leaves something running
        self.done: dict[int, Verification] = {}  # id(session) -> its verification, so far

    def _follow(self, sessions: list) -> None:
        from .session import drive

        drive(sessions, tick=self.run.heartbeat)
        self.run.flush_live()

    def check(self, commands: list[str], workdir: Path, who: str = "") -> list[CheckResult]:
        return run_all(commands, Path(workdir), self.env, self.plan.timeout, self.run.redactor.text, self.say, who)

    def apply(self, s, summary) -> None:
        """A session's summary gets its verification (none if it had no checks)."""
        if id(s) in self.done:
            self.done[id(s)].apply(summary)

    def rounds(self) -> list:
        return [r for v in self.done.values() for r in v.rounds]

    def verify(self, s, commands: list[str]) -> Verification:
        """Check a completed agent; while a check fails and rounds are left, resume it to fix them."""
        from .run import summarize_session
        from .summary import GitSnapshot

        v = self.done.setdefault(id(s), Verification(commands))
        if not commands or s.outcome is None or s.outcome.status != "completed":
            return v
        who = f" ({s.window_name})"
        v.checks = self.check(commands, s.workdir, who)
        session_id = s.parser.result().session_id
        budget = s.meter.budget if getattr(s, "meter", None) is not None else None
        for n in range(1, self.plan.fix_rounds + 1):
            if v.verified is not False:
                break
            if not session_id:
                self.say(f"⚠️  no fix round: {s.profile.name} reported no session id to resume")
                break
            failed = [c for c in v.checks if not c.passed]
            typed = not any("{task}" in p or "{task_file}" in p for p in s.profile.resume)
            git = GitSnapshot.take(s.workdir)  # what this round changes
            window = f"{s.window_name}-fix-{n}"
            # one budget across the agent and its rounds: what is left of it after them
            spent = [spent_by(s, self.run.config), *(r.to_dict() for r in v.rounds)]
            fixer = self.run.session(s.profile, window, fix_message(failed, len(v.checks), typed),
                                     argv={"{session_id}": session_id}, command=s.profile.resume, workdir=s.workdir,
                                     budget=budget.remaining(spent) if budget else None)
            fixer.start()
            shown = f"in tmux window '{window}'" if fixer.window.target else "(headless)"
            self.say(f"🔧 fix round {n} of {self.plan.fix_rounds}: {s.profile.name} resumes its session {shown}")
            self.follow([fixer])
            summary = summarize_session(self.run, fixer, window, git)
            v.rounds.append(summary)
            if summary.status != "completed":
                self.say(f"⚠️  fix round {n} {summary.status}: {summary.reason}")
                break
            v.checks = self.check(commands, s.workdir, who)
            summary.checks = [c.to_dict() for c in v.checks]
            summary.verified = v.verified
            session_id = fixer.parser.result().session_id or session_id
        return v


def spent_by(s, config) -> dict:
    """What an agent's session has spent so far, as a summary says it (for Budget.remaining)."""
    from .summary import cost_of

    parsed = s.parser.result()
    cost, _ = cost_of(parsed, s.profile.name, config)
    took = ((s.ended_at or time.monotonic()) - s.started_at) if s.started_at else 0.0
    return {"cost_usd": cost, "tokens": {"input": parsed.tokens_in, "output": parsed.tokens_out}, "duration_s": took}


def merged_commands(verifications: list[Verification]) -> list[str]:
    """The checks of every agent, each once, in order: what the merged checkout must pass."""
    return list(dict.fromkeys(c for v in verifications for c in v.commands))


def run_verified(agents: list[dict], merged: list[dict]) -> Optional[bool]:
    """A run's verified: false if an agent's checks or the merged checkout's failed; true if some were
    checked and none failed; null if none were."""
    values = [a.get("verified") for a in agents] + [verified(merged)]
    if False in values:
        return False
    return True if True in values else None


def resume_problem(profile, fix_rounds: int) -> str:
    """Why --fix-rounds cannot be kept for this agent, or ""."""
    if fix_rounds > 0 and not profile.resume:
        return (f"--fix-rounds {fix_rounds}: agent '{profile.name}' cannot be resumed (its profile has no "
                "'resume:' command), so it cannot be sent its failed checks; leave out --fix-rounds, or add "
                "resume: to its profile")
    return ""
