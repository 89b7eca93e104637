"""`orchestra mcp`: an MCP server on stdio through which a running agent delegates to another.

The calling agent is the primary (it wrote the task); each `delegate` starts a detached
`orchestra delegate --no-analyze` (jobs.py) and waits for it a while. Nothing lives in this
process: a run goes on when the server goes, and every answer is read from the run's record,
so a server started again (or the CLI: `orchestra wait/status/show`) answers the same.
"""
from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import anyio
import anyio.lowlevel
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import CallToolResult, ErrorData, JSONRPCError, TextContent

from . import followup, jobs, report, runfolder
from .agents import login_missing
from .config import Config, load_config
from .delegate import installed
from .errors import OrchestraError
from .procs import process_alive
from .report import ERRORS_SHOWN, FILES_SHOWN, clip, money, seconds
from .runfolder import RUNNING, run_agents
from .session import argv_problem
from .budget import Budget, enforceable, limit
from .budget import describe as describe_budget
from .summary import describe_ended_by

WAIT_DEFAULT = 45.0  # seconds: under the 60 s a client gives a tool call by default (Codex)
WAIT_MAX = 3600.0
PROGRESS_EVERY = 5.0  # seconds between progress notifications while waiting
TEXT_MAX = report.TEXT_MAX  # characters of the text a model gets for one run, whatever the secondaries did
REPLY_MAX = 1000
STATUS_SHOWN = 20  # runs in one status() answer
AGENTS_BUDGET = 30000  # characters of the structured result's agents, shared among them
REQUESTS_DIR = Path(".orchestra") / "mcp-requests"  # request_id -> run id, one file each
CLAIM_WAIT = 30.0  # seconds a retried delegate waits for the call that claimed its request_id to start the run

# What to do first: a client may show only the start of it (Codex 0.169.0 cuts it at 247 characters)
INSTRUCTIONS = (
    "delegate(task) hands a self-contained coding task to another coding agent in this directory; "
    "wait(run_id) while it says running; agents() lists who is installed. Orchestra runs the other terminal "
    "coding agent (Droid, Aider, Claude Code, ...), records it, and returns a summary you can trust: status, "
    "files changed (git's view), errors, cost, time."
)

DELEGATE_DOC = """Hand a self-contained coding task to another coding agent (the secondary), which does it in this \
working directory while you wait, and get back its summary: status (completed, failed, timeout, ...) and why, the \
files it modified (as git sees them; files someone else changed meanwhile are listed apart), its errors, cost, \
tokens, duration, its reply, and where a person can watch or replay it.

Delegate when a part of your work can be done on its own by someone else: write the task as a brief the other \
agent can act on without your context (what to build, which files, how to check it). Do not delegate something \
you still need to decide.

to: an agent name from agents(), or "auto" (the routing rules pick one from the task's words).
wait_s: how long this call waits for the run (default 45 s). If the run is not over by then, you get \
{run_id, status: "running"}: the run goes on, and you call wait(run_id) (as many times as needed) to get the \
summary. Nothing is lost if a call times out.
request_id: any string unique to this task; calling delegate again with the same request_id (a retry) never \
starts a second run, it returns the one already started.
isolate: true runs it in a git worktree and branch of its own, made from the last commit (your uncommitted \
changes are not in it): use it when you go on editing files here while it works. Its summary then lists exactly \
its files, and names its branch and whether it merges cleanly; merge it with git when you are ready.
checks: acceptance checks, command lines run in the agent's working directory after it completes, each split \
as a shell would (never run by one: use "sh -c '...'" for pipes); exit 0 passes. The summary says verified: \
true (all passed), false (one failed: its command and the end of its output come first), null (none ran). Give \
checks whenever the task has a test: e.g. checks=["python -m pytest -q tests/test_user.py"].
fix_rounds: with checks, how many times a failing agent is resumed in its own session with the failed checks' \
output, to fix them (default 0); only for agents that can be resumed.
max_cost_usd, max_tokens, max_time_s: limits for the other agent (over the config's defaults); crossing one ends it \
at once with status "over_budget", what it did so far kept. A cost limit for an agent that reports no cost (and \
has no price configured) is refused: give max_tokens or max_time_s instead."""

