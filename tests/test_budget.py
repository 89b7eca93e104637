"""Budgets (--max-cost, --max-tokens, --max-time, `budget:` in the config, the MCP delegate's limits) and the
follow-ups' refusals, with real orchestra processes and the toy agent (which prints the cost and token lines
the generic parser reads). The real Claude Code crossing a limit, and `send` resuming it: test_budget_real.py."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import TOY, tmux
from orchestra.config import parse_config
from orchestra.errors import ConfigError


def orchestra(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`orchestra ARGS` in cwd; run, delegate and send read the config beside cwd (a project's own would
    have to be trusted first)."""
    cfg = cwd.parent / "orchestra.yaml"
    if args and args[0] in ("run", "delegate", "send") and "--config" not in args and cfg.exists():
        args = (*args, "--config", str(cfg))
    return subprocess.run([sys.executable, "-m", "orchestra", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def toy_config(folder: Path, *args: str, budget: dict | None = None, profile_budget: dict | None = None) -> Path:
    """A config whose agent `toy` runs the toy agent with args (its task given in argv)."""
    worker = {"command": [sys.executable, str(TOY), "--task", "{task}", *args], "completion": "^DONE",
              "timeout": 60, "kill_grace": 1}
    if profile_budget:
        worker["budget"] = profile_budget
    data = {"agents": {"toy": worker}, "routing": {"rules": [], "default": "toy"}}
    if budget:
        data["budget"] = budget
    path = folder / "orchestra.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def workdir(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    return path


def run_json(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    done = orchestra(workdir, "run", "--agent", "toy", "--task", "spend", "--no-tmux", "--json", *args)
    try:
        return done, json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"no JSON (exit {done.returncode}): {done.stdout}\n{done.stderr}")


def test_a_token_limit_ends_the_agent_on_the_read_that_crosses_it_as_over_budget(workdir):
    toy_config(workdir.parent, "--line", "Tokens: 300 sent, 20 received", "--line", "Tokens: 900 sent, 40 received", "--hang")
    done, agent = run_json(workdir, "--max-tokens", "500")
    assert done.returncode == 1
    assert agent["status"] == "over_budget" and agent["signal"] == "SIGTERM", agent  # ended as Ctrl-C would
    assert agent["ended_by"]["signal"] == "budget" and agent["ended_by"]["pattern"] == "max_tokens 500"
    assert agent["ended_by"]["line"] == "spent 940 tokens (900 in, 40 out), over the limit of 500"
    assert agent["ended_by"]["decided_ms"] < 1000
    assert agent["budget"] == {"max_tokens": 500, "spent_tokens": 940}
    assert agent["reason"].startswith("over its budget: spent 940 tokens")


def test_a_cost_limit_ends_the_agent_once_its_reported_cost_crosses_it(workdir):
    toy_config(workdir.parent, "--line", "Cost: $0.02", "--line", "Cost: $0.07", "--hang")
    done, agent = run_json(workdir, "--max-cost", "0.05")
    assert agent["status"] == "over_budget" and agent["ended_by"]["pattern"] == "max_cost_usd 0.05", agent
    assert agent["ended_by"]["line"] == "spent $0.07 (reported), over the limit of $0.05"


def test_a_time_limit_ends_the_agent_when_its_time_is_up(workdir):
    toy_config(workdir.parent, "--hang")
    done, agent = run_json(workdir, "--max-time", "0.5")
    assert agent["status"] == "over_budget" and agent["ended_by"]["pattern"] == "max_time_s 0.5", agent
    assert agent["ended_by"]["decided_ms"] < 1000 and 0.5 <= agent["duration_s"] < 0.5 + 1 + 1  # + its kill_grace
    assert agent["budget"]["max_time_s"] == 0.5


def test_the_configs_budget_applies_a_profiles_own_over_it_and_an_option_over_both(workdir):
    toy_config(workdir.parent, "--line", "Tokens: 300 sent, 20 received", "--hang",
               budget={"max_tokens": 100000, "max_time_s": 30}, profile_budget={"max_tokens": 200})
    done, agent = run_json(workdir)
    assert agent["ended_by"]["pattern"] == "max_tokens 200" and agent["budget"]["max_time_s"] == 30, agent
    done, agent = run_json(workdir, "--max-tokens", "250", "--max-time", "0.5")
    assert agent["ended_by"]["pattern"] == "max_tokens 250", agent


def test_within_its_budget_an_agent_completes_and_its_summary_says_what_it_spent(workdir):
    toy_config(workdir.parent, "--line", "Tokens: 300 sent, 20 received")
    done, agent = run_json(workdir, "--max-tokens", "1000")
    assert done.returncode == 0 and agent["status"] == "completed", agent
    assert agent["budget"] == {"max_tokens": 1000, "spent_tokens": 320}


def unpriced_config(folder: Path) -> Path:
    """Agents whose output shows tokens only (a Droid-like parser, no price) or nothing (Claude Code's screen)."""
    toy = [sys.executable, str(TOY), "--task", "{task}"]
    path = folder / "orchestra.yaml"
    path.write_text(yaml.safe_dump({"agents": {"tokens-only": {"command": toy, "parser": "droid"},
                                               "screen": {"command": toy, "parser": "claude-tui"}}}))
    return path


@pytest.mark.parametrize("args, words", [
    (["run", "--agent", "tokens-only", "--max-cost", "0.1"], "agent 'tokens-only' reports no cost, only tokens"),
    (["run", "--agent", "screen", "--max-cost", "0.1"], "agent 'screen' reports neither cost nor tokens"),
    (["run", "--agent", "screen", "--max-tokens", "1000"], "agent 'screen' reports no tokens"),
    (["delegate", "--to", "tokens-only", "--no-analyze", "--max-cost", "0.1"], "agent 'tokens-only' reports no cost"),
    (["run", "--agent", "tokens-only", "--max-cost", "0.1", "--detach"], "agent 'tokens-only' reports no cost"),
])
def test_a_limit_the_agents_output_cannot_show_is_refused_before_anything_starts(workdir, args, words):
    unpriced_config(workdir.parent)
    done = orchestra(workdir, *args, "--task", "hello")
    assert done.returncode == 2, done
    assert words in done.stderr and "could not be enforced" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / ".orchestra" / "runs").exists()  # no run, no tmux session, no agent


@pytest.mark.parametrize("option, value", [("--max-cost", "-1"), ("--max-tokens", "0"), ("--max-time", "nan")])
def test_a_bad_limit_on_the_command_line_names_the_option(workdir, option, value):
    toy_config(workdir.parent)
    done = orchestra(workdir, "run", "--agent", "toy", "--task", "x", option, value)
    assert done.returncode == 2 and option in done.stderr and "positive" in done.stderr, done.stderr


@pytest.mark.parametrize("text, where", [
    ("budget: {max_cost_usd: -1}\n", "budget.max_cost_usd: expected a positive number, got -1"),
    ("budget: {max_tokens: 1.5}\n", "budget.max_tokens: expected a positive whole number, got 1.5"),
    ("budget: {max_dollars: 1}\n", "budget.max_dollars: unknown limit (known: max_cost_usd, max_tokens, max_time_s)"),
    ("budget: 5\n", "budget: expected a mapping of max_cost_usd, max_tokens, max_time_s"),
])
def test_a_bad_budget_in_the_config_names_the_field(tmp_path, text, where):
    with pytest.raises(ConfigError) as err:
        parse_config(text + "agents: {toy: {command: [x]}}\n", tmp_path / "c.yaml")
    assert str(err.value) == f"{tmp_path / 'c.yaml'}: {where}"
    with pytest.raises(ConfigError) as err:
        parse_config("agents: {toy: {command: [x], budget: {max_time_s: 0}}}\n", tmp_path / "c.yaml")
    assert "agent 'toy', field 'budget.max_time_s': expected a positive number, got 0" in str(err.value)


def test_status_the_live_record_and_the_web_page_show_spent_against_the_limit_while_it_runs(workdir, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    toy_config(workdir.parent, "--line", "Tokens: 300 sent, 20 received", "--wait-fifo", str(gate))
    started = orchestra(workdir, "run", "--agent", "toy", "--task", "spend", "--no-tmux", "--json", "--detach",
                        "--max-tokens", "5000", "--max-cost", "1")
    run_id = json.loads(started.stdout)["run_id"]
    try:
        deadline = time.monotonic() + 30
        while True:  # the live record is rewritten about every second while the agent works
            asked = orchestra(workdir, "status", run_id, "--json")
            assert asked.returncode == 0, asked.stderr
            record = json.loads(asked.stdout)
            budget = record["secondaries"][0].get("budget") if record["secondaries"] else None
            if budget and budget.get("spent_tokens") == 320 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert record["status"] == "running" and budget["max_tokens"] == 5000 and budget["spent_tokens"] == 320, record
        assert budget["max_cost_usd"] == 1 and budget["spent_usd"] is None  # no cost line yet, and no price
        text = orchestra(workdir, "status", run_id).stdout
        assert "(budget: $? of $1, 320 of 5000 tokens)" in text, text
        from orchestra.web.feeds import run_page

        assert run_page(workdir, run_id)["secondaries"][0]["budget_text"] == "$? of $1, 320 of 5000 tokens"
    finally:
        fd = os.open(gate, os.O_WRONLY)
        os.close(fd)
        orchestra(workdir, "wait", run_id)
    final = json.loads(orchestra(workdir, "show", run_id, "--json").stdout)
    assert final["secondaries"][0]["budget"] == {"max_cost_usd": 1.0, "spent_usd": None, "max_tokens": 5000,
                                                 "spent_tokens": 320}


# -- over MCP --------------------------------------------------------------------------------------------------


def test_mcp_delegate_passes_its_limits_and_refuses_one_that_cannot_be_enforced(tmp_path):
    from test_mcp import RawServer

    project = tmp_path / "project"
    project.mkdir()
    cfg = toy_config(tmp_path, "--line", "Tokens: 900 sent, 10 received", "--hang")
    data = yaml.safe_load(cfg.read_text())
    data["agents"]["tui"] = {"command": [sys.executable, str(TOY)], "prompt": "> ", "parser": "claude-tui"}
    cfg.write_text(yaml.safe_dump(data))
    server = RawServer(project, cfg)
    try:
        server.initialize()
        tools = {t["name"]: t for t in server.answer(server.send("tools/list"))["result"]["tools"]}
        assert {"max_cost_usd", "max_tokens", "max_time_s"} <= set(tools["delegate"]["inputSchema"]["properties"])
        over = server.answer(server.send("tools/call", {"name": "delegate", "arguments": {
            "task": "spend", "to": "toy", "max_tokens": 500, "wait_s": 60}}))["result"]
        refused = server.answer(server.send("tools/call", {"name": "delegate", "arguments": {
            "task": "spend", "to": "tui", "max_cost_usd": 0.5}}))["result"]
        bad = server.answer(server.send("tools/call", {"name": "delegate", "arguments": {
            "task": "spend", "to": "toy", "max_time_s": -3}}))["result"]
    finally:
        server.close()
        for run in (project / ".orchestra" / "runs").iterdir():
            tmux("kill-session", "-t", f"=orchestra-{run.name}")
    data = over["structuredContent"]
    assert data["status"] == "over_budget" and data["agents"][0]["status"] == "over_budget", data
    assert data["agents"][0]["budget"] == {"max_tokens": 500, "spent_tokens": 910}
    assert "ended by: budget /max_tokens 500/" in over["content"][0]["text"]
    assert "budget: 910 of 500 tokens" in over["content"][0]["text"]
    assert refused.get("isError") and "reports neither cost nor tokens" in refused["content"][0]["text"]
    assert bad.get("isError") and "max_time_s: expected a positive number" in bad["content"][0]["text"]
    assert len(list((project / ".orchestra" / "runs").iterdir())) == 1  # the refused calls started nothing


# -- follow-ups that cannot be --------------------------------------------------------------------------------


def test_send_to_an_agent_that_cannot_resume_says_so_and_starts_nothing(workdir):
    toy_config(workdir.parent, "--files", "a.py")
    done = orchestra(workdir, "run", "--agent", "toy", "--task", "make a.py", "--no-tmux")
    assert done.returncode == 0, done.stderr
    before = (workdir / ".orchestra").rglob("*")
    before = sorted(str(p) for p in before)
    done = orchestra(workdir, "send", "latest", "--task", "now b.py")
    assert done.returncode == 2 and "agent 'toy' cannot continue a session: its profile has no 'resume' command" \
        in done.stderr, done.stderr
    assert sorted(str(p) for p in (workdir / ".orchestra").rglob("*")) == before


def test_send_without_a_session_id_to_an_unknown_agent_or_to_a_running_run_says_why(workdir, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    cfg = toy_config(workdir.parent, "--wait-fifo", str(gate))
    data = yaml.safe_load(cfg.read_text())
    data["agents"]["toy"]["resume"] = [sys.executable, str(TOY), "--task", "{task}", "--line", "{session_id}"]
    cfg.write_text(yaml.safe_dump(data))
    run_id = json.loads(orchestra(workdir, "run", "--agent", "toy", "--task", "x", "--no-tmux", "--json",
                                  "--detach").stdout)["run_id"]
    try:
        running = orchestra(workdir, "send", run_id, "--task", "more")
        assert running.returncode == 2 and f"run {run_id} is still running: wait for it" in running.stderr
    finally:
        os.close(os.open(gate, os.O_WRONLY))
        orchestra(workdir, "wait", run_id)
    unknown = orchestra(workdir, "send", run_id, "--agent", "secondary-7", "--task", "more")
    assert unknown.returncode == 2 and "has no 'secondary-7' (its agents: agent (toy))" in unknown.stderr
    no_id = orchestra(workdir, "send", run_id, "--task", "more")
    assert no_id.returncode == 2 and "reported no session id, so its session cannot be resumed" in no_id.stderr


def test_a_terminals_status_line_shows_spent_against_the_limit(workdir):
    from test_status_line import status_line_shows

    status_line_shows(workdir, r"⏳ python \d+\.\ds │ 320 of 5000 tokens, \d+s of 60s │ Tokens: 300 sent",
                      ("--max-tokens", "5000", "--max-time", "60"), "--line 'Tokens: 300 sent, 20 received'")


def test_a_secondary_over_its_budget_has_its_work_committed_on_its_branch(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@t.invalid"], ["config", "user.name", "T"],
                 ["commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    spend = ("import time; open('half.py', 'w').write('HALF = 1\\n'); "
             "print('Tokens: 900 sent, 10 received', flush=True); time.sleep(60)")
    cfg = toy_config(tmp_path, "--files", "whole.py")
    data = yaml.safe_load(cfg.read_text())
    data["agents"]["spender"] = {"command": [sys.executable, "-c", spend, "{task}"], "completion": "^DONE",
                                 "kill_grace": 1, "budget": {"max_tokens": 500}}
    cfg.write_text(yaml.safe_dump(data))
    done = orchestra(repo, "delegate", "--no-analyze", "--to", "spender", "--to", "toy", "--task", "work",
                     "--no-tmux", "--json", "--config", str(cfg))
    record = json.loads(done.stdout)
    spender, toy = record["secondaries"]
    assert record["status"] == "partial" and spender["status"] == "over_budget", record
    assert toy["status"] == "completed" and toy["budget"] is None
    shown = subprocess.run(["git", "show", f"{spender['branch']}:half.py"], cwd=repo, capture_output=True, text=True)
    assert shown.stdout == "HALF = 1\n", shown.stderr  # its work so far, kept on its branch
    subprocess.run([sys.executable, "-m", "orchestra", "clean", record["run_id"]], cwd=repo, capture_output=True)


RESUMABLE = Path(__file__).resolve().parent / "agents" / "resumable_agent.py"


def resumable_profile(*args: str) -> dict:
    return {"command": [sys.executable, str(RESUMABLE), "{task}", *args],
            "resume": [sys.executable, str(RESUMABLE), "{task}", "--resume", "{session_id}", *args],
            "parser": "claude", "completion": '"type":"result"', "timeout": 60, "kill_grace": 1}


def test_send_to_one_of_several_secondaries_resumes_its_session_and_commits_the_turn_on_its_branch(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@t.invalid"], ["config", "user.name", "T"],
                 ["commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    cfg = tmp_path / "orchestra.yaml"
    cfg.write_text(yaml.safe_dump({"agents": {"keeper": resumable_profile()}, "routing": {"default": "keeper"}}))
    first = json.loads(orchestra(repo, "delegate", "--no-analyze", "--to", "keeper", "--parallel", "2", "--task",
                                 "write a.py", "--no-tmux", "--json", "--config", str(cfg)).stdout)
    run_id, second = first["run_id"], first["secondaries"][1]
    try:
        ask = orchestra(repo, "send", run_id, "--task", "now b.py", "--config", str(cfg))
        assert ask.returncode == 2 and "has 2 secondaries (secondary-1 (keeper), secondary-2 (keeper))" in ask.stderr
        done = orchestra(repo, "send", run_id, "--agent", "secondary-2", "--task", "now b.py", "--no-tmux",
                         "--json", "--config", str(cfg))
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        [turn] = record["secondaries"][1]["turns"]
        assert not record["secondaries"][0].get("turns")
        assert turn["files_modified"] == ["b.py"] and turn["branch"] == second["branch"], turn
        assert turn["session_id"] == second["session_id"]  # the same session, resumed
        shown = subprocess.run(["git", "show", f"{second['branch']}:b.py"], cwd=repo, capture_output=True, text=True)
        assert shown.stdout == f"now b.py (session {second['session_id']}, resumed)\n", shown.stderr
        log = subprocess.run(["git", "log", "--format=%s", second["branch"]], cwd=repo, capture_output=True,
                             text=True).stdout
        assert log.startswith("orchestra: keeper (completed): turn 2: now b.py"), log
        assert record["total_cost_usd"] == 0.03  # two first turns and this one
        again = orchestra(repo, "send", run_id, "--agent", "secondary-2", "--task", "then c.py", "--no-tmux",
                          "--json", "--config", str(cfg), "--max-tokens", "50")
        turns = json.loads(again.stdout)["secondaries"][1]["turns"]
        assert [t["turn"] for t in turns] == [2, 3] and turns[1]["status"] == "over_budget", turns[1]
        assert turns[1]["transcript"].endswith("secondary-2-turn-3.cast")
        assert again.returncode == 1
    finally:
        subprocess.run([sys.executable, "-m", "orchestra", "clean", run_id], cwd=repo, capture_output=True)


def test_an_agents_rounds_share_one_budget():
    from orchestra.budget import Budget

    rounds = [{"cost_usd": 0.03, "tokens": {"input": 1000, "output": 100}, "duration_s": 20.0},
              {"cost_usd": None, "tokens": {"input": None, "output": 50}, "duration_s": 5.0}]
    left = Budget(0.05, 2000, 60.0).remaining(rounds)
    assert (round(left.max_cost_usd, 6), left.max_tokens, left.max_time_s) == (0.02, 850, 35.0)
    spent = Budget(0.01, 1000, None).remaining(rounds)
    assert spent.max_cost_usd == 1e-9 and spent.max_tokens == 1 and spent.max_time_s is None


def test_a_record_with_a_damaged_budget_or_turns_still_shows(workdir):
    folder = workdir / ".orchestra" / "runs" / "20261202-000000-abcdef"
    folder.mkdir(parents=True)
    agent = {"agent": "toy", "role": "agent", "status": "completed", "budget": "lots", "turns": [7, {"turn": "2",
             "status": "completed", "files_modified": "b.py", "budget": [1]}]}
    (folder / "run.json").write_text(json.dumps({"run_id": folder.name, "status": "completed", "secondaries": [agent]}))
    shown = orchestra(workdir, "show", folder.name)
    assert shown.returncode == 0 and "↪ turn 2: completed" in shown.stdout, shown.stderr
    record = json.loads(orchestra(workdir, "show", folder.name, "--json").stdout)
    tidy = record["secondaries"][0]
    assert tidy["budget"] is None and tidy["turns"] == [{"turn": "2", "status": "completed", "files_modified": [],
                                                         "budget": None}]
