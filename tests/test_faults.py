"""Faults and hostile input: each gets a clear report, a correct status, a saved transcript, nothing left running."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Optional

import pytest
import yaml

from conftest import TOY, orchestra, tmux, toy
from orchestra.config import Profile
from orchestra.procs import PORTABLE, process_alive
from orchestra.session import AgentSession, drive

SECRET = "sk-planted-secret-0123456789abcdef"


def alive(pid: int) -> bool:
    """Whether it runs (a zombie does not), known on either path (procs: /proc, or psutil)."""
    return process_alive(pid)


def all_gone(pids: list[int], timeout: float = 5) -> bool:
    """True once none of `pids` runs. A SIGKILLed process can still be on its way out for a
    moment after kill() returns (it has to be scheduled to die), so wait for that, bounded."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for_file(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.01)
    raise AssertionError(f"{path} did not appear within {timeout}s")


def config(path: Path, fields: Optional[dict] = None, **agents) -> Path:
    """A config of toy agents (name=args); `fields` adds or changes profile fields, by agent name."""
    body = {name: {"command": [sys.executable, str(TOY), *args], "completion": "^DONE", "timeout": 20,
                   "linger": 0.3, "kill_grace": 0.5, **(fields or {}).get(name, {})} for name, args in agents.items()}
    path.write_text(yaml.safe_dump({"agents": body}))
    return path


def test_a_hanging_agent_and_its_children_are_all_ended_at_the_timeout(tmp_path):
    pidfile = tmp_path / "pids"
    prof = Profile(name="toy", command=toy("--hang", "--spawn-child", "--pidfile", str(pidfile)),
                   completion=re.compile("^DONE", re.M), timeout=1, kill_grace=0.5)
    s = AgentSession(prof, "", tmp_path, tmp_path / "t.cast")
    s.start()
    drive([s])
    pids = [int(p) for p in pidfile.read_text().split()]
    assert s.result().status == "timeout"
    assert all_gone(pids), "the agent's process group must be gone"


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_an_interrupted_run_ends_its_agents_and_says_interrupted(workdir, signum, code):
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", slow=["--task", "{task}", "--hang", "--spawn-child", "--pidfile", str(pidfile)])
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--agent", "slow", "--task", "t",
                             "--config", str(cfg), "--no-tmux"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = [int(p) for p in wait_for_file(pidfile).split()]
    cast = next((workdir / ".orchestra" / "runs").iterdir()) / "slow.cast"
    wait_for(lambda: "working on: t" in cast.read_text())  # (it writes its pidfile first)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    assert "interrupted" in err
    assert all_gone(pids)
    run_dir = next((workdir / ".orchestra" / "runs").iterdir())
    assert f"transcripts and run.json saved in {run_dir.resolve()}" in err
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted" and run["secondaries"][0]["status"] == "interrupted"
    events = [json.loads(line) for line in (run_dir / "slow.cast").read_text().splitlines()]
    assert events[0]["version"] == 2 and any("working on: t" in e[2] for e in events[1:])


