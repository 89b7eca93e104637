"""Find agent binaries: an explicit path, the pinned install cache, then PATH."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional

from .errors import OrchestraError


def agents_dir() -> Path:
    default = Path.home() / ".cache" / "orchestra" / "agents"
    return Path(os.environ.get("ORCHESTRA_AGENTS_DIR", default)).expanduser()


def search_path(env: Optional[Mapping[str, str]] = None) -> str:
    """PATH with the agent cache's bin/ first, so wrappers find the pinned CLIs too."""
    path = (env or os.environ).get("PATH", os.defpath)
    return os.pathsep.join([str(agents_dir() / "bin"), path])


def which(binary: str, env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    if os.sep in binary:
        return binary if os.path.isfile(binary) and os.access(binary, os.X_OK) else None
    return shutil.which(binary, path=search_path(env))


def require(binary: str, agent: str, install_hint: str = "", env: Optional[Mapping[str, str]] = None) -> str:
    """The binary's path, or an error that says which binary is missing and how to install it."""
    found = which(binary, env)
    if found:
        return found
    if os.sep in binary and os.path.exists(binary):
        problem = f"{binary} is not executable"
    else:
        problem = f"'{binary}' was not found (looked in {agents_dir() / 'bin'} and PATH)"
    hint = f"; install it with: {install_hint}" if install_hint else ""
    raise OrchestraError(f"agent '{agent}': {problem}{hint}")


VERSION = re.compile(r"\b\d+(?:\.\d+)+(?:-[0-9A-Za-z.]+)?")


@lru_cache(maxsize=64)
def version_of(path: str, args: tuple = ("--version",)) -> Optional[str]:
    """The first line a program prints for --version. Asked once per program and process: a node CLI takes
    a second to say it."""
    try:
        done = subprocess.run([path, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (done.stdout or done.stderr).strip().splitlines()
    return out[0][:80] if out else None


def drift(profile, env: Optional[Mapping[str, str]] = None) -> str:
    """A warning when the installed CLI is another version than the one the profile's parser and patterns
    were tested with (its `version:`), or "" (same version, none named, not installed, or none printed)."""
    found = programs(profile)
    path = which(found[0], env) if profile.version and found else None
    line = version_of(path) if path else None
    installed = VERSION.search(line) if line else None
    if installed is None or installed.group(0) == profile.version:
        return ""
    return (f"agent '{profile.name}': {found[0]} {installed.group(0)} is installed, its profile was tested with "
            f"{profile.version} (field 'version'): its output may differ, and its summary with it")


def programs(profile) -> list[str]:
    """What a profile runs that must be installed: the CLI its wrapper runs, and its command
    (a command starting with a placeholder such as {wrappers} or {python} is orchestra's own)."""
    return [p for p in (profile.binary, profile.command[0]) if p and not p.startswith("{")]
