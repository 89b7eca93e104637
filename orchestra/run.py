"""A run: its id, its folder under .orchestra/runs/, its tmux session, its secrets; and `orchestra run`."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from . import agents, awake, runfolder
from .budget import Budget, Meter, enforceable
from .config import Config, Profile
from .errors import Interrupted, OrchestraError  # (Interrupted: the CLI catches it without importing this)
from .procs import end_processes, marked_pids, process_started
from .redact import Redactor, secrets_from_env
from .runfolder import LOCK, RUN_MARK, RUNNING
from .session import AgentSession, Outcome, drive, task_problem
from .checks import CheckPlan, Verifier
from .summary import AgentSummary, GitSnapshot, RunSummary, attribute, cost_of, split_paths, total_cost, without_ignored
from .viewer import KEEP_FINISHED, TmuxViewer, ViewerWindow, close_finished
from .worktree import BranchReport, Repo, tree_ignores

SESSIONS_SAID = "sessions-closed"  # in .orchestra/: the closing of old tmux sessions has been said
LIVE_EVERY = 1.0  # seconds: the live record's latest lines and costs are rewritten at most this often
# seconds: a phase change within this of the last write waits for the loop's next tick (a quarter second) or its
# end, so eight agents ending at once make one write, not sixteen
LIVE_SOON = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP (a closed terminal) during a run, from its folder's making to its end.

    Until arm(), a signal is kept for later: the run is being set up (its version checks, its first
    windows), and arm() raises it as Interrupted inside conduct(), where it is handled like any other,
    so a run interrupted at any moment is recorded `interrupted`. While its agents work, and while they
    are being ended, each such signal raises Interrupted (a second one ends them at once). From hold()
    on, while the run writes its record, they are ignored. The handlers from before the run come back
    only when it is over: no gap in which a signal would kill orchestra before its record is written."""

    def __init__(self) -> None:
        self.raising = False
        self.held = False
        self.pending: Optional[int] = None
        self.old: dict = {}

    def install(self) -> "StopSignals":
        self.old = {s: signal.signal(s, self._handler) for s in STOP_SIGNALS}
        return self

    def _handler(self, signum, frame) -> None:
        if self.raising:
            raise Interrupted(signum)
        if self.pending is None and not self.held:
            self.pending = signum

    def arm(self) -> None:
        self.raising = True
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)

    def hold(self) -> None:
        self.raising = False
        self.held = True

    def restore(self) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        self.old = {}


class LiveWrites:
    """The live record's writes, in a thread of their own: a file made and renamed took 1-7 ms here while
    eight agents ended at once, time in which the loop read none of them. The newest record handed over is
    written; one handed over while another is written replaces any still waiting (only the newest counts)."""

    def __init__(self, folder: Path, failed: Callable[[OSError], None]):
        self.folder, self.failed = folder, failed
        self.pending: Optional[dict] = None
        self.busy = False
        self.changed = threading.Condition()
        self.thread: Optional[threading.Thread] = None

    def put(self, record: dict) -> None:
        with self.changed:
            self.pending = record
            if self.thread is None:
                self.thread = threading.Thread(target=self._write, name="orchestra-live-record", daemon=True)
                self.thread.start()
            self.changed.notify_all()

    def wait(self) -> None:
        """Until every record handed over is written (or has failed to be)."""
        with self.changed:
            while self.pending is not None or self.busy:
                self.changed.wait()

    def _write(self) -> None:
        while True:
            with self.changed:
                while self.pending is None:
                    self.changed.wait()
                record, self.pending, self.busy = self.pending, None, True
            try:
                runfolder.write_record(self.folder, record)
            except OSError as exc:
                self.failed(exc)
            finally:
                with self.changed:
                    self.busy = False
                    self.changed.notify_all()