def test_a_second_ctrl_c_ends_the_agents_at_once_and_the_record_is_still_saved(workdir):
    pidfile, termed = workdir / "pids", workdir / "termed"
    cfg = config(workdir / "o.yaml", {"stubborn": {"kill_grace": 60}},  # the first Ctrl-C would wait this long
                 stubborn=["--task", "{task}", "--hang", "--note-term", str(termed), "--pidfile", str(pidfile)])
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--agent", "stubborn", "--task", "t",
                             "--config", str(cfg), "--no-tmux"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = [int(p) for p in wait_for_file(pidfile).split()]
    proc.send_signal(signal.SIGINT)
    wait_for_file(termed)  # the first Ctrl-C's SIGTERM reached it, and it goes on
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)  # well before the 60 s grace
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert all_gone(pids)
    run_dir = next((workdir / ".orchestra" / "runs").iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted" and run["secondaries"][0]["status"] == "interrupted"


@pytest.mark.parametrize("style", ["nonl", "binary", "ansi"])
def test_a_flood_keeps_memory_flat_and_the_completion_is_still_found(tmp_path, style):
    prof = Profile(name="toy", command=toy("--flood", "20", "--flood-style", style, "--files", "z.py"),
                   completion=re.compile("^DONE", re.M), timeout=60)
    s = AgentSession(prof, "", tmp_path, tmp_path / "t.cast")
    s.start()
    drive([s])
    r = s.result()
    assert r.status == "completed" and r.parsed.files == ["z.py"]
    assert len(s.searcher.tail) <= 65536 and len(r.parsed.reply) <= 65536
    size = sum(len(json.loads(line)[2]) for line in (tmp_path / "t.cast").read_text().splitlines()[1:])
    assert size >= 20 * 1024 * 1024 * (0.9 if style == "binary" else 1)  # the transcript has it all


def test_a_missing_binary_names_it_and_how_to_install_it(workdir):
    cfg = workdir / "o.yaml"
    cfg.write_text(yaml.safe_dump({"agents": {"ghost": {"command": ["no-such-agent-cli", "{task}"],
                                                        "install": "npm install ghost-cli"}}}))
    done = orchestra("run", "--agent", "ghost", "--task", "t", "--config", str(cfg), cwd=workdir)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'no-such-agent-cli' was not found" in done.stderr and "npm install ghost-cli" in done.stderr


def test_a_binary_that_is_not_executable_is_named(workdir):
    script = workdir / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    cfg = workdir / "o.yaml"
    cfg.write_text(yaml.safe_dump({"agents": {"a": {"command": [str(script), "{task}"]}}}))
    done = orchestra("run", "--agent", "a", "--task", "t", "--config", str(cfg), cwd=workdir)
    assert done.returncode == 2 and f"{script} is not executable" in done.stderr


def test_an_unset_key_variable_stops_the_run_before_it_starts(workdir):
    cfg = workdir / "o.yaml"
    cfg.write_text(yaml.safe_dump({"agents": {"a": {"command": [sys.executable, str(TOY), "--files", "x.py"],
                                                    "api_key_env": "ORCHESTRA_TEST_UNSET_KEY"}}}))
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRA_TEST_UNSET_KEY"}
    done = orchestra("run", "--agent", "a", "--task", "t", "--config", str(cfg), cwd=workdir, env=env)
    assert done.returncode == 2 and "ORCHESTRA_TEST_UNSET_KEY is not set" in done.stderr
    assert not (workdir / "x.py").exists()


def without(*names: str, **extra: str) -> dict:
    """This process's environment without the variables named, with extra ones."""
    return {**{k: v for k, v in os.environ.items() if k not in names}, **extra}


def no_tmux_sessions(env: dict) -> bool:
    """No tmux server answers at the socket env points to (its own TMUX_TMPDIR): orchestra made no session."""
    done = subprocess.run(["tmux", "list-sessions"], env=env, capture_output=True, text=True, timeout=10)
    return done.returncode != 0 and not done.stdout


@pytest.mark.parametrize("args", [["delegate", "--task", "hi"], ["delegate", "--task", "hi", "--detach"],
                                  ["run", "--agent", "claude", "--task", "hi", "--detach"]])
def test_the_default_primary_without_its_key_starts_nothing_and_names_the_variable(workdir, args):
    from orchestra.agents import which
    from orchestra.config import SHIPPED_CONFIG
    if which("claude") is None:  # the binary is checked first, and named instead
        pytest.skip("Claude Code is not installed (scripts/install-agents claude)")
    env = without("ANTHROPIC_API_KEY", TMUX_TMPDIR=str(workdir))
    done = orchestra(*args, "--config", str(SHIPPED_CONFIG), cwd=workdir, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "agent 'claude': the API key variable ANTHROPIC_API_KEY is not set" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / ".orchestra").exists()  # no run folder, no record, nothing to list
    assert no_tmux_sessions(env)


def test_the_agent_auto_routes_to_is_checked_before_anything_starts(workdir):
    cfg = workdir / "o.yaml"
    agent = {"command": [sys.executable, str(TOY), "--files", "x.py"], "completion": "^DONE"}
    cfg.write_text(yaml.safe_dump({
        "agents": {"plain": agent, "keyed": {**agent, "api_key_env": "ORCHESTRA_TEST_UNSET_KEY"}},
        "routing": {"rules": [{"name": "db", "agent": "keyed", "words": ["database"]}], "default": "plain"}}))
    done = orchestra("delegate", "--no-analyze", "--task", "fix the database", "--config", str(cfg), cwd=workdir,
                     env=without("ORCHESTRA_TEST_UNSET_KEY", TMUX_TMPDIR=str(workdir)))
    assert done.returncode == 2 and "agent 'keyed': the API key variable ORCHESTRA_TEST_UNSET_KEY" in done.stderr
    assert not (workdir / ".orchestra").exists() and not (workdir / "x.py").exists()


def test_a_malformed_config_spawns_nothing(workdir):
    cfg = workdir / "o.yaml"
    cfg.write_text("agents:\n  a: {command: [touch, spawned], completion: '(bad'}\n")
    done = orchestra("run", "--agent", "a", "--task", "t", "--config", str(cfg), cwd=workdir)
    assert done.returncode == 2 and "field 'completion'" in done.stderr and "Traceback" not in done.stderr
    assert not (workdir / "spawned").exists()


def test_a_working_directory_that_does_not_exist_is_named_and_nothing_runs(workdir):
    cfg = config(workdir / "o.yaml", {"a": {"workdir": "missing"}}, a=["--task", "{task}", "--files", "x.py"])
    done = orchestra("run", "--agent", "a", "--task", "t", "--no-tmux", "--config", str(cfg), cwd=workdir)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert f"{workdir / 'missing'} does not exist (field 'workdir'" in done.stderr
    assert not list(workdir.rglob("x.py"))


def test_a_failure_between_fork_and_exec_never_runs_orchestra_in_the_child(tmp_path, monkeypatch):
    # pexpect changes directory in its forked child, outside the try that reports exec errors:
    # what fails there is raised in a copy of this process. Make it fail, whatever the check before.
    def refuse(path):
        raise RuntimeError("chdir refused")
    monkeypatch.setattr(os, "chdir", refuse)  # the forked child has it too
    prof = Profile(name="toy", command=toy("--files", "x.py"), completion=re.compile("^DONE", re.M), timeout=10,
                   kill_grace=0.5)
    s = AgentSession(prof, "", tmp_path, tmp_path / "t.cast")
    s.start()
    drive([s])
    r = s.result()
    assert (r.status, r.exit_code) == ("crashed", 127)
    assert any("orchestra: cannot start" in line and "chdir refused" in line for line in r.last_lines)
    assert not (tmp_path / "x.py").exists()


def test_the_tmux_server_killed_mid_run_does_not_stop_the_run(workdir):
    pidfile, gate = workdir / "pids", workdir / "gate"
    os.mkfifo(gate)
    cfg = config(workdir / "o.yaml", a=["--task", "{task}", "--pidfile", str(pidfile), "--wait-fifo", str(gate),
                                        "--files", "k.py"])
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--agent", "a", "--task", "t", "--json",
                             "--config", str(cfg)], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for_file(pidfile)
    assert tmux("kill-server").returncode == 0  # the viewer dies under the running agent
    with open(gate, "w") as fh:  # now let the agent finish
        fh.write("go")
    out, err = proc.communicate(timeout=40)
    agent = json.loads(out)
    assert proc.returncode == 0, err
    assert agent["status"] == "completed" and agent["files_modified"] == ["k.py"]


