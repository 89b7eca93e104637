"""The run folder as one module: odd records, lost runs, a run interrupted while it is set up, bounded answers,
and the layering it gives (nothing reads another module's private names)."""
import ast
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, orchestra, toy, write_config
from test_faults import all_gone, config, wait_for_file

from orchestra import jobs, runfolder

ODD = {
    "secondaries-a-number": {"run_id": None, "status": "completed", "secondaries": 5, "task": "odd 1"},
    "strings-for-numbers": {"run_id": None, "status": "completed", "duration_s": "long", "total_cost_usd": "free",
                            "secondaries": [{"agent": "x", "files_modified": "a.py", "duration_s": "2s",
                                             "errors": "boom", "tokens": 3, "cost_usd": "1"}]},
    "primary-a-list": {"run_id": None, "status": "failed", "primary": ["x"], "merges": {"a": 1}, "task": 7},
}


def odd_runs(workdir: Path) -> list[str]:
    """One good run (the demo) and one folder for each odd record."""
    ids = []
    for n, (name, record) in enumerate(ODD.items()):
        run_id = f"20990101-00000{n}-abcde{n}"
        folder = workdir / ".orchestra" / "runs" / run_id
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({**record, "run_id": run_id}))
        ids.append(run_id)
    return ids


def test_odd_records_are_each_one_row_and_never_break_runs_show_or_the_web_index(workdir):
    done = orchestra("delegate", "--demo", "--task", "Add a User model", "--no-tmux", "--json", cwd=workdir)
    good = json.loads(done.stdout)["run_id"]
    ids = odd_runs(workdir)
    listed = orchestra("runs", cwd=workdir)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert all(run_id in listed.stdout for run_id in [good, *ids])
    as_json = json.loads(orchestra("runs", "--json", cwd=workdir).stdout)
    assert len(as_json) == 4
    for run_id in ids:
        shown = orchestra("show", run_id, cwd=workdir)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    from orchestra.web.feeds import RunsIndex, run_page

    index = RunsIndex(workdir)
    index.scan()
    assert set(index.rows) == {good, *ids}
    for run_id in ids:
        run_page(workdir, run_id)  # the page's data: no TypeError on any of them


def test_an_odd_record_reads_with_the_types_its_readers_expect(workdir):
    run_id = odd_runs(workdir)[1]
    record = runfolder.load(workdir, run_id)
    agent = record["secondaries"][0]
    assert record["duration_s"] is None and record["total_cost_usd"] is None
    assert agent["files_modified"] == [] and agent["errors"] == [] and agent["duration_s"] is None
    assert agent["tokens"] == {"input": None, "output": None}


def lost_run(workdir: Path, cfg: Path, pidfile: Path) -> tuple[str, int]:
    run_id = jobs.start(workdir, ["run", "--agent", "slow", "--task", "t", "--config", str(cfg), "--no-tmux"])
    agent = int(wait_for_file(pidfile))
    worker = jobs.status(workdir, run_id)[0]["pid"]
    os.kill(worker, signal.SIGKILL)
    jobs.wait(workdir, run_id, 30)
    return run_id, agent


def test_a_lost_run_is_in_status_once_with_what_to_do_and_clean_clears_it(workdir):
    pidfile = workdir / "pids"
    cfg = config(workdir / "o.yaml", slow=["--task", "{task}", "--hang", "--pidfile", str(pidfile)])
    run_id, agent = lost_run(workdir, cfg, pidfile)
    first = orchestra("status", cwd=workdir)
    assert run_id in first.stdout and "lost" in first.stdout and f"orchestra clean {run_id}" in first.stdout
    again = orchestra("status", cwd=workdir)
    assert run_id not in again.stdout and "No run under way" in again.stdout
    assert orchestra("status", run_id, cwd=workdir).stdout.count("lost") >= 1  # asked by its id: always there
    assert all_gone([agent])

    pidfile.unlink()
    second, agent = lost_run(workdir, cfg, pidfile)
    cleaned = orchestra("clean", second, cwd=workdir)
    assert cleaned.returncode == 0, cleaned.stderr
    assert second not in orchestra("status", cwd=workdir).stdout
    assert all_gone([agent])