def to_stderr(line: str) -> None:
    """A line on stderr, even with --json (stdout is the JSON then); a terminal gone away is no error."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class Run:
    """Everything one orchestra invocation writes, and the viewer its agents share."""

    def __init__(self, config: Config, workdir: Path, task: str, tmux: bool = True,
                 say: Callable[[str], None] = lambda line: None, env: Optional[dict] = None,
                 warn: Callable[[str], None] = to_stderr, run_id: Optional[str] = None):
        self.config = config
        self.workdir = Path(workdir).resolve()
        self.task = task
        self.say = say
        self.warn = warn
        self.saved: Optional[Path] = None  # run.json, once written
        self.env = dict(os.environ if env is None else env)
        self.started = time.monotonic()
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.home = runfolder.home(self.workdir)  # where its folder is: a repository's top, from any subdirectory
        self.id, self.dir = runfolder.make(self.home, run_id)
        # the secrets of orchestra's environment and those a profile sets in its own `env:`
        self.mark = f"{self.id}.{os.getpid()}"
        key_vars = [p.api_key_env for p in config.agents.values()]
        found = {s for env in [self.env, *(p.env for p in config.agents.values())]
                 for s in secrets_from_env(env, key_vars)}
        self.redactor = Redactor(sorted(found, key=len, reverse=True))
        self.viewer: Optional[TmuxViewer] = None
        if tmux and TmuxViewer.available():
            self.viewer = TmuxViewer(f"orchestra-{self.id}", home=self.home)
        elif tmux:
            say("ℹ️  tmux not found: running headless (install tmux to watch agents live)")
        self.sessions: list[AgentSession] = []
        self.roles: dict[int, str] = {}  # id(session) -> its role
        self.results: dict[int, AgentSummary] = {}  # id(session) -> its summary, once it has one
        self.fleet = None  # its secondaries on a Ray cluster (cluster.Fleet), if it has any
        self.versions_said: set[str] = set()  # the profiles whose CLI's version was checked
        self.pid, self.pid_started = os.getpid(), process_started(os.getpid())
        self._live_at = 0.0
        self._live_due = False  # a phase change not written yet
        self._final = False
        self._live_failed = False
        self._writes = LiveWrites(self.dir, self._live_failed_to)
        self._lock = runfolder.hold_lock(self.dir / LOCK)  # released once the final record is written: what wait() waits on
        self.live_before = set(runfolder.live_ids(self.workdir)) - {self.id}  # runs already under way here
        runfolder.mark_live(self.workdir, self.id)
        self.write_live(wait=True)  # (a detached run's starter reads it as soon as it is told the run started)
        # from here on the run has a record: a signal ends it as `interrupted`, and a detached
        # run's starter may return its id
        self.signals = StopSignals().install()
        runfolder.tell_starter("started")
        if self.viewer is not None:
            self.close_old_sessions()
        self.say_where_to_watch()

    def close_old_sessions(self) -> None:
        """Every run leaves its tmux session: past KEEP_FINISHED of this directory's finished runs, the
        oldest are closed, and that is said the first time only (a marker in .orchestra/ remembers)."""
        closed, _ = close_finished(self.home, keep=KEEP_FINISHED, replays=False)
        marker = self.home / runfolder.ORCHESTRA_DIR / SESSIONS_SAID
        if closed and not marker.exists():
            self.say(f"🧹 closed the tmux sessions of {len(closed)} finished run{'s' if len(closed) != 1 else ''} "
                     f"(orchestra keeps the newest {KEEP_FINISHED}, and says this once; "
                     "`orchestra clean --finished` closes them all)")
            try:
                marker.touch()
            except OSError:
                pass

    def say_where_to_watch(self) -> None:
        """At the start, so a run in the foreground can be watched while it goes (and said again at its end)."""
        from .web import web_url

        if self.viewer is not None:
            self.say(f"👀 Watch: tmux attach -t {self.viewer.session}")
        url = web_url(self.home, self.id)
        if url:
            self.say(f"🌐 Web: {url}")

    @property
    def tmux_session(self) -> Optional[str]:
        return self.viewer.session if self.viewer and self.viewer.created else None

    def window(self, name: str) -> ViewerWindow:
        if self.viewer is None:
            return ViewerWindow()
        try:
            return self.viewer.open_window(name)
        except OSError as exc:
            self.say(f"ℹ️  {exc}: running headless")
            self.viewer = None
            return ViewerWindow()

    def check_versions(self, profiles: list[Profile]) -> None:
        """Say once per profile and run when its CLI is another version than the profile was tested with
        (its output format may differ); nothing is refused."""
        for profile in profiles:
            if profile.version and profile.name not in self.versions_said:
                self.versions_said.add(profile.name)
                drift = agents.drift(profile, {**self.env, **profile.env})
                if drift:
                    self.warn(f"⚠️  {drift}")

    def session(self, profile: Profile, window: str, task: str, keep_alive: bool = False,
                workdir: Optional[Path] = None, argv: Optional[dict] = None,
                command: Optional[list] = None, role: Optional[str] = None,
                budget: Optional[Budget] = None) -> AgentSession:
        self.check_versions([profile])  # one chosen on the way (routed): before it starts
        env = dict(self.env)
        env.update(profile.env)
        env[RUN_MARK] = self.mark
        check_key(profile, env, self.config)
        workdir = Path(workdir or (self.workdir / profile.workdir if profile.workdir else self.workdir))
        s = AgentSession(profile, task, workdir, self.dir / f"{window}.cast", window=None, env=env,
                         redactor=self.redactor, keep_alive=keep_alive, argv_values=argv)
        s.command_override = command
        if budget:
            s.meter = Meter(budget, lambda parsed: cost_of(parsed, profile.name, self.config))
        s.window = self.window(window)
        s.window_name = window
        self.roles[id(s)] = role or ("primary" if window.startswith("primary") else window)
        self.sessions.append(s)
        s.on_phase = lambda _: self.phase_changed()
        self.write_live()
        return s

    # -- the live record -------------------------------------------------------

    def live(self) -> dict:
        """run.json while the run goes on: status running, orchestra's pid, and each agent as it is now
        (its phase, elapsed time, cost so far, latest line)."""
        agents = [self._live_agent(s) for s in self.sessions] + \
            ([r.live() for r in self.fleet.remotes] if self.fleet is not None else [])
        primaries = [a for a in agents if a["role"] == "primary"]
        costs = [a["cost_usd"] for a in agents if a["cost_usd"] is not None]
        return RunSummary(
            run_id=self.id, task=self.redactor.text(self.task), status=RUNNING, started_at=self.started_at,
            workdir=str(self.workdir), tmux_session=self.tmux_session, pid=self.pid, pid_started=self.pid_started,
            primary=primaries[-1] if primaries else None, secondaries=[a for a in agents if a["role"] != "primary"],
            total_cost_usd=round(sum(costs), 6) if costs else None, duration_s=self.elapsed(),
        ).to_dict()

    def _live_agent(self, s: AgentSession) -> dict:
        summary = self.results.get(id(s))
        if summary is not None:  # done and summarised
            return {**summary.to_dict(), "phase": s.phase, "latest": s.latest}
        parsed = s.parser.result()
        cost, source = cost_of(parsed, s.profile.name, self.config)
        started = s.started_at or time.monotonic()
        return {
            "agent": s.profile.name, "role": self.roles.get(id(s), s.window_name),
            "status": RUNNING if s.phase != "done" else (s.outcome.status if s.outcome else "done"),
            "phase": s.phase, "latest": s.latest,
            "cost_usd": cost, "cost_source": source, "tokens": {"input": parsed.tokens_in, "output": parsed.tokens_out},
            "duration_s": round((s.ended_at or time.monotonic()) - started, 3),
            "started_at": datetime.fromtimestamp(s.started_wall, timezone.utc).isoformat(timespec="milliseconds")
            if s.started_wall else "",
            "transcript": os.path.relpath(s.transcript_path, self.home), "tmux_target": s.window.target or None,
            "files_modified": [], "errors": [], "budget": budget_state(s),
        }

    def write_live(self, wait: bool = False) -> None:
        """The live record, whole (a temporary file renamed over it): at every phase change, and from
        heartbeat() as agents write. Made here, written by a thread of its own (LiveWrites), so the loop that
        reads the agents goes on meanwhile; wait: until it is written (what comes next reads it). Once the
        final record is written, never again."""
        if self._final:
            return
        self._live_at = time.monotonic()
        self._live_due = False
        self._writes.put(self.live())
        if wait:
            self._writes.wait()

    def _live_failed_to(self, exc: OSError) -> None:
        if not self._live_failed:  # said once; the final record is tried (and reported) all the same
            self._live_failed = True
            self.warn(f"⚠️  cannot write {self.dir / 'run.json'}: {exc.strerror or exc} (the live record stops)")

    def alongside(self) -> list[str]:
        """The other runs of this directory under way at some time during this one, whose agents may
        have written here meanwhile: those under way at its start, and those started since (a run id
        begins with the second it was made)."""
        return sorted((self.live_before | set(runfolder.made_since(self.home, self.id))) - {self.id})

    def phase_changed(self) -> None:
        """An agent's phase changed: written at once, or with the others that change within LIVE_SOON."""
        if time.monotonic() - self._live_at >= LIVE_SOON:
            self.write_live()
        else:
            self._live_due = True

    def heartbeat(self) -> None:
        """From the loop's tick: a phase change held back, else the latest lines and costs at most every
        LIVE_EVERY seconds."""
        if self._live_due or time.monotonic() - self._live_at >= LIVE_EVERY:
            self.write_live()

    def flush_live(self) -> None:
        """The loop has ended: a phase change held back is written now."""
        if self._live_due:
            self.write_live()

    def abort(self, status: str = "interrupted", reason: str = "", at_once: bool = False) -> None:
        """End every agent: all are signalled first, so their grace periods run at the same time."""
        for s in self.sessions:
            s.abort_begin(status, reason, at_once)
        if self.fleet is not None:  # the secondaries on the cluster: their tasks end their agents
            self.fleet.stop(status, reason)
        for s in self.sessions:
            s.abort_end()

    def end_stragglers(self) -> int:
        """End whatever the run's agents left running after they ended: a daemon that left the
        agent's process group or session (setsid, setpgid), found by the run's mark in its
        environment. Returns how many there were."""
        names = end_processes(marked_pids(RUN_MARK, self.mark))
        if names:
            self.say(f"🧹 ended {len(names)} process{'es' if len(names) != 1 else ''} the agents left running: "
                     + ", ".join(sorted(set(names))))
        return len(names)

    def conduct(self, work: Callable[[], None], stopped: Callable[[str, str], None],
                record: Callable[[], RunSummary]) -> RunSummary:
        """work() (the agents, start to end) under StopSignals, then record() written as run.json.

        A first Ctrl-C, SIGTERM or SIGHUP ends the agents (SIGTERM, then SIGKILL after their grace);
        a second one during that grace ends them at once; an OrchestraError ends them as failed.
        Each way, stopped(status, reason) is told, with signals held from then on, so what it does
        (commit the secondaries' work) and the record are not cut short. Raises the Interrupted,
        once the record is written."""
        interrupted: Optional[Interrupted] = None
        signals = self.signals
        try:
            try:
                try:
                    signals.arm()  # one that came while the run was set up is raised here
                    with awake.held(self.say):
                        work()
                except Interrupted as exc:
                    interrupted = exc
                    self.abort("interrupted", f"orchestra received {exc}")
                    signals.hold()
                    stopped("interrupted", f"orchestra received {exc}")
                except OrchestraError as exc:
                    signals.hold()
                    self.abort("failed", str(exc))
                    stopped("failed", str(exc))
            except Interrupted as exc:  # a second one, during the first one's grace
                signals.hold()
                interrupted = interrupted or exc
                self.abort("interrupted", f"orchestra received {interrupted}", at_once=True)
                stopped("interrupted", f"orchestra received {interrupted}")
            except BaseException:
                signals.hold()
                self.crashed()
                raise
            signals.hold()
            summary = record()
            self.finish(summary)
        finally:
            self._writes.wait()  # (orchestra failed before its final record: the live one is whole at least)
            signals.restore()
        if interrupted:
            interrupted.run_dir = self.dir if self.saved else None
            raise interrupted
        return summary

    def crashed(self) -> None:
        """orchestra itself failed mid-run: end every agent and what they left, close the windows' pipes
        (each step even if the one before it fails again)."""
        try:
            self.abort("crashed", "orchestra failed")
        finally:
            try:
                self.end_stragglers()
            finally:
                self.close_viewer()

    def finish(self, summary: RunSummary) -> None:
        """The run is over: its record first (whatever follows may fail on a closed terminal), then
        what could not be written, what the agents left running, the windows' pipes."""
        try:
            self.write_json(summary)
            for s in self.sessions:
                if s.cast is not None and s.cast.error:
                    self.warn(f"❌ {s.cast.error} (the transcript stops there)")
        finally:
            try:
                self.end_stragglers()
            finally:
                self.close_viewer()

    def write_json(self, summary: RunSummary) -> Optional[Path]:
        """The final run.json, whole or not at all. One that cannot be written (a full disk) is said on
        stderr and the run goes on: its summary is printed all the same."""
        summary.pid, summary.pid_started = self.pid, self.pid_started
        return self.write_final(summary.to_dict())

    def write_final(self, record: dict) -> Optional[Path]:
        """write_json's record as a dict (a follow-up turn adds to a record written before, fields and all)."""
        path = self.dir / runfolder.RECORD
        self._final = True
        self._writes.wait()  # (the last live record, if it is being written: the final one goes over it)
        try:
            runfolder.write_record(self.dir, self.redactor.data(record))
        except OSError as exc:
            self.warn(f"❌ cannot write {path}: {exc.strerror or exc} (the run's record is not saved)")
            return None
        finally:
            runfolder.unmark_live(self.workdir, self.id)
            if self._lock is not None:
                os.close(self._lock)  # (releases it)
                self._lock = None
        self.saved = path
        return path

    def close_viewer(self) -> None:
        if self.viewer is not None:
            self.viewer.close()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 3)


