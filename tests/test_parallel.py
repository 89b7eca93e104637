"""Several secondaries at once: one worktree and branch each, a merge report, --merge, `orchestra clean`.

Every test runs in a temporary git repository; git itself is asked what exists afterwards.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import TOY, git, needs_git, new_repo, orchestra, tmux

pytestmark = needs_git


@pytest.fixture
def repo(tmp_path):
    path = new_repo(tmp_path / "repo")
    return path


def toy(*args, **fields):
    body = {"command": [sys.executable, str(TOY), *args], "timeout": 20, "linger": 0.3, "kill_grace": 1,
            "completion": "^DONE"}
    body.update(fields)
    return body


def boss(*replies):
    """An interactive primary whose first reply is the briefs and whose second answers the summary."""
    args = sum((["--reply", r] for r in replies), [])
    return toy("--prompt", "> ", *args, "--done", "TURN-DONE", prompt=r"> $", completion="^TURN-DONE", exit="/exit")


def config(tmp_path, **agents) -> Path:
    path = tmp_path / "orchestra.yaml"  # outside the repository: it is not part of the work
    body = {"agents": agents}
    if "api" in agents:
        body["routing"] = {"rules": [{"name": "backend", "agent": "api", "words": ["api"]}], "default": "docs"}
    path.write_text(yaml.safe_dump(body))
    return path


def delegate(repo, cfg, *args, tmux_on=False):
    done = orchestra("delegate", "--config", str(cfg), *args, *([] if tmux_on else ["--no-tmux"]), "--json",
                     cwd=repo, timeout=90)
    assert done.stdout.strip().startswith("{"), done.stderr
    return done, json.loads(done.stdout)


def branches(repo) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/orchestra/").split()


def worktrees(repo) -> list[str]:
    return [line.split(" ", 1)[1] for line in git(repo, "worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")]


def test_two_secondaries_work_at_once_each_in_its_own_worktree_and_branch(tmp_path, repo):
    fifo = tmp_path / "meet"
    os.mkfifo(fifo)
    # a blocks until b writes to the FIFO: run one after the other, a would wait until its timeout
    cfg = config(tmp_path, a=toy("--task", "{task}", "--files", "a.py", "--wait-fifo", str(fifo)),
                 b=toy("--task", "{task}", "--files", "b.py", "--signal-fifo", str(fifo)))
    start = git(repo, "rev-parse", "HEAD")
    done, run = delegate(repo, cfg, "--to", "a", "--to", "b", "--task", "t", "--no-analyze")
    assert done.returncode == 0, done.stderr
    assert [s["status"] for s in run["secondaries"]] == ["completed", "completed"]
    rid = run["run_id"]
    assert branches(repo) == sorted([f"orchestra/{rid}/a", f"orchestra/{rid}/b"])
    trees = {w["agent"]: w for w in run["worktrees"]}
    assert sorted(worktrees(repo)[1:]) == sorted(w["path"] for w in trees.values())
    for agent, name in (("a", "a.py"), ("b", "b.py")):
        s = next(s for s in run["secondaries"] if s["agent"] == agent)
        assert s["branch"] == f"orchestra/{rid}/{agent}" and s["files_modified"] == [name]
        assert s["workdir"] == trees[agent]["path"]
        assert git(repo, "show", f"{s['branch']}:{name}") == "# written for: t"  # committed on its branch
        assert git(repo, "rev-parse", f"{s['branch']}~1") == start  # one commit on top of the start
    # the user's checkout is untouched: nothing is merged without --merge
    assert git(repo, "rev-parse", "HEAD") == start
    assert not (repo / "a.py").exists() and not (repo / "b.py").exists()
    assert git(repo, "status", "--porcelain") == ""  # .orchestra/ is kept out of git's view
    assert run["base"] == {"branch": "main", "commit": start}
    assert [(m["agent"], m["merges_cleanly"], m["merged"]) for m in run["merges"]] == [("a", True, False),
                                                                                      ("b", True, False)]
    orchestra("clean", rid, cwd=repo)


def test_the_primary_writes_one_brief_per_secondary_and_gets_one_block_covering_all(tmp_path, repo):
    cfg = config(tmp_path, boss=boss("DELEGATE: create a.py\\nEND\\nDELEGATE: create b.py\\nEND", "Both done."),
                 a=toy("--task", "{task}", "--files", "a.py"), b=toy("--task", "{task}", "--files", "b.py"))
    done, run = delegate(repo, cfg, "--from", "boss", "--to", "a", "--to", "b", "--task", "two files")
    assert done.returncode == 0, done.stderr
    assert run["briefs"] == ["create a.py", "create b.py"]
    assert "working on: create a.py" in run["secondaries"][0]["last_lines"]
    assert "working on: create b.py" in run["secondaries"][1]["last_lines"]
    asked = [line for line in run["primary"]["last_lines"] if line.startswith("> got: You are the primary")]
    assert asked and "Split the task into 2 independent parts" in asked[0]
    typed = [e[2] for e in map(json.loads, (repo / run["primary"]["transcript"]).read_text().splitlines()[1:])
             if e[1] == "i"]
    block = [text for text in typed if "secondary agents have finished" in text]
    assert len(block) == 1  # one block, every secondary in it
    for role, agent in (("secondary-1", "a"), ("secondary-2", "b")):
        assert f"[{role}: {agent}]" in block[0] and f"branch: orchestra/{run['run_id']}/{agent} (merges cleanly)" in block[0]
    assert run["summary_returned_to_primary"] is True and "Both done." in run["primary_reply"]
    orchestra("clean", run["run_id"], cwd=repo)


def test_parallel_n_with_auto_routes_each_brief_on_its_own_words(tmp_path, repo):
    cfg = config(tmp_path, boss=boss("DELEGATE: build the api\\nEND\\nDELEGATE: write the guide\\nEND", "ok"),
                 api=toy("--task", "{task}", "--files", "api.py"), docs=toy("--task", "{task}", "--files", "GUIDE.md"))
    done, run = delegate(repo, cfg, "--from", "boss", "--parallel", "2", "--task", "an api and its guide")
    assert done.returncode == 0, done.stderr
    assert [r["agent"] for r in run["routes"]] == ["api", "docs"]
    assert [s["agent"] for s in run["secondaries"]] == ["api", "docs"]
    assert [s["files_modified"] for s in run["secondaries"]] == [["api.py"], ["GUIDE.md"]]
    orchestra("clean", run["run_id"], cwd=repo)


@pytest.mark.parametrize("fault, status", [(("--done", "oops", "--exit", "2"), "crashed"), (("--hang",), "timeout")])
def test_a_failing_secondary_does_not_stop_the_others_and_the_run_is_partial(tmp_path, repo, fault, status):
    cfg = config(tmp_path, a=toy("--task", "{task}", "--files", "a.py"), b=toy("--task", "{task}", "--files", "b.py"),
                 bad=toy("--task", "{task}", "--files", "bad.py", *fault, timeout=2))
    done, run = delegate(repo, cfg, "--to", "a", "--to", "bad", "--to", "b", "--task", "t", "--no-analyze", "--merge")
    assert done.returncode == 1
    assert run["status"] == "partial" and f"bad (secondary-2) {status}" in run["reason"], \
        (run["reason"], [(s["agent"], s["status"], s["reason"]) for s in run["secondaries"]])
    assert [s["status"] for s in run["secondaries"]] == ["completed", status, "completed"]
    merged = {m["agent"]: m["merged"] for m in run["merges"]}
    assert merged == {"a": True, "bad": False, "b": True}  # only completed branches are merged
    assert (repo / "a.py").exists() and (repo / "b.py").exists() and not (repo / "bad.py").exists()
    # the failed one's work is kept on its branch, not lost
    assert git(repo, "show", f"orchestra/{run['run_id']}/bad:bad.py") == "# written for: t"
    orchestra("clean", run["run_id"], cwd=repo)


def conflicting(tmp_path):
    """Two secondaries that each write shared.py, differently (each writes its own brief into it)."""
    return config(tmp_path, boss=boss("DELEGATE: one\\nEND\\nDELEGATE: two\\nEND", "ok"),
                  a=toy("--task", "{task}", "--files", "shared.py"), b=toy("--task", "{task}", "--files", "shared.py"))


def test_the_report_says_which_branch_would_conflict_and_merges_nothing(tmp_path, repo):
    start = git(repo, "rev-parse", "HEAD")
    done, run = delegate(repo, conflicting(tmp_path), "--from", "boss", "--to", "a", "--to", "b", "--task", "t")
    assert done.returncode == 0, done.stderr
    a, b = run["merges"]
    assert a["merges_cleanly"] and a["conflicts_with_earlier"] == []
    assert b["merges_cleanly"] and b["conflicts_with_earlier"] == ["shared.py"]  # alone fine, after a not
    assert git(repo, "rev-parse", "HEAD") == start
    orchestra("clean", run["run_id"], cwd=repo)


def test_merge_stops_at_the_first_conflict_and_names_the_file(tmp_path, repo):
    cfg = config(tmp_path, boss=boss("DELEGATE: one\nEND\nDELEGATE: two\nEND\nDELEGATE: three\nEND", "ok"),
                 a=toy("--task", "{task}", "--files", "shared.py"), b=toy("--task", "{task}", "--files", "shared.py"),
                 c=toy("--task", "{task}", "--files", "c.py"))
    done, run = delegate(repo, cfg, "--from", "boss", "--to", "a", "--to", "b", "--to", "c", "--task", "t", "--merge")
    assert done.returncode == 1
    assert run["status"] == "completed" and "shared.py" in run["merge_stopped"]
    assert [m["merged"] for m in run["merges"]] == [True, False, False]  # c would merge, but the merge stopped
    assert (repo / "shared.py").read_text() == "# written for: one\n"  # a's work, merged
    assert not (repo / "c.py").exists()
    assert git(repo, "status", "--porcelain") == ""  # no half-done merge left behind
    assert subprocess.run(["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=repo).returncode != 0
    assert f"orchestra: merge orchestra/{run['run_id']}/a (a)" in git(repo, "log", "--format=%s", "-1")
    orchestra("clean", run["run_id"], cwd=repo)


def stopped_merge(tmp_path, repo) -> tuple[subprocess.CompletedProcess, str]:
    """A --merge that stops at b (it conflicts with a in shared.py) before c (which would merge): the
    output of `delegate` (not --json) and the run's id."""
    cfg = config(tmp_path, boss=boss("DELEGATE: one\\nEND\\nDELEGATE: two\\nEND\\nDELEGATE: three\\nEND", "ok"),
                 a=toy("--task", "{task}", "--files", "shared.py"), b=toy("--task", "{task}", "--files", "shared.py"),
                 c=toy("--task", "{task}", "--files", "c.py"))
    done = orchestra("delegate", "--config", str(cfg), "--from", "boss", "--to", "a", "--to", "b", "--to", "c",
                     "--task", "t", "--merge", "--no-tmux", cwd=repo, timeout=90)
    return done, os.listdir(repo / ".orchestra" / "runs")[0]