def test_mcp_status_stays_bounded_however_many_runs_are_lost(workdir):
    from orchestra.mcp_server import TEXT_MAX, status_result

    gone = subprocess.Popen(["true"])
    gone.wait()
    runs = [{"run_id": f"20990101-000000-{n:06x}", "status": "lost", "reason": "r" * 400, "task": "t" * 300,
             "pid": gone.pid, "secondaries": [{"agent": "droid", "status": "lost", "latest": "l" * 500}]}
            for n in range(200)]
    result = status_result(runs)
    assert len(result.content[0].text) <= TEXT_MAX
    assert len(json.dumps(result.structured_content)) < 30_000
    assert result.structured_content["more"] == 180 and "180 more" in result.content[0].text


def test_a_running_result_keeps_its_bound_and_what_to_do_with_many_secondaries():
    from orchestra.mcp_server import TEXT_MAX, summary_result

    record = {"run_id": "20990101-000000-abcdef", "status": "running", "duration_s": 3.0,
              "secondaries": [{"agent": f"agent-{i}", "role": f"secondary-{i}", "status": "running",
                               "phase": "working", "duration_s": 1.0, "latest": "x" * 300} for i in range(18)]}
    text = summary_result(record).content[0].text
    assert len(text) <= TEXT_MAX, len(text)
    assert 'call wait(run_id="20990101-000000-abcdef")' in text


