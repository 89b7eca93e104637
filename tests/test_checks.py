"""Acceptance checks (--check, checks: in config, MCP checks) and fix rounds (--fix-rounds).

The agents are the toy agent (tests/agents/toy_agent.py) in a real git repository, run by real
`orchestra` processes; the checks are real commands. A fix round with the real Claude Code against
the scripted model server: test_a_real_claude_fixes_a_failed_check_in_its_resumed_session.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TOY, git, needs_git, orchestra
from orchestra.checks import TAIL, CheckPlan, CheckResult, fix_message
from orchestra.config import Profile, RouteRule, parse_config
from orchestra.errors import ConfigError
from orchestra.procs import process_alive

pytestmark = needs_git

IMPORT_X_IS_2 = "python3 -c \"import m; assert m.X == 2, 'X is ' + str(m.X)\""


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@orchestra.invalid")
    (path / "README.md").write_text("# project\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "start")
    return path


def toy(*args, **fields) -> dict:
    body = {"command": [sys.executable, str(TOY), "--task", "{task}", *args], "timeout": 20, "linger": 0.3,
            "kill_grace": 1, "completion": "^DONE"}
    body.update(fields)
    return body


def resumable(*args, **fields) -> dict:
    """A toy that says a session id, and whose resume: gets the fix round's message as its task (and writes it
    into its files, where a check can see it)."""
    return toy(*args, "--line", "session: toy-1", parse={"session_id": r"session: (\S+)"},
               resume=[sys.executable, str(TOY), "--task", "{task}", *args, "--line", "resumed {session_id}"], **fields)


def config(tmp_path: Path, routing: dict | None = None, **agents) -> Path:
    path = tmp_path / "orchestra.yaml"  # outside the repository: not part of the work
    body = {"agents": agents}
    if routing:
        body["routing"] = routing
    path.write_text(yaml.safe_dump(body))
    return path


def run_json(repo: Path, cfg: Path, agent: str, *args: str, env=None) -> tuple:
    done = orchestra("run", "--config", str(cfg), "--agent", agent, "--task", "t", "--no-tmux", "--json", *args,
                     cwd=repo, env=env, timeout=90)
    assert done.stdout.strip().startswith("{"), done.stderr
    return done, json.loads(done.stdout)


def delegate_json(repo: Path, cfg: Path, *args: str) -> tuple:
    done = orchestra("delegate", "--config", str(cfg), "--no-analyze", "--task", "t", "--no-tmux", "--json", *args,
                     cwd=repo, timeout=120)
    assert done.stdout.strip().startswith("{"), done.stderr
    return done, json.loads(done.stdout)


def record(repo: Path, run_id: str) -> dict:
    return json.loads((repo / ".orchestra" / "runs" / run_id / "run.json").read_text())


# -- a check passes or fails -----------------------------------------------------------------------------------


def test_a_check_that_passes_makes_the_agent_verified_and_the_exit_status_0(tmp_path, repo):
    cfg = config(tmp_path, w=toy("--files", "m.py"))
    done, agent = run_json(repo, cfg, "w", "--check", "python3 -c 'import m'")
    assert done.returncode == 0, done.stderr
    assert agent["status"] == "completed" and agent["verified"] is True
    [check] = agent["checks"]
    assert check["command"] == "python3 -c 'import m'" and check["exit_code"] == 0 and check["duration_s"] >= 0
    assert record(repo, agent["run_id"])["verified"] is True


def test_a_failed_check_makes_verified_false_and_exit_1_with_its_output_tail_and_the_status_unchanged(tmp_path, repo):
    (repo / "m.py").write_text("X = 1\n")
    cfg = config(tmp_path, w=toy("--files", "notes.txt"))
    done, agent = run_json(repo, cfg, "w", "--check", "python3 -c 'import m'", "--check", IMPORT_X_IS_2)
    assert done.returncode == 1
    assert agent["status"] == "completed"  # what the agent did
    assert agent["verified"] is False
    passed, failed = agent["checks"]
    assert passed["exit_code"] == 0 and failed["exit_code"] == 1 and failed["timed_out"] is False
    assert failed["output"].rstrip().endswith("AssertionError: X is 1")
    shown = orchestra("show", agent["run_id"], cwd=repo)
    assert "checks failed ✗" in shown.stdout and "check failed: " + IMPORT_X_IS_2 in shown.stdout
    assert "AssertionError: X is 1" in shown.stdout
    assert "completed ✗" in orchestra("runs", cwd=repo).stdout


def test_no_check_given_leaves_verified_null(tmp_path, repo):
    cfg = config(tmp_path, w=toy("--files", "m.py"))
    done, agent = run_json(repo, cfg, "w")
    assert done.returncode == 0 and agent["verified"] is None and agent["checks"] == []


def test_a_check_is_never_run_by_a_shell_unless_asked(tmp_path, repo):
    cfg = config(tmp_path, w=toy())
    done, agent = run_json(repo, cfg, "w", "--check", "echo $HOME; exit 3", "--check", "sh -c 'echo $0-ran; exit 3'")
    plain, shell = agent["checks"]
    assert plain["exit_code"] == 0 and "$HOME; exit 3" in plain["output"]  # echo's arguments, as they were
    assert shell["exit_code"] == 3 and "sh-ran" in shell["output"]


def test_a_checks_output_is_masked_and_only_its_tail_kept(tmp_path, repo):
    secret = "sk-test-" + "q" * 40
    cfg = config(tmp_path, w=toy(api_key_env="TOY_API_KEY"))
    env = dict(os.environ, TOY_API_KEY=secret)
    flood = f"import os; print('x' * 100000); print(os.environ['TOY_API_KEY']); raise SystemExit(1)"
    done, agent = run_json(repo, cfg, "w", "--check", f"python3 -c \"{flood}\"", env=env)
    [check] = agent["checks"]
    assert len(check["output"]) <= TAIL and check["output"].startswith("...")
    assert secret not in check["output"] and check["output"].rstrip().endswith("***")
    assert secret not in (repo / ".orchestra" / "runs" / agent["run_id"] / "run.json").read_text()


def test_a_check_past_its_timeout_is_ended_with_everything_in_its_process_group(tmp_path, repo):
    cfg = config(tmp_path, w=toy())
    hang = "sh -c 'sleep 300 & echo $! > child.pid; echo started; wait'"
    done, agent = run_json(repo, cfg, "w", "--check", hang, "--check-timeout", "1")
    [check] = agent["checks"]
    assert check["timed_out"] is True and check["exit_code"] is None and 1 <= check["duration_s"] < 5
    assert "started" in check["output"]
    assert agent["verified"] is False and done.returncode == 1
    assert not process_alive(int((repo / "child.pid").read_text()))


def test_a_bad_check_is_refused_before_anything_starts(tmp_path, repo):
    cfg = config(tmp_path, w=toy())
    for args, said in ((["--check", "pytets -q"], "program 'pytets' not found"),
                       (["--check", "python3 -c 'unclosed"], "No closing quotation"),
                       (["--check", "  "], "a check is empty"),
                       (["--check", "true", "--check-timeout", "0"], "--check-timeout")):
        done = orchestra("run", "--config", str(cfg), "--agent", "w", "--task", "t", "--no-tmux", *args, cwd=repo)
        assert done.returncode == 2 and said in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (repo / ".orchestra" / "runs").exists() or not any((repo / ".orchestra" / "runs").iterdir())


def test_wait_exits_1_when_a_check_failed(tmp_path, repo):
    cfg = config(tmp_path, w=toy())
    started = orchestra("run", "--config", str(cfg), "--agent", "w", "--task", "t", "--no-tmux", "--detach", "--json",
                        "--check", "false", cwd=repo)
    run_id = json.loads(started.stdout)["run_id"]
    waited = orchestra("wait", run_id, "--timeout", "60", cwd=repo)
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert "checks failed ✗" in waited.stdout


# -- where checks come from -------------------------------------------------------------------------------------


def test_the_command_lines_checks_win_over_the_rules_which_win_over_the_profiles():
    profile = Profile(name="w", command=["w"], checks=["profile-check"])
    rule = RouteRule("backend", "w", ["api"], checks=["rule-check"])
    assert CheckPlan(["given"]).commands(profile, rule) == ["given"]
    assert CheckPlan().commands(profile, rule) == ["rule-check"]
    assert CheckPlan().commands(profile, None) == ["profile-check"]
    assert CheckPlan().commands(Profile(name="v", command=["v"]), None) == []


def test_checks_in_config_are_read_and_a_bad_one_names_its_field(tmp_path):
    cfg = parse_config(yaml.safe_dump({
        "agents": {"w": {"command": ["w"], "checks": ["pytest -q"]}},
        "routing": {"rules": [{"name": "api", "agent": "w", "words": ["api"], "checks": ["make test"]}]}}),
        tmp_path / "c.yaml")
    assert cfg.agents["w"].checks == ["pytest -q"] and cfg.rules[0].checks == ["make test"]
    for body, said in (({"agents": {"w": {"command": ["w"], "checks": "pytest"}}}, "agent 'w', field 'checks'"),
                       ({"agents": {"w": {"command": ["w"], "checks": ["pytest 'x"]}}}, "No closing quotation")):
        with pytest.raises(ConfigError, match=said):
            parse_config(yaml.safe_dump(body), tmp_path / "c.yaml")


def test_a_routing_rules_checks_are_run_for_the_agent_it_chose(tmp_path, repo):
    cfg = config(tmp_path, {"rules": [{"name": "api", "agent": "w", "words": ["t"], "checks": ["sh -c 'exit 4'"]}],
                            "default": "w"}, w=toy(checks=["true"]))
    done, run = delegate_json(repo, cfg, "--to", "auto")
    assert [c["exit_code"] for c in run["secondaries"][0]["checks"]] == [4]
    assert run["verified"] is False and done.returncode == 1


# -- several secondaries, and the merge ------------------------------------------------------------------------

ONLY_MINE = "python3 -c \"import os; assert os.path.exists('a.py') != os.path.exists('b.py'), 'both'; print(os.getcwd())\""


def test_each_secondary_is_checked_in_its_own_worktree_and_merged_checks_fail_after_two_green_branches(tmp_path, repo):
    cfg = config(tmp_path, a=toy("--files", "a.py"), b=toy("--files", "b.py"))
    done, run = delegate_json(repo, cfg, "--to", "a", "--to", "b", "--merge", "--check", ONLY_MINE)
    a, b = run["secondaries"]
    assert a["verified"] is True and b["verified"] is True
    assert a["checks"][0]["output"].strip() == a["workdir"] and b["checks"][0]["output"].strip() == b["workdir"]
    assert a["workdir"] != b["workdir"] and str(repo) not in (a["workdir"], b["workdir"])
    assert all(m["merged"] for m in run["merges"])  # a real git merge of both branches
    assert (repo / "a.py").exists() and (repo / "b.py").exists()
    [merged] = run["merged_checks"]
    assert merged["exit_code"] == 1 and "AssertionError: both" in merged["output"]
    assert run["verified"] is False and done.returncode == 1
    shown = orchestra("show", run["run_id"], cwd=repo).stdout
    assert "check failed after the merge" in shown


# -- fix rounds ----------------------------------------------------------------------------------------------------

FIXED = "grep -q 'acceptance checks' m.py"  # the toy writes its task into m.py: a fix round's message passes it


def test_a_fix_round_resumes_the_agent_with_the_failed_check_and_checks_again_until_it_passes(tmp_path, repo):
    cfg = config(tmp_path, w=resumable("--files", "m.py"))
    done, agent = run_json(repo, cfg, "w", "--check", FIXED, "--fix-rounds", "2")
    assert done.returncode == 0, done.stderr
    assert agent["status"] == "completed" and agent["verified"] is True
    [fix] = agent["fix_rounds"]  # it passed after the first: no second round
    assert fix["round"] == 1 and fix["status"] == "completed" and fix["verified"] is True
    assert fix["files_modified"] == ["m.py"] and fix["checks"][0]["exit_code"] == 0
    folder = repo / ".orchestra" / "runs" / agent["run_id"]
    assert fix["transcript"].endswith("w-fix-1.cast") and (repo / fix["transcript"]).is_file()
    sent = (repo / "m.py").read_text()  # what the resumed session was told
    assert "Orchestra ran the acceptance checks" in sent and FIXED in sent
    assert "resumed toy-1" in (folder / "w-fix-1.cast").read_text()  # in its own session
    played = orchestra("replay", agent["run_id"], "--speed", "0", cwd=repo)
    assert "resumed toy-1" in played.stdout  # replayable, after the agent
    shown = orchestra("show", agent["run_id"], cwd=repo).stdout
    assert "fix round 1: completed, 1 file (m.py)" in shown and "checks passed" in shown


def test_fix_rounds_stop_after_n_and_the_last_checks_count(tmp_path, repo):
    cfg = config(tmp_path, w=resumable("--files", "m.py"))
    done, agent = run_json(repo, cfg, "w", "--check", "sh -c 'echo still red; exit 1'", "--fix-rounds", "2")
    assert done.returncode == 1 and agent["verified"] is False
    assert [r["round"] for r in agent["fix_rounds"]] == [1, 2]
    assert all(r["verified"] is False for r in agent["fix_rounds"])
    assert "still red" in agent["checks"][0]["output"]


def test_fix_rounds_for_an_agent_that_cannot_resume_exit_2_before_anything_starts(tmp_path, repo):
    cfg = config(tmp_path, w=toy())
    for command in ("run", "delegate"):
        args = ["--agent", "w"] if command == "run" else ["--to", "w", "--no-analyze"]
        done = orchestra(command, "--config", str(cfg), *args, "--task", "t", "--no-tmux", "--check", "false",
                         "--fix-rounds", "1", cwd=repo)
        assert done.returncode == 2 and "agent 'w' cannot be resumed" in done.stderr, done.stderr
    done = orchestra("run", "--config", str(cfg), "--agent", "w", "--task", "t", "--no-tmux", "--fix-rounds", "1",
                     cwd=repo)
    assert done.returncode == 2  # no resume, and no check either
    assert not (repo / ".orchestra" / "runs").exists() or not any((repo / ".orchestra" / "runs").iterdir())


def test_a_fix_rounds_message_is_bounded_and_typed_on_one_line_when_typed():
    failed = [CheckResult(f"check-{i}", 1, 0.1, "y" * TAIL) for i in range(5)]
    message = fix_message(failed, 6)
    assert len(message) <= 4000 and "5 of 6 failed" in message
    assert all(f"`check-{i}` exited 1" in message for i in range(5))
    assert "\n" not in fix_message(failed, 6, typed=True)


# -- what a primary is given ----------------------------------------------------------------------------------------


def test_the_text_a_primary_gets_leads_with_the_failed_check_right_after_the_status():
    from orchestra.delegate import summary_block
    from orchestra.mcp_server import summary_result
    from orchestra.summary import AgentSummary

    a = AgentSummary(agent="w", role="secondary-1", status="completed", files_modified=[f"f{i}.py" for i in range(50)],
                     errors=["e" * 3000], reply="r" * 3000, verified=False,
                     checks=[{"command": "pytest -q", "exit_code": 1, "duration_s": 1.0, "timed_out": False,
                              "output": "lots of noise " * 200 + "FAILED tests/test_user.py::test_name"}])
    block = summary_block([a])
    status = block.index("status: completed")
    assert block.index("checks FAILED (1 of 1): `pytest -q` exited 1") - status < 40
    assert "FAILED tests/test_user.py::test_name" in block
    record = {"run_id": "r", "status": "completed", "verified": False, "secondaries": [a.to_dict()],
              "merged_checks": [{"command": "make test", "exit_code": 2, "output": "merge broke it"}]}
    text = summary_result(record).content[0].text
    assert "CHECKS FAILED" in text.splitlines()[0]
    assert "FAILED tests/test_user.py::test_name" in text and "merge broke it" in text


def test_the_mcp_delegate_tool_takes_checks_and_fix_rounds(tmp_path, repo, tmux_sessions):
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    cfg = config(tmp_path, {"rules": [], "default": "w"}, w=toy("--files", "m.py"))
    params = StdioServerParameters(command=sys.executable, args=["-m", "orchestra", "mcp", "--config", str(cfg)],
                                   cwd=str(repo), env=dict(os.environ))

    async def calls():
        async with Client(params) as client:
            return (await client.call_tool("delegate", {"task": "t", "to": "w", "checks": ["sh -c 'echo red; exit 1'"],
                                                        "wait_s": 60}),
                    await client.call_tool("delegate", {"task": "t", "to": "w", "checks": ["true"], "fix_rounds": 1}))

    checked, refused = asyncio.run(calls())
    assert not checked.is_error
    data = checked.structured_content
    tmux_sessions.append(f"orchestra-{data['run_id']}")
    assert data["status"] == "completed" and data["verified"] is False
    assert data["agents"][0]["checks"][0]["exit_code"] == 1 and "red" in data["agents"][0]["checks"][0]["output"]
    assert "CHECKS FAILED" in checked.content[0].text and "`sh -c 'echo red; exit 1'` exited 1" in checked.content[0].text
    assert refused.is_error and "cannot be resumed" in refused.content[0].text


# -- the web page ------------------------------------------------------------------------------------------------


def test_the_run_page_shows_a_fix_round_as_one_more_terminal_and_the_runs_row_says_verified(tmp_path, repo):
    from orchestra.runfolder import load
    from orchestra.web.feeds import run_page, runs_row

    cfg = config(tmp_path, w=resumable("--files", "m.py"))
    done, agent = run_json(repo, cfg, "w", "--check", FIXED, "--fix-rounds", "1")
    page = run_page(repo, agent["run_id"])
    [fix] = page["secondaries"][0]["fix_rounds"]
    assert fix["cast"] == "w-fix-1" and fix["rows_used"]
    from orchestra.web.feeds import cast_path

    assert cast_path(repo, agent["run_id"], "w-fix-1").is_file()  # served to the page's terminal
    assert runs_row(load(repo, agent["run_id"]))["verified"] is True


# -- a fix round with a real agent -------------------------------------------------------------------------------


@pytest.mark.real_agent
@pytest.mark.parametrize("name", ["claude"])  # droid exec -s, offline, fails: "Failed to fetch session" (its log)
def test_a_real_agent_fixes_a_failed_check_in_its_resumed_session(tmp_path, repo, name, tmux_sessions):
    """Its first turn writes m.py with X = 1, which the check fails; orchestra resumes its session with the
    check's output, and the second turn (the model server sees the failure in its request) writes X = 2."""
    from test_real_agents import need, orchestra as real_orchestra, write_config
    from tests.support.model_server import ModelServer, write_file_rules

    need(name)
    fixed = write_file_rules(name, repo, "m.py", "X = 2\n", "Fixed: X is 2 now.", task_contains="AssertionError: X is 1")
    first = write_file_rules(name, repo, "m.py", "X = 1\n", "Created m.py.")
    with ModelServer(fixed + first) as srv:
        cfg = write_config(tmp_path, repo, srv.url, [name])
        done, run = real_orchestra(cfg, repo, "delegate", "--to", name, "--no-analyze", "--task", "Create m.py with X",
                                   "--check", IMPORT_X_IS_2, "--fix-rounds", "2")
        requests = srv.requests.snapshot()
    if run.get("tmux_session"):
        tmux_sessions.append(run["tmux_session"])
    assert done.returncode == 0, (run.get("reason"), done.stderr)
    agent = run["secondaries"][0]
    assert agent["status"] == "completed" and agent["verified"] is True and run["verified"] is True
    assert (repo / "m.py").read_text() == "X = 2\n"
    [fix] = agent["fix_rounds"]
    assert fix["status"] == "completed" and fix["verified"] is True and fix["files_modified"] == ["m.py"]
    assert fix["transcript"].endswith("secondary-1-fix-1.cast") and (repo / fix["transcript"]).is_file()
    assert fix["cost_usd"] is not None and run["total_cost_usd"] >= agent["cost_usd"] + fix["cost_usd"] - 1e-6
    told = [r for r in requests if "AssertionError: X is 1" in r.last_user_text]
    assert told and IMPORT_X_IS_2 in told[0].last_user_text
    # in its own session: the resumed request carries the first turn's conversation
    assert any("Create m.py with X" in json.dumps(m) for m in told[0].messages)


