"""Watching a run as a person does: where to watch, said at its start; status lines as its window shows
them; a run's transcripts replayed in order."""
import json

from conftest import ROOT, orchestra
from orchestra.config import load_config
from orchestra.session import AgentSession, drive

DROID_CAST = ROOT / "fixtures" / "droid-secondary.cast"


def test_a_foreground_run_says_where_to_watch_it_before_its_agents_start(workdir, tmux_sessions):
    done = orchestra("delegate", "--demo", "--task", "Add a User model", cwd=workdir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    watch = next(i for i, line in enumerate(lines) if "tmux attach -t orchestra-" in line)
    spawned = next(i for i, line in enumerate(lines) if "Spawned" in line)
    assert watch < spawned, done.stdout
    tmux_sessions.append(lines[watch].split()[-1])


def test_status_of_a_run_under_way_says_how_to_watch_it(workdir, tmux_sessions, tmp_path):
    import os

    gate = tmp_path / "gate"
    os.mkfifo(gate)
    from test_mcp import config as mcp_config, release

    cfg = mcp_config(tmp_path, "--wait-fifo", str(gate))
    started = orchestra("run", "--agent", "worker", "--task", "t", "--config", str(cfg), "--detach", "--json",
                        cwd=workdir)
    run_id = json.loads(started.stdout)["run_id"]
    tmux_sessions.append(f"orchestra-{run_id}")
    try:
        shown = orchestra("status", run_id, cwd=workdir)
        assert f"tmux attach -t orchestra-{run_id}" in shown.stdout, shown.stdout
    finally:
        release(gate, wait=True)
        orchestra("wait", run_id, "--timeout", "60", cwd=workdir)


def test_the_latest_line_of_a_json_agent_is_its_rendered_line_not_raw_json(tmp_path):
    profile = load_config().agents["demo-droid"]
    s = AgentSession(profile, "Add a User model", tmp_path, tmp_path / "s.cast")
    s.start()
    seen = []
    drive([s], tick=lambda: seen.append(s.latest))
    lines = [line for line in seen + [s.latest] if line]
    assert lines and not any(line.lstrip().startswith("{") for line in lines), lines[:5]
    assert "completed" in s.latest


def test_replay_of_a_run_plays_every_agent_in_order_and_a_wrong_role_lists_the_valid_ones(workdir):
    done = orchestra("delegate", "--demo", "--task", "Add a User model", "--no-tmux", "--json", cwd=workdir)
    run_id = json.loads(done.stdout)["run_id"]
    played = orchestra("replay", run_id, "--speed", "0", cwd=workdir)
    assert played.returncode == 0, played.stderr
    order = [played.stdout.find(f"── {role}") for role in ("primary (", "secondary-1 (", "primary-reply (")]
    assert -1 not in order and order == sorted(order), played.stdout[:500]
    reply = orchestra("replay", run_id, "--agent", "primary-reply", "--speed", "0", cwd=workdir)
    assert reply.returncode == 0 and "The secondary created" in reply.stdout and "──" not in reply.stdout
    wrong = orchestra("replay", run_id, "--agent", "nobody", cwd=workdir)
    assert wrong.returncode == 2 and "primary, secondary-1, primary-reply" in wrong.stderr, wrong.stderr


def test_a_fixture_transcript_replays_rendered_by_default_as_the_demo_shows_it(workdir):
    played = orchestra("replay", str(DROID_CAST), "--speed", "0", cwd=workdir)
    assert played.returncode == 0 and "▸ \x1b[1mCreate" in played.stdout
    assert '"type":"tool_call"' not in played.stdout


def test_from_a_subdirectory_of_a_repository_the_runs_are_the_repositorys(workdir):
    import subprocess

    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
    sub = workdir / "src" / "pkg"
    sub.mkdir(parents=True)
    done = orchestra("delegate", "--demo", "--task", "t", "--no-tmux", "--json", cwd=sub)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    assert (workdir / ".orchestra" / "runs" / run_id / "run.json").is_file()
    assert not (sub / ".orchestra").exists()
    for cwd in (workdir, sub, workdir / "src"):
        assert run_id in orchestra("runs", cwd=cwd).stdout
        assert orchestra("show", run_id, cwd=cwd).returncode == 0
    played = orchestra("replay", run_id, "--agent", "secondary-1", "--speed", "0", cwd=workdir / "src")
    assert played.returncode == 0 and "Create" in played.stdout, played.stderr


def test_show_takes_latest_or_a_unique_start_of_a_run_id_and_runs_lists_newest_first(workdir):
    ids = [json.loads(orchestra("delegate", "--demo", "--task", f"task {n}", "--no-tmux", "--json",
                                cwd=workdir).stdout)["run_id"] for n in range(2)]
    latest = orchestra("show", "latest", "--json", cwd=workdir)
    assert json.loads(latest.stdout)["run_id"] == ids[-1]
    unique = next(n for n in range(1, 23) if ids[0][:n] != ids[1][:n])
    assert json.loads(orchestra("show", ids[0][:unique + 1], "--json", cwd=workdir).stdout)["run_id"] == ids[0]
    both = orchestra("show", ids[0][:8], cwd=workdir)
    assert both.returncode == 2 and "is the start of 2 run ids" in both.stderr
    listed = orchestra("runs", cwd=workdir).stdout.splitlines()
    assert listed[0].startswith("RUN ") and listed[1].startswith(ids[1]) and listed[2].startswith(ids[0])
    assert len({line.index("completed") for line in listed[1:]}) == 1  # aligned


def test_a_repository_at_the_home_or_temp_directory_never_gathers_other_folders_runs(tmp_path, monkeypatch):
    import tempfile

    from orchestra import runfolder

    home = tmp_path / "home"
    (home / ".git").mkdir(parents=True)  # dotfiles in git
    project = home / "code" / "project"
    project.mkdir(parents=True)
    found = runfolder._not_homes  # (what home() leaves out, here and in the temp directory)
    monkeypatch.setattr(runfolder, "_not_homes", lambda: frozenset({home.resolve(), runfolder.Path("/")}))
    assert runfolder.home(project) == project.resolve()
    (home / "code" / ".git").mkdir()
    assert runfolder.home(project) == (home / "code").resolve()
    assert runfolder.Path(tempfile.gettempdir()).resolve() in found()
