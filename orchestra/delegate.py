"""`orchestra delegate`: the primary writes a brief, a secondary does the work, the summary goes back.

    primary (window 'primary')      task inside a delegation prompt -> reply -> DELEGATE: brief
    route                           --to NAME, or the config's routing rules on the task
    secondary (window 'secondary-1') brief -> completion -> parsed summary (+ git's view)
    several secondaries             one brief each, all read at once by one drive() loop; each in its
                                    own git worktree and branch (worktree.py), then a merge report
    primary again                   the summary block, typed in (interactive) or by resuming
                                    its session (headless) -> its reply
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from . import agents, report
from .checks import CheckPlan, Verifier, merged_commands, run_verified
from .budget import Budget, enforceable
from .config import EXPLICIT, Config, Profile
from .errors import OrchestraError
from .router import Route, route
from .run import Run, check_ready, summarize_session
from .session import IDLE, AgentSession, drive, task_problem
from .summary import AgentSummary, GitSnapshot, RunSummary, apart_lines, total_cost
from .worktree import BranchReport, Repo, Tree, tree_ignores
from .worktree import git as git_cmd

# One line: typed into an interactive agent, a newline would send the message early.
DELEGATION_PROMPT = (
    "You are the primary agent in Orchestra. Another coding agent (the secondary) will do the following task "
    "in this working directory: {task} -- Do not do the task yourself. Analyse it and write a brief for the "
    "secondary: what to build, which files, and how to check it. Write the brief on a line that begins with the "
    "word DELEGATE and a colon, and end it with a line that says END."
)
# With several secondaries: as many briefs as secondaries, each a part the others do not touch.
SPLIT_PROMPT = (
    " Split the task into {n} independent parts for {n} secondaries that work at the same time, each in its own "
    "copy of the repository: write {n} briefs, each starting on its own DELEGATE line and ending with its own "
    "END line, and give each part different files so their work merges without conflict."
)

SUMMARY_INTRO = "Orchestra: the secondary agent has finished. Its summary:"
SUMMARY_INTRO_MANY = "Orchestra: the {n} secondary agents have finished, each on its own git branch. Their summaries:"
SUMMARY_ASK = "Reply in a few lines: is the task done, and what should the user check next?"
SUMMARY_MAX = report.TEXT_MAX


@dataclass
class Events:
    """What the CLI shows as the run goes; every callback is optional."""

    say: Callable[[str], None] = lambda line: None
    status: Optional[Callable[[AgentSession, int], None]] = None  # (agent shown, how many others run)


@dataclass
class Plan:
    task: str
    primary: Optional[Profile]  # None only with analyze=False
    secondaries: list[str]  # agent names, or ["auto"]
    analyze: bool = True
    demo: bool = False
    parallel: int = 1  # with one --to: how many secondaries of it (or of auto) run at once
    merge: bool = False  # merge the completed branches back (several secondaries, or one isolated)
    isolate: bool = False  # one secondary in a worktree and branch of its own, as several get
    timeouts: dict = field(default_factory=dict)
    checking: CheckPlan = field(default_factory=CheckPlan)  # acceptance checks and fix rounds (checks.py)
    budget: Optional[Budget] = None  # each secondary's limits (options), over its profile's and the config's
    cluster: Optional[str] = None  # a Ray address (or auto): the secondaries run on its nodes (cluster.py)
    cluster_resources: Optional[str] = None  # what each asks of its node: 'cpu=1,memory=2G'

    @property
    def slots(self) -> list[str]:
        """One agent name (or "auto") per secondary that will run."""
        if len(self.secondaries) > 1:
            return list(self.secondaries)
        return [self.secondaries[0] if self.secondaries else "auto"] * max(1, self.parallel)


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


def summary_block(secondaries: list[AgentSummary], branches: Optional[dict[str, BranchReport]] = None,
                  record: str = "run.json", merge_stopped: Optional[str] = None,
                  merged_checks: Optional[list[dict]] = None) -> str:
    """The block given to the primary, on one line: report.secondaries_text, as `orchestra mcp` gives it too."""
    head = SUMMARY_INTRO if len(secondaries) == 1 else SUMMARY_INTRO_MANY.format(n=len(secondaries))
    states = {name: r.describe(merge_stopped) for name, r in (branches or {}).items()}
    tail = [report.merge_stopped_text(merge_stopped)] if merge_stopped else []
    tail += report.merged_checks_text(merged_checks or [])
    return report.secondaries_text([s.to_dict() for s in secondaries], head, tail + [SUMMARY_ASK], record,
                                   branch_states=states, limit=SUMMARY_MAX, sep=" ")


def check_plan(config: Config, plan: Plan) -> None:
    """What can be known to fail is refused before anything starts (a run folder, a tmux session, an
    agent that is paid for): every agent the run will start is installed and has its key, and the
    task can reach the first one whole."""
    profiles = to_start(config, plan)
    if plan.cluster:  # the secondaries' programs and keys are the nodes' (checked there, Fleet.check)
        profiles = [plan.primary] if plan.analyze else []
    for profile in profiles:
        check_ready(profile, config)
    check_task(config, plan)


def to_start(config: Config, plan: Plan) -> list[Profile]:
    """The agents a run will start, as far as they are known before it starts: the primary, each --to,
    and the agent `auto` routes the task to. (Several `auto` secondaries after an analysis are each
    routed on their brief, and checked as they are routed: their run fails then, naming what is missing.)"""
    profiles = [plan.primary] if plan.analyze else []
    for name in sorted(set(plan.slots)):
        if name != "auto":
            profiles.append(config.profile(name))
        elif len(plan.slots) == 1 or not plan.analyze:  # routed on the user's task (see choose_secondaries)
            profiles.append(config.profile(route(plan.task, config, lambda a: installed(config, a)).agent))
    return profiles


def check_task(config: Config, plan: Plan) -> None:
    """A task that cannot reach the first agent whole (too long for one argument, or a control
    character where it is typed) is refused before anything starts."""
    if plan.analyze:
        n = len(plan.slots)
        text = DELEGATION_PROMPT.format(task=plan.task) + (SPLIT_PROMPT.format(n=n) if n > 1 else "")
        given = [(plan.primary, text, "the delegation prompt (the task inside orchestra's instructions)")]
    else:  # the task goes to the secondaries as it is; "auto" routes on it
        names = {name if name != "auto" else route(plan.task, config, lambda a: installed(config, a)).agent
                 for name in plan.slots}
        given = [(config.profile(name), plan.task, "the task") for name in sorted(names)]
    for profile, text, what in given:
        problem = task_problem(profile, text, what=what)
        if problem:
            raise OrchestraError(f"agent '{profile.name}': {problem}")


def checked_agents(config: Config, plan: Plan) -> tuple[list[Profile], list]:
    """The profiles (and routing rules) whose checks and resume a run may use, as far as is known before
    it starts: "auto" for one secondary routes on the task now; for several on each brief, so any rule's."""
    names, rules = {n for n in plan.slots if n != "auto"}, []
    if "auto" in plan.slots:
        if len(plan.slots) == 1:
            r = route(plan.task, config, lambda a: installed(config, a))
            names.add(r.agent)
            rules = [rule for rule in config.rules if rule.name == r.rule]
        else:
            rules = [rule for rule in config.rules if installed(config, rule.agent)]
            names |= {rule.agent for rule in rules} | {config.default_agent}
    return [config.profile(n) for n in sorted(names)], rules