def test_a_stopped_merge_says_which_branches_are_not_merged_and_how_to_merge_them(tmp_path, repo):
    done, run_id = stopped_merge(tmp_path, repo)
    b, c = f"orchestra/{run_id}/b", f"orchestra/{run_id}/c"
    assert done.returncode == 1
    steps = [f"   Next: git merge {b}, resolve the conflicts in shared.py, git commit (on main)",
             f"   Next: git merge {c} (on main)"]
    assert "\n".join(steps) in done.stdout, done.stdout
    shown = orchestra("show", run_id, cwd=repo).stdout
    assert f"🌿 {b}: not merged (the merge stopped here): conflicts in shared.py" in shown
    assert f"🌿 {c}: not merged (the merge stopped before it): merges cleanly" in shown  # not just "merges cleanly"
    assert "\n".join(steps) in shown
    orchestra("clean", run_id, cwd=repo)


def test_several_secondaries_outside_git_are_refused_before_anything_starts(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    pidfile = tmp_path / "pid"
    cfg = config(tmp_path, a=toy("--task", "{task}", "--pidfile", str(pidfile)), b=toy("--task", "{task}"))
    done = orchestra("delegate", "--config", str(cfg), "--to", "a", "--to", "b", "--task", "t", "--no-analyze",
                     "--no-tmux", cwd=plain)
    assert done.returncode == 2
    assert "need a git repository" in done.stderr and "worktree" in done.stderr and "Traceback" not in done.stderr
    assert not pidfile.exists() and not (plain / ".orchestra" / "runs").exists()


def test_clean_removes_worktrees_merged_branches_and_the_tmux_session_and_keeps_unmerged_work(tmp_path, repo,
                                                                                              tmux_sessions):
    cfg = config(tmp_path, a=toy("--task", "{task}", "--files", "a.py"),
                 bad=toy("--task", "{task}", "--files", "bad.py", "--done", "oops", "--exit", "2"))
    done, run = delegate(repo, cfg, "--to", "a", "--to", "bad", "--task", "t", "--no-analyze", "--merge",
                         tmux_on=True)
    rid = run["run_id"]
    assert bool(run["tmux_session"]) == bool(shutil.which("tmux"))
    if run["tmux_session"]:
        tmux_sessions.append(run["tmux_session"])
        windows = tmux("list-windows", "-t", f"={run['tmux_session']}", "-F", "#W").stdout.split()
        assert windows == ["secondary-1", "secondary-2"]  # one tmux session, a window per secondary
    assert len(worktrees(repo)) == 3 and len(branches(repo)) == 2
    cleaned = orchestra("clean", rid, cwd=repo)
    assert cleaned.returncode == 0, cleaned.stderr
    assert worktrees(repo) == [str(repo.resolve())]
    assert branches(repo) == [f"orchestra/{rid}/bad"]  # a's is merged: deleted; bad's holds unmerged work: kept
    assert f"deleted branch orchestra/{rid}/a (nothing on it that main lacks)" in cleaned.stdout
    assert f"kept branch orchestra/{rid}/bad: 1 commit not merged into main; --force deletes it" in cleaned.stdout
    if run["tmux_session"]:
        assert tmux("has-session", "-t", f"={run['tmux_session']}").returncode != 0
    assert (repo / ".orchestra" / "runs" / rid / "run.json").exists()  # the record stays
    assert not (repo / ".orchestra" / "worktrees" / rid).exists()


def test_clean_of_an_unknown_run_says_so(repo):
    done = orchestra("clean", "19990101-000000-abcdef", cwd=repo)
    assert done.returncode == 2 and "no run 19990101-000000-abcdef here" in done.stderr


def test_three_replayed_secondaries_run_at_once_each_on_its_branch(repo, tmux_sessions):
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_KEY", "_TOKEN"))}
    done = orchestra("delegate", "--demo", "--to", "demo-droid", "--to", "demo-droid", "--to", "demo-droid",
                     "--task", "Add a User model", "--json", "--no-tmux", cwd=repo, env=env, timeout=90)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    rid = run["run_id"]
    assert [s["status"] for s in run["secondaries"]] == ["completed"] * 3
    assert [s["role"] for s in run["secondaries"]] == ["secondary-1", "secondary-2", "secondary-3"]
    assert branches(repo) == sorted(f"orchestra/{rid}/{n}" for n in ("demo-droid", "demo-droid-2", "demo-droid-3"))
    assert len(set(s["workdir"] for s in run["secondaries"])) == 3
    assert [s["errors"] for s in run["secondaries"]] == [[], [], []]  # a replay writes nothing: nothing to commit
    assert [m["commits"] for m in run["merges"]] == [0, 0, 0]
    assert run["summary_returned_to_primary"] is True
    orchestra("clean", rid, cwd=repo)


def test_an_interrupted_run_records_every_secondary_and_clean_removes_what_it_left(tmp_path, repo):
    pids = [tmp_path / "a.pid", tmp_path / "b.pid"]
    cfg = config(tmp_path, a=toy("--task", "{task}", "--files", "a.py", "--hang", "--pidfile", str(pids[0])),
                 b=toy("--task", "{task}", "--hang", "--pidfile", str(pids[1])))
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--to", "a",
                             "--to", "b", "--task", "t", "--no-analyze", "--no-tmux", "--json"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: pids[1].exists() and any(repo.glob(".orchestra/worktrees/*/a/a.py")))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    run = json.loads(next((repo / ".orchestra" / "runs").iterdir()).joinpath("run.json").read_text())
    assert run["status"] == "interrupted"
    assert [(s["agent"], s["status"]) for s in run["secondaries"]] == [("a", "interrupted"), ("b", "interrupted")]
    assert [s["branch"] for s in run["secondaries"]] == [w["branch"] for w in run["worktrees"]]
    # the work done before the interrupt is committed on its branch
    assert git(repo, "show", f"{run['secondaries'][0]['branch']}:a.py") == "# written for: t"
    cleaned = orchestra("clean", run["run_id"], cwd=repo)
    assert cleaned.returncode == 0 and worktrees(repo) == [str(repo.resolve())]
    assert branches(repo) == [run["secondaries"][0]["branch"]]  # b did nothing: its branch goes; a's work stays


