"""Secondaries on a Ray cluster (`orchestra delegate --cluster ADDRESS`): the one module that imports ray,
and only when a run asks for a cluster, so the CLI starts as fast without it.

    connect     ray.init on the address (`auto`: $RAY_ADDRESS), its node-death detection said up front
    survey      one small task pinned to each alive node: the agents' programs and the names of their key
                variables there (never their values), and what a dead task of an earlier run left (ended)
    Remote      one secondary: a streaming Ray task (max_retries=0, spread across the nodes) whose chunks
                (cast bytes, the live record's agent) are written into the user's run folder as they come,
                and whose last chunk is its summary, its node and a `base..branch` bundle of its work
    secondary   the node's side: clone the run's base bundle into local scratch, run an ordinary
                `orchestra run --json` of the same profile there, stream, commit what is left, bundle back

Git travels as bundles through Ray's object store (the base once, ray.put, shared by every task); the
coordinator fetches each branch bundle into the branch a local secondary would get, so the merge report
and --merge read them unchanged. Credentials never travel: a task is told the names of the variables its
profile needs and reads them from its node's environment.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from . import agents
from .errors import OrchestraError
from .procs import end_processes, marked_pids, process_alive, process_started
from .summary import AgentSummary
from .worktree import IDENTITY, commit_all, git

INSTALL_HINT = "--cluster needs Ray: pip install 'orchestra[ray]' (on this machine and on every node)"
# Every process a node's secondary starts carries this mark (<run id>.<slot>): what a later task on the node
# ends when the task that started them is gone (its node's raylet died, or the coordinator vanished).
CLUSTER_MARK = "ORCHESTRA_CLUSTER"
SCRATCH = "orchestra-cluster"  # under the node's temp directory: one folder per secondary under way
STREAM_EVERY = 0.25  # seconds between two looks at the remote run's record and transcript
STOP_LOOK_EVERY = 1.0  # seconds between two looks at the run's stop key (one GCS call each, per secondary)
NODE_WATCH_EVERY = 1.0  # seconds between two looks at whether the nodes under work are alive
STOP_GRACE = 15.0  # seconds a cancelled task gets to end its agent (SIGINT to its `orchestra run`), then SIGKILL
BASE_REF = "refs/orchestra/base"  # the ref the base bundle carries
# Set in the cluster's key-value store (its GCS) to stop a run's secondaries: each task, which looks at it as
# it streams, ends its agent as Ctrl-C would and still commits and bundles its work, as a local one does.
STOP_KEY = "orchestra:stop:{run_id}"
# What the test cluster and the README's `ray start --system-config` set: a node that stops answering is
# dead after ~3 s (Ray's defaults wait 30 s for a crash, minutes for a cut-off node).
CONNECT_TIMEOUT = 10.0  # seconds to reach the cluster's head before saying it cannot be reached
FAST_DETECTION = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000,
                  "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}


def import_ray():
    # Ray waits 60 s per try for a GCS that does not answer, and tries again: a run would hang on a wrong address
    os.environ.setdefault("RAY_gcs_server_request_timeout_seconds", str(int(CONNECT_TIMEOUT)))
    try:
        import ray
    except ImportError:
        raise OrchestraError(INSTALL_HINT) from None
    return ray


# -- the coordinator's side ---------------------------------------------------------------------------------------

@dataclass
class Resources:
    """What each secondary asks of its node (--cluster-resources 'cpu=1,memory=2G,gpu_box=1')."""

    cpus: float = 1.0
    memory: Optional[int] = None  # bytes
    custom: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, text: Optional[str]) -> "Resources":
        found = cls()
        for part in (text or "").split(","):
            if not part.strip():
                continue
            name, eq, value = part.partition("=")
            name, value = name.strip().lower(), value.strip()
            try:
                if not eq:
                    raise ValueError
                if name in ("cpu", "cpus"):
                    found.cpus = float(value)
                elif name in ("memory", "mem"):
                    found.memory = _size(value)
                else:
                    found.custom[name] = float(value)
            except ValueError:
                raise OrchestraError(f"--cluster-resources: {part.strip()!r} is not NAME=NUMBER (like cpu=2, "
                                     "memory=4G, or a custom resource of your nodes, gpu_box=1)") from None
            if found.cpus < 0 or (found.memory or 0) < 0 or any(v < 0 for v in found.custom.values()):
                raise OrchestraError(f"--cluster-resources: {part.strip()!r} is negative")
        return found

    def options(self) -> dict:
        opts: dict = {"num_cpus": self.cpus}
        if self.memory:
            opts["memory"] = self.memory
        if self.custom:
            opts["resources"] = dict(self.custom)
        return opts


def _size(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", text.strip().lower())
    if not m:
        raise ValueError(text)
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def address_of(given: str) -> str:
    """The Ray address a run connects to: `auto` reads $RAY_ADDRESS."""
    if given == "auto":
        address = os.environ.get("RAY_ADDRESS", "").strip()
        if not address:
            raise OrchestraError("--cluster auto: RAY_ADDRESS is not set (export RAY_ADDRESS=HEAD:6379, or give "
                                 "--cluster HEAD:6379)")
        return address
    return given


def connect(address: str):
    """ray.init on the cluster, once per process; said clearly when it cannot be reached."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    address = address_of(address)
    _reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR",
                 configure_logging=True, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise OrchestraError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    # Ray prints a dead raylet's last log lines on stdout from a thread of its own: stdout is --json's
    _quiet(ray)
    return ray


