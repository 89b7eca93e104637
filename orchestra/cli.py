"""The command line: thin click commands over library functions."""
from __future__ import annotations

import atexit
import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import click

import orchestra
from . import __version__
from .errors import Interrupted, OrchestraError

if TYPE_CHECKING:
    from .config import Config, Profile

# Each command imports what it uses, when it runs: `orchestra --help`, `status` and `runs` start without the
# agents' machinery (pexpect, yaml, the parsers), the web server or the MCP SDK (tests/test_cli.py holds it).


def _echo(text: str, **kwargs) -> None:
    """click.echo for what is said while a run goes on or ends: a terminal that has gone away
    (SIGHUP: ssh dropped) must not stop orchestra from ending its agents and saving the record."""
    try:
        click.echo(text, **kwargs)
    except OSError:
        pass


def main() -> None:
    """The command, then the process ends at once (leave()): its output and files are out by then."""
    orchestra.ends_with_command = True  # (its tmux windows' pipes are left for the exit to close: viewer)
    try:
        _command()
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


def leave(code) -> None:
    """Exit with `code` (as sys.exit takes it) without the interpreter's teardown: freeing every object of
    every module a run imported one by one, 10-15 ms after the command has said its last word. What the
    teardown does that matters is done first: the atexit handlers (logging's, temporary folders' finalizers,
    coverage's), standard output and error flushed; the agents and git were reaped by the command, and its
    files closed. With a thread still running that exit would wait for (not a daemon), or a code that is
    not a number, the interpreter exits as usual."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if others or not (code is None or isinstance(code, int)):
        sys.exit(code)
    status = code or 0
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            status = status or 120  # as the interpreter says a failed flush at exit
    os._exit(status & 0xFF)


def _command() -> None:
    from .runfolder import become_worker, tell_starter

    global _worker_run_id
    _worker_run_id = become_worker()  # started by --detach (or `orchestra mcp`): the run id it must use
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        tell_starter(exc.format_message())
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # Ctrl-C before a run had its folder: nothing started, nothing to record
        tell_starter("interrupted before its run started")
        _echo("⛔ interrupted", err=True)
        sys.exit(130)
    except Interrupted as exc:
        saved = f"; transcripts and run.json saved in {exc.run_dir}" if exc.run_dir else ""
        _echo(f"⛔ interrupted ({exc}){saved}", err=True)
        sys.exit(exc.exit_code)
    except OrchestraError as exc:
        tell_starter(str(exc))
        _echo(f"❌ {exc}", err=True)
        sys.exit(2)
    finally:
        # The command is over and its files are closed: what Python still holds is left to the exit as it is,
        # not searched for cycles first (every object of the modules a run imports: tens of milliseconds).
        # Finalizers and atexit handlers run as ever; only the collection of what is already unreachable waits.
        import gc

        gc.freeze()


_worker_run_id: Optional[str] = None
DETACH_HELP = ("Run in the background (a process of its own that outlives this terminal); print the run id "
               "at once. Then: orchestra status / wait / cancel RUN_ID.")


ISOLATE_HELP = ("Work in a git worktree and branch of its own (made from HEAD), so you can go on working here: its "
                "summary lists exactly its files, and its branch is reported, to merge.")


def _detach(workdir: str, as_json: bool, task: Optional[str] = None) -> None:
    """Start this very command again in the background (without --detach) and say its run id."""
    from .jobs import start

    argv = [a for a in sys.argv[1:] if a != "--detach"]
    for i, a in enumerate(argv[:-1]):
        if a == "--task" and argv[i + 1] == "-":  # read here: the worker has no standard input
            argv[i + 1] = task or ""
    run_id = start(Path(workdir), argv, cwd=Path.cwd())
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "status": "running"}))
    else:
        click.echo(f"🎼 Started in the background: run {run_id}")
        click.echo(f"   orchestra status {run_id}  |  orchestra wait {run_id}  |  orchestra cancel {run_id}")
    sys.exit(0)


def check_options(command):
    """--check, --check-timeout, --fix-rounds: the same on run and delegate (checks.py)."""
    command = click.option("--fix-rounds", type=click.IntRange(0, 20), default=0, show_default=True,
                           help="When a check fails, resume the agent's session (its profile's resume:) with the "
                           "failed checks and their output, and check again, up to N times.")(command)
    command = click.option("--check-timeout", type=float, default=600.0, show_default=True,
                           help="Seconds a check may take; its process group is ended then.")(command)
    return click.option("--check", "checks", multiple=True, metavar="CMD",
                        help="An acceptance check, run in the agent's working directory once it completes (split "
                        "like a shell would, never run by one: 'sh -c ...' for a pipeline); exit 0 passes. "
                        "Repeatable. Default: its routing rule's checks:, else its profile's.")(command)


def _need_ray() -> None:
    """--cluster without Ray installed: said in one line, before anything starts (exit 2)."""
    from .cluster import import_ray
    import_ray()  # (the run imports it anyway)


def _check_plan(checks, check_timeout, fix_rounds):
    from .checks import CheckPlan

    if not 0 < check_timeout < float("inf"):  # nan too
        raise click.BadParameter(f"expected a positive number of seconds, got {check_timeout}",
                                 param_hint="--check-timeout")
    return CheckPlan(list(checks), check_timeout, fix_rounds)


def budget_options(command):
    """--max-cost, --max-tokens, --max-time: one agent's limits (each secondary's, with delegate)."""
    ends = " Crossing a limit ends the agent as Ctrl-C would: status over_budget, its work kept."
    command = click.option("--max-time", type=float, default=None, help="Seconds the agent may work.")(command)
    command = click.option("--max-tokens", type=int, default=None,
                           help="Tokens (input + output) the agent may use.")(command)
    return click.option("--max-cost", type=float, default=None, help=(
        "USD the agent may spend: its reported cost, else its tokens times the config's prices (an agent that "
        "reports neither is refused)." + ends))(command)


def _budget(max_cost, max_tokens, max_time):
    from .budget import Budget, limit

    values = {}
    for option, name, value in (("--max-cost", "max_cost_usd", max_cost), ("--max-tokens", "max_tokens", max_tokens),
                                ("--max-time", "max_time_s", max_time)):
        try:
            values[name] = limit(value, name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
    return Budget(**values)


@click.group()
@click.version_option(__version__, prog_name="orchestra")
def cli() -> None:
    """Orchestra: one terminal coding agent delegates a task to another.

    \b
    Try it (no agent, no key, no network):
      orchestra delegate --demo --task "Add a User model to FastAPI with CRUD endpoints"
    Then, with real agents installed (orchestra doctor says which):
      orchestra delegate --from claude --to droid --task "..."
      orchestra runs; orchestra show latest; orchestra replay latest
    """


def _config(path: Optional[str], workdir: Optional[str] = None) -> Config:
    from .config import load_config

    return load_config(path, Path(workdir) if workdir else None)


def _say(line: str) -> None:
    _echo(line)


class StatusLine:
    """One line showing the agent, the elapsed time and its latest output; only on a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.shown = False

    def __call__(self, session, others: int = 0) -> None:
        if not self.enabled:
            return
        from .budget import describe as describe_budget
        from .run import budget_state

        elapsed = _duration(time.monotonic() - session.started_at)
        retrying = session.retrying
        last = session.redactor.text(f"↻ {retrying}") if retrying else session.latest  # masked before it is cut
        width = max(20, click.get_terminal_size()[0] - 1) if hasattr(click, "get_terminal_size") else 100
        more = f" (+{others} more)" if others else ""
        spent = describe_budget(budget_state(session))
        text = f"⏳ {session.profile.name}{more} {elapsed}{' │ ' + spent if spent else ''} │ {last}"[:width]
        _echo("\r\x1b[2K" + text, nl=False)
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            _echo("\r\x1b[2K", nl=False)
            self.shown = False


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s"


