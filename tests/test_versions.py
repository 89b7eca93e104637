"""Version drift: each shipped profile names the CLI version it was tested with; doctor, run and delegate
say when the installed one differs, and refuse nothing."""
import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

from conftest import orchestra, toy, write_config
from test_faults import wait_for_file
from orchestra import agents
from orchestra.config import SHIPPED_CONFIG, load_config


def fake_cli(folder, name: str, version_line: str):
    """A program on PATH that prints `version_line` for --version, and notes each time it is asked."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho asked >> '{folder / (name + '.asked')}'\necho '{version_line}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def env(tmp_path):
    # an empty agent cache: the fake CLIs on PATH are the ones found
    return dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
                ORCHESTRA_AGENTS_DIR=str(tmp_path / "no-agents"))


def profiles(workdir, primary_args: tuple = ()) -> str:
    agent = {"command": toy("--task", "{task}"), "completion": "^DONE", "timeout": 20, "binary": "fakecli",
             "version": "1.4.2"}
    return str(write_config(workdir / "o.yaml", {"fake": {**agent, "command": toy("--task", "{task}", *primary_args)},
                                                 "fake-too": agent},
                            "defaults: {primary: fake}\nrouting: {default: fake-too}\n"))


def test_every_shipped_profile_of_an_installable_cli_names_its_tested_version():
    config = load_config(str(SHIPPED_CONFIG))
    versions = {name: p.version for name, p in config.agents.items() if p.binary and name != "cursor"}
    assert versions["claude"] == versions["claude-tui"] == "2.1.328"
    assert (versions["droid"], versions["aider"]) == ("0.225.2", "0.86.2")
    assert (versions["codex"], versions["gemini"], versions["opencode"]) == ("0.169.0", "0.61.0", "1.18.33")
    assert all(versions.values()), versions


@pytest.mark.parametrize("agent, line", [("codex", "codex-cli 0.169.0"), ("gemini", "0.61.0"),
                                         ("opencode", "1.18.33")])
def test_the_new_clis_version_lines_match_their_profiles_and_another_version_drifts(tmp_path, monkeypatch,
                                                                                   agent, line):
    # what each CLI's --version prints, as measured; the agent cache emptied so the fake on PATH is found
    monkeypatch.setenv("ORCHESTRA_AGENTS_DIR", str(tmp_path / "no-agents"))
    profile = load_config(str(SHIPPED_CONFIG)).agents[agent]
    same = {"PATH": str(fake_cli(tmp_path / "same", profile.binary, line).parent)}
    assert agents.drift(profile, same) == ""
    newer = {"PATH": str(fake_cli(tmp_path / "newer", profile.binary, line.replace(".", ".9", 1)).parent)}
    assert f"its profile was tested with {profile.version} (field 'version')" in agents.drift(profile, newer)


def test_doctor_shows_the_installed_and_tested_versions_and_warns_on_drift(workdir, tmp_path, env):
    fake_cli(tmp_path / "bin", "fakecli", "fakecli 1.5.0 (nightly)")
    done = orchestra("doctor", "--config", profiles(workdir), cwd=workdir, env=env)
    assert "(fakecli 1.5.0 (nightly)); tested with 1.4.2" in done.stdout, done.stdout
    assert ("⚠️  agent 'fake': fakecli 1.5.0 is installed, its profile was tested with 1.4.2 (field 'version')"
            in done.stdout)
    # asked once for the two profiles that run it: a node CLI takes a second to answer
    assert (tmp_path / "bin" / "fakecli.asked").read_text() == "asked\n"
    report = json.loads(orchestra("doctor", "--config", profiles(workdir), "--json", cwd=workdir, env=env).stdout)
    row = next(a for a in report["agents"] if a["agent"] == "fake")
    assert (row["version"], row["tested_version"]) == ("fakecli 1.5.0 (nightly)", "1.4.2")
    assert len(report["warnings"]) == 2 and report["problems"] == []


def test_doctor_says_nothing_when_the_installed_version_is_the_tested_one(workdir, tmp_path, env):
    fake_cli(tmp_path / "bin", "fakecli", "1.4.2")
    done = orchestra("doctor", "--config", profiles(workdir), cwd=workdir, env=env)
    assert "is installed, its profile was tested with" not in done.stdout, done.stdout


def test_run_says_the_drift_once_before_starting_and_goes_on(workdir, tmp_path, env):
    fake_cli(tmp_path / "bin", "fakecli", "1.5.0")
    done = orchestra("run", "--config", profiles(workdir), "--agent", "fake", "--task", "t", "--no-tmux", "--json",
                     cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("fakecli 1.5.0 is installed, its profile was tested with 1.4.2") == 1, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"


def test_delegate_says_each_drifting_agent_once_and_goes_on(workdir, tmp_path, env):
    fake_cli(tmp_path / "bin", "fakecli", "1.5.0")
    cfg = profiles(workdir, primary_args=["--line", "DELEGATE: build it", "--line", "END"])
    done = orchestra("delegate", "--config", cfg, "--from", "fake", "--to", "fake-too", "--task", "t", "--no-tmux",
                     "--json", cwd=workdir, env=env)
    assert done.returncode == 0, done.stderr
    assert "agent 'fake': fakecli 1.5.0 is installed" in done.stderr, done.stderr
    assert "agent 'fake-too': fakecli 1.5.0 is installed" in done.stderr, done.stderr
    assert done.stderr.count("fakecli 1.5.0 is installed") == 2  # once for each profile


def test_a_version_written_as_a_number_is_refused_naming_the_field(workdir):
    cfg = workdir / "o.yaml"
    cfg.write_text(yaml.safe_dump({"agents": {"x": {"command": ["x"], "version": 2.1}}}))
    done = orchestra("doctor", "--config", str(cfg), cwd=workdir)
    assert done.returncode == 2 and "agent 'x', field 'version'" in done.stderr and 'quote it' in done.stderr


def cli_profile(name: str, **fields) -> dict:
    return {"command": [name], "binary": name, "completion": "^DONE", **fields}


def test_doctor_asks_the_clis_their_versions_at_once(workdir, tmp_path, env):
    # each answers only once the other has started: asked one after the other, both would time out
    os.mkfifo(tmp_path / "meet")
    for name, side in (("first", "echo here > "), ("second", "read _ < ")):
        path = tmp_path / "bin" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"#!/bin/sh\n{side}'{tmp_path / 'meet'}'\necho '{name} 1.0'\n")
        path.chmod(0o755)
    cfg = write_config(workdir / "o.yaml", {"a": cli_profile("first", version="1.0"),
                                            "b": cli_profile("second", version="1.0")},
                       "defaults: {primary: a}\nrouting: {default: b}\n")
    report = json.loads(orchestra("doctor", "--config", str(cfg), "--json", cwd=workdir, env=env, timeout=50).stdout)
    versions = {row["agent"]: row["version"] for row in report["agents"]}
    assert (versions["a"], versions["b"]) == ("first 1.0", "second 1.0")


def test_doctor_prints_each_agents_row_as_soon_as_it_is_known(workdir, tmp_path, env):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    fake_cli(tmp_path / "bin", "quick", "quick 1.0")
    slow = tmp_path / "bin" / "slow"
    started = tmp_path / "slow-started"
    slow.write_text(f"#!/bin/sh\ntouch '{started}'\nread _ < '{gate}'\necho 'slow 1.0'\n")
    slow.chmod(0o755)
    cfg = write_config(workdir / "o.yaml", {"slow": cli_profile("slow", version="1.0"),
                                            "quick": cli_profile("quick", version="1.0")})
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "doctor", "--config", str(cfg)], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        seen = []
        while not any(line.startswith("✅ quick") for line in seen):
            line = proc.stdout.readline()
            assert line, f"doctor ended before its quick row: {seen}"
            seen.append(line)
        assert not any(" slow " in line for line in seen)  # still asking it
        wait_for_file(started)
    finally:
        if started.exists():  # let the slow one answer (it opens the gate, or is about to)
            with open(gate, "w"):
                pass
        rest = proc.communicate(timeout=60)[0]
    assert "✅ slow" in rest and "(slow 1.0)" in rest


def test_doctor_never_runs_a_program_whose_profile_names_no_version(workdir, tmp_path, env):
    script = tmp_path / "bin" / "my-agent"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\necho \"$@\" > '{tmp_path / 'it-ran'}'\n")  # does its work whatever it is given
    script.chmod(0o755)
    cfg = write_config(workdir / "o.yaml", {"mine": {"command": [str(script), "{task}"], "completion": "^DONE"}})
    done = orchestra("doctor", "--config", str(cfg), cwd=workdir, env=env)
    assert f"✅ mine         {script}" in done.stdout and "version not asked" in done.stdout, done.stdout
    assert not (tmp_path / "it-ran").exists()


def test_doctor_asks_the_version_command_a_profile_names(workdir, tmp_path, env):
    fake_cli(tmp_path / "bin", "mycli-version", "mycli 3.1")
    script = tmp_path / "bin" / "mycli"
    script.write_text(f"#!/bin/sh\ntouch '{tmp_path / 'it-ran'}'\n")
    script.chmod(0o755)
    cfg = write_config(workdir / "o.yaml", {"mine": {"command": ["mycli"], "completion": "^DONE",
                                                     "version_command": ["mycli-version", "--short"]}})
    row = json.loads(orchestra("doctor", "--config", str(cfg), "--json", cwd=workdir, env=env).stdout)["agents"]
    assert next(r for r in row if r["agent"] == "mine")["version"] == "mycli 3.1"
    assert not (tmp_path / "it-ran").exists()


@pytest.fixture
def agent_home(tmp_path, env):
    """A HOME of its own, with the Droid and Codex CLIs (fakes that print their versions) on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    fake_cli(tmp_path / "bin", "droid", "0.225.2")
    fake_cli(tmp_path / "bin", "codex", "codex-cli 0.169.0")
    gone = ("FACTORY_API_KEY", "DROID_MODEL", "CODEX_API_KEY", "OPENAI_API_KEY", "SCRIPTED_API_KEY")
    return home, {**{k: v for k, v in env.items() if k not in gone}, "HOME": str(home),
                  "XDG_CONFIG_HOME": str(home / ".config")}


