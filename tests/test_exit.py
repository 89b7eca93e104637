"""The way out of a run: from the last agent's completion to orchestra's exit (issue 23), nothing lost on it.

The records are made as dataclasses.asdict made them; the process ends at once once its output is out and
its atexit handlers have run; orchestra's commits start no `git maintenance` of their own.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys

from conftest import git, needs_git, new_repo, orchestra
from test_mcp import release
from test_parallel import config, toy, wait_for

from orchestra.checks import CheckResult
from orchestra.summary import AgentSummary, RunSummary, as_dict
from orchestra.worktree import BranchReport, commit_all


def full_agent() -> AgentSummary:
    """An agent's summary with every kind of field filled: nested dicts and lists, None, bools, floats."""
    return AgentSummary(
        agent="claude", role="secondary-1", status="completed", reason="", files_modified=["a.py", "b/c.py"],
        ended_by={"signal": "completion", "pattern": "^DONE", "line": "DONE", "decided_ms": 0.42},
        files_seen_by_git=["a.py", "b/c.py"], errors=["x"], cost_usd=0.12, cost_source="reported",
        tokens={"input": 10, "output": None}, duration_s=1.5, exit_code=0, answers=[{"q": "y/n", "a": "y"}],
        verified=True, checks=[CheckResult("pytest", 0, 1.0, "ok").to_dict()],
        fix_rounds=[{"round": 1, "checks": [{"command": "pytest", "exit_code": 1}], "verified": False}],
        budget={"limits": {"max_cost_usd": 1.0}, "spent": {"cost_usd": 0.12}}, node=None, branch="orchestra/x/claude",
        last_lines=["one", "two"], reply_transcript=None)


def test_as_dict_makes_what_asdict_makes():
    agent = full_agent()
    run = RunSummary(run_id="20261203-000000-abcdef", task="t", status="completed", secondaries=[agent.to_dict()],
                     merges=[BranchReport("claude", "orchestra/x/claude", "completed", files=["a.py"]).to_dict()],
                     base={"branch": "main", "commit": "0" * 40}, route={"agent": "claude", "rule": None})
    for record in (agent, run, BranchReport("a", "b", "failed", conflicts=["x"])):
        assert as_dict(record) == dataclasses.asdict(record)
        assert type(as_dict(record)) is dict


def test_as_dict_copies_what_it_is_given():
    """Changing the dict made (as the CLI and the records do) leaves the summary as it was, as asdict's copy did."""
    agent = full_agent()
    before = copy.deepcopy(agent)
    made = agent.to_dict()
    made["files_modified"].append("z.py")
    made["ended_by"]["line"] = "changed"
    made["fix_rounds"][0]["checks"][0]["exit_code"] = 0
    made["tokens"]["input"] = 0
    assert agent == before


# A command run under a wrapper that leaves marks: what its atexit handler writes (to a file, and to standard
# output without a flush), and what an audit hook writes once the interpreter's teardown begins.
AT_EXIT = """
import atexit, os, sys, threading, time
marks = sys.argv.pop()
def handler():
    open(os.path.join(marks, "atexit"), "w").write("ran")
    sys.stdout.write("written by an atexit handler, not flushed")
atexit.register(handler)
def audit(event, args, path=os.path.join(marks, "teardown"), write=open):  # (bound now: modules go in a teardown)
    if event in ("cpython.PyInterpreterState_Clear", "cpython._PySys_ClearAuditHooks"):  # a teardown
        write(path, "w").write("ran")
sys.addaudithook(audit)
if os.environ.get("SLOW_THREAD"):  # a thread (not a daemon) the usual exit would wait for
    def work():
        time.sleep(0.3)
        open(os.path.join(marks, "thread"), "w").write("ended")
    threading.Thread(target=work).start()
sys.argv = ["orchestra", *sys.argv[1:]]
from orchestra.cli import main
main()
"""