def test_two_runs_at_once_in_one_directory_do_not_collide(workdir):
    cfg = config(workdir / "o.yaml", a=["--task", "{task}", "--files", "x.py"])
    cmd = [sys.executable, "-m", "orchestra", "run", "--agent", "a", "--task", "t", "--json", "--config", str(cfg)]
    procs = [subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert outs[0]["run_id"] != outs[1]["run_id"]
    assert outs[0]["transcript"] != outs[1]["transcript"]
    assert {o["status"] for o in outs} == {"completed"}
    for o in outs:
        tmux("kill-session", "-t", f"=orchestra-{o['run_id']}")


def test_a_planted_key_never_reaches_any_file_orchestra_writes(workdir):
    cfg = config(workdir / "o.yaml", leaky=["--task", "{task}", "--echo-env", "MY_SERVICE_API_KEY", "--files", "a.py"])
    env = dict(os.environ, MY_SERVICE_API_KEY=SECRET)
    done = orchestra("run", "--agent", "leaky", "--task", f"use {SECRET} please", "--json", "--config", str(cfg),
                     cwd=workdir, env=env)
    agent = json.loads(done.stdout)
    pane = tmux("capture-pane", "-p", "-S", "-", "-t", agent["tmux_target"]).stdout
    tmux("kill-session", "-t", f"=orchestra-{agent['run_id']}")
    assert "env MY_SERVICE_API_KEY=***" in pane and SECRET not in pane
    assert SECRET not in done.stdout and SECRET not in done.stderr
    written = [p for p in (workdir / ".orchestra").rglob("*") if p.is_file()]
    assert len(written) >= 2
    for path in written:
        assert SECRET not in path.read_text(errors="replace"), path
    assert "env MY_SERVICE_API_KEY=***" in (workdir / agent["transcript"]).read_text()


def test_a_key_set_in_a_profiles_own_env_is_masked_too(workdir):
    cfg = config(workdir / "o.yaml", {"a": {"env": {"INLINE_TOKEN": SECRET}}},  # not in orchestra's environment
                 a=["--task", "{task}", "--echo-env", "INLINE_TOKEN", "--files", "a.py"])
    done = orchestra("run", "--agent", "a", "--task", "t", "--json", "--no-tmux", "--config", str(cfg), cwd=workdir)
    agent = json.loads(done.stdout)
    assert agent["status"] == "completed" and SECRET not in done.stdout + done.stderr
    assert "env INLINE_TOKEN=***" in (workdir / agent["transcript"]).read_text()
    for path in (p for p in (workdir / ".orchestra").rglob("*") if p.is_file()):
        assert SECRET not in path.read_text(errors="replace"), path


def test_a_key_cut_apart_by_escape_sequences_is_masked_in_every_summary(workdir):
    # in the bytes the key is not whole ("sk-...\x1b[1m-..."); in the cleaned text it is
    head, tail = SECRET[:10], SECRET[10:]
    program = f"import sys; sys.stdout.write('key: {head}\\x1b[1m{tail}\\x1b[0m\\nDONE\\n')"
    env = dict(os.environ, MY_SERVICE_API_KEY=SECRET)
    done = orchestra("run", "--cmd", f"{sys.executable} -c {shlex.quote(program)}", "--done", "^DONE",
                     "--json", "--no-tmux", cwd=workdir, env=env)
    agent = json.loads(done.stdout)
    assert agent["status"] == "completed", done.stderr
    assert "key: ***" in agent["last_lines"] and SECRET not in done.stdout + done.stderr
    run_json = (workdir / ".orchestra" / "runs" / agent["run_id"] / "run.json").read_text()
    assert "key: ***" in run_json and SECRET not in run_json


def test_paths_outside_the_working_directory_are_reported_not_followed(workdir):
    script = workdir / "liar.sh"
    script.write_text("#!/bin/sh\necho 'modified: ../../etc/passwd'\necho 'modified: /etc/shadow'\n"
                      "echo 'modified: ok.py'\necho DONE\n")
    script.chmod(0o755)
    done = orchestra("run", "--cmd", str(script), "--done", "^DONE", "--json", "--no-tmux", cwd=workdir)
    agent = json.loads(done.stdout)
    assert agent["files_modified"] == ["ok.py"]
    assert agent["files_outside_workdir"] == ["../../etc/passwd", "/etc/shadow"]


HOSTILE = ["$(touch pwned)", "`touch pwned`", "a; touch pwned", "-rf --help", "quote ' and \" and \\",
           "line one\nline two", "ünïcödé ✓ 日本", "x" * 100_000]


@pytest.mark.parametrize("agent", ["claude", "droid", "aider", "cursor"])
def test_hostile_task_text_reaches_every_shipped_wrapper_unchanged(workdir, agent):
    """Each shipped profile runs its wrapper, which runs a stand-in CLI that records its argv."""
    from orchestra.config import SHIPPED_CONFIG, load_config

    profile = load_config(str(SHIPPED_CONFIG)).agents[agent]
    bindir = workdir / "bin"
    bindir.mkdir(exist_ok=True)
    stand_in = bindir / (profile.binary or agent)
    stand_in.write_text(f"#!{sys.executable}\nimport json, sys\n"
                        f"open({str(workdir / 'argv.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
                        "print('{\"type\":\"result\",\"type2\":\"completion\"}')\n")
    stand_in.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", ORCHESTRA_AGENTS_DIR=str(workdir / "none"),
               ANTHROPIC_API_KEY="k" * 10, OPENAI_API_KEY="k" * 10, CURSOR_API_KEY="k" * 10)
    for task in HOSTILE:
        done = orchestra("run", "--agent", agent, "--task", task, "--json", "--no-tmux", cwd=workdir, env=env)
        assert "Traceback" not in done.stderr, done.stderr
        argv = json.loads((workdir / "argv.json").read_text())
        assert argv[-1] in (task, f"--message={task}"), (agent, argv[-3:])
        assert not (workdir / "pwned").exists()


