"""orchestra delegate: brief extraction, routing, the secondary's summary, and the return to the primary."""
import json
import re
import sys

import yaml

from conftest import TOY, orchestra
from orchestra.config import DEFAULT_DELEGATE_END, DEFAULT_DELEGATE_START
from orchestra.delegate import SUMMARY_ASK, SUMMARY_MAX, extract_briefs, summary_block
from orchestra.session import MAX_ARG_BYTES
from orchestra.summary import AgentSummary

START = re.compile(DEFAULT_DELEGATE_START, re.M)
END = re.compile(DEFAULT_DELEGATE_END, re.M)


def test_a_brief_runs_from_the_delegate_line_to_the_end_marker():
    text = "Let me think.\nDELEGATE: Create models/user.py\nwith a User model.\nEND\nThanks."
    assert extract_briefs(text, START, END) == ["Create models/user.py\nwith a User model."]


def test_without_an_end_marker_the_brief_is_one_line():
    assert extract_briefs("DELEGATE: just this\nnot this\n", START, END) == ["just this"]


def test_several_briefs_are_all_found():
    text = "DELEGATE: one\nEND\nDELEGATE: two\nEND\n"
    assert extract_briefs(text, START, END) == ["one", "two"]


def test_a_mention_inside_a_sentence_is_not_a_brief():
    assert extract_briefs("write a line that begins with DELEGATE: and so on", START, END) == []


def test_the_summary_block_is_one_line_with_every_field():
    s = AgentSummary(agent="droid", role="secondary-1", status="completed", files_modified=["a.py", "b.py"],
                     cost_usd=0.5, cost_source="reported", duration_s=3.2, last_lines=["done"])
    block = summary_block([s])
    assert "\n" not in block
    for part in ("status: completed", "files modified (2): a.py, b.py", "errors (0): none", "cost: $0.5000 (reported)",
                 "duration: 3.2s", "last lines: done"):
        assert part in block


def toy_profile(*args, **fields):
    body = {"command": [sys.executable, str(TOY), *args], "timeout": 20, "linger": 0.5, "kill_grace": 1}
    body.update(fields)
    return body


def config(tmp_path, primary_replies=("DELEGATE: create a.py\\nEND", "Looks done."), secondary_args=("--files", "a.py"),
           **extra):
    agents = {
        "boss": toy_profile("--prompt", "> ", *sum((["--reply", r] for r in primary_replies), []), "--done", "TURN-DONE",
                            prompt=r"> $", completion=r"^TURN-DONE", exit="/exit"),
        "worker": toy_profile("--task", "{task}", *secondary_args, completion="^DONE"),
        "helper": toy_profile("--task", "{task}", "--files", "h.py", completion="^DONE"),
    }
    agents.update(extra)
    path = tmp_path / "orchestra.yaml"
    path.write_text(yaml.safe_dump({
        "agents": agents,
        "routing": {"rules": [{"name": "backend", "agent": "worker", "words": ["api"]}], "default": "helper"},
        "prices": {"worker": {"input_per_mtok": 1, "output_per_mtok": 2}},
    }))
    return path


def delegate(workdir, *args):
    done = orchestra("delegate", "--config", str(config(workdir)) if "--config" not in args else args[args.index("--config") + 1],
                     *[a for i, a in enumerate(args) if a != "--config" and (i == 0 or args[i - 1] != "--config")],
                     "--no-tmux", "--json", cwd=workdir)
    return done, (json.loads(done.stdout) if done.stdout.strip().startswith("{") else None)


def test_the_primary_briefs_the_secondary_and_gets_its_summary_back(workdir):
    done, run = delegate(workdir, "--from", "boss", "--to", "worker", "--task", "Add an API for users")
    assert done.returncode == 0, done.stderr
    assert run["status"] == "completed"
    assert run["brief"] == "create a.py"
    worker = run["secondaries"][0]
    assert worker["agent"] == "worker" and worker["role"] == "secondary-1"
    assert worker["files_modified"] == ["a.py"] and (workdir / "a.py").exists()
    assert "working on: create a.py" in worker["last_lines"]  # the brief, not the raw task
    assert run["summary_returned_to_primary"] is True
    assert "Looks done." in run["primary_reply"]
    primary_lines = run["primary"]["last_lines"]
    assert any(line.startswith("> got: Orchestra: the secondary agent has finished.") and "files modified (1): a.py" in line
               for line in primary_lines)
    saved = json.loads((workdir / ".orchestra" / "runs" / run["run_id"] / "run.json").read_text())
    assert saved["summary_returned_to_primary"] is True
    for key in ("run_id", "task", "brief", "route", "primary", "secondaries", "summary_returned_to_primary",
                "primary_reply", "total_cost_usd", "duration_s"):
        assert key in saved


