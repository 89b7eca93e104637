"""Secondaries on a Ray cluster: a 3-node cluster on this machine (ray.cluster_utils.Cluster), its nodes told
apart by custom resources (node0 the head, node1 and node2 the workers, which alone have `worker`), started
once for the module and shut down after it.

Each test runs `orchestra delegate --cluster ADDRESS` as a user would, in a temporary git repository, and asks
git, the run folder and the process table what came of it. In CI (CI=true) a missing Ray fails the module.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from conftest import TOY, git, needs_git, new_repo, orchestra
from tests.support.ci import in_ci

pytestmark = needs_git

MB = 1024 * 1024
# set in the nodes' environment only (keys are provisioned on the nodes): aider's key, for the real agent
NODE_KEYS = {"OPENAI_API_KEY": "sk-orchestra-test-key-0123456789"}
OPENAI_TEST_KEY = NODE_KEYS["OPENAI_API_KEY"]


class LocalCluster:
    def __init__(self):
        from ray.cluster_utils import Cluster

        from orchestra.cluster import FAST_DETECTION

        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "resources": {"node0": 1}, "object_store_memory": 80 * MB, "include_dashboard": False,
            "_system_config": FAST_DETECTION})
        self.workers = [self.add_worker(n) for n in (1, 2)]
        self.cluster.wait_for_nodes()
        self.address = self.cluster.address

    def add_worker(self, n: int):
        return self.cluster.add_node(num_cpus=2, resources={f"node{n}": 1, "worker": 1}, object_store_memory=80 * MB)

    def node_of(self, node_id: str):
        return next(n for n in self.workers if n.node_id == node_id)

    def replace(self, node) -> None:
        """Remove a worker node at once (its raylet killed: the node dies), and add a fresh one like it."""
        n = self.workers.index(node) + 1
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers[n - 1] = self.add_worker(n)
        self.cluster.wait_for_nodes()


def need_ray() -> None:
    """Ray, or a skip saying how to add it; in CI a failure."""
    try:
        import ray  # noqa: F401
    except ImportError:
        message = "Ray is not installed: pip install -e '.[ray]' (scripts/test does)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def cluster():
    need_ray()
    # Ray's sessions (logs, sockets, its address file) in a folder of the module's own, removed after it
    # (RAY_TMPDIR: the cluster's processes and the drivers the tests start read it); a short path: a socket's
    # is bounded (108 bytes)
    ray_tmp = tempfile.mkdtemp(prefix="orch-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    saved_tmp = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = ray_tmp
    saved = {name: os.environ.get(name) for name in NODE_KEYS}
    os.environ.update(NODE_KEYS)  # the nodes' processes inherit them; the tests' commands do not get them
    try:
        c = LocalCluster()
    except BaseException:
        restore({"RAY_TMPDIR": saved_tmp})
        shutil.rmtree(ray_tmp, ignore_errors=True)
        raise
    finally:
        restore(saved)
    try:
        yield c
    finally:
        c.cluster.shutdown()
        restore({"RAY_TMPDIR": saved_tmp})
        shutil.rmtree(ray_tmp, ignore_errors=True)
    left = [p.name for p in scratch().iterdir()] if scratch().is_dir() else []
    assert not [name for name in left if name.startswith(tuple(STARTED))], left
    if scratch().is_dir() and not left:
        scratch().rmdir()


def restore(saved: dict) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


STARTED: list[str] = []  # the run ids this module started: none may leave a scratch folder on a node


def scratch() -> Path:
    from orchestra.cluster import scratch_root

    return scratch_root()


@pytest.fixture
def repo(tmp_path):
    return new_repo(tmp_path / "repo")


def toy(*args, **fields):
    body = {"command": [sys.executable, str(TOY), "--task", "{task}", *args], "timeout": 30, "linger": 0.3,
            "kill_grace": 1, "completion": "^DONE"}
    body.update(fields)
    return body


def config(tmp_path, **agents) -> Path:
    path = tmp_path / "orchestra.yaml"
    path.write_text(yaml.safe_dump({"agents": agents}))
    return path


def delegate(c, repo, cfg, *args, timeout=120):
    done = orchestra("delegate", "--config", str(cfg), "--cluster", c.address, "--no-analyze", "--no-tmux", "--json",
                     *args, cwd=repo, timeout=timeout)
    assert done.stdout.strip().startswith("{"), done.stderr
    run = json.loads(done.stdout)
    STARTED.append(run["run_id"])
    return done, run


def start(c, repo, cfg, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--cluster", c.address,
                             "--no-analyze", "--no-tmux", "--json", *args], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@contextmanager
def ended_after(proc: subprocess.Popen):
    """A run under way for the block; killed at its end if it is still going (a failed wait, a timeout)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def live(repo) -> dict:
    """The newest run's record as it is now ({} before there is one)."""
    runs = repo / ".orchestra" / "runs"
    found = sorted(runs.glob("*/run.json")) if runs.is_dir() else []
    try:
        return json.loads(found[-1].read_text()) if found else {}
    except ValueError:  # (never half-written: replaced whole; a read racing a first write)
        return {}


