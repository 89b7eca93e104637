"""A readable window: JSON agents' events drawn by their parsers, in tmux, in replays; the transcript stays raw."""
import json
import re
import shutil
import sys

import pytest

from conftest import ROOT, orchestra, tmux, wait_for_pane, write_config
from test_stream import leaked, pem_key
from orchestra.config import ConfigError, load_config, parse_config
from orchestra.parsers import make_parser
from orchestra.redact import Redactor

OUTPUTS = ROOT / "fixtures" / "outputs"
DROID_CAST = ROOT / "fixtures" / "droid-secondary.cast"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def drawn(parser: str, fixture: str) -> str:
    p = make_parser(parser).rendering()
    p.feed((OUTPUTS / fixture).read_text())
    return ANSI.sub("", p.take_rendered())


def test_claude_events_are_drawn_as_text_tool_calls_with_their_targets_results_and_the_result_line():
    text = drawn("claude", "claude-stream-json.stdout")
    assert "▸ Write /tmp/orch-claude-stream-json-4xjvt9v1/repo/models/user.py" in text
    assert "└ File created successfully" in text
    assert "Done: created models/user.py with a User class." in text
    assert "■ completed · 2 turns · $0.0385 · 0.2s" in text
    assert '{"type"' not in text
    assert all(line.endswith("\r") for line in text.split("\n")[:-1])  # CR LF: a browser's terminal too


def test_a_drawing_keeps_no_piece_of_a_key_that_it_cuts_or_colours():
    key = pem_key(20)
    r = Redactor([key])
    p = make_parser("claude").rendering(r.data)
    events = [  # a tool call's first 200 characters, a result's first line, a failure's lines each in red
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "Bash",
                                                       "input": {"command": "x" * 100 + json.dumps(key)}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "content": "y" * 100 + key}]}},
        {"type": "result", "subtype": "error_during_execution", "is_error": True, "result": "no: " + key},
    ]
    p.feed("".join(json.dumps(e) + "\n" for e in events))
    out = r.text(p.take_rendered())  # as a session writes it to the window
    assert out.count("***") == 3 and not leaked(out, key)


def test_claude_retries_are_drawn_apart_in_yellow():
    p = make_parser("claude").rendering()
    p.feed((OUTPUTS / "claude-401-stream-json.stdout").read_text())
    out = p.take_rendered()
    assert "\x1b[33m↻ retry 2 of 10: API error 401 authentication_failed (next in 1.1s)" in out


def test_droid_errors_are_drawn_in_red_and_its_tool_calls_with_their_files():
    p = make_parser("droid").rendering()
    p.feed((OUTPUTS / "droid-401-stream-json.stdout").read_text())
    assert "\x1b[31m\x1b[1m✗ Exec failed" in p.take_rendered()
    text = drawn("droid", "droid-stream-json.stdout")
    assert "▸ Create /tmp/orch-droid-stream-json-fpnlbnbk/repo/models/user.py" in text
    assert "■ completed · 2 turns · 6774 in / 63 out tokens · 0.2s" in text


def test_cursor_tool_calls_and_result_are_drawn():
    text = drawn("cursor", "cursor-stream-json.constructed.jsonl")
    assert "▸ edit /work/project/src/Navbar.tsx" in text
    assert "linesAdded 24" in text
    assert "■ completed · 2104 in / 311 out tokens · 5.2s" in text


def test_codex_items_are_drawn_with_the_file_it_changes_and_the_command_it_runs_and_its_usage():
    text = drawn("codex", "codex-exec-json.stdout")
    assert "▸ add /tmp/orchestra-record-outputs-_yagq70k/codex/repo/models/user.py\r\n  └ completed" in text
    assert "Created models/user.py.\r\n■ completed · 14482 in / 51 out tokens" in text
    assert '{"type"' not in text
    shell = drawn("codex", "codex-shell-exec-json.stdout")
    assert "▸ shell /bin/bash -lc \"mkdir -p models && printf 'x = 1\\\\n' > models/post.py\"\r\n  └ exit 0" in shell
    assert "⚠ Model metadata for `gpt-4o-mini` not found." in shell  # its warning item: the turn went on