def test_ctrl_c_during_a_check_ends_it_and_the_run_is_recorded_interrupted(tmp_path, repo):
    import signal
    import subprocess
    import time

    cfg = config(tmp_path, w=toy())
    hang = "sh -c 'echo $$ > check.pid; exec sleep 300'"
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--config", str(cfg), "--agent", "w", "--task",
                             "t", "--no-tmux", "--check", hang], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    pid_file = repo / "check.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):  # the check has started
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not process_alive(int(pid_file.read_text()))
    [run_id] = os.listdir(repo / ".orchestra" / "runs")
    assert record(repo, run_id)["status"] == "interrupted"


@pytest.mark.parametrize("secondaries", [1, 64])
def test_the_checks_a_model_gets_are_bounded_however_many_agents_and_checks(secondaries):
    from orchestra.mcp_server import TEXT_MAX, summary_result

    checks = [{"command": "c" * 5000, "exit_code": 1, "duration_s": 1.0, "timed_out": False, "output": "o" * TAIL}] * 50
    agent = {"agent": "w", "role": "secondary-1", "status": "completed", "verified": False, "checks": checks,
             "fix_rounds": [{"round": 1}] * 3}
    record = {"run_id": "20261129-000000-abcdef", "status": "completed", "verified": False, "merged_checks": checks,
              "secondaries": [dict(agent, role=f"secondary-{i}") for i in range(1, secondaries + 1)]}
    result = summary_result(record)
    assert len(result.content[0].text) <= TEXT_MAX
    assert len(json.dumps(result.structured_content)) < 50_000
    assert result.structured_content["agents"][0]["checks_more"] > 0


