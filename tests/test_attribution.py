"""Whose files: a run lists as its agent's only what it can prove, however many others write in the directory.

Two `orchestra run --detach` in one repository at once, a "primary" (the test) editing files while a
secondary works, and --isolate (a worktree and branch of its own). The agents are the toy agent
(tests/agents/toy_agent.py): with a `parse: files` pattern it names every file it writes, as the
JSON agents' tool calls do; without one it names none, as a --cmd program or a TUI's screen.
Each agent writes its file, then blocks on a FIFO until the test lets it finish: the runs overlap.
"""
from __future__ import annotations

import json
import os
import sys

import pytest
import yaml

from conftest import TOY, git, needs_git, new_repo, orchestra, tmux
from test_faults import wait_for_file
from test_mcp import RawServer, release, runs_of

from orchestra.delegate import summary_block
from orchestra.summary import AgentSummary

pytestmark = needs_git

OTHERS = "also changed while it ran, by someone else or by a command it ran"  # how the rest is shown
NAMES_FILES = {"files": r"^modified: (\S+)"}  # the toy's report of each file it writes


@pytest.fixture
def repo(tmp_path):
    path = new_repo(tmp_path / "repo")
    yield path
    for run_id in runs_of(path):  # the MCP server's runs have tmux sessions
        tmux("kill-session", "-t", f"=orchestra-{run_id}")


@pytest.fixture
def gates(tmp_path):
    """FIFOs the toy agents block on once their files are written; whatever happens, none stays blocked."""
    made: dict = {}

    def gate(name: str):
        if name not in made:
            made[name] = tmp_path / f"gate-{name}"
            os.mkfifo(made[name])
        return made[name]

    yield gate
    for path in made.values():
        release(path)


def agent(file: str, gate=None, names_files: bool = True, start=None) -> dict:
    """A toy agent that writes `file` (once `start` is opened, if given), then waits for `gate` (if given)."""
    body = {"command": [sys.executable, str(TOY), "--task", "{task}", "--files", file,
                        *(["--wait-fifo", str(start)] if start else []),
                        *(["--files-then-wait-fifo", str(gate)] if gate else [])],
            "completion": "^DONE", "timeout": 30, "linger": 0.3, "kill_grace": 1}
    if names_files:
        body["parse"] = NAMES_FILES
    return body


def config(tmp_path, **agents) -> str:
    path = tmp_path / "orchestra.yaml"  # outside the repository: not part of anyone's work
    path.write_text(yaml.safe_dump({"agents": agents, "routing": {"rules": [], "default": next(iter(agents))}}))
    return str(path)


def detached_run(repo, cfg, name: str) -> str:
    started = orchestra("run", "--agent", name, "--task", "t", "--config", cfg, "--no-tmux", "--detach", "--json",
                        cwd=repo)
    assert started.returncode == 0, started.stderr
    return json.loads(started.stdout)["run_id"]