def check_key(profile: Profile, env: dict, config: Config) -> None:
    if profile.api_key_env and not env.get(profile.api_key_env):
        raise OrchestraError(
            f"agent '{profile.name}': the API key variable {profile.api_key_env} is not set "
            f"(export it; or, to use another variable or none, {config.change_hint(profile.name, 'api_key_env')})")


def check_ready(profile: Profile, config: Config) -> None:
    """Before a run starts anything: the agent's CLI is installed and its key variable set (or a clear error)."""
    env = {**os.environ, **profile.env}
    for binary in agents.programs(profile):
        agents.require(binary, profile.name, profile.install, env)
    check_key(profile, env, config)


def summarize_session(run: Run, s: AgentSession, role: str, git: Optional[GitSnapshot]) -> AgentSummary:
    r = s.result()
    inside, outside = split_paths(r.parsed.files, s.workdir)
    inside = without_ignored(inside, s.profile.ignore_files)
    seen = without_ignored(git.changed(), s.profile.ignore_files) if git is not None else None
    alone = git is not None and git.alone
    alongside = run.alongside() if git is not None and not alone else []
    files, others, note = attribute(inside, seen, s.parser.names_files, alone, alongside)
    cost, source = cost_of(r.parsed, s.profile.name, run.config)
    # The transcript's bytes are masked as they come; this text was cleaned since, and a secret
    # that escape sequences cut apart in the bytes is whole in it: mask it here, for run.json,
    # --json and the summary a primary is given alike.
    mask = run.redactor.text
    summary = AgentSummary(
        agent=s.profile.name, role=role, status=r.status, reason=mask(r.reason), ended_by=r.ended_by,
        files_modified=files, files_changed_by_others=others, files_note=note, runs_alongside=alongside,
        files_claimed=inside, files_seen_by_git=seen, files_outside_workdir=outside,
        errors=[mask(e) for e in r.parsed.errors] + ([s.cast.error] if s.cast is not None and s.cast.error else []),
        cost_usd=cost, cost_source=source,
        tokens={"input": r.parsed.tokens_in, "output": r.parsed.tokens_out},
        duration_s=r.duration_s, started_at=r.started_at, exit_code=r.exit_code, signal=r.signal,
        transcript=os.path.relpath(s.transcript_path, run.home),
        tmux_target=s.window.target or None, session_id=r.parsed.session_id,
        answers=[{k: mask(v) if isinstance(v, str) else v for k, v in a.items()} for a in r.answers],
        last_lines=r.last_lines, reply=mask(r.parsed.reply)[-4000:], workdir=str(s.workdir),
        budget=budget_state(s),
    )
    run.results[id(s)] = summary
    return summary