def wait_for(predicate, timeout: float = 60, seen=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out; {seen()}"
        time.sleep(0.05)


def working(repo, n: int):
    """The live record once n secondaries are at work on their nodes (each has said its first line)."""
    record = live(repo)
    agents = record.get("secondaries") or []
    if len(agents) == n and all(a.get("node") and a.get("latest") for a in agents):
        return record
    return None


def left_on_nodes(run_id: str) -> list[int]:
    """The processes a run's secondaries started on the nodes (all on this machine here), by their mark."""
    from orchestra.cluster import CLUSTER_MARK
    from orchestra.procs import marked, process_alive

    return [pid for pid in marked(CLUSTER_MARK, f"{run_id}.", prefix=True) if process_alive(pid)]


def scratch_of(run_id: str) -> list[str]:
    return [p.name for p in scratch().glob(f"{run_id}.*")] if scratch().is_dir() else []


def test_two_secondaries_on_two_nodes_come_back_as_branches_the_merge_report_reads(tmp_path, repo, cluster):
    cfg = config(tmp_path, a=toy("--files", "a.py"), b=toy("--files", "src/b.py"))
    start_commit = git(repo, "rev-parse", "HEAD")
    # worker=1 each: the two workers have one each, so the two secondaries run on different nodes
    done, run = delegate(cluster, repo, cfg, "--to", "a", "--to", "b", "--task", "t",
                         "--cluster-resources", "cpu=0.5,worker=1")
    assert done.returncode == 0, done.stderr
    rid = run["run_id"]
    assert run["status"] == "completed" and [s["status"] for s in run["secondaries"]] == ["completed", "completed"]
    nodes = [s["node"]["id"] for s in run["secondaries"]]
    assert len(set(nodes)) == 2 and set(nodes) == {n.node_id for n in cluster.workers}
    for s, name in zip(run["secondaries"], ("a.py", "src/b.py")):
        assert s["branch"] == f"orchestra/{rid}/{s['agent']}" and s["files_modified"] == [name]
        assert git(repo, "show", f"{s['branch']}:{name}") == "# written for: t"  # fetched from the node's bundle
        assert git(repo, "rev-parse", f"{s['branch']}~1") == start_commit
        # the transcript streamed into the user's run folder, valid asciicast, the agent's own output in it
        cast = (repo / s["transcript"]).read_text().splitlines()
        assert s["transcript"] == f".orchestra/runs/{rid}/{s['role']}.cast"
        assert json.loads(cast[0])["version"] == 2 and any(f"modified: {name}" in json.loads(e)[2] for e in cast[1:])
    assert [(m["agent"], m["commits"], m["merges_cleanly"], m["merged"]) for m in run["merges"]] == [
        ("a", 1, True, False), ("b", 1, True, False)]
    assert git(repo, "rev-parse", "HEAD") == start_commit and git(repo, "status", "--porcelain") == ""
    assert not (repo / ".orchestra" / "worktrees").exists()  # nothing was checked out here
    shown = orchestra("show", rid, cwd=repo)
    assert shown.returncode == 0 and f"orchestra/{rid}/a" in shown.stdout
    assert f"node: {run['secondaries'][0]['node']['ip']} ({nodes[0][:12]})" in shown.stdout
    assert not left_on_nodes(rid) and not scratch_of(rid)


def test_four_secondaries_spread_over_the_three_nodes_and_merge(tmp_path, repo, cluster):
    agents = {f"w{i}": toy("--files", f"part{i}.py") for i in range(4)}
    cfg = config(tmp_path, **agents)
    done, run = delegate(cluster, repo, cfg, *sum((["--to", name] for name in agents), []), "--task", "four parts",
                         "--cluster-resources", "cpu=0.5", "--merge")
    assert done.returncode == 0, done.stderr
    assert [s["status"] for s in run["secondaries"]] == ["completed"] * 4
    assert len({s["node"]["id"] for s in run["secondaries"]}) == 3  # spread: every node has some
    assert all(m["merged"] for m in run["merges"])
    for i in range(4):
        assert (repo / f"part{i}.py").read_text() == "# written for: four parts\n"  # merged into main
    assert not left_on_nodes(run["run_id"]) and not scratch_of(run["run_id"])


def test_a_real_aider_on_a_node_commits_its_work_on_the_branch(tmp_path, cluster):
    from orchestra.config import SHIPPED_CONFIG
    from tests.support.agents import aider_setup, find_agent, init_git_repo
    from tests.support.ci import missing_reason
    from tests.support.model_script import aider_whole_file_rules
    from tests.support.model_server import ModelServer

    if find_agent("aider") is None:
        if in_ci():
            pytest.fail(missing_reason(["aider"]))
        pytest.skip(missing_reason(["aider"]))
    repo = init_git_repo(tmp_path / "repo")
    (repo / "models").mkdir()
    (repo / "models" / "user.py").write_text("")  # aider edits the files it is given
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "start")
    user_py = "class User:\n    def __init__(self, name: str) -> None:\n        self.name = name\n"
    with ModelServer(aider_whole_file_rules("models/user.py", user_py, "Here is the model.")) as srv:
        setup = aider_setup(tmp_path / "home-aider", repo, f"{srv.url}/v1")
        cfg = yaml.safe_load(SHIPPED_CONFIG.read_text())
        aider = cfg["agents"]["aider"]
        env = {k: v for k, v in setup.env.items() if k not in ("PATH", "LANG", "USER", "LOGNAME", "SHELL")}
        env.update({"AIDER_MODEL": "openai/gpt-4o-mini", "AIDER_EDIT_FORMAT": "whole",
                    "AIDER_MODEL_METADATA_FILE": str(tmp_path / "home-aider" / "aider-model-metadata.json")})
        env.pop("OPENAI_API_KEY")  # provisioned on the nodes (the fixture's NODE_KEYS), never sent
        aider.update(env={**aider.get("env", {}), **env}, timeout=120, command=aider["command"] + ["models/user.py"])
        path = tmp_path / "orchestra.yaml"
        path.write_text(yaml.safe_dump({"agents": {"aider": aider}}, allow_unicode=True))
        done, run = delegate(cluster, repo, path, "--to", "aider", "--task", "Add a User model", timeout=240)
        asked = srv.requests.snapshot()
    assert done.returncode == 0, (run["reason"], done.stderr)
    s = run["secondaries"][0]
    assert s["agent"] == "aider" and s["status"] == "completed" and s["node"]["id"]
    assert s["files_modified"] == ["models/user.py"] and s["cost_source"] == "reported"
    assert git(repo, "show", f"{s['branch']}:models/user.py") + "\n" == user_py
    assert "feat: add models/user.py" in git(repo, "log", "--format=%s", f"main..{s['branch']}")  # aider's commit
    assert asked, "aider never reached the model server"
    assert OPENAI_TEST_KEY not in (repo / s["transcript"]).read_text()


