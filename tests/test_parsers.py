"""Each agent's parser on its recorded output, whole and cut into random reads."""
import dataclasses
import json
import random
import re
from pathlib import Path

import pytest

from conftest import ROOT, orchestra, toy, write_config
from orchestra.config import SHIPPED_CONFIG, load_config
from orchestra.parsers import make_parser
from orchestra.stream import Stream

OUT = ROOT / "fixtures" / "outputs"
CFG = load_config(str(SHIPPED_CONFIG))


def parse(agent: str, data: bytes, seed: int = 0):
    stream = Stream(make_parser(CFG.agents[agent].parser, CFG.agents[agent]))
    rng = random.Random(seed)
    i = 0
    while i < len(data):
        n = rng.randint(1, 300)
        stream.feed(data[i:i + n])
        i += n
    stream.feed(b"", final=True)
    return stream.parser.result()


@pytest.mark.parametrize("seed", range(5))
def test_claude_stream_json(seed):
    p = parse("claude", (OUT / "claude-stream-json.stdout").read_bytes(), seed)
    assert [Path(f).as_posix().endswith("models/user.py") for f in p.files] == [True]
    assert p.cost_usd > 0 and p.tokens_in > 0 and p.tokens_out > 0
    assert p.session_id and p.is_error is False
    assert "DELEGATE: none" in p.reply


def test_claude_json_result_only():
    p = parse("claude", (OUT / "claude-json.stdout").read_bytes())
    assert p.cost_usd > 0 and p.session_id and p.is_error is False and p.files == []


def test_claude_resumed_run_counts_only_its_own_cost():
    p = parse("claude", (OUT / "claude-resume-second-stream-json.stdout").read_bytes())
    result = [json.loads(x) for x in (OUT / "claude-resume-second-stream-json.stdout").read_text().splitlines()
              if '"type":"result"' in x][0]
    assert p.cost_usd < result["total_cost_usd"]  # the session total includes the first run


def test_claude_names_an_api_retry_and_reports_api_errors():
    retry = next(line for line in (OUT / "claude-401-stream-json.stdout").read_text().splitlines() if "api_retry" in line)
    assert make_parser("claude").retry(retry) == "API error 401 authentication_failed"  # the same each attempt
    p = parse("claude", (OUT / "claude-500-max-retries-0.stdout").read_bytes())
    assert p.is_error is True and any("500" in e for e in p.errors)


def test_claude_interactive_screen():
    p = parse("claude-tui", (OUT / "claude-tui-exit-slash.all.raw").read_bytes())
    assert p.files == ["models/user.py"]
    assert "Second answer: nothing else to do." in p.reply


@pytest.mark.parametrize("name", ["droid-stream-json.stdout", "droid-json.stdout"])
def test_droid_json_outputs(name):
    p = parse("droid", (OUT / name).read_bytes(), seed=3)
    assert p.tokens_in > 0 and p.tokens_out > 0 and p.session_id
    assert p.is_error is False and p.reply.strip()
    if "stream" in name:
        assert [f.endswith("models/user.py") for f in p.files] == [True]


def test_droid_text_output_is_the_reply():
    p = parse("droid", (OUT / "droid-text.stdout").read_bytes())
    assert p.reply.strip() and p.files == []


def test_droid_error_event():
    p = parse("droid", (OUT / "droid-401-stream-json.stdout").read_bytes())
    assert p.is_error is True and any("401" in e for e in p.errors)


def test_aider_edit_tokens_and_cost():
    p = parse("aider", (OUT / "aider-whole.stdout").read_bytes(), seed=7)
    assert p.files == ["models/user.py"]
    assert p.tokens_in > 0 and p.tokens_out > 0 and p.cost_usd > 0


@pytest.mark.parametrize("name", ["aider-401.stdout", "aider-500.stdout"])
def test_aider_api_errors(name):
    p = parse("aider", (OUT / name).read_bytes())
    assert p.is_error is True and any(e.startswith("litellm.") for e in p.errors)


def test_cursor_stream_json():
    p = parse("cursor", (OUT / "cursor-stream-json.constructed.jsonl").read_bytes())
    assert p.files == ["/work/project/src/Navbar.tsx"]
    assert (p.tokens_in, p.tokens_out) == (2104, 311) and p.is_error is False