def test_show_and_replay_take_only_a_run_id_and_a_damaged_run_json_is_named(workdir):
    (workdir / "run.json").write_text('{"run_id": "x", "status": "planted"}')  # what ../.. would reach
    runs = workdir / ".orchestra" / "runs"
    runs.mkdir(parents=True)
    for args in (["show", "../.."], ["show", "/etc"], ["replay", "../.."]):
        done = orchestra(*args, cwd=workdir)
        assert done.returncode == 2 and "is not a run id" in done.stderr and "planted" not in done.stdout, args
    for run_id, text in [("20261125-000000-aaaaaa", "[1]"),
                         ("20261125-000000-bbbbbb", '{"run_id": "20261125-000000-bbbbbb", "secondaries": [{"agent": "a"}, 7]}')]:
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "run.json").write_text(text)
    listed = orchestra("runs", cwd=workdir)
    assert listed.returncode == 0 and "unreadable" in listed.stdout and "Traceback" not in listed.stderr
    damaged = orchestra("show", "20261125-000000-aaaaaa", cwd=workdir)
    assert damaged.returncode == 2 and "not a run record" in damaged.stderr
    sparse = orchestra("show", "20261125-000000-bbbbbb", cwd=workdir)
    assert sparse.returncode == 0 and "[?] a: ?" in sparse.stdout, sparse.stderr
    no_cast = orchestra("replay", "20261125-000000-bbbbbb", cwd=workdir)
    assert no_cast.returncode == 2 and "names no transcript" in no_cast.stderr