def test_a_node_removed_mid_run_ends_its_secondary_as_node_died_while_the_other_completes(tmp_path, repo, cluster):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    cfg = config(tmp_path, stuck=toy("--files", "stuck.py", "--hang"), other=toy("--files", "other.py",
                                                                                    "--wait-fifo", str(gate)))
    proc = start(cluster, repo, cfg, "--to", "stuck", "--to", "other", "--task", "t",
                 "--cluster-resources", "cpu=0.5,worker=1")
    with ended_after(proc):
        record = wait_for(lambda: working(repo, 2), seen=lambda: live(repo))
        STARTED.append(record["run_id"])
        stuck = record["secondaries"][0]
        owner = json.loads((scratch() / f"{record['run_id']}.secondary-1" / "owner").read_text())["pid"]
        # the node's machine vanishes: its task's worker gets no chance to end what it started (SIGKILL),
        # then its raylet dies
        os.kill(owner, signal.SIGKILL)
        cluster.replace(cluster.node_of(stuck["node"]["id"]))
        with open(gate, "w"):  # the other goes on once its node's stuck neighbour is gone
            pass
        out, err = proc.communicate(timeout=120)
    run = json.loads(out)
    first, second = run["secondaries"]
    assert first["status"] == "crashed" and first["ended_by"]["signal"] == "node_died", first
    assert "died or was cut off" in first["reason"] and first["node"]["id"] == stuck["node"]["id"]
    assert second["status"] == "completed" and git(repo, "show", f"{second['branch']}:other.py")
    assert run["status"] == "partial" and "stuck (secondary-1) crashed" in run["reason"]
    assert proc.returncode != 0
    # the dead node's agent went on (its task's worker is gone): the next use of a node ends it by its mark
    assert left_on_nodes(run["run_id"])
    doctor = orchestra("cluster", "doctor", "--cluster", cluster.address, "--config", str(cfg), "--json", cwd=repo,
                       timeout=120)
    nodes = json.loads(doctor.stdout)
    assert len(nodes) == 3 and any(n["ended"] for n in nodes), doctor.stderr
    assert not left_on_nodes(run["run_id"]) and not scratch_of(run["run_id"])