def test_auto_routes_on_whole_words_of_the_task(workdir):
    done, run = delegate(workdir, "--from", "boss", "--task", "Add an API for users")
    assert run["route"] == {"agent": "worker", "rule": "backend", "word": "api", "skipped": []}
    done, run = delegate(workdir, "--from", "boss", "--task", "rapid prototyping")
    assert run["route"]["agent"] == "helper" and run["route"]["rule"] == "default"


def test_a_primary_without_a_brief_fails_the_run_with_that_reason(workdir):
    cfg = config(workdir, primary_replies=("I would rather not.", "x"))
    done, run = delegate(workdir, "--config", str(cfg), "--from", "boss", "--to", "worker", "--task", "t")
    assert done.returncode == 1
    assert run["status"] == "failed" and "answered with no brief" in run["reason"]
    assert run["secondaries"] == []


def test_a_failed_secondary_fails_the_run_and_the_primary_still_hears_of_it(workdir):
    cfg = config(workdir, secondary_args=("--done", "oops", "--exit", "2"))
    done, run = delegate(workdir, "--config", str(cfg), "--from", "boss", "--to", "worker", "--task", "t")
    assert done.returncode == 1
    assert run["status"] == "crashed" and "exited with code 2" in run["reason"]
    assert run["secondaries"][0]["exit_code"] == 2
    assert run["summary_returned_to_primary"] is True
    assert any("status: crashed" in line for line in run["primary"]["last_lines"])


def test_no_analyze_passes_the_task_through(workdir):
    done, run = delegate(workdir, "--from", "boss", "--to", "worker", "--task", "exactly this", "--no-analyze")
    assert done.returncode == 0, done.stderr
    assert run["brief"] is None and run["primary"] is None
    assert "working on: exactly this" in run["secondaries"][0]["last_lines"]


def test_runs_and_show_list_past_runs(workdir):
    done, run = delegate(workdir, "--from", "boss", "--to", "worker", "--task", "listed task")
    listing = orchestra("runs", cwd=workdir)
    assert run["run_id"] in listing.stdout and "listed task" in listing.stdout and "completed" in listing.stdout
    shown = orchestra("show", run["run_id"], cwd=workdir)
    assert "secondary-1" in shown.stdout and "a.py" in shown.stdout
    replay = orchestra("replay", run["run_id"], "--agent", "secondary-1", "--speed", "0", cwd=workdir)
    assert "modified: a.py" in replay.stdout


