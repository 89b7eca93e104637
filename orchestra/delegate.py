"""`orchestra delegate`: the primary writes a brief, a secondary does the work, the summary goes back.

    primary (window 'primary')      task inside a delegation prompt -> reply -> DELEGATE: brief
    route                           --to NAME, or the config's routing rules on the task
    secondary (window 'secondary-1') brief -> completion -> parsed summary (+ git's view)
    primary again                   the summary block, typed in (interactive) or by resuming
                                    its session (headless) -> its reply
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import agents
from .config import Config, Profile
from .errors import OrchestraError
from .router import Route, route
from .run import Interrupted, Run, interruptible, summarize_session
from .session import IDLE, AgentSession, drive
from .summary import AgentSummary, GitSnapshot, RunSummary, total_cost

# One line: typed into an interactive agent, a newline would send the message early.
DELEGATION_PROMPT = (
    "You are the primary agent in Orchestra. Another coding agent (the secondary) will do the following task "
    "in this working directory: {task} -- Do not do the task yourself. Analyse it and write a brief for the "
    "secondary: what to build, which files, and how to check it. Write the brief on a line that begins with the "
    "word DELEGATE and a colon, and end it with a line that says END."
)

SUMMARY_INTRO = "Orchestra: the secondary agent has finished. Its summary:"
SUMMARY_ASK = "Reply in a few lines: is the task done, and what should the user check next?"


@dataclass
class Events:
    """What the CLI shows as the run goes; every callback is optional."""

    say: Callable[[str], None] = lambda line: None
    status: Optional[Callable[[AgentSession], None]] = None


@dataclass
class Plan:
    task: str
    primary: Profile
    secondaries: list[str]  # agent names, or ["auto"]
    analyze: bool = True
    demo: bool = False
    timeouts: dict = field(default_factory=dict)


def extract_briefs(text: str, start: re.Pattern, end: re.Pattern) -> list[str]:
    """Each brief: the rest of a start line, plus following lines up to an end marker if there is one."""
    briefs = []
    starts = list(start.finditer(text))
    for i, m in enumerate(starts):
        stop = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        body = text[m.end():stop]
        closing = end.search(body)
        if closing:
            brief = body[:closing.start()]
        else:
            brief = body.split("\n", 1)[0]
        brief = brief.strip()
        if brief:
            briefs.append(brief)
    return briefs


def summary_block(secondaries: list[AgentSummary]) -> str:
    """The structured block typed into the primary: one section per secondary."""
    lines = [SUMMARY_INTRO]
    for s in secondaries:
        cost = f"${s.cost_usd:.4f} ({s.cost_source})" if s.cost_usd is not None else "unknown"
        lines += [
            f"[{s.role}: {s.agent}]",
            f"status: {s.status}" + (f" ({s.reason})" if s.reason else ""),
            f"files: {', '.join(s.files_modified) if s.files_modified else 'none'}",
            f"errors: {'; '.join(s.errors[:5]) if s.errors else 'none'}",
            f"cost: {cost}",
            f"duration: {s.duration_s:.1f}s",
            "last lines: " + " | ".join(line[:200] for line in s.last_lines[-5:]),
        ]
    lines.append(SUMMARY_ASK)
    # one line: a newline typed into an interactive agent would send the message early
    return " ".join(line.strip() for line in lines)


def installed(config: Config, name: str) -> bool:
    profile = config.agents.get(name)
    if profile is None:
        return False
    binary = profile.binary or profile.command[0]
    return binary.startswith("{") or agents.which(binary) is not None


def delegate(config: Config, plan: Plan, workdir: Path, tmux: bool = True, events: Events = Events()) -> RunSummary:
    run = Run(config, workdir, plan.task, tmux=tmux, say=events.say)
    flow = _Flow(run, plan, events)
    interrupted: Optional[Interrupted] = None
    try:
        with interruptible():
            try:
                flow.go()
            except Interrupted as exc:  # end the agents while a second Ctrl-C still raises
                interrupted = exc
                run.abort("interrupted", f"orchestra received {exc}")
                flow.fail("interrupted", f"orchestra received {exc}")
            except OrchestraError as exc:
                run.abort("failed", str(exc))
                flow.fail("failed", str(exc))
    except BaseException:
        run.abort("crashed", "orchestra failed")
        run.close_viewer()
        raise
    summary = flow.summary()
    run.write_json(summary)
    run.close_viewer()
    if interrupted:
        raise interrupted
    return summary


class _Flow:
    def __init__(self, run: Run, plan: Plan, events: Events):
        self.run, self.plan, self.events = run, plan, events
        self.config = run.config
        self.say = events.say
        self.git = None if plan.demo else GitSnapshot.take(run.workdir)
        self.primaries: list[AgentSummary] = []
        self.secondaries: list[AgentSummary] = []
        self.brief: Optional[str] = None
        self.route: Optional[Route] = None
        self.returned = False
        self.reply: Optional[str] = None
        self.status = "failed"
        self.reason = ""

    def fail(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason

    # -- steps ----------------------------------------------------------------

    def go(self) -> None:
        plan = self.plan
        primary = None
        briefs = [plan.task]
        if plan.analyze:
            primary = self.start(plan.primary, "primary", DELEGATION_PROMPT.format(task=plan.task),
                                 keep_alive=not plan.primary.takes_task_in_argv)
            self.follow([primary])
            first = self.result_of(primary, "primary")
            if primary.phase != IDLE:
                self.primaries.append(first)
            if first.status != "completed":
                raise OrchestraError(f"the primary ({plan.primary.name}) {first.status}: {first.reason or 'no reason given'}")
            found = extract_briefs(primary.parser.result().reply, plan.primary.delegate_start, plan.primary.delegate_end)
            if not found:
                raise OrchestraError(f"the primary ({plan.primary.name}) answered with no brief "
                                     f"(no line matching {plan.primary.delegate_start.pattern!r})")
            briefs = found
            self.brief = found[0]
            self.say(f"✅ {plan.primary.name} analyzed task")
        names = self.choose_secondaries()
        secondaries = []
        for i, name in enumerate(names):
            brief = briefs[i] if i < len(briefs) else briefs[0]
            secondaries.append(self.start(self.config.profile(name), f"secondary-{i + 1}", brief))
        self.follow(secondaries + ([primary] if primary is not None else []))
        for i, s in enumerate(secondaries):
            summary = self.result_of(s, f"secondary-{i + 1}", self.git)
            self.secondaries.append(summary)
            n = len(summary.files_modified)
            files = f"{n} file{'s' if n != 1 else ''} modified"
            if summary.status == "completed":
                self.say(f"✅ {summary.agent} completed task ({files})")
            else:
                self.say(f"❌ {summary.agent} {summary.status}: {summary.reason} ({files})")
        done = [s for s in self.secondaries if s.status == "completed"]
        if len(done) == len(self.secondaries):
            self.status, self.reason = "completed", ""
        elif done:
            self.status, self.reason = "partial", "some secondaries did not complete"
        else:
            failed = self.secondaries[0]
            self.status = failed.status
            self.reason = f"{failed.agent} {failed.status}: {failed.reason}"
        if plan.analyze:
            self.return_summary(primary)

    def choose_secondaries(self) -> list[str]:
        chosen = []
        for name in self.plan.secondaries:
            if name != "auto":
                self.config.profile(name)
                chosen.append(name)
                continue
            self.route = route(self.plan.task, self.config, lambda agent: installed(self.config, agent))
            for line in self.route.warnings(self.config):
                self.say(line)
            self.say(f"📍 Routed to {self.route.agent} ({self.route.describe()})")
            chosen.append(self.route.agent)
        return chosen

    def return_summary(self, primary: Optional[AgentSession]) -> None:
        block = summary_block(self.secondaries)
        profile = self.plan.primary
        if primary is not None and primary.phase == IDLE:
            primary.send_turn(block)  # interactive: type it in, as a person would
            self.follow([primary])
            answered = primary.outcome is not None and primary.outcome.status == "completed"
            reply = primary_reply(primary) if answered else None
            primary.close()
            drive([primary])
            self.primaries = [self.result_of(primary, "primary")]
        elif profile.resume and primary is not None and primary.parser.result().session_id:
            # headless: resume its session with the summary as the next message
            resumed = self.start(profile, "primary-reply", block, command=profile.resume,
                                 argv={"{session_id}": primary.parser.result().session_id})
            self.follow([resumed])
            turn = self.result_of(resumed, "primary")
            answered = turn.status == "completed"
            reply = primary_reply(resumed) if answered else None
            self.primaries[0] = merge_turns(self.primaries[0], turn)
        else:
            why = "reported no session id" if profile.resume else "has no 'resume' command and has exited"
            self.say(f"⚠️  could not return the summary to {profile.name}: it {why}")
            return
        if answered:
            self.returned, self.reply = True, reply
            self.say(f"✅ Summary returned to {profile.name}")
        else:
            self.say(f"⚠️  {profile.name} did not answer the summary: {self.primaries[0].reason}")

    # -- helpers ----------------------------------------------------------------

    def start(self, profile: Profile, window: str, task: str, keep_alive: bool = False,
              argv: Optional[dict] = None, command: Optional[list] = None) -> AgentSession:
        s = self.run.session(profile, window, task, keep_alive=keep_alive, argv=argv, command=command)
        s.start()
        where = f"in tmux window '{window}'" if s.window.target else "(headless)"
        if window != "primary-reply":
            self.say(f"✅ Spawned {profile.name} {where}")
        return s

    def follow(self, sessions: list[AgentSession]) -> None:
        status = self.events.status
        working = [s for s in sessions if s.active]
        tick = (lambda: status(working[0])) if status and working else None
        drive(sessions, tick=tick)

    def result_of(self, s: AgentSession, role: str, git: Optional[GitSnapshot] = None) -> AgentSummary:
        summary = summarize_session(self.run, s, role, git)
        if self.plan.demo:
            summary.reason = (summary.reason + " " if summary.reason else "") + "(replayed recording: files as recorded, none written)"
        return summary

    def summary(self) -> RunSummary:
        everyone = self.primaries + self.secondaries
        return RunSummary(
            run_id=self.run.id, task=self.run.redactor.text(self.plan.task), status=self.status, reason=self.reason,
            brief=self.brief, route=self.route.to_dict() if self.route else None,
            primary=self.primaries[-1].to_dict() if self.primaries else None,
            secondaries=[s.to_dict() for s in self.secondaries],
            summary_returned_to_primary=self.returned, primary_reply=self.reply,
            total_cost_usd=total_cost(everyone), duration_s=self.run.elapsed(), started_at=self.run.started_at,
            workdir=str(self.run.workdir), tmux_session=self.run.tmux_session,
        )


def merge_turns(first: AgentSummary, turn: AgentSummary) -> AgentSummary:
    """The primary across its analysis turn and its reply turn (a resumed session)."""
    costs = [c for c in (first.cost_usd, turn.cost_usd) if c is not None]
    first.cost_usd = round(sum(costs), 6) if costs else None
    if turn.cost_source != "unknown":
        first.cost_source = turn.cost_source
    for key in ("input", "output"):
        values = [v for v in (first.tokens[key], turn.tokens[key]) if v is not None]
        first.tokens[key] = sum(values) if values else None
    first.duration_s = round(first.duration_s + turn.duration_s, 3)
    first.errors += [e for e in turn.errors if e not in first.errors]
    first.reply_transcript = turn.transcript
    if turn.status != "completed":
        first.reason = f"reply turn {turn.status}: {turn.reason}"
    return first


def primary_reply(s: AgentSession) -> str:
    return s.parser.result().reply.strip()[-4000:]