def installed(config: Config, name: str) -> bool:
    profile = config.agents.get(name)
    return profile is not None and all(agents.which(p) for p in agents.programs(profile))


def delegate(config: Config, plan: Plan, workdir: Path, tmux: bool = True, events: Events = Events(),
             run_id: Optional[str] = None) -> RunSummary:
    check_plan(config, plan)
    plan.checking.refuse(*checked_agents(config, plan))
    for name in sorted({name for name in plan.slots if name != "auto"}):
        enforceable(config.budget_of(name, plan.budget), config.profile(name), config)
    # several secondaries in one directory would overwrite each other; an isolated one works apart from you,
    # and so does one on a cluster (its work comes back as a branch)
    several = len(plan.slots) > 1
    repo = Repo(workdir, isolate=not several) if several or plan.isolate or plan.cluster else None
    fleet = None
    if plan.cluster:
        from .cluster import Fleet, Resources, needs_of

        if plan.demo:
            raise OrchestraError("--demo replays recorded sessions here: it has nothing to run on a cluster")
        fleet = Fleet(plan.cluster, Resources.parse(plan.cluster_resources))
        fleet.check({name: needs_of(config.profile(name)) for name in sorted(set(plan.slots)) if name != "auto"})
    if plan.merge and repo is None:
        raise OrchestraError("--merge is for several secondaries or --isolate (each on its own branch); one "
                             "secondary works in place, there is nothing to merge")
    if plan.merge:
        repo.ready_to_merge()
    run = Run(config, workdir, plan.task, tmux=tmux, say=events.say, run_id=run_id)
    run.check_versions(([plan.primary] if plan.analyze else []) + ([] if fleet else [
        config.profile(name) for name in sorted(set(plan.slots)) if name != "auto"]))
    run.fleet = fleet
    flow = _Flow(run, plan, events, repo)
    return run.conduct(flow.go, flow.fail, flow.summary)