def test_the_demo_runs_with_no_agent_and_no_key(workdir, tmux_sessions):
    import os

    env = {k: v for k, v in os.environ.items() if not k.endswith(("_KEY", "_TOKEN"))}
    env["ORCHESTRA_AGENTS_DIR"] = str(workdir / "no-agents")
    done = orchestra("delegate", "--demo", "--task", "Add a User model to FastAPI with CRUD endpoints", "--json",
                     cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    if run["tmux_session"]:
        tmux_sessions.append(run["tmux_session"])
    assert run["status"] == "completed" and run["summary_returned_to_primary"] is True
    assert run["secondaries"][0]["files_modified"] == ["models/user.py", "schemas/user.py", "routers/users.py"]
    assert run["duration_s"] > 0 and run["brief"].startswith("Create a User model")
    assert run["primary"]["cost_source"] == "reported" and run["total_cost_usd"] > 0
    for role in ("primary", "secondary-1"):  # as its window showed it (rendered), and as recorded (raw)
        shown = orchestra("replay", run["run_id"], "--agent", role, "--speed", "0", cwd=workdir)
        raw = orchestra("replay", run["run_id"], "--agent", role, "--speed", "0", "--raw", cwd=workdir)
        assert shown.returncode == 0 and "completed" in shown.stdout and '"type"' not in shown.stdout
        assert raw.returncode == 0 and '"type"' in raw.stdout


def headless_primary(reply: str, resumed_reply: str = "Looks done.") -> dict:
    """A primary like Claude Code headless: the task in argv, JSON events, its session resumed for the summary."""
    def result(text):
        return json.dumps({"type": "result", "subtype": "success", "session_id": "s-1", "result": text}, separators=(",", ":"))
    return toy_profile("--task", "{task}", "--done", result(reply), completion='"type":"result"', parser="claude",
                       resume=[sys.executable, str(TOY), "--task", "{task}", "--done", result(resumed_reply)])


def test_a_secondary_that_touched_thousands_of_files_still_gets_its_summary_to_a_headless_primary(workdir):
    import subprocess

    for args in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-q",
                                  "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=workdir, check=True)
    cfg = config(workdir, chief=headless_primary("DELEGATE: generate the files\nEND"),
                 generator=toy_profile("--task", "{task}", "--many-files", "5000", completion="^DONE"))
    done, run = delegate(workdir, "--config", str(cfg), "--from", "chief", "--to", "generator", "--task", "t")
    assert done.returncode == 0, done.stderr
    assert run["status"] == "completed" and run["summary_returned_to_primary"] is True
    assert run["primary_reply"] == "Looks done."
    assert len(run["secondaries"][0]["files_modified"]) == 5000  # the record keeps them all
    block = json.loads((workdir / ".orchestra" / "runs" / run["run_id"] / "primary-reply.cast")
                       .read_text().splitlines()[1])[2]  # the resumed primary's first words: its argv
    assert f"files modified (5000; the whole list: .orchestra/runs/{run['run_id']}/run.json): " in block
    assert len(block) < SUMMARY_MAX + 100


def test_the_summary_block_stays_bounded_whatever_the_secondaries_did():
    def huge(i):
        return AgentSummary(agent="droid", role=f"secondary-{i}", status="failed", reason="r" * 10_000,
                            files_modified=[f"node_modules/pkg-{n}/index.js" for n in range(10_000)],
                            errors=["e\x03" * 5_000] * 100, last_lines=["l" * 10_000] * 50, branch=f"b{i}")
    for n in (1, 3, 64):
        block = summary_block([huge(i) for i in range(n)], record=".orchestra/runs/x/run.json")
        assert len(block) <= SUMMARY_MAX
        assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", block)  # one line, nothing a terminal acts on
        assert block.endswith(SUMMARY_ASK) and block.count("status: failed") == n


def test_a_task_too_long_for_the_primarys_argument_is_refused_before_anything_starts(workdir):
    cfg = config(workdir, chief=headless_primary("DELEGATE: x\nEND"))
    task = "t" * (MAX_ARG_BYTES - 100)  # fits in orchestra's own argv; not with the delegation prompt around it
    done, run = delegate(workdir, "--config", str(cfg), "--from", "chief", "--to", "worker", "--task", task)
    assert done.returncode == 2 and run is None
    assert "the delegation prompt" in done.stderr and "MAX_ARG_STRLEN" in done.stderr, done.stderr
    assert not (workdir / ".orchestra" / "runs").exists()


def test_a_brief_of_several_lines_is_typed_whole_on_one_line(workdir):
    cfg = config(workdir, primary_replies=("DELEGATE: create a.py\\nwith a User model\\nEND", "Looks done."),
                 typist=toy_profile("--prompt", "> ", prompt="> $", completion="^DONE"))
    done, run = delegate(workdir, "--config", str(cfg), "--from", "boss", "--to", "typist", "--task", "t")
    assert done.returncode == 0, done.stderr
    assert run["brief"] == "create a.py\nwith a User model"  # the record keeps it as written
    assert "> working on: create a.py with a User model" in run["secondaries"][0]["last_lines"]


def test_a_stopped_merge_is_in_the_block_a_primary_gets_whatever_is_cut():
    def huge(i):
        return AgentSummary(agent="droid", role=f"secondary-{i}", status="completed", reason="r" * 10_000,
                            files_modified=[f"f{n}.py" for n in range(1000)], branch=f"orchestra/x/droid-{i}")
    why = "at orchestra/x/droid-1: a merge is in progress in /repo (left as it is); every branch is kept"
    block = summary_block([huge(i) for i in range(8)], merge_stopped=why)
    assert f"The merge stopped {why}" in block and len(block) <= SUMMARY_MAX