WAIT_DOC = """Wait up to wait_s seconds (default 45) for a delegated run to end, and return its summary (status and \
why, files modified, errors, cost, tokens, duration, the secondary's reply). If it is still going when wait_s \
passes, you get status "running" with what the agent is doing now: call wait again."""

STATUS_DOC = """What delegated runs are doing now, without waiting: each agent's phase (starting, working, idle, \
exiting, done), elapsed time, cost so far and latest output line. Without run_id: every run under way here."""

RESULT_DOC = """A run's summary as it is recorded now (also for a run started by an earlier session or from the \
command line), without waiting. Status "running" means it is not over: use wait."""

CANCEL_DOC = """Stop a delegated run (as Ctrl-C would): its agents are ended, what they wrote stays, and the \
summary says "interrupted"."""

SEND_DOC = """After a delegated run is over, ask the same agent for a change (having read its diff) without \
starting over: message goes to its own session, resumed (it remembers the task and what it did), as a new turn in \
the same run. You get the turn's own summary: status, the files this turn changed, errors, cost, its reply.

agent: which one, by role ("secondary-2") or name, when the run had several secondaries.
wait_s: as for delegate (default 45 s); if the turn is not over by then, call wait(run_id). An agent whose \
profile cannot resume a session, or that reported no session id, is refused: delegate a new task instead."""

AGENTS_DOC = """Which coding agents can be delegated to here: installed or not, whether their API key variable is \
set, the routing rules that "auto" follows, and how a person watches or replays a run."""


def serve(workdir: Path, config_path: Optional[str] = None) -> None:
    """Serve the tools on stdin/stdout until the client closes them."""
    anyio.run(serve_stdio, build(workdir, config_path))


async def serve_stdio(server: MCPServer) -> None:
    """The SDK's stdio transport, plus an answer to every line it cannot take (the SDK logs those and
    says nothing, so a client would wait for ever): a line that is not JSON gets a parse error, a
    request holding half a character (a lone UTF-16 surrogate) or not shaped as JSON-RPC gets an error
    naming what to fix, with its id."""
    lines: collections.deque[str] = collections.deque()
    stdin = anyio.wrap_file(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))

    async def remembered():
        async for line in stdin:
            lines.append(line)
            yield line

    async with stdio_server(stdin=remembered()) as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream(0)

        async def sift() -> None:
            async with send:
                async for item in read_stream:
                    line = lines.popleft() if lines else ""
                    if isinstance(item, Exception):
                        error = refusal(line)
                        if error is not None:
                            await write_stream.send(SessionMessage(error))
                        continue
                    await send.send(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sift)
            low = server._lowlevel_server  # (the SDK's own run_stdio_async does the same, on its streams)
            await low.run(receive, write_stream, low.create_initialization_options())
            tg.cancel_scope.cancel()


def refusal(line: str) -> Optional[JSONRPCError]:
    """The JSON-RPC error for a line the SDK could not take (None for a blank line, or a notification)."""
    if not line.strip():
        return None
    try:
        message = json.loads(line)
    except ValueError as exc:
        return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(
            code=-32700, message=f"Parse error: the line is not JSON ({exc}); send one JSON-RPC message a line"))
    request_id = message.get("id") if isinstance(message, dict) else None
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        return None if isinstance(message, dict) and "method" in message else JSONRPCError(
            jsonrpc="2.0", id=None, error=ErrorData(code=-32600, message="Invalid Request: not a JSON-RPC 2.0 message"))
    where = _half_character(message)
    if where:
        return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(
            code=-32602, message=f"Invalid params: {where} holds half a character (a lone UTF-16 surrogate, as "
                                 "when an emoji is cut in two): send whole characters, or leave it out"))
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(
        code=-32600, message="Invalid Request: not a JSON-RPC 2.0 request (jsonrpc \"2.0\", id, method, params)"))