@pytest.mark.parametrize("seed", range(3))
def test_codex_exec_json_thread_file_change_reply_and_usage(seed):
    data = (OUT / "codex-exec-json.stdout").read_bytes()
    p = parse("codex", data, seed)
    thread = json.loads(data.splitlines()[0])["thread_id"]
    usage = json.loads(data.splitlines()[-1])["usage"]
    assert p.session_id == thread
    assert [Path(f).as_posix().endswith("/models/user.py") for f in p.files] == [True]  # its file_change item
    assert p.reply == "Created models/user.py.\n"
    assert (p.tokens_in, p.tokens_out) == (usage["input_tokens"], usage["output_tokens"])
    assert p.is_error is False and p.errors == []


def test_codex_shell_command_run_is_no_file_claim_and_its_warning_no_error():
    p = parse("codex", (OUT / "codex-shell-exec-json.stdout").read_bytes())
    assert p.files == []  # a shell command names no file; git sees what it wrote
    assert p.errors == [] and p.is_error is False  # "Model metadata ... not found" is a warning item
    assert p.reply == "Created models/post.py.\n"


def test_codex_resumed_thread_keeps_its_id_and_counts_its_own_turn():
    first = parse("codex", (OUT / "codex-exec-json.stdout").read_bytes())
    p = parse("codex", (OUT / "codex-resume-exec-json.stdout").read_bytes())
    assert p.session_id == first.session_id and p.reply == "I created models/user.py.\n"
    assert p.tokens_in > 0 and p.files == []


def test_codex_refused_key_is_an_error_and_its_retries_are_named_alike():
    text = (OUT / "codex-401-exec-json.stdout").read_text()
    p = parse("codex", text.encode())
    assert p.is_error is True
    assert len(p.errors) == 1 and p.errors[0].startswith("unexpected status 401 Unauthorized: invalid api key")
    retries = [line for line in text.splitlines() if "Reconnecting..." in line]
    assert len(retries) == 5 and all(CFG.agents["codex"].retry.search(line) for line in retries)
    assert {make_parser("codex").retry(line) for line in retries} == {"API error 401 Unauthorized"}
    first = make_parser("codex")
    first.feed(retries[0] + "\n")  # stopped at the first: its parser reads the refused key there
    assert first.parsed.api_failure.key_refused and first.parsed.api_failure.status == 401
    assert first.parsed.api_failure.url.endswith("/v1/responses")


def test_codex_patterns_on_its_real_output():
    codex = CFG.agents["codex"]
    done = (OUT / "codex-exec-json.stdout").read_text().splitlines()
    assert [bool(codex.completion.search(line)) for line in done] == [False] * (len(done) - 1) + [True]
    assert not any(e.search(line) for e in codex.errors for line in done)
    failed = (OUT / "codex-401-exec-json.stdout").read_text().splitlines()
    assert codex.errors[0].search(failed[-1]) and not codex.completion.search(failed[-1])


@pytest.mark.parametrize("seed", range(3))
def test_gemini_stream_json_session_file_reply_and_stats(seed):
    data = (OUT / "gemini-stream-json.stdout").read_bytes()
    p = parse("gemini", data, seed)
    result = json.loads(data.splitlines()[-1])
    assert p.session_id == json.loads(data.splitlines()[0])["session_id"]
    assert [Path(f).as_posix().endswith("/models/user.py") for f in p.files] == [True]  # write_file, succeeded
    assert p.reply == "Created models/user.py.\n"
    assert (p.tokens_in, p.tokens_out) == (result["stats"]["input_tokens"], result["stats"]["output_tokens"])
    assert p.is_error is False and p.errors == [] and p.model == "gemini-2.5-flash"


def test_gemini_streamed_reply_pieces_join_into_one_line():
    p = parse("gemini", (OUT / "gemini-resume-stream-json.stdout").read_bytes())
    assert p.reply == "I created models/user.py.\n" and p.files == []


def test_gemini_refused_key_is_its_result_with_status_error():
    data = (OUT / "gemini-401-stream-json.stdout").read_bytes()
    p = parse("gemini", data)
    assert p.is_error is True and len(p.errors) == 1
    assert "401" in p.errors[0] and "invalid api key" in p.errors[0]
    last = data.decode().splitlines()[-1]
    gemini = CFG.agents["gemini"]
    assert gemini.completion.search(last) and any(e.search(last) for e in gemini.errors)
    done = (OUT / "gemini-stream-json.stdout").read_text().splitlines()
    assert not any(e.search(line) for e in gemini.errors for line in done)


def test_a_failed_gemini_write_is_no_file_claim():
    lines = [
        {"type": "tool_use", "tool_name": "write_file", "tool_id": "t1", "parameters": {"file_path": "/w/a.py"}},
        {"type": "tool_result", "tool_id": "t1", "status": "error", "error": {"message": "path outside workspace"}},
        {"type": "tool_use", "tool_name": "write_file", "tool_id": "t2", "parameters": {"file_path": "/w/b.py"}},
        {"type": "tool_result", "tool_id": "t2", "status": "success"},
    ]
    p = parse("gemini", "".join(json.dumps(x) + "\n" for x in lines).encode())
    assert p.files == ["/w/b.py"] and p.errors == ["tool t1: path outside workspace"]