def _reachable(address: str) -> None:
    """The head's port answers (a TCP connect), or a clear error now rather than Ray's minutes of retrying."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise OrchestraError(f"--cluster {address}: not a Ray address (HOST:PORT, like 10.0.0.5:6379; or auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise OrchestraError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} (is its head "
                             f"started, `ray start --head`, and the port open from here?)") from None


def _quiet(ray) -> None:
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    if worker is not None and hasattr(worker, "_worker_logs_enabled"):
        worker._worker_logs_enabled = False


def alive_nodes(ray) -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def survey(ray, needs: dict[str, dict]) -> list[dict]:
    """Each alive node's answer to `needs` (profile name -> {"programs": [...], "vars": [...]}), from a task
    pinned to it; what a dead task left there is ended on the way. Raises OrchestraError naming the first
    node that lacks a program or a variable."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = alive_nodes(ray)
    if not nodes:
        raise OrchestraError("the Ray cluster has no alive node")
    task = ray.remote(_look)
    refs = [task.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(needs) for n in nodes]
    answers = ray.get(refs)
    for answer in answers:
        for name, lacks in sorted(answer["lacks"].items()):
            what = "; ".join([f"{p} is not installed" for p in lacks["programs"]] +
                             [f"{v} is not set" for v in lacks["vars"]])
            raise OrchestraError(f"agent '{name}' cannot run on node {answer['ip']} ({answer['node'][:12]}): {what} "
                                 "there (keys are provisioned on the nodes: set it in the environment the node's "
                                 "`ray start` runs in; orchestra never sends a key)")
    return answers


def doctor_nodes(address: str, config: Optional[Path]) -> list[dict]:
    """`orchestra doctor` on every alive node (a task pinned to each), its output as the node printed it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .redact import Redactor, secrets_from_env

    ray = connect(address)
    text = shareable_config(config, Redactor(secrets_from_env(os.environ)).text) if config else None
    task = ray.remote(doctor_here)
    refs = [task.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(text) for n in alive_nodes(ray)]
    return sorted(ray.get(refs), key=lambda n: n["ip"] + n["id"])


def base_bundle(repo_root: Path, base_commit: str, run_id: str) -> bytes:
    """A bundle of the run's base commit (all its history), read into memory for the object store."""
    ref = f"refs/orchestra/{run_id}/base"
    scratch = Path(tempfile.mkdtemp(prefix="orchestra-bundle-"))
    try:
        made = git(repo_root, "update-ref", ref, base_commit)
        if made.returncode != 0:
            raise OrchestraError(f"git could not mark the base commit for the cluster: {made.stderr.strip()}")
        done = git(repo_root, "bundle", "create", "-q", str(scratch / "base.bundle"), ref)
        if done.returncode != 0:
            raise OrchestraError(f"git could not bundle the base commit for the cluster: {done.stderr.strip()}")
        return (scratch / "base.bundle").read_bytes()
    finally:
        git(repo_root, "update-ref", "-d", ref)
        shutil.rmtree(scratch, ignore_errors=True)