class _Flow:
    def __init__(self, run: Run, plan: Plan, events: Events, repo: Optional[Repo] = None):
        self.run, self.plan, self.events, self.repo = run, plan, events, repo
        self.config = run.config
        self.say = events.say
        self.git = None if plan.demo or repo else GitSnapshot.take(run.workdir)
        self.primaries: list[AgentSummary] = []
        self.secondaries: list[AgentSummary] = []
        self.brief: Optional[str] = None
        self.briefs: list[str] = []
        self.route: Optional[Route] = None
        self.routes: list[dict] = []
        self.branches: list[BranchReport] = []
        self.merge_stopped: Optional[str] = None
        self.checker = Verifier(run, plan.checking, self.say, follow=self.follow)
        self.rules: list = []  # per secondary, the routing rule that chose it (None: named, or the default)
        self.merged_checks: list[dict] = []
        self.cluster_checks: list[str] = []  # the checks the cluster's secondaries ran on their nodes
        self.started: list[tuple[AgentSession, Optional[Tree], Optional[GitSnapshot]]] = []
        self.wrapping: Optional[AtOnce] = None  # the secondaries' wrap_up, under way or done
        self.returned = False
        self.reply: Optional[str] = None
        self.status = "failed"
        self.reason = ""

    def fail(self, status: str, reason: str) -> None:
        """The run stopped early: record it, and every secondary that was started, as it ended."""
        self.status, self.reason = status, reason
        if self.run.fleet is not None:
            self.settle_remote()
        done = self.wrapping.finished() if self.wrapping is not None else {}  # (their git work ends first)
        left = [done[i] if i in done else self.wrap_up(*self.started[i], self.briefs[i])
                for i in range(len(self.secondaries), len(self.started))]
        for (summary, saved), kept in zip(left, self.reported([saved for _, saved in left])):
            self.secondaries.append(summary)
            if kept is not None:
                self.note_kept(saved[0], kept)  # its work so far, kept on its branch

    # -- steps ----------------------------------------------------------------

    def go(self) -> None:
        plan = self.plan
        slots = plan.slots
        primary, briefs = self.analyze(len(slots)) if plan.analyze else (None, [plan.task])
        # a secondary without a brief of its own shares one: each works in its own worktree, nothing collides
        self.briefs = [briefs[i % len(briefs)] for i in range(len(slots))]
        names = self.choose_secondaries(slots, self.briefs)
        if self.repo is not None:
            self.repo.run_id = self.run.id
            left_out = self.repo.left_out()
            if left_out:
                self.say(left_out)
        windows = [f"secondary-{i + 1}" for i in range(len(names))]
        if self.run.fleet is not None:
            self.on_cluster(names, windows)
        else:
            self.here(names, windows, primary)
        if self.repo is not None:
            self.report_branches()
        self.status, self.reason = self.outcome()
        if plan.analyze:
            self.return_summary(primary)

    def here(self, names: list[str], windows: list[str], primary: Optional[AgentSession]) -> None:
        """The secondaries on this machine: each in the run's workdir, or with several in its worktree."""
        trees = self.repo.add(list(zip(names, windows))) if self.repo else [None] * len(names)
        for line in self.repo.warnings if self.repo else []:
            self.say(line)
        for spec in zip(windows, names, self.briefs, trees):
            self.started.append(self.start_secondary(*spec))
        secondaries = self.started
        checks = [self.plan.checking.commands(s.profile, rule) for (s, _, _), rule in zip(secondaries, self.rules)]
        # each secondary's summary and (in its worktree) its work committed: git's part, one secondary's
        # independent of the others', in a thread of its own; for one without checks as soon as it has ended
        # (the others may work on for minutes), for the others once their checks are done; said in their order
        self.wrapping = wrapping = AtOnce()
        calls = [lambda i=i: self.wrap_up(*secondaries[i], self.briefs[i]) for i in range(len(secondaries))]
        for i, ((s, _, _), commands) in enumerate(zip(secondaries, checks)):
            if not commands:
                s.on_done = lambda _, i=i: wrapping.start(i, calls[i])
        self.follow([s for s, _, _ in secondaries] + ([primary] if primary is not None else []))
        for (s, _, _), commands in zip(secondaries, checks):  # before their work is committed on their branches
            self.checker.verify(s, commands)
        for i, call in enumerate(calls):
            wrapping.start(i, call)  # (those not started yet)
        done = wrapping.results()
        for (s, tree, _), summary, kept in zip(secondaries, [d[0] for d in done], self.reported([d[1] for d in done])):
            self.secondaries.append(summary)
            self.say_result(summary, several=tree is not None)
            if kept is not None:
                self.note_kept(tree, kept)

    def on_cluster(self, names: list[str], windows: list[str]) -> None:
        """The secondaries on the cluster's nodes (cluster.py): each an `orchestra run` there, its transcript and
        live agent streamed into this run's folder, its work back as the branch a local one would get."""
        from .cluster import Spec, base_bundle, needs_of, shareable_config

        fleet, repo, run = self.run.fleet, self.repo, self.run
        fleet.check({name: needs_of(self.config.profile(name)) for name in sorted(set(names))})  # routed ones too
        self.remote_trees = repo.plan(list(zip(names, windows)))  # branch names; nothing is checked out here
        fleet.put_base(base_bundle(repo.root, repo.base_commit, run.id))
        explicit = next((layer.path for layer in self.config.layers if layer.kind == EXPLICIT), None)
        config_text = shareable_config(explicit, run.redactor.text)
        for tree, brief, rule in zip(self.remote_trees, self.briefs, self.rules):
            profile = self.config.profile(tree.agent)
            if not profile.takes_task_in_argv:
                brief = report.one_line(brief)
            checks = self.plan.checking.commands(profile, rule)
            self.cluster_checks += checks
            spec = Spec(run_id=run.id, slot=tree.window, agent=tree.agent, brief=brief, branch=tree.branch,
                        base_commit=repo.base_commit, subdir=str(repo.sub), config_text=config_text,
                        vars=needs_of(profile)["vars"], ignore=tree_ignores(profile),
                        run_args=remote_options(self.plan, checks))
            window = run.window(tree.window)  # the node's output, as it streams back
            fleet.start(spec, run.dir / f"{tree.window}.cast", run.home, window)
            shown = f" in tmux window '{tree.window}'" if window.target else ""
            self.say(f"✅ Spawned {profile.name} on the cluster{shown} on branch {tree.branch}")
        run.write_live()
        fleet.follow(tick=run.heartbeat, ended=run.write_live)
        self.settle_remote()

    def settle_remote(self) -> None:
        """Each cluster secondary's summary (its node's, or what is known of one that died), its branch fetched."""
        fleet, repo = self.run.fleet, self.repo
        for remote, tree in list(zip(fleet.remotes, getattr(self, "remote_trees", [])))[len(self.secondaries):]:
            summary = remote.summary()
            problem = fleet.fetch(remote, repo.root)
            if problem:
                summary.errors.append(problem)
            elif not (remote.final or {}).get("bundle"):  # nothing came back: the branch a local one would have
                git_cmd(repo.root, "branch", "-q", tree.branch, repo.base_commit)
            summary.branch = tree.branch
            self.secondaries.append(summary)
            self.say_result(summary, several=True)
            self.branches.append(repo.report(tree, summary.status, summary.files_modified))

    def analyze(self, n: int) -> tuple[AgentSession, list[str]]:
        """The primary's turn: the task in, one brief per secondary out."""
        profile = self.plan.primary
        prompt = DELEGATION_PROMPT.format(task=self.plan.task) + (SPLIT_PROMPT.format(n=n) if n > 1 else "")
        primary = self.start(profile, "primary", prompt, keep_alive=not profile.takes_task_in_argv)
        self.follow([primary])
        first = self.result_of(primary, "primary")
        if primary.phase != IDLE:
            self.primaries.append(first)
        if first.status != "completed":
            raise OrchestraError(f"the primary ({profile.name}) {first.status}: {first.reason or 'no reason given'}")
        found = extract_briefs(primary.parser.result().reply, profile.delegate_start, profile.delegate_end)
        if not found:
            raise OrchestraError(f"the primary ({profile.name}) answered with no brief "
                                 f"(no line matching {profile.delegate_start.pattern!r})")
        self.brief = found[0]
        self.say(f"✅ {profile.name} analyzed task")
        if len(found) != n:
            self.say(f"⚠️  {profile.name} wrote {len(found)} brief{'s' if len(found) != 1 else ''} for "
                     f"{n} secondar{'ies' if n != 1 else 'y'}: " +
                     ("some get the same brief" if len(found) < n else "the extra ones are not delegated"))
        return primary, found

    def start_secondary(self, window: str, name: str, brief: str,
                        tree: Optional[Tree]) -> tuple[AgentSession, Optional[Tree], Optional[GitSnapshot]]:
        """Spawn one secondary: in the run's workdir, or with several in its worktree."""
        profile = self.config.profile(name)
        budget = self.config.budget_of(name, self.plan.budget)
        enforceable(budget, profile, self.config)  # (a routed one: checked once it is known)
        if not profile.takes_task_in_argv:
            brief = report.one_line(brief)  # typed: its line breaks would press Enter before the end
        if tree is None:
            return self.start(profile, window, brief, budget=budget), None, self.git
        # a fresh worktree is clean at the starting commit: its snapshot needs no git call
        git = None if self.plan.demo else GitSnapshot(tree.workdir, self.repo.base_commit, {}, alone=True,
                                                      top=tree.path)
        return self.start(profile, window, brief, workdir=tree.workdir, where=tree.branch, budget=budget), tree, git

    def outcome(self) -> tuple[str, str]:
        done = [s for s in self.secondaries if s.status == "completed"]
        if len(done) == len(self.secondaries):
            return "completed", ""
        if done:
            return "partial", "; ".join(f"{s.agent} ({s.role}) {s.status}: {s.reason}"
                                        for s in self.secondaries if s.status != "completed")
        failed = self.secondaries[0]
        return failed.status, f"{failed.agent} {failed.status}: {failed.reason}"

    def say_result(self, summary: AgentSummary, several: bool) -> None:
        n = len(summary.files_modified)
        files = f"{n} file{'s' if n != 1 else ''} modified"
        if several:  # one line each, to compare them: files, cost, time
            cost = f"${summary.cost_usd:.4f}" if summary.cost_usd is not None else "cost unknown"
            files += f", {cost}, {summary.duration_s:.1f}s, {summary.role}"
            if summary.node:  # on a cluster
                files += f", node {summary.node.get('ip')} ({str(summary.node.get('id'))[:12]})"
        if summary.status == "completed":
            self.say(f"✅ {summary.agent} completed task ({files})")
        else:
            self.say(f"❌ {summary.agent} {summary.status}: {summary.reason} ({files})")
        if several:
            for path in summary.files_modified[:10]:
                self.say(f"   • {path}")
            if n > 10:
                self.say(f"   • ... {n - 10} more (orchestra show {self.run.id})")
        for line in apart_lines(summary.to_dict(), f"orchestra show {self.run.id}"):
            self.say(line)

    def wrap_up(self, s: AgentSession, tree: Optional[Tree], git: Optional[GitSnapshot],
                brief: str) -> tuple[AgentSummary, Optional[tuple]]:
        """A secondary's summary and, in a worktree, what it left committed on its branch, so its work is kept
        whatever happens (Repo.save). Nothing is said here: it runs in a thread of its own (AtOnce)."""
        summary = self.result_of(s, s.window_name, git)
        if tree is None:
            return summary, None
        return summary, self.repo.save(tree, summary, tree_ignores(self.config.profile(summary.agent)),
                                       " ".join(self.run.redactor.text(brief).split()),
                                       at_start=git is not None and git.on == tree.branch)

    def reported(self, saved: list[Optional[tuple]]) -> list[Optional[BranchReport]]:
        """The branch reports of the secondaries that have a worktree (None for the others), once all are saved."""
        reports = iter(self.repo.reports([x for x in saved if x is not None]) if self.repo else [])
        return [next(reports) if x is not None else None for x in saved]

    def note_kept(self, tree: Tree, kept: BranchReport) -> None:
        if kept.uncommitted:
            self.say(f"⚠️  {tree.branch}: {kept.note}")
        self.branches.append(kept)

    def report_branches(self) -> None:
        hint = (f"   nothing merged (add --merge to merge the completed branches; orchestra clean {self.run.id} "
                "removes the worktrees; branches with unmerged work stay)")
        said, self.merge_stopped = self.repo.settle(self.branches, self.plan.merge, hint)
        for line in said:
            self.say(line)
        if not self.merge_stopped and any(r.merged for r in self.branches):  # two green branches can merge red
            commands = list(dict.fromkeys(merged_commands(list(self.checker.done.values())) + self.cluster_checks))
            self.merged_checks = [c.to_dict() for c in self.checker.check(commands, self.repo.workdir, " (merged)")]

    def choose_secondaries(self, slots: list[str], briefs: list[str]) -> list[str]:
        """Agent names for the slots. "auto" routes on the user's task; with several secondaries on each
        one's brief, since their parts differ."""
        chosen = []
        for name, brief in zip(slots, briefs):
            if name != "auto":  # checked by delegate() before anything started
                chosen.append(name)
                self.rules.append(None)
                continue
            r = route(brief if len(slots) > 1 else self.plan.task, self.config,
                      lambda agent: installed(self.config, agent))
            if self.route is None:
                self.route = r
                for line in r.warnings(self.config):
                    self.say(line)
            self.routes.append(r.to_dict())
            self.say(f"📍 Routed to {r.agent} ({r.describe()})")
            chosen.append(r.agent)
            self.rules.append(next((rule for rule in self.config.rules if rule.name == r.rule), None))
        return chosen

    def return_summary(self, primary: Optional[AgentSession]) -> None:
        # the block names run.json for what it leaves out: the live record, with the secondaries' summaries now
        self.run.write_live(wait=True)
        record = os.path.relpath(self.run.dir / "run.json", primary.workdir if primary is not None else self.run.workdir)
        block = summary_block(self.secondaries, {r.branch: r for r in self.branches}, record, self.merge_stopped,
                              self.merged_checks)
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
              argv: Optional[dict] = None, command: Optional[list] = None, workdir: Optional[Path] = None,
              where: str = "", budget: Optional[Budget] = None) -> AgentSession:
        s = self.run.session(profile, window, task, keep_alive=keep_alive, argv=argv, command=command,
                             workdir=workdir, budget=budget)
        s.start()
        shown = f"in tmux window '{window}'" if s.window.target else "(headless)"
        if window != "primary-reply":
            self.say(f"✅ Spawned {profile.name} {shown}" + (f" on branch {where}" if where else ""))
        return s

    def follow(self, sessions: list[AgentSession]) -> None:
        status = self.events.status

        def tick() -> None:
            self.run.heartbeat()
            working = [s for s in sessions if s.active and s.phase != IDLE]
            if status and working:  # the status line follows the first agent still at work
                status(working[0], len(working) - 1)

        drive(sessions, tick=tick)
        self.run.flush_live()

    def result_of(self, s: AgentSession, role: str, git: Optional[GitSnapshot] = None) -> AgentSummary:
        summary = summarize_session(self.run, s, role, git)
        self.checker.apply(s, summary)
        if self.plan.demo:
            summary.reason = (summary.reason + " " if summary.reason else "") + "(replayed recording: files as recorded, none written)"
        return summary

    def summary(self) -> RunSummary:
        everyone = self.primaries + self.secondaries + self.checker.rounds()
        mask = self.run.redactor.text  # the briefs are the primary's words, as it wrote them
        return RunSummary(
            run_id=self.run.id, task=self.run.redactor.text(self.plan.task), status=self.status, reason=self.reason,
            brief=mask(self.brief) if self.brief else self.brief,
            briefs=[mask(b) for b in self.briefs] if len(self.briefs) > 1 else [],
            route=self.route.to_dict() if self.route else None, routes=self.routes if len(self.routes) > 1 else [],
            primary=self.primaries[-1].to_dict() if self.primaries else None,
            secondaries=[s.to_dict() for s in self.secondaries],
            summary_returned_to_primary=self.returned, primary_reply=self.reply,
            total_cost_usd=total_cost(everyone), duration_s=self.run.elapsed(), started_at=self.run.started_at,
            workdir=str(self.run.workdir), tmux_session=self.run.tmux_session,
            base=({"branch": self.repo.base_branch, "commit": self.repo.base_commit} if self.repo else None),
            worktrees=[t.to_dict() for t in self.repo.trees] if self.repo else [],
            merges=[r.to_dict() for r in self.branches], merge_stopped=self.merge_stopped,
            verified=run_verified([s.to_dict() for s in self.secondaries], self.merged_checks),
            merged_checks=self.merged_checks,
        )