def test_send_reruns_the_checks_of_the_run_on_the_turns_work(tmp_path, repo):
    cfg = config(tmp_path, w=resumable("--files", "m.py"))
    check = "grep -q 'make it right' m.py"
    done, agent = run_json(repo, cfg, "w", "--check", check)
    assert done.returncode == 1 and agent["verified"] is False  # its first work fails the check
    sent = orchestra("send", agent["run_id"], "--task", "make it right", "--config", str(cfg), "--no-tmux", "--json",
                     cwd=repo, timeout=90)
    assert sent.returncode == 0, sent.stderr
    [turn] = json.loads(sent.stdout)["secondaries"][0]["turns"]
    assert turn["verified"] is True and turn["checks"][0]["command"] == check and turn["checks"][0]["exit_code"] == 0


def test_fix_rounds_share_the_agents_budget(tmp_path, repo):
    # each session reports 320 tokens: alone each would fit in 500, together the first round crosses them
    cfg = config(tmp_path, w=resumable("--files", "m.py", "--line", "Tokens: 300 sent, 20 received"))
    done, agent = run_json(repo, cfg, "w", "--check", "sh -c 'exit 1'", "--fix-rounds", "3", "--max-tokens", "500")
    assert agent["verified"] is False
    assert [r["status"] for r in agent["fix_rounds"]] == ["over_budget"], agent["fix_rounds"]
    assert agent["fix_rounds"][0]["ended_by"]["signal"] == "budget"