def _half_character(value, path: str = "") -> str:
    """Where in a parsed JSON value a string holds a lone surrogate (`params.arguments.task`), or ""."""
    if isinstance(value, str):
        return (path or "the request") if any("\ud800" <= ch <= "\udfff" for ch in value) else ""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _half_character(str(key), path or "the request") or _half_character(item, f"{path}.{key}".strip("."))
        if found:
            return found
    return ""


def build(workdir: Path, config_path: Optional[str] = None) -> MCPServer:
    workdir = Path(workdir).resolve()
    server = MCPServer("orchestra", instructions=INSTRUCTIONS, log_level="WARNING")

    def config() -> Config:
        try:
            return load_config(config_path, workdir)  # read at each call: an edited config counts at once
        except OrchestraError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(description=DELEGATE_DOC)
    async def delegate(task: str, ctx: Context, to: str = "auto", wait_s: float = WAIT_DEFAULT,
                       request_id: Optional[str] = None, isolate: bool = False, checks: Optional[list[str]] = None,
                       fix_rounds: int = 0, max_cost_usd: Optional[float] = None, max_tokens: Optional[int] = None,
                       max_time_s: Optional[float] = None) -> CallToolResult:
        cfg = config()
        check_delegation(cfg, task, to)
        check_wait(wait_s)
        limits = check_budget(cfg, to, max_cost_usd=max_cost_usd, max_tokens=max_tokens, max_time_s=max_time_s)
        argv = ["delegate", "--task", task, "--to", to, "--no-analyze", "--workdir", str(workdir),
                *check_args(cfg, task, to, checks or [], fix_rounds), *limits.argv()]
        argv += ["--isolate"] if isolate else []
        if config_path:
            argv += ["--config", str(Path(config_path).resolve())]
        run_id = await off_loop(start_once, workdir, argv, request_id, task, to)
        return await _wait(ctx, workdir, run_id, wait_s)

    @server.tool(description=SEND_DOC)
    async def send(run_id: str, message: str, ctx: Context, agent: Optional[str] = None,
                   wait_s: float = WAIT_DEFAULT) -> CallToolResult:
        cfg = config()
        check_wait(wait_s)
        target = await off_loop(followup.Target, workdir, run_id, cfg, agent)
        await off_loop(target.check, message, None)
        argv = ["send", target.run_id, "--agent", target.role, "--task", message, "--workdir", str(workdir)]
        if config_path:
            argv += ["--config", str(Path(config_path).resolve())]
        await off_loop(followup.start, workdir, target.run_id, argv)
        return await _wait(ctx, workdir, target.run_id, wait_s)

    @server.tool(description=WAIT_DOC)
    async def wait(run_id: str, ctx: Context, wait_s: float = WAIT_DEFAULT) -> CallToolResult:
        return await _wait(ctx, workdir, run_id, wait_s)

    @server.tool(description=STATUS_DOC)
    async def status(run_id: Optional[str] = None) -> CallToolResult:
        runs = await off_loop(jobs.status, workdir, run_id)
        if not runs:
            return _result("No delegated run is under way in this directory.", {"runs": []})
        return status_result(runs)

    @server.tool(description=RESULT_DOC)
    async def result(run_id: str) -> CallToolResult:
        return summary_result(await off_loop(jobs.result, workdir, run_id))

    @server.tool(description=CANCEL_DOC)
    async def cancel(run_id: str) -> CallToolResult:
        return summary_result(await off_loop(jobs.cancel, workdir, run_id))

    @server.tool(description=AGENTS_DOC)
    async def agents() -> CallToolResult:
        data = agents_data(config())
        return _result(agents_text(data), data)

    return server


def _call(fn, *args):
    try:
        return fn(*args)
    except OrchestraError as exc:
        raise ToolError(str(exc)) from None


