"""`orchestra send`: another turn for an agent whose run is over, in its own session (its profile's
`resume` command with the session id it reported), recorded in the same run folder.

    target      the run's record, which agent (by role or name) and what it takes to resume it, or an
                OrchestraError that says why it cannot be (still running, no `resume`, no session id)
    start       the turn in the background: `orchestra send` again as a worker (jobs.start), in the run's
                own folder; returns once the record says running
    take_turn   the worker's side: the record goes back to `running` (this process's pid, the run's lock),
                the agent's session is resumed with the message in a window and transcript of its own
                (secondary-1-turn-2.cast), and the turn's own summary (files changed by this turn, cost,
                checks) is added to that agent's `turns`; the run's status is then the turn's
    turn_text   the latest turn's summary in the words a primary gets (report.secondaries_text)
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Optional

from . import jobs, report, runfolder
from .budget import Budget, enforceable
from .config import Config, Profile
from .errors import OrchestraError
from .run import Run, check_ready, summarize_session
from .runfolder import LOST, RUN_MARK, RUNNING, run_agents
from .session import AgentSession, Outcome, drive, task_problem
from .summary import GitSnapshot
from .viewer import has_session


class Target:
    """One agent of a finished run, and how its session is resumed."""

    def __init__(self, workdir: Path, run_id: str, config: Config, agent: Optional[str] = None):
        self.workdir, self.run_id, self.config = Path(workdir), runfolder.resolve(Path(workdir), run_id), config
        run_id = self.run_id
        self.record = runfolder.load(workdir, run_id)
        status = self.record.get("status")
        if status == RUNNING:
            raise OrchestraError(f"run {run_id} is still running: wait for it (orchestra wait {run_id}), "
                                 "then send it the next message")
        if status in (LOST, "incomplete", "unreadable"):
            raise OrchestraError(f"run {run_id} is {status}: it has no finished agent to continue")
        agents = [a for a in run_agents(self.record) if a.get("role") != "primary"]
        self.index, self.agent = self._pick(agents, agent)
        name = str(self.agent.get("agent"))
        if name not in config.agents:
            raise OrchestraError(f"run {run_id}: its agent '{name}' has no profile in {config.path} (give the "
                                 "config the run was made with: --config)")
        self.profile: Profile = config.profile(name)
        self.role = str(self.agent.get("role") or "agent")
        turns = [t for t in self.agent.get("turns") or [] if isinstance(t, dict)]
        self.turn = len(turns) + 2  # its first turn is the run itself
        self.session_id = next((t.get("session_id") for t in reversed(turns) if t.get("session_id")),
                               self.agent.get("session_id"))
        node = self.agent.get("node")
        if isinstance(node, dict):
            raise OrchestraError(f"run {run_id}: {self.role} ({name}) ran on the cluster's node {node.get('ip')}, where "
                                 f"its session stayed: start a new run with the follow-up as its task (its branch "
                                 f"{self.agent.get('branch') or '-'} keeps its work)")
        if not self.profile.resume:
            raise OrchestraError(f"agent '{name}' cannot continue a session: its profile has no 'resume' command "
                                 f"(in {config.path}); start a new run with the follow-up as its task")
        if not self.session_id:
            raise OrchestraError(f"run {run_id}: {self.role} ({name}) reported no session id, so its session cannot "
                                 "be resumed; start a new run with the follow-up as its task")
        self.agent_workdir = Path(str(self.agent.get("workdir") or runfolder.home(workdir)))
        if not self.agent_workdir.is_dir():
            raise OrchestraError(f"run {run_id}: {self.role} worked in {self.agent_workdir}, which is gone "
                                 f"(orchestra clean {run_id} removes worktrees; its branch "
                                 f"{self.agent.get('branch') or '-'} keeps its work): start a new run")

    def _pick(self, agents: list[dict], wanted: Optional[str]) -> tuple[int, dict]:
        roles = ", ".join(f"{a.get('role')} ({a.get('agent')})" for a in agents) or "none"
        if wanted is None:
            if len(agents) != 1:
                raise OrchestraError(f"run {self.run_id} has {len(agents)} secondaries ({roles}): say which with "
                                     "--agent ROLE")
            return 0, agents[0]
        found = [i for i, a in enumerate(agents) if a.get("role") == wanted] or \
                [i for i, a in enumerate(agents) if a.get("agent") == wanted]
        if len(found) != 1:
            why = "no" if not found else f"{len(found)} agents named"
            raise OrchestraError(f"run {self.run_id} has {why} {wanted!r} (its agents: {roles}): give a role")
        return found[0], agents[found[0]]

    @property
    def name(self) -> str:
        """Its window's and transcript's name: secondary-1-turn-2."""
        return f"{self.role}-turn-{self.turn}"

    def check(self, message: str, budget: Optional[Budget]) -> Budget:
        """What can be known to fail, refused before anything starts: the message, the limits, the CLI."""
        if not message.strip():
            raise OrchestraError("the message is empty: say what the agent should change")
        problem = task_problem(self.profile, message, self.profile.resume, what="the message")
        if problem:
            raise OrchestraError(f"agent '{self.profile.name}': {problem}")
        limits = self.config.budget_of(self.profile.name, budget)
        enforceable(limits, self.profile, self.config)
        check_ready(self.profile, self.config)
        return limits


def start(workdir: Path, run_id: str, argv: list[str], cwd: Optional[Path] = None) -> str:
    """`orchestra <argv>` (a send) as the run's worker in the background; returns once its record says running."""
    return jobs.start(workdir, argv, cwd=cwd, run_id=run_id)