def run_marked(tmp_path, *args, env=None):
    marks = tmp_path / "marks"
    marks.mkdir()
    done = subprocess.run([sys.executable, "-c", AT_EXIT, *args, str(marks)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})
    return done, {p.name for p in marks.iterdir()}


def test_the_process_ends_without_the_teardown_its_atexit_handlers_run_and_its_output_is_out(tmp_path):
    done, marks = run_marked(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert "orchestra" in done.stdout and done.stdout.endswith("written by an atexit handler, not flushed")
    assert marks == {"atexit"}  # and no teardown


def test_the_exit_code_is_the_commands(tmp_path):
    done, marks = run_marked(tmp_path, "show", "20261203-000000-abcdef")
    assert done.returncode == 2 and "no run '20261203-000000-abcdef'" in done.stderr
    assert marks == {"atexit"}


def test_a_thread_still_at_work_is_waited_for_as_ever(tmp_path):
    done, marks = run_marked(tmp_path, "--version", env={"SLOW_THREAD": "1"})
    assert done.returncode == 0, done.stderr
    assert {"atexit", "thread"} <= marks


@needs_git
def test_orchestras_commit_starts_no_git_maintenance(tmp_path, monkeypatch):
    """`git commit` starts `git maintenance run --auto` after it (a process, for a few loose objects); orchestra's
    commit of an agent's work does not. git's own trace of the processes it starts tells."""
    repo = new_repo(tmp_path / "repo")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "new.py").write_text("x = 1\n")
    (repo / "README.md").write_text("changed\n")
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    files, problem = commit_all(repo, base, [], "orchestra: test", [])
    monkeypatch.delenv("GIT_TRACE2_EVENT")
    assert problem is None and sorted(files) == ["README.md", "new.py"]
    assert git(repo, "log", "-1", "--format=%s") == "orchestra: test"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    commands = [e["argv"] for e in events if e.get("event") == "start"]
    assert any("commit" in argv for argv in commands)  # (the trace saw the commit)
    assert not [argv for argv in commands if "maintenance" in argv or "gc" in argv]


@needs_git
def test_a_secondary_that_has_ended_is_committed_on_its_branch_while_another_still_works(tmp_path):
    """Its summary and commit do not wait for the slowest secondary: a's branch has its work while b is held."""
    repo = new_repo(tmp_path / "repo")
    start = git(repo, "rev-parse", "HEAD")
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    cfg = config(tmp_path, a=toy("--task", "{task}", "--files", "a.py"),
                 b=toy("--task", "{task}", "--files", "b.py", "--wait-fifo", str(gate), timeout=60))
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--to", "a",
                             "--to", "b", "--task", "t", "--no-analyze", "--no-tmux", "--json"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def a_committed() -> bool:
            tips = git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/orchestra/")
            return any(line.split()[0].endswith("/a") and line.split()[1] != start for line in tips.splitlines())

        wait_for(a_committed, timeout=15)
        assert proc.poll() is None  # (b is still held)
    finally:
        release(gate, wait=proc.poll() is None)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    run = json.loads(out)
    assert [(s["agent"], s["status"], s["files_modified"]) for s in run["secondaries"]] == [
        ("a", "completed", ["a.py"]), ("b", "completed", ["b.py"])]
    assert [(m["agent"], m["commits"], m["merges_cleanly"]) for m in run["merges"]] == [("a", 1, True), ("b", 1, True)]
    orchestra("clean", run["run_id"], cwd=repo)


def git_commands(trace) -> list[list[str]]:
    """The git commands a trace (GIT_TRACE2_EVENT) saw start, each as its argv."""
    return [e["argv"] for e in map(json.loads, trace.read_text().splitlines()) if e.get("event") == "start"]


