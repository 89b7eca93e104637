"""The task reaches the agent whole, byte for byte, or is refused before anything starts."""
import hashlib
import json
import re
import stat

import pytest

from conftest import orchestra, toy, write_config
from orchestra import limits
from orchestra.config import Profile, load_config
from orchestra.errors import OrchestraError
from orchestra.run import run_agent
from orchestra.session import MAX_ARG_BYTES, AgentSession

PROMPT = ["--prompt", "> "]


def digest(text: str) -> str:
    data = text.encode()
    return f"task digest: {len(data)} {hashlib.sha256(data).hexdigest()}"


def typed(*args, **fields) -> dict:
    """A profile whose task is typed at its prompt."""
    return {"command": toy(*PROMPT, *args), "prompt": "> $", "completion": "^DONE", "timeout": 20,
            "linger": 0.3, "kill_grace": 0.5, **fields}


def run_json(workdir, cfg, agent, task, *args):
    done = orchestra("run", "--config", str(cfg), "--agent", agent, "--task", task, "--no-tmux", "--json", *args,
                     cwd=workdir)
    return done, (json.loads(done.stdout) if done.stdout.startswith("{") else None)


@pytest.mark.parametrize("char, name, at", [("\x03", "Ctrl-C", 5), ("\x15", "Ctrl-U", 5), ("\n", "a newline", 5)])
def test_a_control_character_in_a_typed_task_is_refused_before_anything_starts(workdir, char, name, at):
    cfg = write_config(workdir / "o.yaml", {"typed": typed()})
    done, _ = run_json(workdir, cfg, "typed", f"stop{char}here")
    assert done.returncode == 2, done.stdout
    assert f"{name} ({char!r}) at character {at}" in done.stderr and "{task_file}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / ".orchestra" / "runs").exists()  # no run was started


def test_a_typed_task_longer_than_a_terminal_line_is_never_typed_cut(workdir):
    # The toy reads its task a line at a time (canonical mode), which keeps 4095 bytes of a line.
    cfg = write_config(workdir / "o.yaml", {"typed": typed("--digest")})
    done, agent = run_json(workdir, cfg, "typed", "x" * 5000)
    assert done.returncode == 1, done.stderr
    assert agent["status"] == "failed"
    assert "canonical mode" in agent["reason"] and "{task_file}" in agent["reason"]
    assert f"at most {limits.line_bytes(0)[0]} bytes of a line ({limits.line_bytes(0)[1]})" in agent["reason"]
    assert not any(line.startswith("task digest") for line in agent["last_lines"])  # it never got a cut task
    assert any("canonical mode" in e for e in agent["errors"])


def test_a_typed_task_of_a_whole_terminal_line_arrives_whole(workdir):
    cfg = write_config(workdir / "o.yaml", {"typed": typed("--digest")})
    task = "y" * 4095  # with its Enter, the most a canonical line holds
    done, agent = run_json(workdir, cfg, "typed", task)
    assert done.returncode == 0, done.stderr
    assert any(line.endswith(digest(task)) for line in agent["last_lines"])


def test_a_long_task_typed_into_a_raw_mode_agent_arrives_whole(workdir):
    cfg = write_config(workdir / "o.yaml", {"tui": typed("--raw", "--digest")})
    task = "é and more words " * 1200  # 21,600 bytes
    done, agent = run_json(workdir, cfg, "tui", task)
    assert done.returncode == 0, done.stderr
    assert any(line.endswith(digest(task)) for line in agent["last_lines"])


def test_task_file_gives_the_agent_its_task_whole_in_a_private_file(workdir):
    cfg = write_config(workdir / "o.yaml", {"filer": {
        "command": toy("--task-file", "{task_file}", "--digest"), "completion": "^DONE", "timeout": 20}})
    task = "line one\nline two\x03 with\ttab, \x15 and ünïcode\n" + "z" * 100_000
    done, agent = run_json(workdir, cfg, "filer", task)
    assert done.returncode == 0, done.stderr
    assert digest(task) in agent["last_lines"]
    path = workdir / ".orchestra" / "runs" / agent["run_id"] / "filer.task.txt"
    assert path.read_bytes() == task.encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_task_too_long_for_one_argument_is_refused_before_the_run_starts(workdir):
    cfg = write_config(workdir / "o.yaml", {"argv": {"command": toy("--task", "{task}"), "completion": "^DONE"}})
    config = load_config(str(cfg), workdir)
    with pytest.raises(OrchestraError) as caught:
        run_agent(config, config.profile("argv"), "w" * (MAX_ARG_BYTES + 1), workdir, tmux=False)
    assert f"is {MAX_ARG_BYTES + 1} bytes" in str(caught.value) and "MAX_ARG_STRLEN" in str(caught.value)
    assert not (workdir / ".orchestra" / "runs").exists()


def test_an_argument_too_long_is_refused_by_the_session_before_it_forks(tmp_path):
    prof = Profile(name="toy", command=toy("--task", "--message={task}"), completion=re.compile("^DONE", re.M))
    s = AgentSession(prof, "v" * MAX_ARG_BYTES, tmp_path, tmp_path / "t.cast")
    with pytest.raises(OrchestraError, match="MAX_ARG_STRLEN"):
        s.start()
    assert s.child is None


def test_arguments_and_environment_too_big_together_are_refused_naming_arg_max(tmp_path):
    # each argument fits (under MAX_ARG_STRLEN on Linux); together they pass the platform's ARG_MAX
    prof = Profile(name="toy", command=toy(*["a" * 100_000] * 30), completion=re.compile("^DONE", re.M))
    s = AgentSession(prof, "", tmp_path, tmp_path / "t.cast")
    with pytest.raises(OrchestraError, match=r"ARG_MAX.*\{task_file\}"):
        s.start()
    assert s.child is None
