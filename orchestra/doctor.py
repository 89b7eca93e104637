"""`orchestra doctor`: what is installed and set up, without showing a secret."""
from __future__ import annotations

import os
import subprocess
from typing import Optional

from . import agents
from .config import Config


def version_of(path: str, args: tuple = ("--version",)) -> Optional[str]:
    try:
        done = subprocess.run([path, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (done.stdout or done.stderr).strip().splitlines()
    return out[0][:80] if out else None


def diagnose(config: Config) -> dict:
    rows = []
    for name, profile in config.agents.items():
        binary = profile.binary or profile.command[0]
        if binary.startswith("{"):  # a replay: needs nothing installed
            continue
        path = agents.which(binary)
        rows.append({
            "agent": name, "binary": binary, "installed": path is not None, "path": path,
            "version": version_of(path) if path else None, "install": profile.install,
            "api_key_env": profile.api_key_env,
            "api_key_set": bool(profile.api_key_env and os.environ.get(profile.api_key_env)),
        })
    tmux = agents.which("tmux")
    problems = []
    secondary = config.default_agent
    for role, name in (("default primary", config.primary), ("default secondary", secondary)):
        row = next((r for r in rows if r["agent"] == name), None)
        if row is not None and not row["installed"]:
            problems.append(f"the {role} '{name}' is not installed: {row['install']}")
        elif row is not None and row["api_key_env"] and not row["api_key_set"]:
            problems.append(f"the {role} '{name}' needs {row['api_key_env']} to be set")
    return {
        "config": str(config.path),
        "agents": rows,
        "tmux": {"installed": tmux is not None, "path": tmux, "version": version_of(tmux, ("-V",)) if tmux else None},
        "agents_dir": str(agents.agents_dir()),
        "problems": problems,
    }