def test_cancel_ends_the_remote_agents(tmp_path, repo, cluster):
    pids = [tmp_path / "pid-a", tmp_path / "pid-b"]
    cfg = config(tmp_path, a=toy("--files", "a.py", "--hang", "--pidfile", str(pids[0])),
                 b=toy("--files", "b.py", "--hang", "--pidfile", str(pids[1])))
    started = orchestra("delegate", "--config", str(cfg), "--cluster", cluster.address, "--no-analyze", "--no-tmux",
                        "--json", "--detach", "--to", "a", "--to", "b", "--task", "t", cwd=repo, timeout=60)
    assert started.returncode == 0, started.stderr
    rid = json.loads(started.stdout)["run_id"]
    STARTED.append(rid)
    wait_for(lambda: working(repo, 2), seen=lambda: live(repo))
    agents = [int(p.read_text().split()[0]) for p in pids]
    assert len(left_on_nodes(rid)) >= 4  # each node's `orchestra run` and its agent
    cancelled = orchestra("cancel", rid, cwd=repo, timeout=60)
    assert cancelled.returncode != 0 or "interrupted" in cancelled.stdout, cancelled.stderr
    record = json.loads(orchestra("show", rid, "--json", cwd=repo).stdout)
    assert record["status"] == "interrupted"
    assert [s["status"] for s in record["secondaries"]] == ["interrupted", "interrupted"]
    for s, name in zip(record["secondaries"], ("a.py", "b.py")):  # what they did is kept, as a local one's
        assert git(repo, "show", f"{s['branch']}:{name}") == "# written for: t"
    from orchestra.procs import process_alive

    assert not any(process_alive(pid) for pid in agents)
    assert not left_on_nodes(rid) and not scratch_of(rid)