def _cost(value: Optional[float], source: str = "") -> str:
    if value is None:
        return "unknown (the agent reported none and no price is configured)"
    text = f"${value:.4f}" if value < 1 else f"${value:.2f}"
    return text + (" (estimated from tokens)" if source == "estimated" else "")


def _count(value) -> str:
    return str(value) if isinstance(value, int) else "unknown"


def _print_agent(a: dict) -> None:
    from .summary import apart_lines

    icon = "✅" if a["status"] == "completed" else "❌"
    n = len(a["files_modified"])
    verb = "completed task" if a["status"] == "completed" else a["status"]
    click.echo(f"{icon} {a['agent']} {verb} ({n} file{'s' if n != 1 else ''} modified)")
    if a.get("reason") and a["status"] != "completed":
        click.echo(f"   Reason: {a['reason']}")
    for path in a["files_modified"][:20]:
        click.echo(f"   • {path}")
    for line in apart_lines(a, "--json has them all"):
        click.echo(line)
    if a.get("files_outside_workdir"):
        click.echo(f"   ⚠️  paths outside the working directory (not followed): {', '.join(a['files_outside_workdir'])}")
    for err in a["errors"][:5]:
        click.echo(f"   ⚠️  {err}")
    for ans in a.get("answers") or []:
        click.echo(f"   ↪ answered {ans['answer']!r} to: {ans['question'][-80:]}")
    _print_checks(a)


def _print_checks(a: dict, what: str = "") -> None:
    """An agent's acceptance checks (or, with `what`, the merged checkout's) and its fix rounds."""
    from .checks import verified

    checks = [c for c in a.get("checks") or [] if isinstance(c, dict)]
    for n, r in enumerate([r for r in a.get("fix_rounds") or [] if isinstance(r, dict)], 1):
        files = r.get("files_modified") or []
        state = {True: "checks passed", False: "checks failed"}.get(r.get("verified"), "not checked")
        click.echo(f"   🔧 fix round {n}: {r.get('status', '?')}, {len(files)} file{'s' if len(files) != 1 else ''}"
                   + (f" ({', '.join(files[:5])})" if files else "") + f", {_cost(r.get('cost_usd'), r.get('cost_source', ''))}"
                   f", {_duration(r.get('duration_s') or 0)}: {state}")
    if not checks:
        return
    if verified(checks):
        click.echo(f"   ✔️  verified{what}: {len(checks)} check{'s' if len(checks) != 1 else ''} passed")
        return
    for c in checks:
        if c.get("exit_code") == 0:
            continue
        how = ("timed out" if c.get("timed_out") else f"exit {c.get('exit_code')}" if c.get("exit_code") is not None
               else "could not start")
        click.echo(f"   ✖️  check failed{what}: {c.get('command')} ({how}, {_duration(c.get('duration_s') or 0)})")
        for line in str(c.get("output") or "").strip().splitlines()[-8:]:
            click.echo(f"      │ {line[:200]}")


@cli.command()
@click.option("--agent", "agent_name", help="Agent profile to run (`orchestra doctor` lists them).")
@click.option("--cmd", "ad_hoc", help="Ad-hoc program instead of a profile: 'PROGRAM ARGS', split into arguments "
              "as a shell would and never run by one; {task} in it becomes the task text, as one argument "
              "(e.g. --cmd 'mycli --message {task}'); without {task} or {task_file} the task is typed to it.")
@click.option("--done", "done_regex", help="With --cmd: the regex that means the task is done.")
@click.option("--prompt", "prompt_regex", help="With --cmd: the regex that means the program waits for input.")
@click.option("--task", default=None, help="The task text: it takes the place of {task} in the command (one "
              "argument, byte for byte, never seen by a shell), or is typed at the agent's prompt; - reads it "
              "from standard input.")