def check_delegation(cfg: Config, task: str, to: str) -> None:
    """What the model can fix, said before anything starts."""
    if not task.strip():
        raise ToolError("The task is empty: say what the other agent should do (what to build, which files, "
                        "how to check it).")
    if "\x00" in task:
        raise ToolError(f"The task holds a NUL character (at character {task.index(chr(0)) + 1}), which no program "
                        "can be given: remove it.")
    problem = argv_problem(task)
    if problem:
        raise ToolError(problem[0].upper() + problem[1:] + ".")
    if to != "auto":
        ready = [name for name in routable(cfg) if installed(cfg, name)]
        if to not in cfg.agents:
            raise ToolError(f"No agent named {to!r}. Installed: {', '.join(ready) or 'none'}; or to=\"auto\".")
        if not installed(cfg, to):
            raise ToolError(f"Agent {to!r} is not installed here. Installed: {', '.join(ready) or 'none'}; "
                            "or to=\"auto\".")


def check_args(cfg: Config, task: str, to: str, checks: list[str], fix_rounds: int) -> list[str]:
    """delegate's --check and --fix-rounds, refused here (as the CLI would, exit 2) before anything starts."""
    from .checks import CheckPlan
    from .delegate import Plan, checked_agents

    if isinstance(fix_rounds, bool) or not 0 <= fix_rounds <= 20:
        raise ToolError(f"fix_rounds must be a whole number from 0 to 20; got {fix_rounds!r}")
    plan = Plan(task=task, primary=None, secondaries=[to], analyze=False,
                checking=CheckPlan(list(checks), fix_rounds=fix_rounds))
    _call(plan.checking.refuse, *checked_agents(cfg, plan))
    return [arg for c in checks for arg in ("--check", c)] + (["--fix-rounds", str(fix_rounds)] if fix_rounds else [])


def check_budget(cfg: Config, to: str, **given) -> Budget:
    """The limits of a call, checked (each a positive number; one the agent's output cannot show refused)."""
    values = {}
    for name, value in given.items():
        try:
            values[name] = limit(value, name)
        except ValueError as exc:
            raise ToolError(f"{name}: {exc}") from None
    budget = Budget(**values)
    if to != "auto":
        _call(enforceable, cfg.budget_of(to, budget), cfg.profile(to), cfg)
    return budget


def routable(cfg: Config) -> list[str]:
    """The profiles a task can go to: real agents (a replay profile, whose command is orchestra's own, is a demo)."""
    return [name for name, p in cfg.agents.items() if not (p.binary or p.command[0]).startswith("{")]


# -- one run per request_id ------------------------------------------------------------------------------------


