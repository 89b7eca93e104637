"""Version drift: each shipped profile names the CLI version it was tested with; doctor, run and delegate
say when the installed one differs, and refuse nothing."""
import json
import os
import stat

import pytest
import yaml

from conftest import orchestra, toy, write_config
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
