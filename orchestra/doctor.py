"""`orchestra doctor`: what is installed and set up, without showing a secret."""
from __future__ import annotations

import os

from . import agents
from .agents import version_of
from .config import Config


def diagnose(config: Config) -> dict:
    rows = []
    for name, profile in config.agents.items():
        binary = profile.binary or profile.command[0]
        if binary.startswith("{"):  # a replay: needs nothing installed
            continue
        path = agents.which(binary)
        rows.append({
            "agent": name, "binary": binary, "installed": path is not None, "path": path,
            "version": version_of(path) if path else None, "tested_version": profile.version,
            "drift": agents.drift(profile) if path else "", "install": profile.install,
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
        "warnings": [r["drift"] for r in rows if r["drift"]],  # said, not a reason to fail
    }