def start_once(workdir: Path, argv: list[str], request_id: Optional[str], task: str = "", to: str = "") -> str:
    """jobs.start, except that a request_id seen before returns the run it started: a retry (the same
    task for the same agent) gets that run, whatever died when; the same id for another task is refused.

    The claim is a file created with O_EXCL (one caller wins, whichever process it is in). It names the
    run's id before the worker is started, so a server killed at any moment leaves a claim that says
    which run is the request's: a retry finds the run's record, or its worker still starting (by its
    mark), or, if nothing was started, starts that very run."""
    if not request_id:
        return _call(jobs.start, workdir, argv)
    folder = runfolder.home(workdir) / REQUESTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    claim = folder / hashlib.sha256(request_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    asked = {"task": hashlib.sha256(task.encode("utf-8", "surrogatepass")).hexdigest(), "to": to}
    deadline = time.monotonic() + CLAIM_WAIT
    while True:
        try:
            fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            held = _claim_of(claim)
            if held is None:  # being written (for a moment), or left empty by a caller killed then
                if _age(claim) > 2.0:
                    _remove(claim)
                time.sleep(0.05)
                continue
            if (held.get("task"), held.get("to")) != (asked["task"], asked["to"]):
                raise ToolError(f"request_id {request_id!r} was used for another task (run {held.get('run')}: "
                                f"{held.get('what', '')!r}); a retry repeats the same task and agent. For a new task "
                                "give a new request_id.")
            run_id = held.get("run") or ""
            if (runfolder.folder(workdir, run_id) / runfolder.RECORD).exists():
                return run_id
            if not runfolder.folder(workdir, run_id).is_dir() and not process_alive(held.get("pid")):
                _remove(claim)  # its worker failed before its run started, and said so to its caller: try again
                continue
            if jobs.worker_of(run_id) or process_alive(held.get("pid")):
                if time.monotonic() > deadline:
                    raise ToolError(f"request_id {request_id!r}: its run {run_id} is still starting; call delegate "
                                    "again with it in a moment")
                time.sleep(0.05)  # its worker says it started within a second or two
                continue
            _write_claim(claim, {**held, "pid": os.getpid()})  # nobody started it: this call does
            return _start_claimed(workdir, argv, claim, run_id)
        with os.fdopen(fd, "w") as fh:
            run_id, _ = runfolder.make(workdir)
            fh.write(json.dumps({**asked, "run": run_id, "pid": os.getpid(), "what": clip(" ".join(task.split()), 80)}))
        return _start_claimed(workdir, argv, claim, run_id)


def _start_claimed(workdir: Path, argv: list[str], claim: Path, run_id: str) -> str:
    try:
        return _call(jobs.start, workdir, argv, None, None, run_id)
    except BaseException:
        _remove(claim)  # nothing started (jobs.start removed its folder): a retry may try again
        raise


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _claim_of(path: Path) -> Optional[dict]:
    try:
        held = json.loads(_read(path))
    except ValueError:
        return None
    return held if isinstance(held, dict) and isinstance(held.get("run"), str) else None


def _write_claim(path: Path, held: dict) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(held))
    os.replace(tmp, path)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


# -- waiting ---------------------------------------------------------------------------------------------------


def check_wait(wait_s: float) -> None:
    if not 0 <= wait_s < float("inf"):  # nan too
        raise ToolError(f"wait_s must be a number of seconds, 0 or more; got {wait_s}")


async def _wait(ctx: Context, workdir: Path, run_id: str, wait_s: float) -> CallToolResult:
    check_wait(wait_s)
    began = time.monotonic()
    deadline = began + min(wait_s, WAIT_MAX)
    record = await off_loop(jobs.result, workdir, run_id)
    while record.get("status") == RUNNING:
        # at once (a client sees the run id before the first period passes), then every PROGRESS_EVERY s
        await ctx.report_progress(time.monotonic() - began, None, progress_line(record))
        left = deadline - time.monotonic()
        if left <= 0:
            break
        # jobs.wait returns as the worker exits, whatever the slice
        record = await off_loop(jobs.wait, workdir, run_id, min(left, PROGRESS_EVERY))
    return summary_result(record)


async def off_loop(fn, *args):
    """fn(*args) in a daemon thread, an OrchestraError made a ToolError. Not anyio's worker threads:
    the interpreter waits for those at exit, and a client that closes the server in the middle of a
    wait would find it still there until the wait ended."""
    done, box = anyio.Event(), {}
    token = anyio.lowlevel.current_token()

    def target() -> None:
        try:
            box["value"] = _call(fn, *args)
        except BaseException as exc:  # handed to the waiting task
            box["error"] = exc
        try:
            anyio.from_thread.run_sync(done.set, token=token)
        except RuntimeError:  # the server has gone meanwhile
            pass

    threading.Thread(target=target, daemon=True, name=f"orchestra-{fn.__name__}").start()
    await done.wait()
    if "error" in box:
        raise box["error"]
    return box["value"]


def progress_line(record: dict) -> str:
    """One line: the run, the agent at work, its phase, how long, its latest line."""
    agents = [a for a in run_agents(record) if a.get("status") == RUNNING] or run_agents(record)
    if not agents:
        return f"run {record.get('run_id')}: starting, {seconds(record.get('duration_s'))}"
    a = agents[-1]
    latest = clip(" ".join(str(a.get("latest") or "").split()), 160)
    return (f"run {record.get('run_id')}: {a.get('agent')} {a.get('phase') or a.get('status')}, "
            f"{seconds(a.get('duration_s'))}" + (f": {latest}" if latest else ""))