def test_a_second_ctrl_c_ends_every_secondary_at_once_and_the_run_is_still_recorded(tmp_path, repo):
    pids, termed = [tmp_path / "a.pid", tmp_path / "b.pid"], [tmp_path / "a.term", tmp_path / "b.term"]
    cfg = config(tmp_path, **{name: toy("--task", "{task}", "--hang", "--note-term", str(term), "--pidfile", str(pid),
                                        kill_grace=60)
                              for name, pid, term in zip("ab", pids, termed)})
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--to", "a",
                             "--to", "b", "--task", "t", "--no-analyze", "--no-tmux", "--json"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: all(p.exists() for p in pids))
    proc.send_signal(signal.SIGINT)
    wait_for(termed[0].exists)  # the first Ctrl-C is ending a (a 60 s grace), and a goes on
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
    run = json.loads(next((repo / ".orchestra" / "runs").iterdir()).joinpath("run.json").read_text())
    assert run["status"] == "interrupted"
    assert [(s["agent"], s["status"]) for s in run["secondaries"]] == [("a", "interrupted"), ("b", "interrupted")]
    orchestra("clean", run["run_id"], cwd=repo)


def test_stopping_a_run_signals_every_secondary_before_waiting_out_any_grace(tmp_path, repo):
    names = ["a", "b", "c"]
    pids = {n: tmp_path / f"{n}.pid" for n in names}
    termed = {n: tmp_path / f"{n}.term" for n in names}
    cfg = config(tmp_path, **{n: toy("--task", "{task}", "--hang", "--note-term", str(termed[n]),
                                     "--pidfile", str(pids[n]), kill_grace=60) for n in names})
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg),
                             *sum((["--to", n] for n in names), []), "--task", "t", "--no-analyze", "--no-tmux",
                             "--json"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: all(p.exists() for p in pids.values()))
    proc.send_signal(signal.SIGTERM)
    # one at a time, c would hear of it only after a's and b's 60 s grace
    wait_for(lambda: all(t.exists() for t in termed.values()))
    proc.send_signal(signal.SIGTERM)  # and a second one ends them at once
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    run = json.loads(next((repo / ".orchestra" / "runs").iterdir()).joinpath("run.json").read_text())
    assert [s["status"] for s in run["secondaries"]] == ["interrupted"] * 3
    orchestra("clean", run["run_id"], cwd=repo)