@pytest.mark.parametrize("args, message", [
    (["--cmd", "echo \"x", "--done", "x"], "Invalid value for --cmd: No closing quotation"),
    (["--cmd", "echo x", "--done", "x", "--timeout", "nan"], "Invalid value for --timeout"),
    (["--cmd", "echo x", "--done", "x", "--timeout", "0"], "Invalid value for --timeout"),
    (["--cmd", "echo x", "--done", "x", "--timeout", "-1"], "Invalid value for --timeout"),
])
def test_a_bad_command_line_is_a_usage_error_and_starts_nothing(workdir, args, message):
    done = orchestra("run", "--no-tmux", *args, cwd=workdir)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (workdir / ".orchestra").exists()


def test_replay_and_summarize_cope_with_a_foreign_transcript_and_bad_options(workdir):
    cast = workdir / "foreign.cast"
    cast.write_text('{"version": 2, "width": "wide", "height": 40}\n[0.1, "o", "half \\ud800 a pair\\r\\n"]\n'
                    '[0.2, "o", "DONE\\r\\n"]\n')
    played = subprocess.run([sys.executable, "-m", "orchestra", "replay", str(cast), "--speed", "0"], cwd=workdir,
                            capture_output=True, timeout=30)
    assert played.returncode == 0 and b"half ? a pair" in played.stdout, played.stderr
    summed = orchestra("summarize", "--agent", "demo-droid", str(cast), cwd=workdir)
    assert "Traceback" not in summed.stderr, summed.stderr
    for option in (["--max-delay", "inf"], ["--speed", "nan"], ["--speed", "-1"]):
        done = orchestra("replay", str(cast), *option, cwd=workdir)
        assert done.returncode == 2 and f"Invalid value for {option[0]}" in done.stderr, option
    no_tmux = orchestra("replay", str(cast), "--tmux", cwd=workdir, env=dict(os.environ, PATH="/nonexistent"))
    assert no_tmux.returncode == 2 and "tmux is not installed" in no_tmux.stderr


