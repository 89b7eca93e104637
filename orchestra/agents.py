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


def version_argv(profile, env: Optional[Mapping[str, str]] = None) -> Optional[list[str]]:
    """How to ask the installed CLI its version, only as its profile says: its `version_command`, or
    `BINARY --version` when it names the version it was tested with. None: nothing is run to learn it (a
    profile's own program may be a script that does its work whatever its arguments), or it is not installed."""
    if profile.version_command:
        path = which(profile.version_command[0], env)
        return [path, *profile.version_command[1:]] if path else None
    found = programs(profile)
    path = which(found[0], env) if profile.version and found else None
    return [path, "--version"] if path else None


def installed_version(profile, env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    argv = version_argv(profile, env)
    return version_of(argv[0], tuple(argv[1:])) if argv else None


def drift(profile, env: Optional[Mapping[str, str]] = None) -> str:
    """A warning when the installed CLI is another version than the one the profile's parser and patterns
    were tested with (its `version:`), or "" (same version, none named, not installed, or none printed)."""
    return drift_of(profile, installed_version(profile, env) if profile.version else None)


def drift_of(profile, line: Optional[str]) -> str:
    """drift, for the line the CLI printed for its version (None: not known)."""
    installed = VERSION.search(line) if line and profile.version else None
    if installed is None or installed.group(0) == profile.version:
        return ""
    return (f"agent '{profile.name}': {programs(profile)[0]} {installed.group(0)} is installed, its profile was "
            f"tested with {profile.version} (field 'version'): its output may differ, and its summary with it")


def login_missing(profile, env: Optional[Mapping[str, str]] = None) -> str:
    """"" when one of the ways the profile names to log in holds (or it names none); else what is missing, each
    way named. Only looked at, never read out: no value is shown."""
    if not profile.login:
        return ""
    env = {**os.environ, **profile.env} if env is None else env
    missing = []
    for way in profile.login:
        problem = _login_problem(way, env)
        if not problem:
            return ""
        if problem not in missing:
            missing.append(problem)
    return "not logged in: needs one of " + "; or ".join(missing)


def _login_problem(way, env: Mapping[str, str]) -> str:
    """"" when this way to log in holds, else what it needs (its `about`, or what is missing)."""
    say = way.about
    if way.env and not env.get(way.env):
        return say or f"{way.env} set"
    if way.file:
        path = _home_path(way.file, env)
        if not path.is_file():
            return say or f"{way.file}"
        if way.contains is not None:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return say or f"{way.file} readable"
            found = list(way.contains.finditer(text))
            if not found:
                return say or f"{way.file} with {way.contains.pattern!r} in it"
            named = [m.group(1) for m in found if way.contains.groups and m.group(1)]
            if named and not any(env.get(name) for name in named):
                return f"{' or '.join(named)} (named in {way.file}) set"
    return ""


def _home_path(text: str, env: Mapping[str, str]) -> Path:
    """~ is the agent's HOME (a profile's env may give it one of its own)."""
    if text == "~" or text.startswith("~/"):
        return Path(env.get("HOME") or Path.home()) / text[2:]
    return Path(text).expanduser()


def programs(profile) -> list[str]:
    """What a profile runs that must be installed: the CLI its wrapper runs, and its command
    (a command starting with a placeholder such as {wrappers} or {python} is orchestra's own)."""
    return [p for p in (profile.binary, profile.command[0]) if p and not p.startswith("{")]