@click.option("--task-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Read the task from this file (UTF-8), for a task too long to type.")
@click.option("--timeout", type=float, default=None, help="Seconds before the agent is stopped (default: the profile's).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".", help="Where the agent works.")
@click.option("--no-tmux", is_flag=True, help="Do not open tmux windows.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--detach", is_flag=True, help=DETACH_HELP)
@click.option("--isolate", is_flag=True, help=ISOLATE_HELP)
@check_options
@budget_options
def run(agent_name, ad_hoc, done_regex, prompt_regex, task, task_file, timeout, config_path, workdir, no_tmux, as_json,
        detach, isolate, checks, check_timeout, fix_rounds, max_cost, max_tokens, max_time):
    """Run one agent on a task and print its summary."""
    from .budget import enforceable
    from .run import run_agent

    checking = _check_plan(checks, check_timeout, fix_rounds)
    budget = _budget(max_cost, max_tokens, max_time)
    task = _task_text(task, task_file, required=False)
    config = _config(config_path, workdir)
    if ad_hoc:
        profile = _ad_hoc_profile(ad_hoc, done_regex, prompt_regex)
    elif agent_name:
        profile = config.profile(agent_name)
    else:
        raise click.UsageError("give --agent NAME or --cmd 'PROGRAM ARGS'")
    if timeout is not None:
        if not 0 < timeout < float("inf"):  # nan too
            raise click.BadParameter(f"expected a positive number of seconds, got {timeout}", param_hint="--timeout")
        profile.timeout = timeout
    if task is None and (profile.takes_task_in_argv or profile.prompt is not None):
        raise click.UsageError(f"agent '{profile.name}' needs --task")
    _check_not_blank(task)
    checking.refuse([profile])  # before a detached run starts too
    enforceable(config.budget_of(profile.name, budget), profile, config)  # refused here, not in the background
    if detach:
        from .run import check_ready
        check_ready(profile, config)  # said here, by the command that would start it, not in its log
        _detach(workdir, as_json, task)
    status = StatusLine(sys.stdout.isatty() and not as_json)

    def say(line: str) -> None:
        if not as_json:
            status.clear()
            _say(line)

    try:
        summary, agent = run_agent(config, profile, task if task is not None else "", Path(workdir),
                                   tmux=not no_tmux, say=say, status_line=status, run_id=_worker_run_id,
                                   isolate=isolate, checking=checking, budget=budget)
    finally:
        status.clear()
    data = agent.to_dict()
    if as_json:
        merges = {"merges": summary.merges} if summary.merges else {}  # --isolate: its branch's merge report
        click.echo(json.dumps({"run_id": summary.run_id, **data, **merges}, indent=2, ensure_ascii=False))
    else:
        _print_agent(data)
        if agent.cost_usd is not None or profile.parser != "generic":  # a program with no notion of cost: no line
            click.echo(f"💰 Cost: {_cost(agent.cost_usd, agent.cost_source)}")
        click.echo(f"⏱️  Time: {_duration(agent.duration_s)}")
        click.echo(f"   Transcript: {agent.transcript}")
        click.echo(f"   Run: {summary.run_id} (orchestra show {summary.run_id})")
        _print_watch(summary, workdir)
        if summary.worktrees:
            click.echo(f"   Worktree: orchestra clean {summary.run_id} removes it (its branch stays until merged)")
    sys.exit(0 if agent.status == "completed" and agent.verified is not False else 1)


def _print_watch(summary, workdir: str) -> None:
    """Where to watch the run (a summary or a record): its tmux session, and its page when `orchestra web`
    serves the directory."""
    from .web import web_url

    record = summary if isinstance(summary, dict) else summary.to_dict()
    if record.get("tmux_session"):
        click.echo(f"   Watch: tmux attach -t {record['tmux_session']}")
    url = web_url(Path(workdir), record.get("run_id"))
    if url:
        click.echo(f"   Web: {url}")


def _task_text(task: Optional[str], task_file: Optional[str], required: bool) -> Optional[str]:
    """The task from --task, from standard input (--task -), or from --task-file."""
    if task is not None and task_file:
        raise click.UsageError("give --task or --task-file, not both")
    if task == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise click.BadParameter("- reads the task from standard input, which is a terminal here: pipe it in "
                                     "(echo TASK | orchestra ... --task -) or use --task-file", param_hint="--task")
        return sys.stdin.read()
    if task_file:
        try:
            return Path(task_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {task_file}: {exc}", param_hint="--task-file") from None
    if task is None and required:
        raise click.UsageError("give the task: --task TEXT, --task - (standard input) or --task-file FILE")
    return task


def _check_not_blank(task: Optional[str]) -> None:
    if task is not None and not task.strip():
        raise click.BadParameter("the task is empty: say what the agent should do", param_hint="--task")


def _ad_hoc_profile(cmd: str, done: Optional[str], prompt: Optional[str]) -> Profile:
    from .config import PLACEHOLDERS, Profile, compile_pattern, placeholder_problem

    try:
        argv = shlex.split(cmd)
    except ValueError as exc:  # an unclosed quote
        raise click.BadParameter(f"{exc} in {cmd!r} (it is split like a shell would, and never run by one)",
                                 param_hint="--cmd") from None
    if not argv:
        raise click.UsageError("--cmd is empty")
    problem = placeholder_problem(argv, PLACEHOLDERS)
    if problem:
        raise click.BadParameter(f"{problem} in {cmd!r}", param_hint="--cmd")
    if not done:
        raise click.UsageError("--cmd needs --done REGEX (what the program prints when the task is done)")
    patterns = {}
    for option, text in (("--done", done), ("--prompt", prompt)):
        try:
            patterns[option] = compile_pattern(text) if text else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
    completion, prompt_re = patterns["--done"], patterns["--prompt"]
    return Profile(name=os.path.basename(argv[0]), command=argv, completion=completion, prompt=prompt_re,
                   timeout=600.0)


@cli.command()
@click.argument("target")
@click.option("--speed", type=float, default=1.0, show_default=True, help="Timing factor; 0 = as fast as possible.")
@click.option("--tmux", "to_tmux", is_flag=True, help="Play into a new tmux window instead of this terminal.")
@click.option("--agent", "role", default=None, help="With a RUN_ID: which agent's transcript (a role: primary, "
              "secondary-1, primary-reply; or an agent: droid). Default: all of them, in the order they started.")
@click.option("--max-delay", type=float, default=2.0, show_default=True, help="Cap any single pause (seconds).")
@click.option("--rendered/--raw", "rendered", default=None,
              help="Its parser's readable rendering, or the raw bytes (default: what its window showed).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file (for a transcript that does not say which parser reads it).")
def replay(target, speed, to_tmux, role, max_delay, rendered, config_path):
    """Play a transcript (FILE.cast or RUN_ID) to the terminal or into tmux."""
    from .history import find_transcripts

    for value, name in ((speed, "--speed"), (max_delay, "--max-delay")):
        if not 0 <= value < float("inf"):  # nan too
            raise click.BadParameter(f"expected a number of 0 or more, got {value}", param_hint=name)
    from .runfolder import resolve

    if not target.endswith(".cast") and not Path(target).is_file():
        target = resolve(Path.cwd(), target)
    found = find_transcripts(Path.cwd(), target, role)
    try:  # a recording whose header names no parser is read by the profile its title names
        config = _config(config_path)
    except OrchestraError:
        if config_path:
            raise
        config = None
    plays = [(what, path, _renderer(path, rendered, config)) for what, path in found]  # each checked first
    if to_tmux:
        _replay_in_tmux(plays, speed, max_delay)
        return
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        try:
            out.write(data)
            out.flush()
        except BrokenPipeError:  # `orchestra replay ... | head`: the reader has had enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as exc:
            raise OrchestraError(f"cannot write the replay to standard output: {exc}") from None

    for what, path, renderer in plays:
        if len(plays) > 1:
            write(f"\r\n\x1b[1m── {what}: {path.name} ──\x1b[0m\r\n".encode())
        _play(path, write, speed, max_delay, renderer)


def _renderer(path: Path, rendered: Optional[bool], config):
    """What draws a transcript: its parser's rendering (by default when its window showed that), or None (raw)."""
    from .transcript import read_cast
    from .views import RENDERED, Renderer, can_render, cast_view

    parser, view = cast_view(read_cast(path).header, config)
    if rendered or (rendered is None and view == RENDERED):
        if not can_render(parser):
            raise OrchestraError(f"{path}: no rendering for this transcript (its agent's parser "
                                 f"{'is not known' if parser is None else repr(parser) + ' draws none'}): use --raw")
        return Renderer(parser)
    return None


def _replay_in_tmux(plays: list, speed: float, max_delay: float) -> None:
    """Each transcript into a window of its own, in turn, in one tmux session (`orchestra clean --finished`
    closes it)."""
    from .parsers import render as draw
    from .runfolder import home
    from .transcript import read_cast
    from .viewer import TmuxViewer

    if not TmuxViewer.available():
        raise OrchestraError("tmux is not installed: install it to replay into a window, or leave out --tmux "
                             "to play to this terminal")
    header = read_cast(plays[0][1]).header
    size = [v if isinstance(v, int) and 0 < v < 10000 else d for v, d in
            ((header.get("width"), 120), (header.get("height"), 40))]
    viewer = TmuxViewer(f"orchestra-replay-{plays[0][1].stem}-{os.getpid()}", *size, home=home(Path.cwd()))
    try:
        for what, path, renderer in plays:
            try:
                window = viewer.open_window(path.stem)
            except OSError as exc:
                raise OrchestraError(str(exc)) from None
            click.echo(f"▶️  Replaying {what} ({path}) — watch: {viewer.attach_command}")
            window.write(draw.title(f"▶ {what}").encode())
            _play(path, window.write, speed, max_delay, renderer)
            window.end(f"\r\n{draw.DIM}── orchestra: end of the replay of {what} ──{draw.RESET}\r\n".encode())
    finally:
        viewer.close()


def _play(path: Path, write, speed: float, max_delay: float, renderer=None) -> None:
    """Play a transcript's bytes, or (renderer) what its parser draws of them, and what was typed to it."""
    from .replay import play

    if renderer is None:
        play(path, write, speed, max_delay=max_delay)
        return

    def draw(data: bytes) -> None:
        drawn = renderer.feed(data)
        if drawn:
            write(drawn.encode())

    play(path, draw, speed, wait_input=lambda typed: write(renderer.sent(typed).encode()), max_delay=max_delay)
    write(renderer.feed(b"", final=True).encode())


@cli.command()
@click.option("--agent", "agent_name", default=None,
              help="Which agent's profile and parser read it (default: the one a transcript's header names).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file (default: ./orchestra.yaml, ~/.config/orchestra/config.yaml, then the shipped one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
def summarize(agent_name, file, config_path, as_json):
    """Parse a saved transcript (raw output, .jsonl or .cast) into the summary schema."""
    from .history import summarize_file

    from .transcript import header_of

    config = _config(config_path)
    if agent_name is None:
        title = header_of(Path(file)).get("title")
        named = title[len("orchestra: "):] if isinstance(title, str) and title.startswith("orchestra: ") else None
        if named not in config.agents:
            raise click.UsageError(f"{file} does not say which agent wrote it: give --agent NAME "
                                   f"(one of {', '.join(sorted(config.agents))})")
        agent_name = named
    summary = summarize_file(config, config.profile(agent_name), Path(file))
    data = summary.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        _print_agent(data)
        click.echo(f"💰 Cost: {_cost(summary.cost_usd, summary.cost_source)}")
        tokens = summary.tokens
        click.echo(f"   Tokens: {_count(tokens['input'])} in, {_count(tokens['output'])} out")
    sys.exit(0 if summary.status == "completed" else 1)  # as `run` does: a script can tell


@cli.command()
@click.option("--from", "primary", default=None, help="Primary agent (default: the config's, claude).")
@click.option("--to", "secondaries", multiple=True,
              help="Secondary agent, or auto (routing rules). Repeat for several at once, each in its own git worktree.")
@click.option("--parallel", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Run N secondaries at once (of the one --to, or auto), the primary writing one brief for each.")
@click.option("--merge", is_flag=True, help="Several secondaries: merge the completed branches into the starting "
              "branch, one by one, stopping at the first conflict. Without it nothing is merged.")
@click.option("--task", default=None, help="The task, in your words (- reads it from standard input).")
@click.option("--task-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Read the task from this file (UTF-8), for a task too long to type.")
@click.option("--no-analyze", is_flag=True, help="Skip the primary's analysis: the task goes to the secondary as is.")
@click.option("--demo", is_flag=True, help="Replay recorded Claude Code and Droid sessions: no agent, no key, no network.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".", help="Where the agents work.")
@click.option("--no-tmux", is_flag=True, help="Do not open tmux windows.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON.")
@click.option("--detach", is_flag=True, help=DETACH_HELP)
@click.option("--isolate", is_flag=True, help="One secondary: " + ISOLATE_HELP[0].lower() + ISOLATE_HELP[1:])
@click.option("--cluster", "cluster", default=None, metavar="ADDRESS",
              help="Run the secondaries on a Ray cluster (HOST:PORT, or auto for $RAY_ADDRESS; default: the config's "
              "cluster:), each on a node as an `orchestra run`, its work back as a branch. Needs orchestra[ray].")
@click.option("--cluster-resources", default=None, metavar="SPEC",
              help="With --cluster: what each secondary asks of its node, e.g. 'cpu=2,memory=4G' (default cpu=1).")
@check_options
@budget_options
def delegate(primary, secondaries, parallel, merge, task, task_file, no_analyze, demo, config_path, workdir, no_tmux,
             as_json, detach, isolate, cluster, cluster_resources, checks, check_timeout, fix_rounds, max_cost,
             max_tokens, max_time):
    """The primary agent delegates a task to one or several secondaries and gets their summary back.
    With --check, each is checked once it completes (and the merged checkout after --merge)."""
    from .budget import enforceable
    from .delegate import Events, Plan, check_plan, checked_agents, delegate as run_delegate

    checking = _check_plan(checks, check_timeout, fix_rounds)

    budget = _budget(max_cost, max_tokens, max_time)
    task = _task_text(task, task_file, required=True)
    _check_not_blank(task)
    config = _config(config_path, workdir)
    for name in [primary or "", *secondaries]:
        if name and name != "auto":
            config.profile(name)  # a misspelt agent is said before anything, with the likely one
    if demo:
        primary = primary or config.demo_primary
        secondaries = secondaries or (config.demo_secondary,)
    if parallel > 1 and len(secondaries) > 1 and parallel != len(secondaries):
        raise click.UsageError(f"--parallel {parallel} with {len(secondaries)} --to agents: give one --to per "
                               "secondary, or one --to with --parallel N")
    # --no-analyze needs no primary unless one is named
    plan = Plan(task=task, primary=config.profile(primary or config.primary) if primary or not no_analyze else None,
                secondaries=list(secondaries or ("auto",)), analyze=not no_analyze, demo=demo,
                parallel=parallel, merge=merge, isolate=isolate, checking=checking, budget=budget,
                cluster=cluster or config.cluster, cluster_resources=cluster_resources or config.cluster_resources)
    if plan.cluster:
        _need_ray()
        from .cluster import address_of
        address_of(plan.cluster)  # `auto` without RAY_ADDRESS: said before anything
        if cluster_resources:
            from .cluster import Resources
            Resources.parse(cluster_resources)  # refused here, not in the background
    checking.refuse(*checked_agents(config, plan))  # before a detached run starts too
    for name in {name for name in plan.slots if name != "auto"}:  # refused here, not in the background
        enforceable(config.budget_of(name, budget), config.profile(name), config)
    say = (lambda line: None) if as_json else _say
    status = StatusLine(sys.stdout.isatty() and not as_json)

    def say_clearing(line: str) -> None:
        status.clear()
        say(line)

    if detach:
        check_plan(config, plan)  # said here, by the command that would start it, not in its log
        _detach(workdir, as_json, task)
    if not as_json:
        click.echo("🎼 Orchestra - delegating task..." + (" (demo: replaying recorded sessions)" if demo else ""))
    try:
        summary = run_delegate(config, plan, Path(workdir), tmux=not no_tmux, events=Events(say_clearing, status),
                               run_id=_worker_run_id)
    finally:
        status.clear()
    data = summary.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        if summary.status != "completed":
            click.echo(f"❌ Task {summary.status}: {summary.reason}")
        if summary.merge_stopped:
            click.echo(f"❌ Merge stopped {summary.merge_stopped}")
            _print_next_steps(data)
        if summary.verified is False:
            from .checks import verified

            for a in data["secondaries"]:
                if a.get("verified") is False:
                    click.echo(f"❌ Checks failed: {a['agent']} ({a['role']})")
                    _print_checks({"checks": a["checks"]})
            if verified(summary.merged_checks) is False:
                click.echo("❌ Checks failed on the merged checkout")
                _print_checks({"checks": summary.merged_checks})
        click.echo(f"💰 Cost: {_cost(summary.total_cost_usd)}")
        click.echo(f"⏱️  Time: {_duration(summary.duration_s)}")
        click.echo(f"   Run: {summary.run_id} (orchestra show {summary.run_id})")
        _print_watch(summary, workdir)
        if summary.worktrees:
            click.echo(f"   Worktrees: orchestra clean {summary.run_id} removes them (branches with unmerged work stay)")
    sys.exit(_exit_code(data))


@cli.command()
@click.argument("run_id")
@click.option("--agent", "role", default=None, help="Which agent, by role (secondary-2) or name; needed when the "
              "run had several secondaries.")
@click.option("--task", default=None, help="The message: what to change (- reads it from standard input).")
@click.option("--task-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Read the message from this file (UTF-8).")
@click.option("--wait", "wait_s", type=float, default=None,
              help="Seconds to wait for the turn (default: until it ends; 0: return at once, it goes on).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".",
              help="Whose runs (default: this directory; a repository's runs are kept at its top).")
@click.option("--no-tmux", is_flag=True, help="Do not open a tmux window.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's record, with the turn, as JSON.")
@budget_options
def send(run_id, role, task, task_file, wait_s, config_path, workdir, no_tmux, as_json, max_cost, max_tokens,
         max_time):
    """Give an agent whose run is over another message, in its own session (its profile's resume command):
    a new turn in the same run, with its own transcript and summary (files changed by this turn, cost).
    It runs in the background; orchestra status / wait RUN_ID follow it."""
    from .followup import Target, latest_turn, start, take_turn
    from .jobs import wait
    from .runfolder import resolve

    if wait_s is not None and not 0 <= wait_s < float("inf"):
        raise click.BadParameter(f"expected a number of seconds, 0 or more, got {wait_s}", param_hint="--wait")
    budget = _budget(max_cost, max_tokens, max_time)
    message = _task_text(task, task_file, required=True)
    config = _config(config_path, workdir)
    run_id = resolve(Path(workdir), run_id)
    target = Target(Path(workdir), run_id, config, role)
    if _worker_run_id:  # the background process start() made: the turn itself
        take_turn(target, message, budget, tmux=not no_tmux, say=_say)
        return
    target.check(message, budget)  # refused here, before anything starts
    argv = ["send", run_id, "--agent", target.role, "--task", message, "--workdir", str(Path(workdir).resolve()),
            *budget.argv(), *(["--config", str(Path(config_path).resolve())] if config_path else []),
            *(["--no-tmux"] if no_tmux else [])]
    start(Path(workdir), run_id, argv)
    record = wait(Path(workdir), run_id, float("inf") if wait_s is None else wait_s)
    turn = latest_turn(record, target.role) if record.get("status") != "running" else None
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
    elif turn is None:
        click.echo(f"⏳ {target.name} of run {run_id} is under way (orchestra status {run_id}, orchestra wait {run_id})")
    else:
        _print_agent(turn)
        click.echo(f"💰 Cost: {_cost(turn.get('cost_usd'), turn.get('cost_source', ''))}")
        click.echo(f"⏱️  Time: {_duration(turn.get('duration_s') or 0)}")
        click.echo(f"   Transcript: {turn.get('transcript')}")
        click.echo(f"   Run: {run_id} (orchestra show {run_id})")
    sys.exit((0 if wait_s == 0 else 124) if turn is None else 0 if turn.get("status") == "completed" else 1)


@cli.command()
@click.argument("run_id", required=False)
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".",
              help="Whose runs (default: this directory; a repository's runs are kept at its top).")
@click.option("--force", is_flag=True, help="Discard: remove worktrees without committing what is in them, and "
              "delete branches that are not merged.")
@click.option("--finished", is_flag=True, help="Instead of one run: close the tmux sessions of every finished "
              "run here (and of replays that are over), keeping those of runs under way.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file (its profiles' ignore_files are not committed).")
def clean(run_id, workdir, force, finished, config_path):
    """End what a run left running, remove its worktrees (their work committed on their branches first),
    delete its branches that hold nothing unmerged, close its tmux session. Its record stays.
    With --finished: close the tmux sessions of every finished run of this directory."""
    from .config import ConfigError
    from .worktree import clean as clean_run

    if finished:
        if run_id is not None or force:
            raise click.UsageError("--finished closes the tmux sessions of every finished run: give it without "
                                   f"{'RUN_ID' if run_id is not None else '--force'} (orchestra clean RUN_ID cleans "
                                   "one run)")
        from .viewer import clean_finished

        for line in clean_finished(Path(workdir)):
            click.echo(line)
        return
    if run_id is None:
        raise click.UsageError("give a RUN_ID (see `orchestra runs`), or --finished for every finished run's "
                               "tmux session")

    try:
        ignore = sorted({g for p in _config(config_path, workdir).agents.values() for g in p.ignore_files})
    except ConfigError:
        if config_path:
            raise
        ignore = []  # a broken config must not stop a clean-up: then everything left is committed
    from .runfolder import resolve

    for line in clean_run(Path(workdir), resolve(Path(workdir), run_id), force=force, ignore=ignore):
        click.echo(line)


@cli.command("route")
@click.option("--task", required=True, help="The task whose words the routing rules read.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file (default: ./orchestra.yaml, ~/.config/orchestra/config.yaml, then the shipped one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
def route_cmd(task, config_path, as_json):
    """Show which secondary the routing rules pick for a task, and why."""
    from .delegate import installed
    from .router import route

    config = _config(config_path)
    r = route(task, config, lambda agent: installed(config, agent))
    if as_json:
        click.echo(json.dumps(r.to_dict()))
        return
    for line in r.warnings(config):
        click.echo(line)
    click.echo(f"📍 {r.agent} ({r.describe()})")


@cli.command()
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".",
              help="Whose runs (default: this directory; a repository's runs are kept at its top).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
def runs(workdir, as_json):
    """List past runs in this working directory."""
    from .runfolder import list_runs, rows as run_rows

    if as_json:
        click.echo(json.dumps(list_runs(Path(workdir)), indent=2, ensure_ascii=False))
        return
    items = run_rows(Path(workdir))  # (a finished run's row is kept: its record is not read again)
    if not items:
        click.echo("No runs yet in this directory (.orchestra/runs/ is empty).")
        return
    rows = []
    for r in reversed(items):  # newest first
        cost, took = r.get("total_cost_usd"), r.get("duration_s")
        checked = {True: " ✓", False: " ✗"}.get(r.get("verified"), "")  # its checks
        rows.append((str(r.get("run_id") or "?"), str(r.get("status") or "?") + checked,
                     ",".join(map(str, r.get("agents") or []))[:30],
                     ("$%.4f" % cost) if isinstance(cost, (int, float)) else "-",
                     _duration(took) if isinstance(took, (int, float)) else "-",
                     " ".join(str(r.get("task") or "").split())[:60]))
    head = ("RUN", "STATUS", "AGENTS", "COST", "TIME", "TASK")
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(5)]
    click.echo("\n".join(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  "
                         f"{row[3]:>{widths[3]}}  {row[4]:>{widths[4]}}  {row[5]}".rstrip() for row in [head, *rows]))


@cli.command()
@click.argument("run_id")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".",
              help="Whose runs (default: this directory; a repository's runs are kept at its top).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
def show(run_id, workdir, as_json):
    """Print one run's summary and its transcripts."""
    from .runfolder import load, resolve

    r = load(Path(workdir), resolve(Path(workdir), run_id))
    if as_json:
        click.echo(json.dumps(r, indent=2, ensure_ascii=False))
        return
    _print_record(r)


def _print_record(r: dict) -> None:
    """A run's record as `show` prints it."""
    from .runfolder import run_agents
    from .summary import apart_lines, describe_ended_by
    from .worktree import BranchReport

    checked = {True: ", verified ✓", False: ", checks failed ✗"}.get(r.get("verified"), "")
    click.echo(f"Run {r['run_id']}: {r.get('status', '?')}{checked}" + (f" ({r['reason']})" if r.get("reason") else ""))
    incomplete = r.get("status") == "incomplete"
    click.echo(f"Task: {r.get('task') or '(not recorded)'}")
    if r.get("brief"):
        click.echo(f"Brief: {r['brief']}")
    for a in run_agents(r):  # .get throughout: a run.json edited or damaged by hand still shows
        role = a.get("role", "?")
        if a.get("status") == "incomplete":
            click.echo(f"\n[{role}] {a.get('agent', '?')}: incomplete, its transcript goes on for "
                       f"{_duration(a.get('duration_s') or 0)}")
        else:
            click.echo(f"\n[{role}] {a.get('agent', '?')}: {a.get('status', '?')}, "
                       f"{_duration(a.get('duration_s') or 0)}, cost {_cost(a.get('cost_usd'), a.get('cost_source', ''))}")
        click.echo(f"   transcript: {a.get('transcript')}  (orchestra replay {r['run_id']} --agent {role})")
        if isinstance(a.get("node"), dict):  # it ran on a Ray cluster
            click.echo(f"   node: {a['node'].get('ip')} ({str(a['node'].get('id'))[:12]})")
        if a.get("status") not in ("incomplete", "running", "lost"):
            click.echo(f"   ended by: {describe_ended_by(a.get('ended_by'))}")
        for path in a.get("files_modified") or []:
            click.echo(f"   • {path}")
        for line in apart_lines(a, "show --json has them all"):
            click.echo(line)
        for err in (a.get("errors") or [])[:5]:
            click.echo(f"   ⚠️  {err}")
        if a.get("branch"):
            click.echo(f"   branch: {a['branch']}")
        _print_checks(a)
        for t in [t for t in a.get("turns") or [] if isinstance(t, dict)]:  # orchestra send
            files = t.get("files_modified") or []
            click.echo(f"   ↪ turn {t.get('turn')}: {t.get('status', '?')}, {_duration(t.get('duration_s') or 0)}, "
                       f"cost {_cost(t.get('cost_usd'), t.get('cost_source', ''))}, "
                       f"{len(files)} file{'s' if len(files) != 1 else ''}: {' '.join(str(t.get('message') or '').split())[:80]}")
            for path in files:
                click.echo(f"     • {path}")
    for m in r.get("merges") or []:
        click.echo(f"🌿 {m.get('branch')}: {BranchReport.from_dict(m).describe(r.get('merge_stopped'))}")
    if r.get("merged_checks"):
        _print_checks({"checks": r["merged_checks"]}, " after the merge")
    if r.get("merge_stopped"):
        click.echo(f"⛔ merge stopped {r['merge_stopped']}")
        _print_next_steps(r)
    if r.get("primary_reply"):
        click.echo(f"\nPrimary's reply:\n{r['primary_reply']}")
    if incomplete:
        click.echo(f"\nWhat it left running, its worktrees and its tmux session: orchestra clean {r['run_id']}")
        return
    click.echo(f"\nTotal cost: {_cost(r.get('total_cost_usd'))}   Time: {_duration(r.get('duration_s') or 0)}")


def _print_next_steps(record: dict) -> None:
    from .worktree import next_steps

    for step in next_steps(record):
        click.echo(f"   Next: {step}")


def _exit_code(record: dict) -> int:
    """delegate's exit status, for a run's record: 0 completed (nothing stopped a merge, no check failed), 128 + the signal
    for one interrupted (130: Ctrl-C or `orchestra cancel`), else 1."""
    if record.get("status") == "interrupted":
        import signal

        named = str(record.get("reason") or "").rsplit(" ", 1)[-1]
        return 128 + (getattr(signal, named, signal.SIGINT) if named.startswith("SIG") else signal.SIGINT)
    return 0 if (record.get("status") == "completed" and not record.get("merge_stopped")
                 and record.get("verified") is not False) else 1


@cli.command("wait")
@click.argument("run_id")
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds (exit 124, status running).")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".",
              help="Whose runs (default: this directory; a repository's runs are kept at its top).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
def wait_cmd(run_id, timeout, workdir, as_json):
    """Wait for a run (one started with --detach) to end; print its summary, with delegate's exit status."""
    from .jobs import wait

    if timeout is not None and not 0 <= timeout < float("inf"):
        raise click.BadParameter(f"expected a number of seconds, 0 or more, got {timeout}", param_hint="--timeout")
    from .runfolder import resolve

    run_id = resolve(Path(workdir), run_id)
    record = wait(Path(workdir), run_id, float("inf") if timeout is None else timeout)
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
    elif record.get("status") == "running":
        click.echo(f"⏳ run {run_id} is still running after {_duration(timeout or 0)} (orchestra status {run_id})")
    else:
        _print_record(record)
    sys.exit(124 if record.get("status") == "running" else _exit_code(record))


@cli.command("status")
@click.argument("run_id", required=False)
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".",
              help="Whose runs (default: this directory; a repository's runs are kept at its top).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
def status_cmd(run_id, workdir, as_json):
    """The runs under way in this directory (or one run): each agent's phase, time, cost so far (against its
    budget), latest line."""
    from .budget import describe as describe_budget
    from .runfolder import run_agents
    from .jobs import status

    from .runfolder import resolve

    records = status(Path(workdir), resolve(Path(workdir), run_id) if run_id else None)
    if as_json:
        click.echo(json.dumps(records if run_id is None else records[0], indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("No run under way in this directory (orchestra runs lists the past ones).")
    for r in records:
        click.echo(f"{r['run_id']}  {r.get('status', '?')}  {_duration(r.get('duration_s') or 0)}  "
                   f"{(r.get('task') or '')[:60]}" + (f"\n   {r['reason']}" if r.get("status") == "lost" else ""))
        for a in run_agents(r):
            phase = a.get("phase") or a.get("status", "?")
            cost = f"${a['cost_usd']:.4f}" if isinstance(a.get("cost_usd"), (int, float)) else "cost -"
            spent = describe_budget(a.get("budget"))
            click.echo(f"   [{a.get('role', '?')}] {a.get('agent', '?')}: {phase}, "
                       f"{_duration(a.get('duration_s') or 0)}, {cost}{' (budget: ' + spent + ')' if spent else ''}"
                       f" │ {(a.get('latest') or '')[:100]}")
        if r.get("status") == "running":
            _print_watch(r, workdir)


@cli.command("cancel")
@click.argument("run_id")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".",
              help="Whose runs (default: this directory; a repository's runs are kept at its top).")
def cancel_cmd(run_id, workdir):
    """End a run under way as Ctrl-C would: its agents are ended and its record says interrupted."""
    from .jobs import cancel

    from .runfolder import resolve

    run_id = resolve(Path(workdir), run_id)
    record = cancel(Path(workdir), run_id)
    click.echo(f"⛔ run {run_id}: {record.get('status')}" + (f" ({record['reason']})" if record.get("reason") else ""))


@cli.command("trust")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def trust_cmd(file):
    """Trust a project's config, FILE (default: ./orchestra.yaml), once you have read it: its profiles name the
    commands orchestra runs. Until then, and again after any change to it, orchestra refuses to use it."""
    from .config import user_config_dir, vet
    from .trust import record

    path = Path(file or "orchestra.yaml").absolute()
    if not path.is_file():
        raise OrchestraError(f"{path}: no such file (orchestra trust [FILE], by default ./orchestra.yaml)")
    config, digest = vet(path)
    store = record(path, digest, user_config_dir())
    click.echo(f"🔓 Trusted {path} (sha256 {digest[:16]}, recorded in {store}); a changed file must be trusted again.")
    for name, layer in config.sources.items():
        if layer.path == path:
            profile = config.agents[name]
            runs = [("runs", profile.command), ("resumes with", profile.resume),
                    ("asks its version with", profile.version_command)]
            click.echo(f"   {name}: " + "; ".join(f"{what} {shlex.join(argv)}" for what, argv in runs if argv))


@cli.group("mcp", invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file, over the shipped and user ones (default: ./orchestra.yaml, once trusted).")
@click.pass_context
def mcp_cmd(ctx, config_path):
    """Serve orchestra's tools (delegate, wait, status, result, cancel, agents) to an MCP client on stdin/stdout,
    for the directory it is started in. Set-up, once: orchestra mcp install claude (or codex)."""
    if ctx.invoked_subcommand is not None:
        return
    from .mcp_install import hint_for_a_terminal

    hint = hint_for_a_terminal()
    if hint:
        _echo(hint, err=True)
    try:  # here, not at the top: it takes most of a second to import, and only this command needs it
        from .mcp_server import serve
    except ImportError as exc:
        raise OrchestraError(f"orchestra mcp needs the MCP Python SDK (`pip install mcp`, Python 3.10+): {exc}") from None
    serve(Path.cwd(), config_path)


@mcp_cmd.command("install")
@click.argument("client", type=click.Choice(["claude", "codex"]))
@click.option("--scope", type=click.Choice(["user", "project", "local"]), default="user", show_default=True,
              help="Claude Code: user (every project), project (.mcp.json here, to commit) or local (here, for you).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config whose agents' key variables Codex is told to pass on (env_vars).")
def mcp_install_cmd(client, scope, config_path):
    """Add orchestra's MCP server to Claude Code or Codex, by the absolute path of this orchestra."""
    from .mcp_install import install

    for line in install(client, scope, _config(config_path), Path.cwd()):
        click.echo(line)


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: any free port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on; one that is not loopback needs --token.")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=".", help="Whose runs to show.")
@click.option("--token", default=None, help="The token every request must carry (default: $ORCHESTRA_WEB_TOKEN, "
              "else a random one). Other users can read it in the process list: prefer --token-file or the variable.")
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Read the token from this file (readable by you alone: mode 0600).")
def web(port, host, workdir, token, token_file):
    """Serve this directory's runs in a browser: live terminals, records and playback (read-only)."""
    import secrets
    import signal
    from urllib.parse import quote

    from .web import announce, withdraw
    from .web.server import bind, is_loopback, serve

    if token_file:
        token = _token_from_file(Path(token_file))
    token = token or os.environ.get("ORCHESTRA_WEB_TOKEN") or None
    loopback = is_loopback(host)
    if not loopback and not token:
        raise click.UsageError(f"--host {host} is not a loopback address: anyone who can reach it could try the "
                               "server, so give an explicit --token (long and random)")
    if token is not None and len(token) < 16:
        raise click.BadParameter("at least 16 characters", param_hint="--token")
    token = token or secrets.token_urlsafe(24)
    sock = bind(host, port)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/?token={quote(token, safe='')}"
    root = Path(workdir).resolve()

    def ready() -> None:
        try:
            announce(root, url)
        except OSError as exc:
            _echo(f"⚠️  cannot write {root / '.orchestra' / 'web.json'} ({exc.strerror or exc}): run and delegate "
                  "will not print this address", err=True)
        _echo(f"🌐 Orchestra web: {url}\n   Runs of {root}; Ctrl-C to stop.")
        sys.stdout.flush()

    def stop(signum, frame):
        raise SystemExit(0)

    # uvicorn stops on SIGINT and SIGTERM, then raises the signal again for the handler it found: this
    # one, so web.json is removed and the exit is quiet
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    try:
        serve(root, sock, token, loopback, on_ready=ready)
    finally:
        withdraw(root)


def _token_from_file(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & 0o077:
        raise click.BadParameter(f"{path} can be read by other users (mode {mode & 0o777:o}): chmod 600 {path}",
                                 param_hint="--token-file")
    token = path.read_text().strip()
    if not token:
        raise click.BadParameter(f"{path} is empty", param_hint="--token-file")
    return token


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file (default: ./orchestra.yaml, ~/.config/orchestra/config.yaml, then the shipped one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
def doctor(config_path, as_json):
    """Which agents are installed (and which file each profile comes from), which API key variables are set
    (never their values), which agents are logged in, and tmux."""
    from .doctor import diagnose

    config = _config(config_path)
    if not as_json:
        for layer in config.layers:
            click.echo(f"config ({layer.kind}): {layer.path}")
    report = diagnose(config, on_row=None if as_json else _print_doctor_row)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        t = report["tmux"]
        click.echo(("✅" if t["installed"] else "❌") + f" tmux         {t['version'] or 'not found: runs go headless'}")
        c = report["cleaner"]
        click.echo(("✅" if c["native"] else "ℹ️ ") + f" cleaner      {c['said']}")
        for line in report["warnings"] + report["problems"]:
            click.echo(f"⚠️  {line}")
    sys.exit(1 if report["problems"] else 0)


@cli.group("cluster")
def cluster_cmd() -> None:
    """A Ray cluster for `orchestra delegate --cluster` (README: Secondaries on a Ray cluster)."""


@cluster_cmd.command("doctor")
@click.option("--cluster", "address", default=None, metavar="ADDRESS",
              help="The Ray address (HOST:PORT, or auto for $RAY_ADDRESS; default: the config's cluster:).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file (sent to the nodes, its secret values masked; default: each node's own).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")
def cluster_doctor(address, config_path, as_json):
    """`orchestra doctor` on every alive node of the cluster: which agents each has, which key variables are
    set there (never their values). Ends what dead tasks of earlier runs left on the nodes."""
    _need_ray()
    from .cluster import doctor_nodes

    config = _config(config_path)
    address = address or config.cluster
    if not address:
        raise click.UsageError("give --cluster ADDRESS (or auto for $RAY_ADDRESS), or cluster: in the config")
    nodes = doctor_nodes(address, Path(config_path) if config_path else None)
    if as_json:
        click.echo(json.dumps(nodes, indent=2, ensure_ascii=False))
    else:
        for n in nodes:
            click.echo(f"== node {n['ip']} ({n['id'][:12]}): {'ok' if n['exit_code'] == 0 else 'problems'}")
            for line in n["output"].rstrip().splitlines():
                click.echo(f"   {line}")
            if n["ended"]:
                click.echo(f"   🧹 ended {len(n['ended'])} process(es) a dead task left: {', '.join(n['ended'])}")
    sys.exit(0 if all(n["exit_code"] == 0 for n in nodes) else 1)


def _print_doctor_row(a: dict) -> None:
    if not a["installed"]:
        mark, where = "❌", f"not found — {a['install']}"
    else:
        ready = (a["api_key_set"] or not a["api_key_env"]) and not a["login_missing"]
        mark = "✅" if ready else "⚠️ "
        version = a["version"] or ("version unknown" if a["version_asked"] else "version not asked")
        where = f"{a['path']} ({version})"
    if a["tested_version"]:
        where += f"; tested with {a['tested_version']}"
    if a["api_key_env"]:
        where += f"; {a['api_key_env']} {'is set' if a['api_key_set'] else 'is NOT set'}"
    if a["login_missing"]:
        where += f"; {a['login_missing']}"
    click.echo(f"{mark} {a['agent']:<12} {a['binary']:<14} {where} [{a['source']}]")


if __name__ == "__main__":
    main()
