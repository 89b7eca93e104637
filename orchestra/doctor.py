"""`orchestra doctor`: what is installed and set up, without showing a secret.

The CLIs are asked their versions all at once (a node CLI takes a second or two to answer), and each agent's
row is handed on as soon as its answer is in."""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Callable, Optional

from . import agents, ansi
from .agents import version_of
from .config import Config, Profile


def diagnose(config: Config, on_row: Optional[Callable[[dict], None]] = None) -> dict:
    """The report; on_row(row) is called with each agent's row as soon as it is known (in no set order)."""
    checked = [p for p in config.agents.values() if not (p.binary or p.command[0]).startswith("{")]  # a replay
    # needs nothing installed
    rows: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        asked: dict[tuple, Future] = {}  # one question per command: two profiles may run the same CLI
        waits: dict[Future, list[Profile]] = {}
        for profile in checked:
            argv = agents.version_argv(profile)
            if argv is None:
                rows[profile.name] = _row(config, profile, None)
                if on_row:
                    on_row(rows[profile.name])
                continue
            key = tuple(argv)
            if key not in asked:
                asked[key] = pool.submit(version_of, argv[0], key[1:])
            waits.setdefault(asked[key], []).append(profile)
        tmux = agents.which("tmux")
        tmux_version = pool.submit(version_of, tmux, ("-V",)) if tmux else None
        for done in as_completed(waits):
            for profile in waits[done]:
                rows[profile.name] = _row(config, profile, done.result())
                if on_row:
                    on_row(rows[profile.name])
        tmux_line = tmux_version.result() if tmux_version else None
    ordered = [rows[p.name] for p in checked]
    problems = []
    for role, name in (("default primary", config.primary), ("default secondary", config.default_agent)):
        row = rows.get(name)
        if row is not None and not row["installed"]:
            problems.append(f"the {role} '{name}' is not installed: {row['install']}")
        elif row is not None and row["api_key_env"] and not row["api_key_set"]:
            problems.append(f"the {role} '{name}' needs {row['api_key_env']} to be set")
        elif row is not None and row["login_missing"]:
            problems.append(f"the {role} '{name}' is {row['login_missing']}")
    return {
        "config": str(config.path),
        "layers": [{"kind": layer.kind, "path": str(layer.path)} for layer in config.layers],
        "agents": ordered,
        "tmux": {"installed": tmux is not None, "path": tmux, "version": tmux_line},
        "cleaner": cleaner(),
        "agents_dir": str(agents.agents_dir()),
        "problems": problems,
        "warnings": [r["drift"] for r in ordered if r["drift"]],  # said, not a reason to fail
    }


def cleaner() -> dict:
    """Which code cleans agents' output: C where pip built orchestra._cclean, else Python (the same text)."""
    if ansi.native():
        return {"native": True, "said": "C (orchestra._cclean)"}
    return {"native": False, "said": "Python: orchestra._cclean was not built (no C compiler when orchestra was "
                                     "installed); the same text, with about 1.4x the CPU for TUI output: install again "
                                     "with a C compiler and Python's headers (python3-dev) to build it"}


def _row(config: Config, profile: Profile, version: Optional[str]) -> dict:
    binary = profile.binary or profile.command[0]
    path = agents.which(binary)
    source = config.sources.get(profile.name)
    return {
        "agent": profile.name, "source": source.kind if source else None,
        "source_path": str(source.path) if source else None,
        "binary": binary, "installed": path is not None, "path": path,
        "version": version, "version_asked": agents.version_argv(profile) is not None,
        "tested_version": profile.version, "drift": agents.drift_of(profile, version) if path else "",
        "install": profile.install, "api_key_env": profile.api_key_env,
        "api_key_set": bool(profile.api_key_env and {**os.environ, **profile.env}.get(profile.api_key_env)),
        "login_missing": agents.login_missing(profile) if path else "",
    }