class AtOnce:
    """Calls made each in a thread of its own (they wait on git, not on Python), started together or one by
    one, their results in order."""

    def __init__(self, calls: Sequence[Callable[[], object]] = ()):
        self.values: dict[int, object] = {}
        self.errors: dict[int, BaseException] = {}
        self.threads: dict[int, threading.Thread] = {}
        for i, fn in enumerate(calls):
            self.start(i, fn)

    def start(self, i: int, fn: Callable[[], object]) -> None:
        """Call i: fn, in a thread of its own, unless call i was started already."""
        if i in self.threads:
            return

        def call() -> None:
            try:
                self.values[i] = fn()
            except BaseException as exc:  # raised in the caller's thread, by results()
                self.errors[i] = exc

        self.threads[i] = threading.Thread(target=call, name=f"orchestra-wrap-up-{i}", daemon=True)
        self.threads[i].start()

    def results(self) -> list:
        """Each call's value, in order, once all have returned; the first error is raised instead."""
        for t in list(self.threads.values()):
            t.join()
        for i in sorted(self.threads):
            if i in self.errors:
                raise self.errors[i]
        return [self.values[i] for i in sorted(self.threads)]

    def finished(self) -> dict[int, object]:
        """Once every call started has returned (a signal that cut results() short does not stop them): the
        values of those that did not fail, by index."""
        for t in list(self.threads.values()):
            t.join()
        return dict(self.values)


def remote_options(plan: Plan, checks: list[str]) -> list[str]:
    """The `orchestra run` options a cluster secondary gets: its checks and the budget given for it."""
    args = [arg for command in checks for arg in ("--check", command)]
    if checks:
        args += ["--check-timeout", str(plan.checking.timeout), "--fix-rounds", str(plan.checking.fix_rounds)]
    for option, name in (("--max-cost", "max_cost_usd"), ("--max-tokens", "max_tokens"), ("--max-time", "max_time_s")):
        value = getattr(plan.budget, name, None)
        if value is not None:
            args += [option, str(value)]
    return args


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
    first.ended_by = turn.ended_by  # the last wait
    return first


def primary_reply(s: AgentSession) -> str:
    return s.redactor.text(s.parser.result().reply.strip())[-4000:]  # masked whole, as summarize_session() does