def test_codex_retries_are_yellow_and_its_failure_red_said_once():
    p = make_parser("codex").rendering()
    p.feed((OUTPUTS / "codex-401-exec-json.stdout").read_text())
    out = p.take_rendered()
    assert out.count("\x1b[33m↻ Reconnecting... ") == 5
    assert "\x1b[31m\x1b[1m✗ unexpected status 401 Unauthorized: invalid api key" in out
    assert out.endswith("\x1b[31m\x1b[1m■ failed\x1b[0m\r\n")  # its error event just said why
    assert out.count("invalid api key, url") == 6  # 5 retries and the error, not the failure again


def test_gemini_events_are_drawn_its_streamed_reply_on_one_line_and_its_result_with_tokens_and_time():
    text = drawn("gemini", "gemini-stream-json.stdout")
    assert "● gemini · gemini-2.5-flash · session da4381fc" in text
    assert "▸ write_file /tmp/orchestra-record-outputs-_yagq70k/gemini/repo/models/user.py\r\n  └ success" in text
    assert "Created models/user.py.\r\n■ completed · 13281 in / 61 out tokens · 0.3s\r\n" in text
    resumed = drawn("gemini", "gemini-resume-stream-json.stdout")
    assert "\r\nI created models/user.py.\r\n■ completed" in resumed  # two streamed pieces, one line


def test_gemini_refused_key_is_a_red_failure_with_its_text():
    p = make_parser("gemini").rendering()
    p.feed((OUTPUTS / "gemini-401-stream-json.stdout").read_text())
    out = p.take_rendered()
    assert "\x1b[31m\x1b[1m■ failed" in out and '"message":"invalid api key"' in out


def test_gemini_streamed_reply_is_drawn_as_it_comes_and_its_line_ended_before_a_tool_call():
    p = make_parser("gemini").rendering()
    p.feed('{"type":"message","role":"assistant","content":"Writing it","delta":true}\n')
    assert p.take_rendered() == "Writing it"  # shown at once, its line left open
    p.feed('{"type":"message","role":"assistant","content":" now.","delta":true}\n'
           '{"type":"tool_use","tool_name":"run_shell_command","tool_id":"t","parameters":{"command":"pytest -q"}}\n')
    assert ANSI.sub("", p.take_rendered()) == " now.\r\n▸ run_shell_command pytest -q\r\n"


def test_opencode_tool_calls_and_its_runs_tokens_and_time_are_drawn():
    text = drawn("opencode", "opencode-run-json.stdout")
    assert "● opencode · session ses_dd815bfd2ffehBAIyppl64vvLt" in text
    assert ("▸ write /tmp/orchestra-record-outputs-pzylgfw8/opencode/repo/models/user.py\r\n"
            "  └ Wrote file successfully." in text)
    # both steps' tokens (the tool call's and the reply's), from its first event to its last
    assert "Created models/user.py.\r\n■ completed · 6364 in / 61 out tokens · 6.2s\r\n" in text
    p = make_parser("opencode").rendering()
    p.feed((OUTPUTS / "opencode-401-run-json.stdout").read_text())
    assert "\x1b[31m\x1b[1m✗ API error 401: invalid api key" in p.take_rendered()


def test_rendering_leaves_what_the_parser_finds_unchanged():
    for parser, fixture in (("claude", "claude-stream-json.stdout"), ("droid", "droid-stream-json.stdout"),
                            ("cursor", "cursor-stream-json.constructed.jsonl"), ("droid", "droid-text.stdout"),
                            ("codex", "codex-exec-json.stdout"), ("codex", "codex-401-exec-json.stdout"),
                            ("gemini", "gemini-stream-json.stdout"), ("gemini", "gemini-resume-stream-json.stdout"),
                            ("opencode", "opencode-run-json.stdout")):
        plain, drawing = make_parser(parser), make_parser(parser).rendering()
        for p in (plain, drawing):
            p.feed((OUTPUTS / fixture).read_text())
        assert plain.result() == drawing.result()


def test_a_line_that_is_not_an_event_is_drawn_as_it_is():
    p = make_parser("claude").rendering()
    p.feed('claude.sh: claude not found\n{"type":"result","subtype":"success","num_turns":1}\n')
    assert p.take_rendered().startswith("claude.sh: claude not found\r\n")