def fetch_branch(repo_root: Path, data: bytes, branch: str) -> Optional[str]:
    """The returned bundle's branch as `branch` in the user's repository; what went wrong, if anything."""
    fd, path = tempfile.mkstemp(prefix="orchestra-branch-", suffix=".bundle")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        done = git(repo_root, "fetch", "-q", path, f"+refs/heads/{branch}:refs/heads/{branch}")
        return None if done.returncode == 0 else f"git could not fetch the branch back: {done.stderr.strip()}"
    finally:
        os.unlink(path)


@dataclass
class Spec:
    """What a node is told to run: everything but the base bundle, which travels once by reference."""

    run_id: str
    slot: str  # the window a local secondary would have: secondary-1...
    agent: str
    brief: str
    branch: str
    base_commit: str
    subdir: str  # where in the repository the run's workdir is
    config_text: Optional[str]  # the --config file, its secret values taken out
    vars: list  # the names of the variables the profile needs (never their values)
    ignore: list  # what is not the agent's work (tree_ignores)
    run_args: list  # more `orchestra run` options: checks, budget


class Remote:
    """One secondary on the cluster, as the coordinator sees it: its live agent, its transcript as it comes,
    its summary once it ends. Run.live() lists it among the run's agents (live())."""

    def __init__(self, ray, spec: Spec, gen, cast_path: Path, home: Path, window=None):
        self.ray, self.spec, self.gen = ray, spec, gen
        self.cast_path, self.home = cast_path, home
        self.window = window  # its tmux window here (viewer.ViewerWindow), shown the node's output as it comes
        self.header_seen = False
        self.cast = open(os.open(cast_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        self.node: Optional[dict] = None
        self.agent: dict = {}  # the remote run's live agent, as it last came
        self.final: Optional[dict] = None  # the last chunk: summary, bundle, node
        self.failed: Optional[tuple[str, str, str]] = None  # (status, signal, reason) when it ended otherwise
        self.started = time.monotonic()
        self.started_wall = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.ended_at: Optional[float] = None

    @property
    def active(self) -> bool:
        return self.final is None and self.failed is None

    def take(self, chunk: dict) -> None:
        if chunk.get("cast"):
            self.cast.write(chunk["cast"])
            self.cast.flush()
            self._show(chunk["cast"])
        if chunk.get("node"):
            self.node = chunk["node"]
        if chunk.get("agent"):
            self.agent = chunk["agent"]
        if chunk.get("final"):
            self.final = chunk
            self._end()

    def fail(self, status: str, signal_name: str, reason: str) -> None:
        if self.active:
            self.failed = (status, signal_name, reason)
            self._end()

    def _show(self, lines: bytes) -> None:
        """The output events of whole transcript lines, into its window."""
        if self.window is None:
            return
        for line in lines.splitlines():
            if not self.header_seen:
                self.header_seen = True
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, list) and len(event) == 3 and event[1] == "o" and isinstance(event[2], str):
                self.window.write(event[2].encode("utf-8", "replace"))

    def _end(self) -> None:
        self.ended_at = time.monotonic()
        try:
            self.cast.close()
        except OSError:
            pass
        if self.window is not None:
            status = (self.final or {}).get("summary", {}).get("status") or (self.failed or ("ended",))[0]
            self.window.end(f"\r\n[orchestra: {self.spec.agent} on the cluster: {status}]\r\n".encode())

    @property
    def tmux_target(self) -> Optional[str]:
        return getattr(self.window, "target", None) or None

    def live(self) -> dict:
        """Its agent in the live record: as the node last said, or once ended its summary."""
        a = self.agent
        latest = a.get("latest") or (a.get("last_lines") or [""])[-1]
        if not self.active:
            return {**self.summary().to_dict(), "phase": "done", "latest": latest}
        return {
            "agent": self.spec.agent, "role": self.spec.slot, "status": "running",
            "phase": a.get("phase") or "starting", "latest": latest,
            "cost_usd": a.get("cost_usd"), "cost_source": a.get("cost_source") or "unknown",
            "tokens": a.get("tokens") or {"input": None, "output": None},
            "duration_s": round(time.monotonic() - self.started, 3),
            "started_at": a.get("started_at") or self.started_wall,
            "transcript": os.path.relpath(self.cast_path, self.home), "tmux_target": self.tmux_target,
            "files_modified": [], "errors": [], "budget": a.get("budget"), "node": self.node,
            "branch": self.spec.branch,
        }

    def summary(self) -> AgentSummary:
        """Its summary: the node's `orchestra run --json`, or, for one that never got there, what is known."""
        known = {f for f in AgentSummary.__dataclass_fields__}
        if self.final is not None and isinstance(self.final.get("summary"), dict):
            data = {k: v for k, v in self.final["summary"].items() if k in known}
        else:
            status, signal_name, reason = self.failed or ("crashed", "node_died", "its task ended without a result")
            a = self.agent
            data = {"agent": self.spec.agent, "status": status, "reason": reason,
                    "ended_by": {"signal": signal_name, "pattern": None, "line": None, "decided_ms": None},
                    "cost_usd": a.get("cost_usd"), "cost_source": a.get("cost_source") or "unknown",
                    "tokens": a.get("tokens") or {"input": None, "output": None},
                    "duration_s": round((self.ended_at or time.monotonic()) - self.started, 3),
                    "started_at": a.get("started_at") or self.started_wall,
                    "last_lines": [a["latest"]] if a.get("latest") else []}
        data.update(role=self.spec.slot, transcript=os.path.relpath(self.cast_path, self.home),
                    tmux_target=self.tmux_target, node=self.node)
        summary = AgentSummary(**data)
        if self.final is not None and self.final.get("problem"):
            summary.errors.append(self.final["problem"])
        return summary

    def cancel(self) -> None:
        if self.active:
            try:
                self.ray.cancel(self.gen)  # KeyboardInterrupt in the task: it ends its agent, then itself
            except Exception:
                pass


class Fleet:
    """The secondaries of one run on the cluster: started, followed, stopped."""

    def __init__(self, address: str, resources: Resources):
        self.ray = connect(address)
        self.resources = resources
        self.remotes: list[Remote] = []
        self.base_ref = None

    def check(self, needs: dict[str, dict]) -> list[dict]:
        return survey(self.ray, needs)

    def put_base(self, data: bytes) -> None:
        self.base_ref = self.ray.put(data)  # once: every task of the run reads the same object

    def start(self, spec: Spec, cast_path: Path, home: Path, window=None) -> Remote:
        task = self.ray.remote(secondary)
        gen = task.options(max_retries=0, retry_exceptions=False, scheduling_strategy="SPREAD",
                           **self.resources.options()).remote(spec, self.base_ref)
        remote = Remote(self.ray, spec, gen, cast_path, home, window)
        self.remotes.append(remote)
        return remote

    def follow(self, tick: Callable[[], None] = lambda: None, ended: Callable[[], None] = lambda: None,
               every: float = 0.25) -> None:
        """Take every chunk as it comes until each secondary has ended (ended() is called at once then: the
        live record says so); a node that dies ends its secondary at once (crashed, node_died), the
        others go on."""
        watch_at = time.monotonic() + NODE_WATCH_EVERY
        while any(r.active for r in self.remotes):
            running = {id(r.gen): r for r in self.remotes if r.active}
            ready = self._wait([r.gen for r in running.values()], every)
            for gen in ready:
                self._next(running[id(gen)])
            if time.monotonic() >= watch_at:
                self._watch_nodes()
                watch_at = time.monotonic() + NODE_WATCH_EVERY
            if any(not r.active for r in running.values()):
                ended()
            tick()

    def _wait(self, gens: list, timeout: float) -> list:
        """ray.wait for the next chunk of any."""
        return _signalled(lambda: self.ray.wait(gens, num_returns=1, timeout=timeout)[0])

    def _next(self, remote: Remote) -> None:
        ray = self.ray
        try:
            ref = _signalled(lambda: next(remote.gen))
            remote.take(_signalled(lambda: ray.get(ref)))
        except StopIteration:
            remote.fail("crashed", "exit", "its task ended without a result")
        except ray.exceptions.TaskCancelledError:
            remote.fail("interrupted", "interrupted", "cancelled")
        except (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError) as exc:
            remote.fail("crashed", "node_died", self._died(remote, exc))
        except ray.exceptions.RayError as exc:
            remote.fail("crashed", "exit", f"its task failed on the cluster: {str(exc).splitlines()[0][:300]}")

    def _died(self, remote: Remote, exc: Exception) -> str:
        where = f"node {remote.node['ip']} ({remote.node['id'][:12]})" if remote.node else "its node"
        return f"{where} died or was cut off from the cluster ({type(exc).__name__}); its work there is lost"

    def _watch_nodes(self) -> None:
        """A node the cluster has marked dead ends its secondaries now, before Ray fails their tasks."""
        try:
            dead = {n["NodeID"] for n in self.ray.nodes() if not n.get("Alive")}
        except Exception:
            return
        for r in self.remotes:
            if r.active and r.node and r.node["id"] in dead:
                r.cancel()
                r.fail("crashed", "node_died", self._died(r, RuntimeError("marked dead by the cluster")))

    def stop(self, status: str, reason: str) -> None:
        """End every secondary still under way, its work kept: the run's stop key tells their tasks to end
        their agents (SIGINT, SIGKILL after STOP_GRACE) and send back what they did; a task that has not
        answered STOP_GRACE + 5 s later is cancelled."""
        if not any(r.active for r in self.remotes):
            return
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put

        key = STOP_KEY.format(run_id=self.remotes[0].spec.run_id)
        _signalled(lambda: _internal_kv_put(key, reason.encode()))
        try:
            self._drain(time.monotonic() + STOP_GRACE + 5)
            for r in self.remotes:
                r.cancel()
            self._drain(time.monotonic() + 5)
        finally:
            _internal_kv_del(key)
        for r in self.remotes:
            r.fail(status, "interrupted", reason)

    def _drain(self, deadline: float) -> None:
        while any(r.active for r in self.remotes) and time.monotonic() < deadline:
            running = {id(r.gen): r for r in self.remotes if r.active}
            for gen in self._wait([r.gen for r in running.values()], 0.5):
                self._next(running[id(gen)])

    def fetch(self, remote: Remote, repo_root: Path) -> Optional[str]:
        data = (remote.final or {}).get("bundle")
        if not data:
            return None
        return fetch_branch(repo_root, data, remote.spec.branch)


def _signalled(call: Callable):
    """call(), a blocking Ray call. Ray looks at signals while it blocks: the StopSignals handler (run.py)
    raising Interrupted there comes out as a SystemError around it, and is raised here as itself."""
    try:
        return call()
    except SystemError as exc:
        cause = exc.__cause__ or exc.__context__
        if cause is not None and not isinstance(cause, Exception):  # Interrupted (a BaseException)
            raise cause from None
        raise


def needs_of(profile) -> dict:
    """What a profile needs on a node: its programs, and the names of its key variables."""
    return {"programs": list(agents.programs(profile)), "vars": [profile.api_key_env] if profile.api_key_env else []}


def shareable_config(path: Optional[Path], mask: Callable[[str], str]) -> Optional[str]:
    """The --config file's text for the nodes, without a secret: a profile's `env:` variable whose value is
    one (a key) is left out, so the node's own is used (keys are provisioned on the nodes), and anything
    else that holds one is masked."""
    if path is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise OrchestraError(f"{path}: cannot read the config for the cluster's nodes: {exc.strerror or exc}") from None
    for body in ((data or {}).get("agents") or {}).values():
        env = body.get("env") if isinstance(body, dict) else None
        if isinstance(env, dict):
            body["env"] = {k: v for k, v in env.items() if not isinstance(v, str) or mask(v) == v}
    return mask(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


# -- a node's side ------------------------------------------------------------------------------------------------

def scratch_root() -> Path:
    return Path(tempfile.gettempdir()) / SCRATCH


def sweep() -> list[str]:
    """End what the dead tasks of earlier runs left on this node (found by their mark), remove their scratch."""
    ended: list[str] = []
    root = scratch_root()
    try:
        folders = list(root.iterdir())
    except OSError:
        return ended
    for folder in folders:
        try:
            owner = json.loads((folder / "owner").read_text())
        except (OSError, ValueError):
            owner = {}
        if owner and process_alive(owner.get("pid"), owner.get("started")):
            continue
        if not owner and time.time() - _mtime(folder) < 60:
            continue  # being made now
        ended += end_processes(marked_pids(CLUSTER_MARK, folder.name))
        shutil.rmtree(folder, ignore_errors=True)
    return ended


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _here() -> dict:
    import ray

    return {"id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address()}


def _look(needs: dict) -> dict:
    """On one node: which programs and variables each profile lacks here (names only), after a sweep."""
    ended = sweep()
    lacks = {}
    for name, need in needs.items():
        programs = [p for p in need["programs"] if not agents.which(p)]
        missing = [v for v in need["vars"] if not os.environ.get(v)]
        if programs or missing:
            lacks[name] = {"programs": programs, "vars": missing}
    here = _here()
    return {"node": here["id"], "ip": here["ip"], "lacks": lacks, "ended": ended}


def doctor_here(config_text: Optional[str]) -> dict:
    """On one node: `orchestra doctor` there, as its own process would print it."""
    here = _here()
    ended = sweep()
    with tempfile.TemporaryDirectory(prefix="orchestra-doctor-") as folder:
        argv = [sys.executable, "-m", "orchestra", "doctor"]
        if config_text is not None:
            (Path(folder) / "config.yaml").write_text(config_text)
            argv += ["--config", str(Path(folder) / "config.yaml")]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=folder, timeout=120)
    return {**here, "exit_code": done.returncode, "output": done.stdout + done.stderr, "ended": ended}


def secondary(spec: Spec, base: bytes):
    """The task (a generator: each yield a chunk the coordinator writes into the user's run folder)."""
    here = _here()
    sweep()
    folder = scratch_root() / f"{spec.run_id}.{spec.slot}"
    child: Optional[subprocess.Popen] = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "owner").write_text(json.dumps({"pid": os.getpid(), "started": process_started(os.getpid())}))
        yield {"node": here}
        missing = [v for v in spec.vars if not os.environ.get(v)]
        if missing:
            yield _final(here, spec, "failed", f"{', '.join(missing)} not set on node {here['ip']} (keys are provisioned "
                         "on the nodes)")
            return
        repo = folder / "repo"
        problem = _clone(folder, repo, base, spec)
        if problem:
            yield _final(here, spec, "failed", problem)
            return
        workdir = repo / spec.subdir
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "orchestra", "run", "--agent", spec.agent, "--task", spec.brief,
                "--workdir", str(workdir), "--no-tmux", "--json", *spec.run_args]
        if spec.config_text is not None:
            (folder / "config.yaml").write_text(spec.config_text)
            argv += ["--config", str(folder / "config.yaml")]
        out = open(folder / "out.json", "wb")
        child = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=open(folder / "err.txt", "wb"), start_new_session=True,
                                 env={**os.environ, CLUSTER_MARK: folder.name}, preexec_fn=_as_a_shell_would)
        out.close()
        reader = _Follow(repo, spec.agent)
        look_at = time.monotonic() + STOP_LOOK_EVERY
        try:
            while child.poll() is None:
                chunk = reader.chunk()
                if chunk:
                    yield chunk
                if time.monotonic() >= look_at:
                    look_at = time.monotonic() + STOP_LOOK_EVERY
                    if _stopped(spec.run_id):  # the coordinator stops the run: end the agent, keep its work
                        _stop(child, folder.name)
                        break
                time.sleep(STREAM_EVERY)
        except KeyboardInterrupt:  # ray.cancel: end the agent as Ctrl-C would, and go
            _stop(child, folder.name)
            raise
        chunk = reader.chunk()
        if chunk:
            yield chunk
        yield _result(here, folder, repo, spec)
    finally:
        if child is not None and child.poll() is None:
            _stop(child, folder.name)
        shutil.rmtree(folder, ignore_errors=True)