@pytest.mark.parametrize("seed", range(3))
def test_opencode_run_json_session_file_reply_and_tokens(seed):
    data = (OUT / "opencode-run-json.stdout").read_bytes()
    events = [json.loads(line) for line in data.splitlines()]
    p = parse("opencode", data, seed)
    assert p.session_id == events[0]["sessionID"]
    assert [Path(f).as_posix().endswith("/models/user.py") for f in p.files] == [True]  # its write tool
    assert p.reply == "Created models/user.py.\n"
    steps = [e["part"]["tokens"] for e in events if e["type"] == "step_finish"]
    assert len(steps) == 2  # one step per model call: the tool call, then the text
    assert (p.tokens_in, p.tokens_out) == (sum(t["input"] for t in steps), sum(t["output"] for t in steps))
    assert p.cost_usd is None  # it reports 0 for a model it has no price for: not a cost
    assert p.is_error is False and p.errors == []


def test_opencode_resumed_session_keeps_its_id():
    first = parse("opencode", (OUT / "opencode-run-json.stdout").read_bytes())
    p = parse("opencode", (OUT / "opencode-resume-run-json.stdout").read_bytes())
    assert p.session_id == first.session_id and p.reply == "I created models/user.py.\n" and p.files == []


def test_opencode_refused_key_is_its_error_event():
    text = (OUT / "opencode-401-run-json.stdout").read_text()
    p = parse("opencode", text.encode())
    assert p.is_error is True and p.errors == ["API error 401: invalid api key"]
    opencode = CFG.agents["opencode"]
    assert any(e.search(text) for e in opencode.errors) and opencode.completion is None  # its exit ends the task
    done = (OUT / "opencode-run-json.stdout").read_text()
    assert not any(e.search(done) for e in opencode.errors)


def test_summarize_reads_the_codex_and_gemini_recordings(tmp_path):
    for agent, cast, files in (("gemini", "gemini-secondary.cast", ["models/user.py"]),
                               ("codex", "codex-primary.cast", []),
                               ("codex", "codex-primary-resume.cast", [])):
        done = orchestra("summarize", "--agent", agent, str(ROOT / "fixtures" / cast), "--json", cwd=tmp_path)
        data = json.loads(done.stdout)
        assert data["status"] == "completed" and data["files_modified"] == files, (cast, data)
        assert data["tokens"]["input"] > 0 and data["cost_source"] == "estimated"
    assert "DELEGATE: Create models/user.py" in json.loads(
        orchestra("summarize", "--agent", "codex", str(ROOT / "fixtures" / "codex-primary.cast"), "--json",
                  cwd=tmp_path).stdout)["reply"]


def test_generic_parser_survives_redraws_and_noise():
    data = (b"\x1b[2Kworking 10%\rworking 100%\r\n\x1b[32mmodified: a.py\x1b[0m\r\n"
            b"noise \x00\xff\xfe line\r\nERROR: disk full\r\nCost: $0.25\r\n")
    p = Stream(make_parser("generic")).parser
    stream = Stream(p)
    for b in data:
        stream.feed(bytes([b]))
    stream.feed(b"", final=True)
    assert p.result().files == ["a.py"] and p.result().errors == ["disk full"] and p.result().cost_usd == 0.25


def test_summarize_reads_a_cast_and_raw_output_into_the_schema(tmp_path):
    done = orchestra("summarize", "--agent", "droid", str(ROOT / "fixtures" / "droid-secondary.cast"), "--json",
                     cwd=tmp_path)
    data = json.loads(done.stdout)
    assert data["files_modified"] == ["models/user.py", "schemas/user.py", "routers/users.py"]
    assert data["status"] == "completed" and data["tokens"]["input"] > 0
    done = orchestra("summarize", "--agent", "aider", str(OUT / "aider-whole.stdout"), "--json", cwd=tmp_path)
    assert json.loads(done.stdout)["cost_source"] == "reported"


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02" * 1000, b'{"version": 2}\n[1.0, "o"', b"{" * 5000,
                                     b'{"type":"result","usage":"not a dict","is_error":"maybe"}\n'])
def test_summarize_never_shows_a_traceback(tmp_path, content):
    path = tmp_path / "bad.cast"
    path.write_bytes(content)
    for agent in ("claude", "droid", "aider", "cursor", "codex", "gemini", "opencode"):
        done = orchestra("summarize", "--agent", agent, str(path), cwd=tmp_path)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (0, 1, 2)