def test_view_rendered_needs_a_parser_that_draws(tmp_path):
    with pytest.raises(ConfigError, match=r"agent 'a', field 'view'.*parser 'aider' has no rendering"):
        parse_config("agents:\n  a: {command: [x], parser: aider, view: rendered}\n", tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"field 'view'.*expected one of raw, rendered"):
        parse_config("agents:\n  a: {command: [x], view: pretty}\n", tmp_path / "c.yaml")


def test_the_shipped_json_agents_are_rendered_and_the_others_raw():
    views = {name: p.view for name, p in load_config().agents.items()}
    assert {views[a] for a in ("claude", "droid", "cursor", "codex", "gemini", "opencode", "demo-claude",
                               "demo-droid")} == {"rendered"}
    assert views["aider"] == views["claude-tui"] == "raw"


def test_replay_shows_the_rendering_or_the_raw_bytes(workdir):
    rendered = orchestra("replay", str(DROID_CAST), "--speed", "0", "--rendered")
    assert rendered.returncode == 0, rendered.stderr
    assert "▸ \x1b[1mCreate\x1b[0m\x1b[36m routers/users.py" in rendered.stdout
    assert '"type":"tool_call"' not in rendered.stdout
    raw = orchestra("replay", str(DROID_CAST), "--speed", "0", "--raw")
    assert '"type":"tool_call"' in raw.stdout


def test_replay_of_a_transcript_whose_parser_draws_nothing_says_use_raw(workdir):
    cast = workdir / "t.cast"
    cast.write_text(json.dumps({"version": 2, "width": 80, "height": 24, "orchestra": {"parser": "aider"}})
                    + '\n[0.1, "o", "hello\\r\\n"]\n')
    done = orchestra("replay", str(cast), "--rendered")
    assert done.returncode == 2
    assert "no rendering for this transcript" in done.stderr and "use --raw" in done.stderr


def replayed_in_tmux(workdir, tmux_sessions, cast, completion: str, parser: str) -> tuple[dict, str]:
    """`orchestra run` of a recording with a rendered window: its summary, and its pane once it says completed."""
    config = write_config(workdir / "c.yaml", {"replayed": {
        "command": [sys.executable, "-m", "orchestra.replay", str(cast), "--speed", "0"],
        "completion": completion, "parser": parser, "view": "rendered", "timeout": 60}})
    done = orchestra("run", "--agent", "replayed", "--task", "t", "--config", str(config), "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    agent = json.loads(done.stdout)
    tmux_sessions.append(agent["tmux_target"].split(":")[0])
    return agent, wait_for_pane(agent["tmux_target"], "■ completed")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_json_agents_tmux_window_reads_like_a_log_and_its_transcript_keeps_the_raw_events(workdir, tmux_sessions):
    agent, screen = replayed_in_tmux(workdir, tmux_sessions, DROID_CAST, '"type":"completion"', "droid")
    assert "▸ Create routers/users.py" in screen
    assert "└ {\"success\":true,\"file_path\":\"routers/users.py\"}" in screen
    assert '"type":"tool_call"' not in screen
    coloured = tmux("capture-pane", "-p", "-e", "-t", agent["tmux_target"]).stdout
    assert "\x1b[36m▸ \x1b[1mCreate" in coloured
    cast = (workdir / agent["transcript"]).read_text()
    assert '\\"type\\":\\"tool_call\\"' in cast  # the record is the agent's bytes
    assert json.loads(cast.split("\n", 1)[0])["orchestra"] == {"agent": "replayed", "parser": "droid",
                                                               "view": "rendered", "cwd": str(workdir)}


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_geminis_tmux_window_shows_its_tool_call_and_its_streamed_reply_on_a_line_of_its_own(workdir, tmux_sessions):
    _, screen = replayed_in_tmux(workdir, tmux_sessions, ROOT / "fixtures" / "gemini-secondary.cast",
                                 '"type":"result"', "gemini")
    assert "▸ write_file models/user.py\n  └ success\nCreated models/user.py.\n■ completed · 13330 in / 60 out" in screen
    assert "YOLO mode is enabled." in screen  # what it prints that is no event, as it is
    assert '"type":"tool_use"' not in screen