def test_a_working_directory_where_the_record_cannot_be_kept_is_named(workdir):
    (workdir / ".orchestra").write_text("a file where orchestra keeps its runs")
    done = orchestra("run", "--no-tmux", "--cmd", "echo hi", "--done", "hi", cwd=workdir)
    assert done.returncode == 2 and "cannot keep this run's record in" in done.stderr
    assert "Traceback" not in done.stderr


def test_what_an_agent_leaves_running_outside_its_process_group_is_ended_with_the_run(workdir):
    agent = workdir / "leaver.py"
    agent.write_text(textwrap.dedent(f"""
        import os, subprocess, sys
        away = subprocess.Popen(["sleep", "300"], start_new_session=True)  # setsid: a session of its own
        group = subprocess.Popen(["sleep", "301"], preexec_fn=os.setpgrp, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # its own group, off the pty
        open({str(workdir / 'pids')!r}, "w").write(f"{{away.pid}} {{group.pid}}")
        # the first of the key stays held back (it may be the start of the key) until the run ends
        sys.stdout.write("DONE\\r\\nthe last words: {SECRET[:8]}")
        sys.stdout.flush()
    """))
    env = dict(os.environ, MY_SERVICE_API_KEY=SECRET)
    done = orchestra("run", "--cmd", f"{sys.executable} {agent}", "--done", "^DONE", "--json", "--no-tmux",
                     cwd=workdir, env=env)
    run = json.loads(done.stdout)
    assert run["status"] == "completed", done.stderr
    assert all_gone([int(p) for p in (workdir / "pids").read_text().split()])
    events = [json.loads(line) for line in (workdir / run["transcript"]).read_text().splitlines()[1:]]
    assert "".join(e[2] for e in events if e[1] == "o").endswith(f"the last words: {SECRET[:8]}")