def waited(repo, run_id: str) -> dict:
    done = orchestra("wait", run_id, "--timeout", "60", "--json", cwd=repo, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["secondaries"][0]


def overlap(repo, gates, first: str, second: str) -> None:
    """Both agents at work (each open of a start FIFO waits for its agent to open it; both are closed
    only then: neither writes before both runs have looked at the repository), then both write their
    files, then both finish."""
    held = [os.open(gates(f"start-{name}"), os.O_WRONLY) for name in (first, second)]
    for fd in held:
        os.close(fd)
    wait_for_file(repo / "a.py")
    wait_for_file(repo / "b.py")
    for name in (first, second):
        release(gates(name), wait=True)


def test_two_runs_at_once_in_one_directory_each_list_only_their_own_agents_file(tmp_path, repo, gates):
    cfg = config(tmp_path, a=agent("a.py", gates("a"), start=gates("start-a")),
                 b=agent("b.py", gates("b"), start=gates("start-b")))
    run_a = detached_run(repo, cfg, "a")
    run_b = detached_run(repo, cfg, "b")
    overlap(repo, gates, "a", "b")
    a, b = waited(repo, run_a), waited(repo, run_b)
    assert (a["files_modified"], a["files_changed_by_others"]) == (["a.py"], ["b.py"])
    assert (b["files_modified"], b["files_changed_by_others"]) == (["b.py"], ["a.py"])
    assert a["runs_alongside"] == [run_b] and b["runs_alongside"] == [run_a]
    shown = orchestra("show", run_a, cwd=repo).stdout
    assert "• a.py" in shown and f"{OTHERS}: b.py" in shown and "• b.py" not in shown, shown


def test_an_agent_that_names_no_files_gets_gits_list_and_is_told_of_the_run_alongside(tmp_path, repo, gates):
    cfg = config(tmp_path, quiet=agent("a.py", gates("a"), names_files=False, start=gates("start-a")),
                 b=agent("b.py", gates("b"), start=gates("start-b")))
    run_a = detached_run(repo, cfg, "quiet")
    run_b = detached_run(repo, cfg, "b")
    overlap(repo, gates, "a", "b")
    quiet, b = waited(repo, run_a), waited(repo, run_b)
    # git's list is all there is for it: b's file is in it, and the summary says it may be
    assert quiet["files_modified"] == ["a.py", "b.py"] and quiet["files_changed_by_others"] == []
    assert "names no files" in quiet["files_note"] and f"run {run_b} worked in this directory" in quiet["files_note"]
    assert (b["files_modified"], b["files_changed_by_others"], b["files_note"]) == (["b.py"], ["a.py"], "")
    assert quiet["files_note"] in orchestra("show", run_a, cwd=repo).stdout


def test_a_file_the_primary_edits_while_the_secondary_works_is_not_the_secondarys(tmp_path, repo, gates):
    """The MCP flow: the primary delegates, goes on editing while it waits, then wait() gives the summary."""
    gate = gates("w")
    server = RawServer(repo, config(tmp_path, worker=agent("a.py", gate)))
    try:
        server.initialize()
        reply = server.answer(server.send("tools/call", {"name": "delegate", "arguments": {
            "task": "make a.py", "to": "worker", "wait_s": 0}}))["result"]
        run_id = reply["structuredContent"]["run_id"]
        wait_for_file(repo / "a.py")
        (repo / "notes.md").write_text("the primary's own file\n")  # the primary at work meanwhile
        (repo / "README.md").write_text("# project, edited by the primary\n")
        release(gate, wait=True)
        reply = server.answer(server.send("tools/call", {"name": "wait", "arguments": {
            "run_id": run_id, "wait_s": 60}}))["result"]
    finally:
        server.close()
    data = reply["structuredContent"]["agents"][0]
    assert data["files_modified"] == ["a.py"]
    assert data["files_changed_by_others"] == ["README.md", "notes.md"]
    text = reply["content"][0]["text"]
    assert "files modified (1): a.py" in text and f"{OTHERS} (2): README.md, notes.md" in text, text


def test_run_isolate_works_in_a_worktree_and_lists_exactly_its_files_and_its_branch(tmp_path, repo, gates):
    gate = gates("w")
    # an agent that names no files: in its own worktree, git's list is its work and nothing else
    cfg = config(tmp_path, quiet=agent("a.py", gate, names_files=False))
    start = git(repo, "rev-parse", "HEAD")
    run_id = json.loads(orchestra("run", "--agent", "quiet", "--task", "t", "--config", cfg, "--no-tmux", "--isolate",
                                  "--detach", "--json", cwd=repo).stdout)["run_id"]
    tree = repo / ".orchestra" / "worktrees" / run_id / "quiet"
    wait_for_file(tree / "a.py")
    (repo / "notes.md").write_text("yours, meanwhile\n")
    release(gate, wait=True)
    done = orchestra("wait", run_id, "--timeout", "60", "--json", cwd=repo, timeout=90)
    record = json.loads(done.stdout)
    a = record["secondaries"][0]
    branch = f"orchestra/{run_id}/quiet"
    assert (a["files_modified"], a["files_changed_by_others"], a["files_note"]) == (["a.py"], [], "")
    assert a["branch"] == branch and a["workdir"] == str(tree)
    assert [(m["branch"], m["files"], m["commits"], m["merges_cleanly"]) for m in record["merges"]] == \
        [(branch, ["a.py"], 1, True)]
    assert record["base"] == {"branch": "main", "commit": start}
    assert git(repo, "show", f"{branch}:a.py") == "# written for: t"  # its work, committed on its branch
    # the user's checkout: the same commit, and only what the user wrote
    assert git(repo, "rev-parse", "HEAD") == start and not (repo / "a.py").exists()
    assert git(repo, "status", "--porcelain") == "?? notes.md"
    shown = orchestra("show", run_id, cwd=repo).stdout
    assert f"branch: {branch}" in shown and f"🌿 {branch}: merges cleanly" in shown, shown
    orchestra("clean", run_id, cwd=repo)


def test_delegate_isolate_with_merge_merges_its_branch_into_the_checkout(tmp_path, repo):
    cfg = config(tmp_path, quiet=agent("a.py", names_files=False))
    done = orchestra("delegate", "--to", "quiet", "--no-analyze", "--task", "t", "--config", cfg, "--no-tmux",
                     "--isolate", "--merge", "--json", cwd=repo)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    branch = f"orchestra/{record['run_id']}/quiet"
    assert record["secondaries"][0]["branch"] == branch and record["secondaries"][0]["files_modified"] == ["a.py"]
    assert [(m["branch"], m["merged"]) for m in record["merges"]] == [(branch, True)]
    assert (repo / "a.py").read_text() == "# written for: t\n"
    assert git(repo, "log", "-1", "--format=%s") == f"orchestra: merge {branch} (quiet)"
    orchestra("clean", record["run_id"], cwd=repo)


def test_mcp_delegate_with_isolate_works_on_a_branch_of_its_own(tmp_path, repo):
    server = RawServer(repo, config(tmp_path, worker=agent("a.py")))
    try:
        server.initialize()
        tools = {t["name"]: t for t in server.answer(server.send("tools/list"))["result"]["tools"]}
        assert tools["delegate"]["inputSchema"]["properties"]["isolate"]["type"] == "boolean"
        reply = server.answer(server.send("tools/call", {"name": "delegate", "arguments": {
            "task": "make a.py", "to": "worker", "wait_s": 60, "isolate": True}}))["result"]
    finally:
        server.close()
    run_id = runs_of(repo)[0]
    data = reply["structuredContent"]
    a = data["agents"][0]
    assert data["status"] == "completed" and a["files_modified"] == ["a.py"]
    assert a["branch"] == f"orchestra/{run_id}/worker" and a["merge"] == "merges cleanly"
    assert not (repo / "a.py").exists() and git(repo, "show", f"{a['branch']}:a.py") == "# written for: make a.py"
    assert f"branch: orchestra/{run_id}/worker (merges cleanly)" in reply["content"][0]["text"]
    orchestra("clean", run_id, cwd=repo)


def test_isolate_outside_a_git_repository_is_refused_before_anything_starts(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    cfg = config(tmp_path, quiet=agent("a.py", names_files=False))
    for command in (["run", "--agent", "quiet"], ["delegate", "--to", "quiet", "--no-analyze"]):
        done = orchestra(*command, "--task", "t", "--config", cfg, "--no-tmux", "--isolate", cwd=plain)
        assert done.returncode == 2 and "--isolate needs a git repository" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (plain / "a.py").exists() and not (plain / ".orchestra" / "runs").exists()


def test_the_block_a_primary_gets_sets_the_files_changed_by_others_apart_and_says_why():
    mine = AgentSummary(agent="droid", role="secondary-1", status="completed", files_modified=["a.py"],
                        files_changed_by_others=["notes.md"])
    quiet = AgentSummary(agent="tui", role="secondary-1", status="completed", files_modified=["a.py", "b.py"],
                         files_note="this agent names no files: ...")
    block = summary_block([mine])
    assert f"files modified (1): a.py {OTHERS} (1): notes.md" in block
    assert "note: this agent names no files: ..." in summary_block([quiet])