# -- what the model gets ----------------------------------------------------------------------------------------


def summary_result(record: dict) -> CallToolResult:
    if record.get("status") != RUNNING and followup.latest_turn(record) is not None:
        return turn_result(record)  # what was asked last: the newest turn (orchestra send)
    if record.get("status") == RUNNING:
        data = live_data(record)
        data["next"] = f"call wait(run_id=\"{record['run_id']}\") to keep waiting for its summary"
        # what to do first: a cut keeps it, whatever the secondaries are doing
        text = (f"Run {record['run_id']} is still going. It goes on without you: call "
                f"wait(run_id=\"{record['run_id']}\") to keep waiting for its summary, status() to look in on it, "
                f"cancel() to stop it. Now: {live_text(record)}")
        return _result(clip(text, TEXT_MAX), data)
    data = summary_data(record)
    return _result(summary_text(record, data), data)


def turn_result(record: dict) -> CallToolResult:
    turn = followup.latest_turn(record) or {}
    data = {"run_id": record.get("run_id"), "status": record.get("status"), "turn": turn.get("turn"),
            "message": clip(" ".join(str(turn.get("message") or "").split()), 300),
            "agent": {**_agent_data(turn, 1, {}), "role": turn.get("role")},
            "replay": f"orchestra replay {record.get('run_id')} --agent {Path(str(turn.get('transcript'))).stem}",
            "record": f".orchestra/runs/{record.get('run_id')}/run.json"}
    return _result(followup.turn_text(record), data)


def summary_data(record: dict) -> dict:
    """The run's summary, each part bounded as the block a primary gets is (delegate.summary_block)."""
    secondaries = [a for a in run_agents(record) if a.get("role") != "primary"]
    merges = {m.get("branch"): m for m in record.get("merges") or [] if isinstance(m, dict)}
    return {
        "run_id": record.get("run_id"),
        "task": clip(" ".join(str(record.get("task") or "").split()), 300),
        "status": record.get("status"),
        "reason": clip(str(record.get("reason") or ""), 500),
        "cost_usd": record.get("total_cost_usd"),
        "duration_s": record.get("duration_s"),
        "agents": [_agent_data(a, len(secondaries), merges, record.get("merge_stopped")) for a in secondaries],
        "verified": record.get("verified") if isinstance(record.get("verified"), bool) else None,
        "merged_checks": [_check_data(c, 600) for c in _failed_first(record.get("merged_checks"))[:3]],
        "watch": f"tmux attach -t {record['tmux_session']}" if record.get("tmux_session") else None,
        "replay": f"orchestra replay {record.get('run_id')}",
        "record": f".orchestra/runs/{record.get('run_id')}/run.json",
    }