def test_the_web_page_and_mcp_read_a_cluster_run_as_it_goes_and_once_done(tmp_path, repo, cluster):
    from test_mcp import RawServer
    from test_web import TOKEN, WebServer, get

    gate = tmp_path / "gate"
    os.mkfifo(gate)
    cfg = config(tmp_path, a=toy("--files", "a.py", "--wait-fifo", str(gate)), b=toy("--files", "b.py"))
    started = orchestra("delegate", "--config", str(cfg), "--cluster", cluster.address, "--no-analyze", "--no-tmux",
                        "--json", "--detach", "--to", "a", "--to", "b", "--task", "t", cwd=repo, timeout=60)
    assert started.returncode == 0, started.stderr
    rid = json.loads(started.stdout)["run_id"]
    STARTED.append(rid)
    web = WebServer(repo, "--token", TOKEN)
    mcp = RawServer(repo, cfg)
    try:
        wait_for(lambda: working(repo, 2), seen=lambda: live(repo))
        status, body = get(f"{web.base}/api/run/{rid}?token={TOKEN}")
        run = json.loads(body)
        assert status == 200 and run["status"] == "running"
        assert [a["role"] for a in run["secondaries"]] == ["secondary-1", "secondary-2"]
        assert all(a["node"]["id"] for a in run["secondaries"])
        status, cast = get(f"{web.base}/cast/{rid}/secondary-1.cast?token={TOKEN}")
        assert status == 200 and "working on: t" in cast  # streamed from the node as it works
        mcp.initialize()
        reply = mcp.answer(mcp.send("tools/call", {"name": "status", "arguments": {"run_id": rid}}))
        live_runs = reply["result"]["structuredContent"]["runs"]
        assert live_runs[0]["status"] == "running" and len(live_runs[0]["agents"]) == 2
        with open(gate, "w"):
            pass
        waited = orchestra("wait", rid, "--json", "--timeout", "60", cwd=repo, timeout=90)
        assert json.loads(waited.stdout)["status"] == "completed", waited.stdout
        run = json.loads(get(f"{web.base}/api/run/{rid}?token={TOKEN}")[1])
        assert run["status"] == "completed" and all(a["node"] for a in run["secondaries"])
        reply = mcp.answer(mcp.send("tools/call", {"name": "result", "arguments": {"run_id": rid}}))
        assert reply["result"]["structuredContent"]["status"] == "completed"
        assert f"orchestra/{rid}/a" in json.dumps(reply["result"]["structuredContent"])
    finally:
        mcp.close()
        web.stop()


def test_a_key_a_node_lacks_is_named_before_anything_starts(tmp_path, repo, cluster):
    cfg = config(tmp_path, keyed=toy("--files", "a.py", api_key_env="ORCHESTRA_CLUSTER_ABSENT_KEY"))
    env = {**os.environ, "ORCHESTRA_CLUSTER_ABSENT_KEY": "set-here-only-0123456789"}  # here, not on the nodes
    done = subprocess.run([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--cluster",
                           cluster.address, "--no-analyze", "--no-tmux", "--to", "keyed", "--task", "t"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "ORCHESTRA_CLUSTER_ABSENT_KEY is not set" in done.stderr and "on node" in done.stderr
    assert "Traceback" not in done.stderr and not (repo / ".orchestra" / "runs").exists()


def test_cluster_without_ray_says_how_to_add_it(tmp_path, repo):
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    cfg = config(tmp_path, a=toy())
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    done = subprocess.run([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--cluster", "auto",
                           "--no-analyze", "--to", "a", "--task", "t"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "❌ --cluster needs Ray: pip install 'orchestra[ray]' (on this machine and on every node)"


def test_cluster_resources_and_the_config_section_are_read_or_refused_clearly(tmp_path):
    from orchestra.cluster import Resources
    from orchestra.config import load_config
    from orchestra.errors import OrchestraError

    r = Resources.parse("cpu=2, memory=4G, gpu_box=1")
    assert r.options() == {"num_cpus": 2.0, "memory": 4 * 1024 ** 3, "resources": {"gpu_box": 1.0}}
    assert Resources.parse(None).options() == {"num_cpus": 1.0}
    with pytest.raises(OrchestraError, match="'cpu' is not NAME=NUMBER"):
        Resources.parse("cpu")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"agents": {"a": toy()}, "cluster": {"address": "auto", "resources": "cpu=2"}}))
    cfg = load_config(str(path))
    assert (cfg.cluster, cfg.cluster_resources) == ("auto", "cpu=2")
    path.write_text(yaml.safe_dump({"agents": {"a": toy()}, "cluster": ["x"]}))
    with pytest.raises(OrchestraError, match="cluster: expected a Ray address"):
        load_config(str(path))


def test_the_config_a_node_is_sent_holds_no_key(tmp_path):
    from orchestra.cluster import shareable_config
    from orchestra.redact import Redactor

    key = "sk-live-key-that-must-stay-here-0123456789"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"agents": {"a": toy(env={"OPENAI_API_KEY": key, "HOME": "/home/agent"},
                                                        api_key_env="OPENAI_API_KEY")}}))
    sent = shareable_config(path, Redactor([key]).text)
    assert key not in sent
    agent = yaml.safe_load(sent)["agents"]["a"]
    assert agent["env"] == {"HOME": "/home/agent"}  # the node's own OPENAI_API_KEY is used, never this one
    assert agent["api_key_env"] == "OPENAI_API_KEY"  # only its name travels