def test_a_program_that_cannot_be_executed_is_named_recorded_and_leaves_no_window(workdir):
    program = workdir / "not-a-program"
    program.write_text("neither a script nor a binary\n")
    program.chmod(0o755)
    done = orchestra("run", "--cmd", str(program), "--done", "x", cwd=workdir)
    assert done.returncode == 2 and "Exec format error" in done.stderr and "Traceback" not in done.stderr
    run_dir = next((workdir / ".orchestra" / "runs").iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and "Exec format error" in run["reason"]
    assert run["tmux_session"] is None
    assert tmux("has-session", "-t", f"=orchestra-{run['run_id']}").returncode != 0


def test_an_agent_that_closes_its_terminal_and_stays_is_ended_and_the_reason_says_so(tmp_path):
    prof = Profile(name="mute", command=[sys.executable, "-c", "import os, time\nfor fd in (0, 1, 2): os.close(fd)\n"
                                         "time.sleep(60)"], completion=re.compile("^DONE", re.M), timeout=30,
                   kill_grace=0.3)
    s = AgentSession(prof, "", tmp_path, tmp_path / "t.cast")
    s.start()
    drive([s])
    r = s.result()
    assert r.status == "failed" and "closed its terminal" in r.reason and "ended it after 0.3s" in r.reason
    assert r.signal == "SIGTERM"  # orchestra's, and the reason says whose


def test_a_closed_terminal_still_ends_the_run_its_agents_and_what_they_left_and_keeps_the_record(workdir):
    import pexpect

    agent = workdir / "leaver.py"
    agent.write_text(textwrap.dedent(f"""
        import subprocess, time
        away = subprocess.Popen(["sleep", "300"], start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open({str(workdir / 'pids')!r}, "w").write(str(away.pid))
        time.sleep(300)
    """))
    term = pexpect.spawn(sys.executable, ["-m", "orchestra", "run", "--no-tmux", "--cmd", f"{sys.executable} {agent}",
                                          "--done", "^DONE"], cwd=str(workdir), env=dict(os.environ))
    daemon = int(wait_for_file(workdir / "pids"))
    os.close(term.child_fd)  # the terminal goes away: SIGHUP, and nothing more can be said to it
    term.child_fd = -1
    _, status = os.waitpid(term.pid, 0)
    term.terminated = True
    assert os.waitstatus_to_exitcode(status) == 129
    assert all_gone([daemon])
    run_dir = next((workdir / ".orchestra" / "runs").iterdir())
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"


def test_a_key_cut_by_the_end_of_the_kept_reply_is_masked_whole_first(workdir):
    # the summary keeps the reply's last 4000 characters: here the cut falls inside the key, which
    # escape sequences cut apart in the bytes (so only the cleaned text has it whole)
    head, tail = SECRET[:10], SECRET[10:]
    program = (f"import sys; sys.stdout.write('key: {head}\\x1b[1m{tail}\\x1b[0m\\n' + 'y' * 3980 + "
               "'\\nDONE\\n')")
    env = dict(os.environ, MY_SERVICE_API_KEY=SECRET)
    done = orchestra("run", "--cmd", f"{sys.executable} -c {shlex.quote(program)}", "--done", "^DONE",
                     "--json", "--no-tmux", cwd=workdir, env=env)
    agent = json.loads(done.stdout)
    assert agent["status"] == "completed" and len(agent["reply"]) <= 4000
    assert SECRET[-12:] not in done.stdout


def small_disk_works(where: Path) -> bool:
    """Can this test mount a tmpfs of its own (root, or user namespaces), seen by nobody else?"""
    where.mkdir(exist_ok=True)
    probe = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=16k tmpfs "$1"', "sh", str(where)],
                           capture_output=True)
    return probe.returncode == 0


def test_a_full_disk_ends_everything_says_what_was_not_written_and_keeps_the_work(tmp_path):
    repo = tmp_path / "repo"
    runs = repo / ".orchestra" / "runs"
    runs.mkdir(parents=True)
    if not small_disk_works(tmp_path / "probe"):
        pytest.skip("cannot mount a small tmpfs here (needs root or user namespaces, and unshare)")
    for args in (["init", "-q", "-b", "main"], ["-c", "user.name=T", "-c", "user.email=t@t.invalid", "commit", "-q",
                                                "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    pidfile = tmp_path / "pids"
    # a's transcript fills the 16 KB disk that holds the run's folder; b's work and run.json find it full
    cfg = config(tmp_path / "o.yaml", a=["--task", "{task}", "--flood", "0.1", "--files", "a.py", "--setsid-child",
                                         "--pidfile", str(pidfile)], b=["--task", "{task}", "--files", "b.py"])
    # a mount namespace of its own: the small disk is seen by this run only, and goes with it
    done = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=16k tmpfs "$1" && shift && exec "$@"',
                           "sh", str(runs), sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg),
                           "--to", "a", "--to", "b", "--task", "t", "--no-analyze", "--no-tmux", "--json"],
                          cwd=repo, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr  # the task completed: the record's fate does not change that
    run = json.loads(done.stdout)  # the summary, though run.json could not be written
    run_dir = (runs / run["run_id"]).resolve()
    assert f"cannot write {run_dir / 'run.json'}: No space left on device" in done.stderr
    assert f"cannot write {run_dir / 'secondary-1.cast'}: No space left on device" in done.stderr
    assert f"cannot write {run_dir / 'secondary-1.cast'}: No space left on device" in run["secondaries"][0]["errors"]
    assert all_gone([int(p) for p in pidfile.read_text().split()])  # the agent and the daemon it left
    for s, name in zip(run["secondaries"], ("a.py", "b.py")):  # each one's work committed on its branch
        assert s["status"] == "completed"
        shown = subprocess.run(["git", "show", f"{s['branch']}:{name}"], cwd=repo, capture_output=True, text=True)
        assert shown.stdout == "# written for: t\n"
    orchestra("clean", run["run_id"], "--force", cwd=repo)