@needs_git
def test_branches_their_agents_left_at_the_start_are_reported_without_asking_git_again(tmp_path):
    """Each worktree's git status (for its summary) saw its branch at the starting commit and nothing changed:
    nothing is committed, and the merge report asks git nothing more (every branch holds nothing)."""
    repo = new_repo(tmp_path / "repo")
    cfg = config(tmp_path, a=toy("--task", "{task}"), b=toy("--task", "{task}"))
    trace = tmp_path / "trace.json"
    done = subprocess.run([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--to", "a", "--to",
                           "b", "--task", "t", "--no-analyze", "--no-tmux", "--json"], cwd=repo, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "GIT_TRACE2_EVENT": str(trace)})
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert [(m["agent"], m["commits"], m["merges_cleanly"], m["uncommitted"]) for m in run["merges"]] == [
        ("a", 0, None, False), ("b", 0, None, False)]
    assert [s["files_modified"] for s in run["secondaries"]] == [[], []]
    commands = git_commands(trace)
    assert sum("--porcelain=v2" in argv for argv in commands) == 2  # (the trace saw each worktree's status)
    assert not [argv for argv in commands if {"for-each-ref", "rev-list", "commit"} & set(argv) or argv[1:2] == ["add"]]
    orchestra("clean", run["run_id"], cwd=repo)


@needs_git
def test_a_branch_its_agent_committed_on_itself_is_reported_with_its_commit(tmp_path):
    """HEAD moved (the agent committed, as aider does): git's status cannot vouch for the branch, git is asked."""
    repo = new_repo(tmp_path / "repo")
    commits = tmp_path / "commits.py"  # writes a file and commits it, as aider does, then says DONE
    commits.write_text("import subprocess\nopen('mine.py', 'w').write('x = 1\\n')\n"
                       "subprocess.run(['git', 'add', 'mine.py'], check=True)\n"
                       "subprocess.run(['git', 'commit', '-qm', 'by the agent'], check=True)\nprint('DONE')\n")
    cfg = config(tmp_path, a={"command": [sys.executable, str(commits), "{task}"], "completion": "^DONE",
                              "timeout": 20, "linger": 0.3, "kill_grace": 1}, b=toy("--task", "{task}"))
    done = subprocess.run([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--to", "a", "--to",
                           "b", "--task", "t", "--no-analyze", "--no-tmux", "--json"], cwd=repo, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert [(m["agent"], m["commits"], m["merges_cleanly"]) for m in run["merges"]] == [("a", 1, True), ("b", 0, None)]
    assert run["secondaries"][0]["files_modified"] == ["mine.py"]
    assert git(repo, "log", "-1", "--format=%s", run["secondaries"][0]["branch"]) == "by the agent"
    orchestra("clean", run["run_id"], cwd=repo)


def test_the_live_record_is_written_by_a_thread_while_the_loop_goes_on_and_the_final_one_comes_last(tmp_path,
                                                                                                  monkeypatch):
    """A live write held up (a slow disk) does not hold up the caller; the final record waits for it and is what
    stays, with no temporary file left."""
    import threading

    from orchestra import run as run_module, runfolder
    from orchestra.config import load_config

    real, held, gate, writers = runfolder.write_record, [], threading.Event(), []

    def write(folder, record):
        if held and record.get("status") == "running":
            # until the caller has gone on; a write the caller waited for would wait the 10 s out
            writers.append((threading.current_thread().name, gate.wait(10)))
        return real(folder, record)

    monkeypatch.setattr(runfolder, "write_record", write)
    r = run_module.Run(load_config(None), tmp_path, "t", tmux=False)
    try:
        held.append(True)
        r.write_live()
        gate.set()  # (the caller got here while the write was held)
        r.write_final({"run_id": r.id, "status": "completed"})
    finally:
        r.signals.restore()
    assert writers == [("orchestra-live-record", True)]
    assert json.loads((r.dir / "run.json").read_text())["status"] == "completed"
    assert [p.name for p in r.dir.iterdir() if p.name.endswith(".tmp")] == []
