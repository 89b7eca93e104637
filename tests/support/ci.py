"""In CI a real-agent test never skips silently: one that cannot run there fails, naming why.

scripts/install-agents reports a failed install and goes on (exit 0); a real-agent test whose agent is
then missing would be skipped, and a green run would hide the broken agent. So with CI=true the skip of
any test marked real_agent is turned into a failure (conftest.py), whatever skipped it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional


def agents_dir(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get("ORCHESTRA_AGENTS_DIR") or Path.home() / ".cache" / "orchestra" / "agents")


def install_log(env: Mapping[str, str] = os.environ) -> Path:
    """What scripts/install-agents last did (written by it, one line per step and a table of what is usable)."""
    return agents_dir(env) / "install.log"


def in_ci(env: Mapping[str, str] = os.environ) -> bool:
    return env.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_reason(names: list[str], env: Mapping[str, str] = os.environ) -> str:
    """Why a real-agent test cannot run: the binaries it lacks, and where the install says why."""
    return (f"not installed: {', '.join(names)} (scripts/install-agents installs them; "
            f"what it last did: {install_log(env)})")


def skip_fails(reason: str, env: Mapping[str, str] = os.environ) -> Optional[str]:
    """The failure a real-agent test's skip becomes in CI (CI=true), or None: elsewhere it stays a skip."""
    if not in_ci(env):
        return None
    log = str(install_log(env))
    return (f"a real-agent test may not skip in CI (CI=true): {reason}"
            + ("" if log in reason else f" (the install log: {log})"))
