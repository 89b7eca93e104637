"""What the agent wrote is what the patterns and parsers see, whole; what is stored and shown is masked."""
import json
import os
import re
import shlex
import sys

import pytest

from conftest import ROOT, orchestra, tmux, write_config
from test_faults import wait_for, wait_for_file
from test_stream import leaked, pem_key

from orchestra import jobs
from orchestra.ansi import strip
from orchestra.config import Profile
from orchestra.session import AgentSession, drive

KEY = "sk-planted-0123456789abcdefghijklmnop"
PEM = ("-----BEGIN TEST KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3XQ\n"
       "xj9eQfq1NwbCkDRn2TT8l4eXE0kQ\n-----END TEST KEY-----")


def program(*parts: str) -> list[str]:
    """A program that writes these strings (escape codes and all), one write each, then hangs."""
    code = "import os, signal\n" + "".join(f"os.write(1, {p!r}.encode())\n" for p in parts) + "signal.pause()\n"
    return [sys.executable, "-c", code]


def session(tmp_path, command, **fields) -> AgentSession:
    prof = Profile(name="toy", command=command, timeout=fields.pop("timeout", 20), kill_grace=0.5, linger=0.2, **fields)
    s = AgentSession(prof, "", tmp_path, tmp_path / "t.cast")
    s.start()
    drive([s])
    return s


@pytest.mark.parametrize("is_error, status", [(False, "completed"), (True, "failed")])
def test_a_long_result_line_keeps_the_cost_and_the_verdict_written_before_its_type(tmp_path, is_error, status):
    # Claude Code's result line: total_cost_usd, usage and is_error come before "type":"result"
    code = ("import json, os, signal\n"
            f"line = json.dumps({{'total_cost_usd': 0.5, 'usage': {{'input_tokens': 11, 'output_tokens': 22}}, "
            f"'is_error': {is_error}, 'subtype': 'success', 'result': 'word ' * 300_000, 'type': 'result'}}, "
            "separators=(',', ':'))\n"
            "os.write(1, (line + '\\n').encode())\nsignal.pause()\n")
    s = session(tmp_path, [sys.executable, "-c", code], parser="claude", completion=re.compile('"type":"result"'))
    r = s.result()
    assert r.status == status, r.reason
    assert r.parsed.cost_usd == 0.5 and (r.parsed.tokens_in, r.parsed.tokens_out) == (11, 22)
    assert r.parsed.reply.endswith("word ")


def test_an_unterminated_title_does_not_hide_the_completion_line_after_it(tmp_path):
    s = session(tmp_path, program("\x1b]0;a title cut short", "\r\nDONE\r\n"), completion=re.compile("^DONE$", re.M),
                timeout=8)
    assert s.result().status == "completed", s.result().reason


def test_a_key_that_is_an_ordinary_word_does_not_change_what_the_patterns_see(workdir):
    env = dict(os.environ, MY_SERVICE_TOKEN="finished")
    code = "print('working'); print('finished'); import signal; signal.pause()"
    done = orchestra("run", "--cmd", f"{sys.executable} -c {shlex.quote(code)}", "--done", "^finished$",
                     "--json", "--no-tmux", "--timeout", "10", cwd=workdir, env=env)
    agent = json.loads(done.stdout)
    assert agent["status"] == "completed", agent["reason"]
    cast = (workdir / agent["transcript"]).read_text()
    assert "finished" not in cast and "***" in cast  # stored masked all the same


SHAPES = {
    "cut by escape sequences": (KEY, ["key: " + KEY[:12], "\x1b[1m" + KEY[12:20], "\x1b[0m\x1b[33m" + KEY[20:],
                                      "\x1b[0m\r\n"]),
    "hard-wrapped by a TUI": (KEY, ["x" * 100 + " " + KEY[:15] + "\r\n", "    " + KEY[15:] + " and on\r\n"]),
    "a multi-line key": (PEM, ["key:\r\n", PEM.replace("\n", "\r\n") + "\r\n"]),
}


@pytest.mark.tmux
@pytest.mark.parametrize("shape", SHAPES)
def test_a_key_cut_apart_on_the_terminal_reaches_no_sink(workdir, shape):
    secret, parts = SHAPES[shape]
    code = "import os\n" + "".join(f"os.write(1, {p!r}.encode())\n" for p in parts) + "print('DONE')\n"
    env = dict(os.environ, MY_SERVICE_KEY=secret)
    done = orchestra("run", "--cmd", f"{sys.executable} -c {shlex.quote(code)}", "--done", "^DONE", "--json",
                     cwd=workdir, env=env)
    agent = json.loads(done.stdout)
    pane = tmux("capture-pane", "-p", "-J", "-S", "-", "-t", agent["tmux_target"]).stdout
    tmux("kill-session", "-t", f"=orchestra-{agent['run_id']}")
    assert agent["status"] == "completed", done.stderr
    cast = (workdir / agent["transcript"]).read_text()
    played = "".join(json.loads(line)[2] for line in cast.splitlines()[1:])
    assert "***" in played
    run_json = json.loads((workdir / ".orchestra" / "runs" / agent["run_id"] / "run.json").read_text())
    for sink, text in [("transcript", played), ("tmux window", pane), ("--json", strings(agent)),
                       ("stderr", done.stderr), ("run.json", strings(run_json))]:
        assert not leaked(text, secret), sink


