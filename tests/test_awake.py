"""A run on a Mac holds off idle sleep with caffeinate while its agents work (a fake caffeinate stands in:
the platform check is the one thing changed)."""
import os
import subprocess
import time

from orchestra import awake
from orchestra.procs import exit_within

FAKE = """#!/bin/sh
echo "$@" > "$(dirname "$0")/args"
exec sleep 60
"""


def fake_caffeinate(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "caffeinate").write_text(FAKE)
    (bin_dir / "caffeinate").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(awake, "MAC", True)
    monkeypatch.setattr(awake, "_said", False)
    return bin_dir / "args"


def test_a_mac_is_kept_awake_while_orchestras_process_works_and_it_is_said_once(tmp_path, monkeypatch):
    args = fake_caffeinate(tmp_path, monkeypatch)
    said = []
    with awake.held(said.append):
        deadline = time.monotonic() + 10
        while (not args.exists() or not args.read_text()) and time.monotonic() < deadline:
            time.sleep(0.01)  # (written as soon as the fake runs)
        assert args.read_text().split() == ["-i", "-w", str(os.getpid())]
    with awake.held(said.append):
        pass
    assert len(said) == 1 and "caffeinate -i" in said[0]


def test_the_hold_ends_with_the_work(tmp_path, monkeypatch):
    fake_caffeinate(tmp_path, monkeypatch)
    started = []
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(real(*a, **k)) or started[-1])
    with awake.held(lambda line: None):
        assert started and started[0].poll() is None
    assert exit_within(started[0].pid, 5) and started[0].poll() is not None


def test_elsewhere_nothing_is_held_and_nothing_said(tmp_path, monkeypatch):
    fake_caffeinate(tmp_path, monkeypatch)
    monkeypatch.setattr(awake, "MAC", False)
    said = []
    with awake.held(said.append):
        pass
    assert said == [] and not (tmp_path / "bin" / "args").exists()