class TurnRun(Run):
    """The run, once more, for one turn: the record written before is kept whole, with the turn added."""

    def __init__(self, target: Target, message: str, **kwargs):
        self.target = target
        self.before = copy.deepcopy(target.record)
        self.turn_session: Optional[AgentSession] = None  # set once made
        super().__init__(target.config, runfolder.home(target.workdir), message, run_id=target.run_id, **kwargs)
        if self.viewer is not None and has_session(self.viewer.session):
            self.viewer.created = True  # the run's tmux session is still there: the turn is a window of it

    def live(self) -> dict:
        record = copy.deepcopy(self.before)
        agent = self._agent_of(record)
        if self.turn_session is not None:
            turn = {**self._live_agent(self.turn_session), **self.turn_facts()}
            # while it runs, the agent is the turn: its phase, latest line, spending, transcript (what views follow)
            agent.update({k: turn.get(k) for k in ("status", "phase", "latest", "duration_s", "budget", "tmux_target",
                                                   "transcript")})
            agent["turns"] = [*(agent.get("turns") or []), turn]
        record.update(status=RUNNING, reason=f"{self.target.name}: {self.target.role} is resumed",
                      pid=self.pid, pid_started=self.pid_started)
        return record

    def final(self, turn: dict, status: str, reason: str) -> dict:
        record = copy.deepcopy(self.before)
        agent = self._agent_of(record)
        agent["turns"] = [*(agent.get("turns") or []), turn]
        costs = [c for c in (record.get("total_cost_usd"), turn.get("cost_usd")) if isinstance(c, (int, float))]
        record.update(status=status, reason=reason, total_cost_usd=round(sum(costs), 6) if costs else None,
                      tmux_session=record.get("tmux_session") or self.tmux_session)
        return record

    def write_json(self, record: dict) -> Optional[Path]:
        return self.write_final({**record, "pid": self.pid, "pid_started": self.pid_started})

    def _agent_of(self, record: dict) -> dict:
        return [a for a in run_agents(record) if a.get("role") != "primary"][self.target.index]

    def turn_facts(self) -> dict:
        return {"turn": self.target.turn, "message": self.redactor.text(self.task)}