def slow_version_cli(folder: Path, fifo: Path) -> Path:
    """A program whose --version blocks until the test writes to fifo (a version check under way); as an
    agent it says DONE."""
    folder.mkdir(exist_ok=True)
    path = folder / "slowver"
    path.write_text(f"#!/bin/sh\nif [ \"$1\" = --version ]; then read x < '{fifo}'; echo 'slowver 1.0.0'; exit 0; fi\n"
                    "echo DONE\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_run_interrupted_while_it_is_set_up_is_recorded_interrupted(workdir, tmp_path):
    """A cancel in a run's first seconds (here: during its agent's version check) is `interrupted`, not lost."""
    fifo = tmp_path / "version-gate"
    os.mkfifo(fifo)
    cli = slow_version_cli(tmp_path / "bin", fifo)
    cfg = write_config(workdir / "o.yaml", {"slow": {"command": [str(cli), "{task}"], "binary": str(cli),
                                                     "version": "1.0.0", "completion": "^DONE", "timeout": 20}})
    started = orchestra("run", "--agent", "slow", "--task", "t", "--config", str(cfg), "--no-tmux", "--detach",
                        "--json", cwd=workdir, timeout=20)
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    worker = jobs.status(workdir, run_id)[0]["pid"]
    os.kill(worker, signal.SIGINT)  # its version check is still blocked on the fifo
    with open(fifo, "w") as gate:  # (blocks until the check reads it: it is under way)
        gate.write("go\n")
    record = jobs.wait(workdir, run_id, 30)
    assert record["status"] == "interrupted", record
    assert "SIGINT" in record["reason"]


PRIVATE_OK = {"__future__"}


def imports_of(path: Path) -> list[tuple[str, str]]:
    """(module, name) for each `from .module import name` in a file of orchestra's."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            for alias in node.names:
                found.append((node.module or "", alias.name))
    return found


def test_no_module_imports_another_modules_private_names():
    offenders = [(str(p.relative_to(ROOT)), module, name)
                 for p in (ROOT / "orchestra").rglob("*.py") for module, name in imports_of(p)
                 if name.startswith("_") and not name.startswith("__") and module not in PRIVATE_OK]
    assert offenders == []


@pytest.mark.parametrize("low", ["runfolder", "procs"])
def test_the_run_folder_and_process_facts_sit_at_a_low_floor(low):
    allowed = {"errors", "procs", "transcript", "runfolder"}
    used = {module.split(".")[0] for module, _ in imports_of(ROOT / "orchestra" / f"{low}.py")}
    assert used <= allowed, used - allowed


RUN_FOLDER_NAMES = {"RUNS_DIR", "LIVE_DIR", "LOCK", "RUN_ID", "new_run_id", "load", "load_run", "list_runs",
                    "run_agents", "lost_or_live", "process_alive", "process_started", "tell_starter", "become_worker"}


def test_the_modules_that_read_runs_take_them_from_the_run_folder_module():
    offenders = [(str(p.relative_to(ROOT)), module, name)
                 for p in (ROOT / "orchestra").rglob("*.py") for module, name in imports_of(p)
                 if name in RUN_FOLDER_NAMES and module.split(".")[-1] not in ("runfolder", "procs")]
    assert offenders == []


def test_delegate_and_mcp_give_a_primary_the_same_words():
    from orchestra.delegate import summary_block
    from orchestra.mcp_server import summary_result
    from orchestra.summary import AgentSummary

    s = AgentSummary(agent="droid", role="secondary-1", status="completed", files_modified=["a.py"],
                     cost_usd=0.5, cost_source="reported", duration_s=3.2, reply="Created a.py.",
                     ended_by={"signal": "completion", "pattern": "DONE", "line": "DONE", "decided_ms": 0.4})
    block = summary_block([s])
    record = {"run_id": "20990101-000000-abcdef", "status": "completed", "secondaries": [s.to_dict()],
              "total_cost_usd": 0.5, "duration_s": 3.3}
    text = summary_result(record).content[0].text
    section = "[secondary-1: droid] status: completed"
    assert section in block and section in text
    for part in ("ended by: completion /DONE/", "files modified (1): a.py", "errors (0): none",
                 "cost: $0.5000 (reported)", "duration: 3.2s", "its reply: Created a.py."):
        assert part in block and part in text, part


def test_run_ids_made_one_after_another_sort_in_the_order_they_were_made():
    ids = []
    for _ in range(5):
        made = runfolder.new_run_id()
        while runfolder.new_run_id()[:18] == made[:18]:  # the next 256th of a second
            pass
        ids.append(made)
    assert ids == sorted(ids) and all(runfolder.RUN_ID.fullmatch(i) for i in ids)


def finished(workdir: Path, n: int, status: str = "completed") -> list[str]:
    """n finished runs' records, written as a run writes them."""
    ids = []
    for i in range(n):
        run_id = f"20990102-00000{i}-abcde{i}"
        folder = workdir / ".orchestra" / "runs" / run_id
        folder.mkdir(parents=True)
        runfolder.write_record(folder, {"run_id": run_id, "status": status, "task": f"task {i}", "total_cost_usd": 0.5,
                                        "duration_s": 3.0, "secondaries": [{"agent": "droid", "role": "secondary-1"}]})
        ids.append(run_id)
    return ids


def test_runs_lists_a_finished_runs_kept_row_until_its_record_changes(workdir):
    ids = finished(workdir, 3)
    first = orchestra("runs", cwd=workdir)
    kept = workdir / ".orchestra" / "rows.json"
    assert first.returncode == 0 and all(i in first.stdout for i in ids) and kept.exists()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert runfolder.rows(workdir) == [runfolder.row_of(r) for r in runfolder.list_runs(workdir)]
    assert orchestra("runs", cwd=workdir).stdout == first.stdout  # from the kept rows: the same table

    # a follow-up turn rewrites the record (a new file renamed over it): read again
    record = json.loads((workdir / ".orchestra" / "runs" / ids[0] / "run.json").read_text())
    runfolder.write_record(workdir / ".orchestra" / "runs" / ids[0], {**record, "status": "over_budget"})
    # a hand edit in place, the same size: its ctime says it changed
    path = workdir / ".orchestra" / "runs" / ids[1] / "run.json"
    text = path.read_text()
    with open(path, "r+") as fh:
        fh.write(text.replace("task 1", "TASK 1"))
    listed = {row["run_id"]: row for row in runfolder.rows(workdir)}
    assert listed[ids[0]]["status"] == "over_budget" and listed[ids[1]]["task"] == "TASK 1"
    assert "over_budget" in orchestra("runs", cwd=workdir).stdout


def test_a_run_under_way_is_read_at_every_listing_and_shown_lost_once_its_process_is_gone(workdir):
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    alive = finished(workdir, 2, status="running")
    for run_id, pid in zip(alive, [os.getpid(), done.pid]):
        folder = workdir / ".orchestra" / "runs" / run_id
        runfolder.write_record(folder, {**json.loads((folder / "run.json").read_text()), "pid": pid})
    assert [r["status"] for r in runfolder.rows(workdir)] == ["running", "lost"]
    assert [r["status"] for r in runfolder.rows(workdir)] == ["running", "lost"]
    assert not (workdir / ".orchestra" / "rows.json").exists()  # nothing kept of them


def test_a_damaged_rows_file_is_read_past_and_made_again(workdir):
    ids = finished(workdir, 2)
    kept = workdir / ".orchestra" / "rows.json"
    for damage in ["not json", "[1, 2]", '{"version": 1, "rows": {"%s": [1]}}' % ids[0],
                   '{"version": 1, "rows": {"%s": ["x", "y"]}}' % ids[0]]:
        kept.write_text(damage)
        assert [r["run_id"] for r in runfolder.rows(workdir)] == ids
    assert json.loads(kept.read_text())["version"] == runfolder.ROWS_VERSION