def test_checks_run_on_the_node_and_again_on_the_merged_checkout(tmp_path, repo, cluster):
    cfg = config(tmp_path, a=toy("--files", "a.py"), b=toy("--files", "b.py"))
    check = "test -f a.py -o -f b.py"
    done, run = delegate(cluster, repo, cfg, "--to", "a", "--to", "b", "--task", "t", "--cluster-resources", "cpu=0.5",
                         "--check", f"sh -c '{check}'", "--merge")
    assert done.returncode == 0, done.stderr
    for s in run["secondaries"]:  # run on the node, in the secondary's clone
        assert s["verified"] is True and s["checks"][0]["exit_code"] == 0 and s["workdir"].startswith(str(scratch()))
    assert [c["exit_code"] for c in run["merged_checks"]] == [0] and run["verified"] is True
    assert (repo / "a.py").exists() and (repo / "b.py").exists()


def test_a_cluster_that_cannot_be_reached_is_said_at_once(tmp_path, repo):
    need_ray()
    cfg = config(tmp_path, a=toy())
    with __import__("socket").socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = orchestra("delegate", "--config", str(cfg), "--cluster", f"127.0.0.1:{port}", "--no-analyze", "--to", "a",
                     "--task", "t", cwd=repo, timeout=60)
    assert done.returncode == 2 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in done.stderr
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--cluster", "auto",
                           "--no-analyze", "--to", "a", "--task", "t"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--cluster auto: RAY_ADDRESS is not set" in done.stderr
    assert "Traceback" not in done.stderr and not (repo / ".orchestra" / "runs").exists()


def test_a_cluster_secondary_is_watched_in_its_tmux_window_here(tmp_path, repo, cluster, tmux_sessions):
    from conftest import wait_for_pane

    gate = tmp_path / "gate"
    os.mkfifo(gate)
    cfg = config(tmp_path, a=toy("--files", "a.py", "--line", "halfway there", "--wait-fifo", str(gate)))
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--cluster",
                             cluster.address, "--no-analyze", "--json", "--to", "a", "--task", "t"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with ended_after(proc):
        record = wait_for(lambda: working(repo, 1), seen=lambda: live(repo))
        STARTED.append(record["run_id"])
        tmux_sessions.append(record["tmux_session"])
        target = record["secondaries"][0]["tmux_target"]
        assert target == f"{record['tmux_session']}:secondary-1"
        wait_for_pane(target, "halfway there", timeout=30)  # the node's output, streamed into the window here
        with open(gate, "w"):
            pass
        out, err = proc.communicate(timeout=120)
    run = json.loads(out)
    assert run["secondaries"][0]["status"] == "completed" and run["secondaries"][0]["tmux_target"] == target
    wait_for_pane(target, "[orchestra: a on the cluster: completed]", timeout=30)