def test_a_run_whose_orchestra_was_killed_is_listed_shown_replayed_and_cleaned(workdir, tmux_sessions):
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", toy=["--task", "{task}", "--hang", "--setsid-child", "--pidfile", str(pidfile)])
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--agent", "toy", "--task", "t",
                             "--config", str(cfg)], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent, daemon = [int(p) for p in wait_for_file(pidfile).split()]
    run_dir = next((workdir / ".orchestra" / "runs").iterdir())
    rid = run_dir.name
    tmux_sessions.append(f"orchestra-{rid}")
    wait_for(lambda: "working on: t" in (run_dir / "toy.cast").read_text())
    proc.kill()  # SIGKILL: no record, no clean-up
    proc.wait()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running" and alive(daemon)
    listed = orchestra("runs", cwd=workdir)  # its live record says running; its process is gone
    assert re.search(rf"^{rid} +lost +toy ", listed.stdout, re.M), listed.stdout + listed.stderr
    shown = orchestra("show", rid, cwd=workdir)
    assert shown.returncode == 0 and f"Run {rid}: lost (orchestra (pid {proc.pid}) ended" in shown.stdout, shown.stderr
    assert "[agent] toy: lost" in shown.stdout and f"orchestra replay {rid} --agent agent" in shown.stdout
    (run_dir / "run.json").unlink()  # a run killed before its first record (or from an older orchestra)
    listed = orchestra("runs", cwd=workdir)
    assert re.search(rf"^{rid} +incomplete +toy ", listed.stdout, re.M), listed.stdout + listed.stderr
    shown = orchestra("show", rid, cwd=workdir)
    assert shown.returncode == 0 and f"Run {rid}: incomplete (no run.json" in shown.stdout, shown.stderr
    assert "[toy] toy: incomplete" in shown.stdout and f"orchestra replay {rid} --agent toy" in shown.stdout
    played = orchestra("replay", rid, "--agent", "toy", "--speed", "0", cwd=workdir)
    assert played.returncode == 0 and "working on: t" in played.stdout, played.stderr
    cleaned = orchestra("clean", rid, cwd=workdir)
    assert cleaned.returncode == 0 and re.search(r"ended \d process(es)? the run left running", cleaned.stdout), \
        cleaned.stdout + cleaned.stderr
    assert all_gone([agent, daemon])
    assert tmux("has-session", "-t", f"=orchestra-{rid}").returncode != 0
    assert (run_dir / "toy.cast").exists()  # the record stays


def wait_for(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_clean_refuses_a_run_that_is_still_going_and_touches_nothing(workdir):
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", slow=["--task", "{task}", "--hang", "--pidfile", str(pidfile)])
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--agent", "slow", "--task", "t",
                             "--config", str(cfg), "--no-tmux"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agent = int(wait_for_file(pidfile))
    rid = next((workdir / ".orchestra" / "runs").iterdir()).name
    refused = orchestra("clean", rid, cwd=workdir)
    assert refused.returncode == 2 and f"run {rid} is still going (orchestra process {proc.pid})" in refused.stderr
    assert alive(agent)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert all_gone([agent])
