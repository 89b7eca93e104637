"""Shared test setup: an isolated tmux server, and a check that nothing the tests started survives them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "agents" / "toy_agent.py"
MARK = "ORCHESTRA_TEST_MARK"
# tmux's socket is $TMUX_TMPDIR/tmux-UID/default, and macOS bounds a socket's path at 104 bytes: its
# $TMPDIR (/var/folders/...) is long, so the tests' tmux lives under /tmp where there is one
TMUX_PARENT = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
TMUX_PREFIX = "orch-tmux-"


def pytest_configure(config):
    # Every process the tests start inherits this mark, so leftovers can be found even when orphaned.
    os.environ[MARK] = uuid.uuid4().hex
    # A tmux server of the tests' own: never the user's sessions.
    os.environ["TMUX_TMPDIR"] = tempfile.mkdtemp(prefix=TMUX_PREFIX, dir=TMUX_PARENT)
    os.environ.pop("TMUX", None)
    os.environ.pop("TMUX_PANE", None)


def pytest_unconfigure(config):
    # here, not in the fixture below: a run that collects nothing or is interrupted still cleans up
    if os.environ.get("TMUX_TMPDIR", "").startswith(os.path.join(TMUX_PARENT, TMUX_PREFIX)):
        tmux("kill-server")
        shutil.rmtree(os.environ["TMUX_TMPDIR"], ignore_errors=True)


def marked_processes() -> list[tuple[int, str]]:
    """The processes the tests started that still run (not zombies), with their command lines: through
    orchestra's procs, so the check holds on the portable path too (psutil, no /proc)."""
    from orchestra.procs import command_line, marked_pids, process_alive

    found = []
    for pid in marked_pids(MARK, os.environ[MARK]):
        cmd = command_line(pid)
        if cmd is not None and process_alive(pid):
            found.append((pid, cmd.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """Fails the run if any test leaves a process or a tmux session behind."""
    yield
    sessions = tmux("list-sessions", "-F", "#{session_name}").stdout.split()
    tmux("kill-server")
    leftovers = [p for p in marked_processes() if "tmux" not in p[1]]
    for pid, _ in leftovers:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    assert not sessions, f"tmux sessions left behind by tests: {sessions}"
    assert not leftovers, f"processes left behind by tests: {leftovers}"


def tmux(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10)


def wait_for_pane(target: str, text: str, timeout: float = 10.0) -> str:
    """A tmux pane's text, with its history, once it shows `text` (a window draws what it is sent a little later)."""
    deadline = time.monotonic() + timeout
    while True:
        screen = tmux("capture-pane", "-p", "-J", "-S", "-", "-t", target).stdout
        if text in screen or time.monotonic() > deadline:
            assert text in screen, f"{target} did not show {text!r}; it shows:\n{screen}"
            return screen
        time.sleep(0.01)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tmux_sessions():
    """Kills the tmux sessions a test names here, whatever happens in it."""
    names: list[str] = []
    yield names
    for name in names:
        tmux("kill-session", "-t", f"={name}")


def toy(*args: str) -> list[str]:
    return [sys.executable, str(TOY), *args]


def toy_profile(*args: str, **fields):
    """A profile running the toy agent with args; fields change its defaults."""
    import re

    from orchestra.config import Profile

    fields.setdefault("completion", re.compile(r"^DONE", re.M))
    fields.setdefault("timeout", 20)
    fields.setdefault("kill_grace", 0.5)
    fields.setdefault("linger", 0.3)
    return Profile(name="toy", command=toy(*args), **fields)


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def new_repo(path: Path, files: Optional[dict] = None) -> Path:
    """A git repository at path on branch main, with an identity and one commit of files (a README by default)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test")
    git(path, "config", "user.email", "test@orchestra.invalid")
    for name, text in (files or {"README.md": "# project\n"}).items():
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "start")
    return path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def orchestra(*args: str, cwd=None, env=None, timeout=60, input=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestra", *args], cwd=cwd, env=env, input=input,
                          capture_output=True, text=True, timeout=timeout)


def write_config(path: Path, agents: dict, extra: str = "") -> Path:
    """A config file with the given agent profiles (as YAML text bodies)."""
    import yaml

    path.write_text(yaml.safe_dump({"agents": agents}) + extra)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """item.rep_setup / rep_call: how each phase went, for fixtures that act on a failure (a screenshot).
    In CI (CI=true) a real-agent test that skips fails instead, saying why (tests/support/ci.py)."""
    from tests.support.ci import skip_fails

    report = (yield).get_result()
    setattr(item, "rep_" + report.when, report)
    if report.skipped and item.get_closest_marker("real_agent") is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        failure = skip_fails(reason.removeprefix("Skipped: "))
        if failure:
            report.outcome, report.longrepr = "failed", failure
            report.user_properties.append(("could_not_run", True))


def pytest_terminal_summary(terminalreporter):
    """Say how many real-agent tests ran, and why any were skipped."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    reasons = set()
    could_not = 0  # failed in CI because they could not run (see pytest_runtest_makereport)
    for outcome in counts:
        for report in terminalreporter.stats.get(outcome, []):
            if "real_agent" in getattr(report, "keywords", {}) and report.when in ("call", "setup"):
                if ("could_not_run", True) in getattr(report, "user_properties", []):
                    could_not += 1
                    continue
                counts[outcome] += 1
                if outcome == "skipped" and isinstance(report.longrepr, tuple):
                    reasons.add(report.longrepr[2])
    total = sum(counts.values()) + could_not
    if total:
        terminalreporter.write_line(
            f"real-agent tests: {counts['passed'] + counts['failed']} ran ({counts['passed']} passed, "
            f"{counts['failed']} failed), " + (f"{could_not} could not run (failed: CI=true), " if could_not else "")
            + f"{counts['skipped']} skipped" + (f": {'; '.join(sorted(reasons))}" if reasons else ""))