def _as_a_shell_would() -> None:
    """In the node's `orchestra run`, before its exec: the stop signals as a shell would start it with them (a
    Ray worker ignores or blocks some; both would be inherited, and SIGINT would not end the agent)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))


def _stopped(run_id: str) -> bool:
    from ray.experimental.internal_kv import _internal_kv_exists

    try:
        return bool(_internal_kv_exists(STOP_KEY.format(run_id=run_id)))
    except Exception:  # the GCS out of reach: the run goes on, its node's death is the coordinator's to see
        return False


def _stop(child: subprocess.Popen, mark: str) -> None:
    """SIGINT to the node's `orchestra run` (it ends its agent, as Ctrl-C would), SIGKILL after STOP_GRACE;
    then whatever still carries the secondary's mark."""
    try:
        os.killpg(child.pid, signal.SIGINT)
        child.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        pass
    end_processes(marked_pids(CLUSTER_MARK, mark))


def _clone(folder: Path, repo: Path, base: bytes, spec: Spec) -> Optional[str]:
    (folder / "base.bundle").write_bytes(base)
    done = git(folder, "init", "-q", str(repo))
    if done.returncode != 0:
        return f"git init failed on the node: {done.stderr.strip()}"
    ref = f"refs/orchestra/{spec.run_id}/base"
    for args in (("fetch", "-q", str(folder / "base.bundle"), f"{ref}:{BASE_REF}"),
                 ("checkout", "-q", "-b", spec.branch, spec.base_commit)):
        done = git(repo, *args)
        if done.returncode != 0:
            return f"git {args[0]} of the base bundle failed on the node: {done.stderr.strip()}"
    (folder / "base.bundle").unlink()
    return None