def take_turn(target: Target, message: str, budget: Optional[Budget] = None, tmux: bool = True,
              say: Callable[[str], None] = lambda line: None) -> dict:
    """The turn, start to end, in this process (the worker): returns the run's record with it."""
    limits = target.check(message, budget)
    run = TurnRun(target, message, tmux=tmux, say=say)
    git = GitSnapshot.take(target.agent_workdir)
    if git is not None and target.agent.get("branch"):
        git.alone = True  # its own worktree: what changes there is its work
    head = git.head if git is not None else None
    stop: list[str] = []
    turn: dict = {}
    s = run.session(target.profile, target.name, message, workdir=target.agent_workdir, command=target.profile.resume,
                    argv={"{session_id}": str(target.session_id)}, role=target.role, budget=limits)
    run.turn_session = s

    def work() -> None:
        s.start()
        say(f"✅ Resumed {target.profile.name} ({target.role}) for turn {target.turn}")
        drive([s], tick=run.heartbeat)
        run.flush_live()

    def stopped(status: str, reason: str) -> None:
        stop[:] = [status, reason]
        if s.child is None:  # it could not be started
            s.outcome = Outcome(status, reason)

    def record() -> dict:
        summary = summarize_session(run, s, target.role, git)
        turn.update({**summary.to_dict(), **run.turn_facts()})
        branch = target.agent.get("branch")
        if branch and head:
            turn["branch"] = branch
            problem = commit_turn(target, head, f"orchestra: {target.profile.name} ({summary.status}): turn "
                                                f"{target.turn}: {' '.join(run.task.split())[:60]}\n\nrun {run.id}")
            if problem:
                turn["errors"].append(problem)
        turn.update(rerun_checks(target.agent, turn, target.agent_workdir, {**run.env, RUN_MARK: run.mark},
                                 run.redactor.text))
        status, reason = stop or (summary.status, summary.reason)
        return run.final(turn, status, f"{target.name}: {reason}" if reason else "")

    final = run.conduct(work, stopped, record)
    if stop and stop[0] == "failed" and s.child is None:
        raise OrchestraError(stop[1])
    return final


def commit_turn(target: Target, head: str, message: str) -> Optional[str]:
    """A secondary in a worktree: what the turn left, committed on its branch, as its first turn's work was."""
    from .worktree import Repo, Tree, tree_ignores

    repo = Repo(target.agent_workdir)
    repo.base_commit = head
    tree = Tree(target.profile.name, target.role, str(target.agent.get("branch")), repo.root, target.agent_workdir)
    return repo.commit(tree, tree_ignores(target.profile), message)[1]


def rerun_checks(agent: dict, turn: dict, workdir: Path, env: dict, mask) -> dict:
    """The agent's acceptance checks (the commands its run checked it with), run again on the turn's work:
    the `verified` and `checks` fields of the turn's summary; nothing when its run had none."""
    from .checks import run_all, verified

    commands = [str(c["command"]) for c in agent.get("checks") or [] if isinstance(c, dict) and c.get("command")]
    if not commands or turn.get("status") != "completed":
        return {"verified": None, "checks": []} if commands else {}
    results = run_all(commands, workdir, env, float(agent.get("check_timeout") or 600.0), mask)
    return {"verified": verified(results), "checks": [r.to_dict() for r in results]}


def latest_turn(record: dict, role: Optional[str] = None) -> Optional[dict]:
    """The newest turn in a record (of the agent with that role, if given)."""
    found = None
    for a in run_agents(record):
        if role is not None and a.get("role") != role:
            continue
        for t in a.get("turns") or []:
            if isinstance(t, dict) and (found is None or str(t.get("started_at")) >= str(found.get("started_at"))):
                found = t
    return found


def turn_text(record: dict, role: Optional[str] = None) -> str:
    """The latest turn's summary, in the words a model gets from MCP `send`, `wait` and `result`."""
    turn = latest_turn(record, role)
    run_id = record.get("run_id")
    where = f".orchestra/runs/{run_id}/run.json"
    if turn is None:
        return f"Run {run_id}: {record.get('status')}; no follow-up turn recorded ({where})."
    head = (f"Run {run_id}, {turn.get('role')} ({turn.get('agent')}), turn {turn.get('turn')}, its session resumed "
            f"with your message: {turn.get('status')}.")
    branch = f" (branch {turn['branch']})" if turn.get("branch") else ""
    tail = [f"Its diff: git diff in {turn.get('workdir')}{branch}. Another change: "
            f"send(run_id=\"{run_id}\", agent=\"{turn.get('role')}\", message=...)."]
    shown = {**turn, "role": f"{turn.get('role')} turn {turn.get('turn')}"}
    return report.secondaries_text([shown], head, tail, where)