def strings(value) -> str:
    """Every string in a JSON value, a line each (as a person reading it would see them)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    return "\n".join(strings(v) for v in value) if isinstance(value, list) else ""


JSON_AGENT = ROOT / "tests" / "agents" / "json_agent.py"
LONG_PEM = pem_key(20)  # 1.3 KB: longer than what a window line, a latest line or a last line keeps of a line


def json_agent_config(workdir, *args: str):
    """A profile like Claude Code's (stream-json, parser claude, a rendered window) running tests/agents/json_agent.py."""
    return write_config(workdir / "o.yaml", {"jsonkey": {
        "command": [sys.executable, str(JSON_AGENT), "MY_SERVICE_KEY", *args], "completion": '"type":"result"',
        "parser": "claude", "view": "rendered", "timeout": 20, "linger": 0.3, "kill_grace": 0.5}})


def pane_of(target: str) -> str:
    return tmux("capture-pane", "-p", "-J", "-S", "-", "-t", target).stdout


@pytest.mark.tmux
def test_a_multi_line_key_printed_by_a_json_agent_reaches_no_sink(workdir):
    cfg = json_agent_config(workdir, "--fail")
    env = dict(os.environ, MY_SERVICE_KEY=LONG_PEM)
    done = orchestra("run", "--agent", "jsonkey", "--config", str(cfg), "--json", cwd=workdir, env=env)
    agent = json.loads(done.stdout)
    pane = pane_of(agent["tmux_target"])
    tmux("kill-session", "-t", f"=orchestra-{agent['run_id']}")
    assert agent["status"] == "failed" and agent["last_lines"] and agent["errors"], done.stderr
    cast = (workdir / agent["transcript"]).read_text()
    played = "".join(json.loads(line)[2] for line in cast.splitlines()[1:])
    assert played.count("***") == 6  # each of the ways it was written
    run_json = json.loads((workdir / ".orchestra" / "runs" / agent["run_id"] / "run.json").read_text())
    for sink, text in [("transcript", played), ("tmux window", pane), ("--json", done.stdout),
                       ("--json, decoded", strings(agent)), ("stderr", done.stderr), ("run.json", strings(run_json))]:
        assert not leaked(text, LONG_PEM), sink


@pytest.mark.tmux
def test_a_multi_line_key_printed_by_a_detached_json_agent_reaches_no_sink(workdir):
    from orchestra.mcp_server import live_text, summary_result

    ready, go = workdir / "ready", workdir / "go"
    cfg = json_agent_config(workdir, "--fail", "--ready", str(ready), "--go", str(go))
    env = dict(os.environ, MY_SERVICE_KEY=LONG_PEM)
    started = orchestra("run", "--agent", "jsonkey", "--config", str(cfg), "--detach", "--json", cwd=workdir, env=env)
    run_id = json.loads(started.stdout)["run_id"]
    try:
        wait_for_file(ready)
        wait_for(lambda: "wrote" in (jobs.status(workdir, run_id)[0]["secondaries"][0].get("latest") or ""))  # its last event
        seen = [("status while it runs", orchestra("status", cwd=workdir).stdout),
                ("status --json while it runs", orchestra("status", run_id, "--json", cwd=workdir).stdout),
                ("MCP status() while it runs", live_text(jobs.status(workdir, run_id)[0]))]
        go.touch()
        waited = orchestra("wait", run_id, "--json", cwd=workdir)
        record = json.loads(waited.stdout)
        pane = pane_of(record["secondaries"][0]["tmux_target"])
    finally:
        go.touch()
        tmux("kill-session", "-t", f"=orchestra-{run_id}")
    assert record["status"] == "failed" and record["secondaries"][0]["errors"], waited.stdout
    folder = workdir / ".orchestra" / "runs" / run_id
    played = "".join(json.loads(line)[2] for line in (folder / "jsonkey.cast").read_text().splitlines()[1:])
    assert "***" in played
    seen += [("orchestra.log", (folder / "orchestra.log").read_text()), ("transcript", played),
             ("tmux window", pane), ("run.json", strings(json.loads((folder / "run.json").read_text()))),
             ("wait --json", waited.stdout), ("status after", orchestra("status", run_id, cwd=workdir).stdout),
             ("MCP result()", summary_result(jobs.result(workdir, run_id)).content[0].text)]
    for sink, text in seen:
        assert not leaked(text, LONG_PEM), sink