# -- the agent's own verdict and its own working directory (issue 14, item 6) -------------------------

def summarize_json(agent: str, path: Path, cwd: Path) -> dict:
    done = orchestra("summarize", "--agent", agent, str(path), "--json", cwd=cwd)
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def test_summarize_takes_droids_own_verdict_from_its_single_json_object(tmp_path):
    # `droid exec -o json` prints one `result` object and no `completion` event (the profile's pattern)
    assert summarize_json("droid", OUT / "droid-json.stdout", tmp_path)["status"] == "completed"
    failed = tmp_path / "droid-json-error.stdout"
    failed.write_text((OUT / "droid-json.stdout").read_text().replace('"is_error":false', '"is_error":true'))
    assert summarize_json("droid", failed, tmp_path)["status"] == "failed"


def test_without_a_verdict_or_a_completion_line_a_transcript_is_still_cut_short(tmp_path):
    cut = tmp_path / "cut.stdout"
    cut.write_text("".join((OUT / "droid-stream-json.stdout").read_text().splitlines(True)[:3]))
    data = summarize_json("droid", cut, tmp_path)
    assert data["status"] == "failed" and "no completion pattern" in data["reason"]


@pytest.mark.parametrize("agent, name", [("claude", "claude-stream-json.stdout"),
                                         ("droid", "droid-stream-json.stdout"),
                                         ("cursor", "cursor-stream-json.constructed.jsonl")])
def test_parsers_record_the_working_directory_the_agent_reports(agent, name):
    first = json.loads((OUT / name).read_text().splitlines()[0])
    assert parse(agent, (OUT / name).read_bytes(), seed=1).cwd == first["cwd"]


@pytest.mark.parametrize("agent, name, path", [("claude", "claude-stream-json.stdout", "models/user.py"),
                                               ("droid", "droid-stream-json.stdout", "models/user.py"),
                                               ("cursor", "cursor-stream-json.constructed.jsonl", "src/Navbar.tsx")])
def test_absolute_paths_under_the_agents_own_directory_are_its_files_wherever_summarized(tmp_path, agent, name,
                                                                                          path):
    data = summarize_json(agent, OUT / name, tmp_path)
    assert (data["files_modified"], data["files_outside_workdir"]) == ([path], [])


RECORDED_REPO = re.compile(r"/tmp/orchestra-record-outputs-[^/\"]+/\w+/repo")


@pytest.mark.parametrize("agent, name", [("codex", "codex-exec-json.stdout"), ("gemini", "gemini-stream-json.stdout"),
                                         ("opencode", "opencode-run-json.stdout")])
