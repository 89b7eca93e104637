"""`orchestra mcp install claude|codex` with the real CLIs, each in a throwaway HOME: the client then finds
orchestra by its absolute path, whatever its PATH holds; and `orchestra mcp` started by hand says what it is."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pexpect
import pytest

from tests.support.agents import agents_dir, find_agent
from tests.support.ci import missing_reason


def need(name: str) -> str:
    found = find_agent(name)
    if found is None:
        pytest.skip(missing_reason([name]))  # in CI: a failure (conftest.py)
    return found


def home_env(tmp_path) -> dict:
    home = tmp_path / "home"
    home.mkdir()
    # PATH without this orchestra's venv: the client must find it by the path install wrote
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
    return {**os.environ, "HOME": str(home), "PATH": path, "ORCHESTRA_AGENTS_DIR": str(agents_dir()),
            "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


def install(client: str, env: dict, cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestra", "mcp", "install", client, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.real_agent
def test_install_for_claude_code_leaves_it_connected_without_orchestra_on_path(tmp_path):
    claude = need("claude")
    env = home_env(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    for _ in range(2):  # a second install replaces the first
        done = install("claude", env, project)
        assert done.returncode == 0, done.stderr
    listed = subprocess.run([claude, "mcp", "list"], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    line = next(line for line in listed.stdout.splitlines() if line.startswith("orchestra:"))
    assert "✔ Connected" in line and f"{sys.executable} -m orchestra mcp" in line, listed.stdout
    servers = json.loads((tmp_path / "home" / ".claude.json").read_text())["mcpServers"]
    assert list(servers) == ["orchestra"] and servers["orchestra"]["command"] == sys.executable


@pytest.mark.real_agent
def test_install_for_codex_writes_the_documented_block_that_codex_reads(tmp_path):
    codex = need("codex")
    env = home_env(tmp_path)
    config = tmp_path / "home" / ".codex" / "config.toml"
    config.parent.mkdir()
    config.write_text('model = "gpt-5.5"\n\n[mcp_servers.orchestra]\ncommand = "orchestra"\n\n[mcp_servers.other]\n'
                      'command = "other"\n')
    done = install("codex", env, tmp_path)
    assert done.returncode == 0, done.stderr
    got = subprocess.run([codex, "mcp", "get", "orchestra", "--json"], env=env, capture_output=True, text=True,
                         timeout=60)
    server = json.loads(got.stdout)
    assert server["transport"]["command"] == sys.executable and server["transport"]["args"] == ["-m", "orchestra", "mcp"]
    assert server["tool_timeout_sec"] == 600.0 and "ANTHROPIC_API_KEY" in server["transport"]["env_vars"]
    text = config.read_text()
    assert text.count("[mcp_servers.orchestra]") == 1 and '[mcp_servers.other]\ncommand = "other"' in text
    assert text.startswith('model = "gpt-5.5"')
    assert install("codex", env, tmp_path, "--scope", "project").returncode == 2


def test_orchestra_mcp_started_by_hand_says_what_it_is(tmp_path):
    child = pexpect.spawn(sys.executable, ["-m", "orchestra", "mcp"], cwd=str(tmp_path), timeout=30,
                          env={**os.environ, "TERM": "dumb"})
    try:
        child.expect("orchestra mcp: an MCP server for")
        child.expect("orchestra mcp install claude")
    finally:
        child.close(force=True)