def budget_state(s: AgentSession) -> Optional[dict]:
    """Its limits and what it has spent against each (None without a budget)."""
    if s.meter is None:
        return None
    return s.meter.state(s.parser.result(), ((s.ended_at or time.monotonic()) - s.started_at) if s.started_at else 0.0)


def run_agent(config: Config, profile: Profile, task: str, workdir: Path, tmux: bool = True,
              say: Callable[[str], None] = lambda line: None,
              status_line: Optional[Callable[[AgentSession], None]] = None,
              run_id: Optional[str] = None, isolate: bool = False,
              checking: Optional[CheckPlan] = None, budget: Optional[Budget] = None) -> tuple[RunSummary, AgentSummary]:
    """`orchestra run`: one agent, one task, followed to the end, checked (checks.py) and summarised. isolate:
    in a git worktree and branch of its own (worktree.py), its work committed there and its merge reported.
    budget: the limits given for it (options), over its profile's and the config's."""
    checking = checking or CheckPlan()
    budget = config.budget_of(profile.name, budget)
    enforceable(budget, profile, config)
    check_ready(profile, config)  # before the run makes its folder, tmux session and windows
    checking.refuse([profile])
    problem = task_problem(profile, task)
    if problem:
        raise OrchestraError(f"agent '{profile.name}': {problem}")
    repo = Repo(workdir, isolate=True) if isolate else None
    run = Run(config, workdir, task, tmux=tmux, say=say, run_id=run_id)
    run.check_versions([profile])
    tree = None
    if repo is not None:
        repo.run_id = run.id
        tree = repo.plan([(profile.name, profile.name)])[0]  # made once the run is under way (work())
        git: Optional[GitSnapshot] = GitSnapshot(tree.workdir, repo.base_commit, {}, alone=True, top=tree.path)
    else:
        git = GitSnapshot.take(run.workdir)
    s = run.session(profile, profile.name, task, role="agent", workdir=tree.workdir if tree else None, budget=budget)
    stop: list[str] = []  # the status and reason the run was stopped with, if it was
    agent: Optional[AgentSummary] = None
    reports: list[BranchReport] = []
    verifier = Verifier(run, checking, say)

    def work() -> None:
        if tree is not None:
            left_out = repo.left_out()
            if left_out:
                say(left_out)
            repo.make([tree])
            for line in repo.warnings:
                say(line)
        s.start()
        where = f"tmux window '{s.window.name}'" if s.window.target else "headless"
        say(f"✅ Spawned {profile.name} ({where})" + (f" on branch {tree.branch}" if tree else ""))
        def tick() -> None:
            run.heartbeat()
            if status_line:
                status_line(s)

        drive([s], tick=tick)
        run.flush_live()
        verifier.verify(s, checking.commands(profile))

    def stopped(status: str, reason: str) -> None:
        stop[:] = [status, reason]
        if status == "failed" and s.child is None:  # it could not be started (an exec format error...)
            s.outcome = Outcome(status, reason)
            if run.viewer is not None:  # its window would only ever be empty
                run.viewer.kill()
                run.viewer = None

    def record() -> RunSummary:
        nonlocal agent
        agent = summarize_session(run, s, "agent", git)
        verifier.apply(s, agent)
        if repo is not None and tree in repo.trees:  # its worktree was made: its work is kept on its branch
            kept = repo.keep(tree, agent, tree_ignores(profile), " ".join(run.redactor.text(task).split()))
            reports.append(kept)
            if kept.uncommitted:
                say(f"⚠️  {tree.branch}: {kept.note}")
            hint = (f"   nothing merged (git merge {tree.branch} takes it; orchestra clean {run.id} removes "
                    "the worktree, and the branch once merged)")
            for line in repo.settle(reports, False, hint)[0]:
                say(line)
        summary = _one_agent_summary(run, agent, *(stop or (agent.status, agent.reason)), rounds=verifier.rounds())
        if repo is not None:
            summary.base = {"branch": repo.base_branch, "commit": repo.base_commit}
            summary.worktrees = [t.to_dict() for t in repo.trees]
            summary.merges = [r.to_dict() for r in reports]
        return summary

    summary = run.conduct(work, stopped, record)
    if stop and stop[0] == "failed":
        raise OrchestraError(stop[1])
    return summary, agent


def _one_agent_summary(run: Run, agent: AgentSummary, status: str, reason: str,
                       rounds: Optional[list] = None) -> RunSummary:
    return RunSummary(
        run_id=run.id, task=run.redactor.text(run.task), status=status, reason=reason,
        secondaries=[agent.to_dict()], total_cost_usd=total_cost([agent, *(rounds or [])]), verified=agent.verified,
        duration_s=run.elapsed(), started_at=run.started_at, workdir=str(run.workdir),
        tmux_session=run.tmux_session,
    )