def _agent_data(a: dict, n: int, merges: dict, merge_stopped: Optional[str] = None) -> dict:
    """One agent's part, smaller as there are more agents (delegate --parallel 64): a whole result stays
    within about 50 KB, under what clients pass on (Claude Code: 25,000 tokens)."""
    files = [str(f) for f in a.get("files_modified") or []]
    errors = [str(e) for e in a.get("errors") or []]
    others = a.get("files_changed_by_others") or []
    state = _branch_state(merges[a["branch"]], merge_stopped) if a.get("branch") in merges else None
    budget = max(400, AGENTS_BUDGET // max(1, n))
    n_files, n_errors = max(3, FILES_SHOWN // n), max(1, ERRORS_SHOWN // n)
    return {
        "agent": a.get("agent"), "status": a.get("status"),
        "reason": clip(str(a.get("reason") or ""), min(500, budget // 4)),
        "files_modified": [clip(f, min(200, budget // 10)) for f in files[:n_files]],
        "files_more": max(0, len(files) - n_files),
        # present only when there is something to say: 64 agents' empty keys would take 6 KB
        **({"files_changed_by_others": [clip(str(f), min(200, budget // 10)) for f in others[:n_files]],
            "others_more": max(0, len(others) - n_files)} if others else {}),
        **({"files_note": clip(str(a["files_note"]), min(500, budget // 4))} if a.get("files_note") else {}),
        "errors": [clip(e, min(300, budget // 8)) for e in errors[:n_errors]],
        "errors_more": max(0, len(errors) - n_errors),
        "cost_usd": a.get("cost_usd"), "cost_source": a.get("cost_source"),
        "tokens": a.get("tokens"), "duration_s": a.get("duration_s"),
        "branch": a.get("branch"), "budget": a.get("budget"),
        **({"merge": clip(state, 500)} if state else {}),  # the branch's merge state
        "ended_by": describe_ended_by(a.get("ended_by"), line=False, limit=80) if a.get("ended_by") else None,
        "reply": clip(" ".join(str(a.get("reply") or "").split()), min(REPLY_MAX, budget // 4)),
        "transcript": a.get("transcript"),
        **_checks_data(a, budget, n),
    }


def _checks_data(a: dict, budget: int, n: int) -> dict:
    """An agent's checks, when it had any: the failed first, within a quarter of its share."""
    checks = [c for c in a.get("checks") or [] if isinstance(c, dict)]
    if not checks:
        return {}
    shown = _failed_first(checks)[:max(1, 10 // n)]
    return {"verified": a.get("verified") if isinstance(a.get("verified"), bool) else None,
            "checks": [_check_data(c, max(60, budget // (4 * len(shown)))) for c in shown],
            "checks_more": len(checks) - len(shown), "fix_rounds": len(a.get("fix_rounds") or [])}


def _failed_first(checks) -> list[dict]:
    return sorted([c for c in checks or [] if isinstance(c, dict)], key=lambda c: c.get("exit_code") == 0)


def _check_data(c: dict, keep: int) -> dict:
    """One check, the end of its output in at most `keep` characters."""
    output = str(c.get("output") or "")
    return {"command": clip(str(c.get("command")), min(200, keep)), "exit_code": c.get("exit_code"),
            "duration_s": c.get("duration_s"), "timed_out": bool(c.get("timed_out")),
            "output": output if len(output) <= keep else "..." + output[-(keep - 3):]}


def summary_text(record: dict, data: dict) -> str:
    """The words a primary gets, the same as `orchestra delegate` types into one (report.secondaries_text)."""
    checked = {True: ", verified (its checks passed)", False: ", CHECKS FAILED"}.get(data["verified"], "")
    head = (f"Run {data['run_id']}: {data['status']}{checked}" + (f" ({data['reason']})" if data["reason"] else "") + "."
            + (f"\nTask: {clip(data['task'], 200)}" if data["task"] else ""))
    secondaries = [a for a in run_agents(record) if a.get("role") != "primary"]
    states = {m.get("branch"): _branch_state(m, record.get("merge_stopped"))
              for m in record.get("merges") or [] if isinstance(m, dict)}
    tail = [report.merge_stopped_text(str(record["merge_stopped"]))] if record.get("merge_stopped") else []
    tail += report.merged_checks_text(record.get("merged_checks") or [])
    tail.append(f"Total cost: {money(data['cost_usd'])}; time: {seconds(data['duration_s'])}.")
    if data["watch"]:
        tail.append(f"For the person: watch with `{data['watch']}`, replay with `{data['replay']}`; "
                    f"the whole record: {data['record']}.")
    else:
        tail.append(f"For the person: replay with `{data['replay']}`; the whole record: {data['record']}.")
    return report.secondaries_text(secondaries, head, tail, data["record"], branch_states=states, limit=TEXT_MAX)


def _branch_state(merge: dict, merge_stopped: Optional[str]) -> Optional[str]:
    from .worktree import BranchReport

    try:
        return BranchReport.from_dict(merge).describe(merge_stopped)
    except TypeError:  # a record from another version, or damaged
        return None


def status_result(runs: list[dict]) -> CallToolResult:
    """The runs under way (and lost ones, once), bounded however many there are: the newest first."""
    runs = sorted(runs, key=lambda r: str(r.get("run_id")), reverse=True)
    shown, more = runs[:STATUS_SHOWN], max(0, len(runs) - STATUS_SHOWN)
    head = [f"{len(runs)} runs; the newest {len(shown)} here, {more} more (in a terminal: orchestra status)"] if more else []
    share = (TEXT_MAX - sum(len(h) + 1 for h in head)) // len(shown) - 1
    lines = head + [clip(live_text(r), share) for r in shown]
    data = {"runs": [live_data(r) for r in shown], "more": more}
    return _result("\n".join(lines), data)


def live_data(record: dict) -> dict:
    return {
        "run_id": record.get("run_id"), "status": record.get("status"),
        "reason": clip(str(record.get("reason") or ""), 500),
        "elapsed_s": record.get("duration_s"), "cost_usd": record.get("total_cost_usd"),
        "agents": [{"agent": a.get("agent"), "role": a.get("role"), "status": a.get("status"),
                    "phase": a.get("phase"), "elapsed_s": a.get("duration_s"), "cost_usd": a.get("cost_usd"),
                    "budget": a.get("budget"), "latest": clip(" ".join(str(a.get("latest") or "").split()), 200)}
                   for a in run_agents(record)],
        "watch": f"tmux attach -t {record['tmux_session']}" if record.get("tmux_session") else None,
    }


def live_text(record: dict) -> str:
    data = live_data(record)
    agents = "; ".join(f"{a['agent']} {a['phase'] or a['status']}, {seconds(a['elapsed_s'])}, cost "
                       f"{money(a['cost_usd'])}" + (f" (budget: {describe_budget(a['budget'])})" if a["budget"] else "")
                       + (f", latest: {a['latest']}" if a["latest"] else "")
                       for a in data["agents"]) or "no agent started yet"
    text = f"{data['run_id']} {data['status']}: {agents}"
    if data["reason"] and data["status"] != RUNNING:
        text += f" ({data['reason']})"
    return text + (f"; watch: {data['watch']}" if data["watch"] else "")


def agents_data(cfg: Config) -> dict:
    rows = []
    for name in routable(cfg):
        p = cfg.agents[name]
        ready = installed(cfg, name)
        rows.append({"agent": name, "installed": ready,
                     "binary": p.binary or p.command[0], "install": p.install or None,
                     "api_key_env": p.api_key_env,
                     "api_key_set": bool(p.api_key_env and os.environ.get(p.api_key_env)),
                     "login_missing": login_missing(p) if ready else ""})
    return {
        "agents": rows,
        "routing": {"rules": [{"name": r.name, "agent": r.agent, "words": r.words} for r in cfg.rules],
                    "default": cfg.default_agent,
                    "how": "to=\"auto\": the first rule with one of its words in the task (whole words, any case) "
                           "whose agent is installed; else the default"},
        "watch": "each run has a tmux session: tmux attach -t orchestra-<run_id>; in a terminal, `orchestra status` "
                 "shows every run under way and `orchestra replay <run_id>` plays a finished one",
        "config": str(cfg.path),
    }


def agents_text(data: dict) -> str:
    lines = []
    for a in data["agents"]:
        if not a["installed"]:
            state = f"not installed ({a['binary']}" + (f"; {a['install']}" if a["install"] else "") + ")"
        elif a["api_key_env"] and not a["api_key_set"]:
            state = f"installed, but {a['api_key_env']} is not set"
        elif a["login_missing"]:
            state = f"installed, but {a['login_missing']}"
        else:
            state = "installed"
        lines.append(f"- {a['agent']}: {state}")
    rules = "; ".join(f"{r['name']} -> {r['agent']} ({', '.join(r['words'])})" for r in data["routing"]["rules"])
    lines.append(f"Routing for to=\"auto\": {rules or 'no rules'}; default {data['routing']['default']}. "
                 f"{data['routing']['how']}.")
    lines.append(f"Watching: {data['watch']}.")
    return "Agents:\n" + "\n".join(lines)


def _result(text: str, data: dict) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)