class _Follow:
    """The node's `orchestra run`: what its transcript and live record say that was not sent yet."""

    def __init__(self, repo: Path, agent: str):
        self.runs = repo / ".orchestra" / "runs"
        self.cast = f"{agent}.cast"  # `orchestra run` names its agent's window, and transcript, for its profile
        self.sent = 0
        self.agent: Optional[dict] = None

    def chunk(self) -> Optional[dict]:
        folders = list(self.runs.glob("*/run.json")) if self.runs.is_dir() else []
        if not folders:
            return None
        run_dir = folders[0].parent
        chunk: dict = {}
        try:
            with open(run_dir / self.cast, "rb") as fh:
                fh.seek(self.sent)
                data = fh.read()
        except OSError:
            data = b""
        if data:
            cut = data.rfind(b"\n") + 1  # whole lines only: the coordinator's copy is valid at every moment
            if cut:
                chunk["cast"] = data[:cut]
                self.sent += cut
        try:
            record = json.loads(folders[0].read_text())
            agent = (record.get("secondaries") or [None])[0]
        except (OSError, ValueError):
            agent = None
        if isinstance(agent, dict) and agent != self.agent:
            self.agent = chunk["agent"] = agent
        return chunk or None


def _recorded(repo: Path) -> Optional[dict]:
    """The agent's summary in the node's final run record (an `orchestra run` ended by a signal)."""
    for path in (repo / ".orchestra" / "runs").glob("*/run.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        agents = record.get("secondaries") or []
        if record.get("status") != "running" and agents and isinstance(agents[0], dict):
            return agents[0]
    return None


def _final(here: dict, spec: Spec, status: str, reason: str) -> dict:
    return {"final": True, "node": here, "bundle": None,
            "summary": {"status": status, "reason": reason, "agent": spec.agent,
                        "ended_by": {"signal": "exit", "pattern": None, "line": None, "decided_ms": None}}}


def _result(here: dict, folder: Path, repo: Path, spec: Spec) -> dict:
    try:
        summary = json.loads((folder / "out.json").read_text())
    except (OSError, ValueError):  # stopped (it prints no summary then), or failed: its record, if it has one
        summary = _recorded(repo)
    if summary is None:
        err = (folder / "err.txt").read_text(errors="replace").strip().splitlines()
        final = _final(here, spec, "failed", f"orchestra run failed on node {here['ip']}: "
                                       f"{err[-1] if err else 'no output'}")
    if summary is not None:
        summary.pop("run_id", None)
        summary.pop("merges", None)
        summary["agent"] = spec.agent
        final = {"final": True, "node": here, "summary": summary, "bundle": None}
    message = f"orchestra: {spec.agent} ({final['summary']['status']}): {' '.join(spec.brief.split())[:72]}" \
              f"\n\nrun {spec.run_id}"
    identity = [] if git(repo, "config", "user.email").stdout.strip() else IDENTITY
    _, problem = commit_all(repo, spec.base_commit, spec.ignore, message, identity)
    if problem:
        final["problem"] = problem
    count = git(repo, "rev-list", "--count", f"{spec.base_commit}..{spec.branch}")
    if count.returncode == 0 and int(count.stdout.strip() or 0):
        bundle = folder / "back.bundle"
        done = git(repo, "bundle", "create", "-q", str(bundle), f"{spec.base_commit}..{spec.branch}")
        if done.returncode == 0:
            final["bundle"] = bundle.read_bytes()
        else:
            final["problem"] = f"git could not bundle the branch on the node: {done.stderr.strip()}"
    return final