def test_absolute_paths_of_an_agent_that_reports_no_directory_are_its_files_wherever_its_cast_is_summarized(
        tmp_path, agent, name):
    # Codex's, Gemini's and OpenCode's events name no working directory; orchestra's transcript header
    # names the one it started the agent in. Their real output, the recorded repository made this one:
    repo = tmp_path / "repo"
    repo.mkdir()
    lines = RECORDED_REPO.sub(str(repo), (OUT / name).read_text()).splitlines()
    assert any(str(repo) + "/models/user.py" in line for line in lines)
    shipped = CFG.agents[agent]
    profile = {"command": toy(*[a for line in lines[:-1] for a in ("--line", line)], "--done", lines[-1]),
               "parser": shipped.parser, "timeout": 30}
    if shipped.completion is not None:
        profile["completion"] = shipped.completion.pattern
    cfg = write_config(tmp_path / "c.yaml", {agent: profile})
    done = orchestra("run", "--agent", agent, "--task", "t", "--config", str(cfg), "--no-tmux", "--json", cwd=repo)
    cast = repo / json.loads(done.stdout)["transcript"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = summarize_json(agent, cast, elsewhere)
    assert (data["files_modified"], data["files_outside_workdir"]) == (["models/user.py"], [])
    assert data["status"] == "completed"


@pytest.mark.parametrize("agent, name, status, reason", [
    ("codex", "codex-401-exec-json.stdout", "failed", "the agent reported an error"),  # turn.failed
    ("gemini", "gemini-401-stream-json.stdout", "failed", "the agent reported an error"),  # result status error
    ("opencode", "opencode-run-json.stdout", "completed", ""),  # its last step's finish: stop
    ("opencode", "opencode-401-run-json.stdout", "failed", "the agent reported an error")])  # its error event
def test_summarize_takes_codex_gemini_and_opencodes_own_verdict(tmp_path, agent, name, status, reason):
    data = summarize_json(agent, OUT / name, tmp_path)
    assert (data["status"], data["reason"]) == (status, reason)
    completion = CFG.agents[agent].completion
    line = (OUT / name).read_text().splitlines()[-1]
    assert data["ended_by"]["signal"] == ("completion" if completion and completion.search(line) else "exit")


def test_a_codex_transcript_cut_before_its_turn_ended_is_cut_short(tmp_path):
    cut = tmp_path / "cut.stdout"
    cut.write_text("".join((OUT / "codex-exec-json.stdout").read_text().splitlines(True)[:-1]))
    data = summarize_json("codex", cut, tmp_path)
    assert data["status"] == "failed" and "no completion pattern" in data["reason"]


def test_a_path_outside_the_agents_reported_directory_is_still_outside(tmp_path):
    events = [{"type": "system", "subtype": "init", "cwd": "/work/project", "session_id": "s"},
              {"type": "tool_call", "toolName": "Create", "parameters": {"file_path": "/etc/passwd"}},
              {"type": "tool_call", "toolName": "Create", "parameters": {"file_path": "../elsewhere.py"}},
              {"type": "completion", "finalText": "done"}]
    out = tmp_path / "droid.jsonl"
    out.write_text("".join(json.dumps(e) + "\n" for e in events))
    data = summarize_json("droid", out, tmp_path)
    assert (data["files_modified"], data["files_outside_workdir"]) == ([], ["/etc/passwd", "../elsewhere.py"])


def test_a_live_agent_that_exits_0_with_its_own_verdict_of_success_but_no_completion_line_completed(tmp_path):
    from conftest import toy
    from orchestra.session import AgentSession, drive

    result = '{"type":"result","subtype":"success","is_error":false,"result":"done"}'
    prof = dataclasses.replace(CFG.profile("droid"), command=toy("--task", "{task}", "--done", result), binary=None,
                               timeout=20)
    s = AgentSession(prof, "t", tmp_path, tmp_path / "t.cast")
    s.start()
    drive([s])
    r = s.result()
    assert (r.status, r.ended_by["signal"]) == ("completed", "exit"), r.reason


def test_summarize_of_a_transcript_cut_short_by_a_refused_key_names_the_variable_and_the_retries():
    from orchestra.history import summarize_file
    agent = summarize_file(CFG, CFG.agents["claude"], OUT / "claude-401-stream-json.stdout")
    assert agent.status == "failed" and agent.reason == "API key refused (401): check ANTHROPIC_API_KEY"
    assert agent.errors == ["API key refused (401): check ANTHROPIC_API_KEY",
                            "API error 401 authentication_failed: retried 6 times"]


def test_summarize_of_a_transcript_that_stops_while_retrying_names_what_was_retried(tmp_path):
    from orchestra.history import summarize_file
    retry = ('{"type":"system","subtype":"api_retry","attempt":%d,"max_retries":10,"retry_delay_ms":500,'
             '"error_status":429,"error":"rate_limit","session_id":"s"}')
    path = tmp_path / "claude.jsonl"
    path.write_text("".join(retry % n + "\n" for n in (1, 2, 3)))
    agent = summarize_file(CFG, CFG.agents["claude"], path)
    assert agent.status == "failed"
    assert agent.reason == "the transcript ends while the agent retries: API error 429 rate_limit: retried 3 times"
    assert agent.errors == ["API error 429 rate_limit: retried 3 times"]


def test_an_api_that_cannot_be_reached_is_named_by_its_address_without_the_password_in_it():
    from orchestra.failures import describe
    retry = ('{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,'
             '"error_status":null,"error":"unknown","session_id":"s"}')
    p = make_parser("claude")
    p.feed(retry + "\n")
    env = {"ANTHROPIC_BASE_URL": "http://user:hunter2-secret@127.0.0.1:9/api"}
    assert describe(p.parsed.api_failure, CFG.agents["claude"], env, probe=False) == \
        "cannot reach the API at http://127.0.0.1:9/api: no HTTP answer (unknown)"


def test_claude_screen_reads_a_refused_key_from_its_retry_status_line():
    p = make_parser("claude-tui")
    p.feed_screen("\x1b[35;1H✻ API error · retrying in 1s · attempt 1/10")  # its first attempt names no status
    assert p.parsed.api_failure is None
    p.feed_screen("\x1b[35;3H401\x1b[7Ginvalid x-api-key ·\x1b[27Gretrying in 3s · attempt 3/10")  # a redraw
    assert p.parsed.api_failure.key_refused and p.parsed.api_failure.status == 401
    assert p.parsed.api_failure.detail == "invalid x-api-key"