def doctor_row(workdir, env, agent: str) -> dict:
    report = json.loads(orchestra("doctor", "--json", cwd=workdir, env=env).stdout)
    return next(r for r in report["agents"] if r["agent"] == agent)


def test_doctor_says_droid_is_not_logged_in_and_each_way_to_log_in(workdir, agent_home):
    home, env = agent_home
    done = orchestra("doctor", cwd=workdir, env=env)
    line = next(line for line in done.stdout.splitlines() if " droid " in line)
    assert not line.startswith("✅"), line
    assert "not logged in: needs one of FACTORY_API_KEY set; or a Factory login (run droid, then /login); or a " \
           "custom model in ~/.factory/settings.json picked with DROID_MODEL=custom:NAME" in line
    assert "the default secondary 'droid' is not logged in" in done.stdout and done.returncode == 1
    assert doctor_row(workdir, {**env, "FACTORY_API_KEY": "fk-0123456789"}, "droid")["login_missing"] == ""
    (home / ".factory").mkdir()
    (home / ".factory" / "settings.json").write_text(json.dumps({"customModels": [{"model": "m"}]}))
    assert doctor_row(workdir, env, "droid")["login_missing"]  # the model is there, but not picked
    assert doctor_row(workdir, {**env, "DROID_MODEL": "custom:m"}, "droid")["login_missing"] == ""


def test_doctor_names_the_key_variable_codexs_provider_reads(workdir, agent_home):
    home, env = agent_home
    assert "a login (codex login)" in doctor_row(workdir, env, "codex")["login_missing"]
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text('model_provider = "scripted"\n[model_providers.scripted]\n'
                                                 'base_url = "http://127.0.0.1:1/v1"\nenv_key = "SCRIPTED_API_KEY"\n')
    assert "SCRIPTED_API_KEY (named in ~/.codex/config.toml) set" in doctor_row(workdir, env, "codex")["login_missing"]
    assert doctor_row(workdir, {**env, "SCRIPTED_API_KEY": "sk-0123456789"}, "codex")["login_missing"] == ""
    (home / ".codex" / "auth.json").write_text("{}")
    assert doctor_row(workdir, env, "codex")["login_missing"] == ""