def wait_for(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("state", ["detached", "merging", "staged"])
def test_merge_is_refused_before_anything_starts_when_the_checkout_is_not_ready(tmp_path, repo, state):
    pidfile = tmp_path / "pid"
    cfg = config(tmp_path, a=toy("--task", "{task}", "--pidfile", str(pidfile)), b=toy("--task", "{task}"))
    if state == "detached":
        git(repo, "checkout", "-q", "--detach")
    elif state == "merging":  # the user's own conflicted merge, half resolved: it must survive
        git(repo, "checkout", "-q", "-b", "other")
        (repo / "README.md").write_text("theirs\n")
        git(repo, "commit", "-qam", "theirs")
        git(repo, "checkout", "-q", "main")
        (repo / "README.md").write_text("mine\n")
        git(repo, "commit", "-qam", "mine")
        subprocess.run(["git", "merge", "other"], cwd=repo, capture_output=True)
        (repo / "README.md").write_text("resolved\n")
    else:
        (repo / "notes.txt").write_text("mine\n")
        git(repo, "add", "notes.txt")
    done = orchestra("delegate", "--config", str(cfg), "--to", "a", "--to", "b", "--task", "t", "--no-analyze",
                     "--merge", "--no-tmux", cwd=repo)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert {"detached": "detached", "merging": "a merge is in progress", "staged": "staged changes"}[state] in done.stderr
    assert not pidfile.exists() and branches(repo) == []
    if state == "merging":
        assert (repo / "README.md").read_text() == "resolved\n"
        assert subprocess.run(["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=repo).returncode == 0


def test_a_missing_agent_among_several_is_refused_before_any_starts(tmp_path, repo):
    pidfile = tmp_path / "pid"
    cfg = config(tmp_path, a=toy("--task", "{task}", "--pidfile", str(pidfile)),
                 ghost={"command": ["no-such-agent-cli", "{task}"], "completion": "^DONE"})
    done = orchestra("delegate", "--config", str(cfg), "--to", "a", "--to", "ghost", "--task", "t", "--no-analyze",
                     "--no-tmux", cwd=repo)
    assert done.returncode == 2 and "'no-such-agent-cli' was not found" in done.stderr
    assert not pidfile.exists() and branches(repo) == [] and worktrees(repo) == [str(repo.resolve())]


def test_work_is_committed_whatever_the_repository_config_and_wherever_in_the_worktree(tmp_path, repo):
    git(repo, "config", "commit.gpgsign", "true")
    git(repo, "config", "gpg.program", "false")  # signing would fail: orchestra's own commits do not sign
    sub = repo / "app"
    sub.mkdir()
    (sub / "main.py").write_text("")
    git(repo, "add", "-A")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-qm", "app")
    cfg = config(tmp_path, a=toy("--task", "{task}", "--files", "a.py,../top.py"),
                 **{"my agent": toy("--task", "{task}", "--files", "b.py")})
    done, run = delegate(sub, cfg, "--to", "a", "--to", "my agent", "--task", "t", "--no-analyze")
    assert done.returncode == 0, done.stderr
    a, b = run["secondaries"]
    assert Path(a["workdir"]).name == "app"  # the same place in its worktree as the run's in the repository
    assert git(repo, "show", f"{a['branch']}:app/a.py") == "# written for: t"
    assert git(repo, "show", f"{a['branch']}:top.py") == "# written for: t"  # outside app/, still its work
    assert b["branch"] == f"orchestra/{run['run_id']}/my-agent" and not b["errors"]
    orchestra("clean", run["run_id"], cwd=sub)


@pytest.mark.parametrize("bad", ["..", "../..", "", "20261125-064850"])
def test_clean_takes_only_a_run_id_and_touches_nothing_else(repo, bad):
    (repo / ".orchestra" / "worktrees").mkdir(parents=True)
    done = orchestra("clean", bad, cwd=repo)
    assert done.returncode == 2 and "is not a run id" in done.stderr
    assert (repo / ".git").is_dir() and (repo / "README.md").exists() and (repo / ".orchestra" / "worktrees").is_dir()


def test_a_flooding_secondary_does_not_hold_up_another_finishing(tmp_path, repo):
    cfg = config(tmp_path, quick=toy("--task", "{task}", "--files", "q.py"),
                 flood=toy("--task", "{task}", "--flood", "100000", timeout=5))  # floods until its timeout
    done, run = delegate(repo, cfg, "--to", "flood", "--to", "quick", "--task", "t", "--no-analyze")
    flood, quick = run["secondaries"]
    assert (flood["status"], quick["status"], run["status"]) == ("timeout", "completed", "partial")
    # the quick one was seen done while the flood still went on, not when it stopped
    assert ended(quick) < ended(flood) - 2


def ended(agent: dict) -> float:
    from datetime import datetime
    return datetime.fromisoformat(agent["started_at"]).timestamp() + agent["duration_s"]


def test_with_a_git_older_than_2_38_merge_falls_back_to_real_merges_and_still_stops_at_a_conflict(tmp_path, repo):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text(f'#!/bin/sh\n[ "$1" = version ] && {{ echo "git version 2.34.1"; exit 0; }}\n'
                              f'exec {shutil.which("git")} "$@"\n')
    (fake / "git").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}")
    cfg = config(tmp_path, boss=boss("DELEGATE: one\\nEND\\nDELEGATE: two\\nEND", "ok"),
                 a=toy("--task", "{task}", "--files", "shared.py"), b=toy("--task", "{task}", "--files", "shared.py"))
    done = orchestra("delegate", "--config", str(cfg), "--from", "boss", "--to", "a", "--to", "b", "--task", "t",
                     "--merge", "--no-tmux", "--json", cwd=repo, env=env, timeout=90)
    run = json.loads(done.stdout)
    assert done.returncode == 1 and "conflicts in shared.py" in run["merge_stopped"]
    assert [m["merged"] for m in run["merges"]] == [True, False]
    assert [m["merges_cleanly"] for m in run["merges"]] == [None, None]  # not rehearsed: this git cannot
    assert run["merges"][1]["conflicts"] == ["shared.py"]  # found by the real merge instead
    assert (repo / "shared.py").read_text() == "# written for: one\n"
    assert git(repo, "status", "--porcelain") == ""  # orchestra's own conflicted merge was undone
    assert subprocess.run(["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=repo).returncode != 0
    orchestra("clean", run["run_id"], cwd=repo)


def test_a_failing_post_checkout_hook_does_not_stop_the_run(tmp_path, repo):
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\necho 'this repository needs git-lfs' >&2\nexit 1\n")
    hook.chmod(0o755)
    cfg = config(tmp_path, a=toy("--task", "{task}", "--files", "a.py"), b=toy("--task", "{task}", "--files", "b.py"))
    done = orchestra("delegate", "--config", str(cfg), "--to", "a", "--to", "b", "--task", "t", "--no-analyze",
                     "--no-tmux", cwd=repo, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the worktree was made, going on" in done.stdout and "needs git-lfs" in done.stdout
    rid = next((repo / ".orchestra" / "runs").iterdir()).name
    assert git(repo, "show", f"orchestra/{rid}/b:b.py") == "# written for: t"
    orchestra("clean", rid, cwd=repo)


def made_by_a_run(repo, rid, *agents):
    """Worktrees and branches as a run makes them (`orchestra/RID/AGENT` in .orchestra/worktrees/RID/AGENT)."""
    (repo / ".orchestra" / "runs" / rid).mkdir(parents=True)
    (repo / ".orchestra" / ".gitignore").write_text("*\n")
    trees = [repo / ".orchestra" / "worktrees" / rid / agent for agent in agents]
    for agent, tree in zip(agents, trees):
        git(repo, "worktree", "add", "-q", "-b", f"orchestra/{rid}/{agent}", str(tree))
    return trees


RID = "20261125-064850-c62a32"


def test_clean_commits_what_a_worktree_holds_before_removing_it_and_keeps_its_branch(repo):
    a, b = made_by_a_run(repo, RID, "a", "b")  # as a killed run leaves them: work written, nothing committed
    (a / "a.py").write_text("work\n")
    (a / "README.md").write_text("# changed\n")
    cleaned = orchestra("clean", RID, cwd=repo)
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"committed 2 files left uncommitted in {a} on orchestra/{RID}/a: README.md, a.py" in cleaned.stdout
    assert git(repo, "show", f"orchestra/{RID}/a:a.py") == "work" and not a.exists() and not b.exists()
    assert f"kept branch orchestra/{RID}/a: 1 commit not merged into HEAD; --force deletes it" in cleaned.stdout
    assert f"deleted branch orchestra/{RID}/b (nothing on it that HEAD lacks)" in cleaned.stdout
    assert branches(repo) == [f"orchestra/{RID}/a"]


def test_clean_keeps_a_worktree_whose_work_cannot_be_committed_and_names_its_files(repo):
    a, = made_by_a_run(repo, RID, "a")
    (a / "a.py").write_text("work\n")
    lock = Path(git(a, "rev-parse", "--git-dir")) / "index.lock"  # another git at work there: git add fails
    lock.write_text("")
    cleaned = orchestra("clean", RID, cwd=repo)
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"kept worktree {a}: its uncommitted files could not be committed (git add failed:" in cleaned.stdout
    assert "): a.py; --force removes it and them" in cleaned.stdout
    assert (a / "a.py").read_text() == "work\n" and branches(repo) == [f"orchestra/{RID}/a"]
    lock.unlink()
    orchestra("clean", RID, "--force", cwd=repo)


def test_clean_force_discards_uncommitted_work_and_unmerged_branches_and_says_how_much(repo):
    a, = made_by_a_run(repo, RID, "a")
    (a / "a.py").write_text("committed\n")
    git(a, "add", "a.py")
    git(a, "commit", "-qm", "work")
    (a / "b.py").write_text("not committed\n")
    cleaned = orchestra("clean", RID, "--force", cwd=repo)
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"removed worktree {a} (discarded, uncommitted: b.py)" in cleaned.stdout
    assert f"deleted branch orchestra/{RID}/a (1 unmerged commit dropped)" in cleaned.stdout
    assert branches(repo) == [] and worktrees(repo) == [str(repo.resolve())]
