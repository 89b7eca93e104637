"""What a failed API request means for the user, in words that name what to fix.

A parser tells a refused key or a connection that could not be made from the agent's own events
(Parsed.api_failure); the agent's profile says which variable holds its key (`api_key_env`) and its
API's address (`base_url_env`). A refused key is not transient: the session ends the agent at once.
"""
from __future__ import annotations

import errno
import socket
import threading
from typing import Mapping, Optional
from urllib.parse import urlsplit

from .config import Profile
from .parsers.base import ApiFailure

PROBE_TIMEOUT = 1.0  # seconds a connection to the API's address is tried, to say why it failed

REASONS = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "no route to host",
           errno.ENETUNREACH: "network is unreachable", errno.ECONNRESET: "connection reset"}


def describe(failure: ApiFailure, profile: Profile, env: Mapping[str, str], probe: bool = True) -> str:
    """"API key refused (401): check ANTHROPIC_API_KEY", "cannot reach the API at URL: connection refused".
    probe: try a connection to the address to say why it cannot be reached (a saved transcript is not
    probed: the API may be up by now)."""
    if failure.key_refused:
        status = f" ({failure.status})" if failure.status else ""
        where = (profile.api_key_env if profile.api_key_env else
                 f"the key {profile.name} is configured with (its profile names no api_key_env)")
        return f"API key refused{status}: check {where}"
    url = shown(failure.url or (env.get(profile.base_url_env) if profile.base_url_env else None) or "")
    why = (reach(url) if probe and url else "") or failure.detail or "no answer"
    return f"cannot reach the API{' at ' + url if url else ''}: {why}"


def shown(url: str) -> str:
    """The address without a user and password it may carry (http://user:secret@host/)."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if "@" in parts.netloc else url


def reach(url: str, timeout: float = PROBE_TIMEOUT) -> str:
    """Why no connection can be made to url's host and port ("connection refused"), or "" when one can
    (or no answer came within timeout). Tried in a thread: a name lookup has no timeout of its own."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    said: list[str] = []

    def attempt() -> None:
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
            said.append("")
        except socket.gaierror:
            said.append(f"cannot resolve {parts.hostname}")
        except socket.timeout:
            said.append(f"no answer from {parts.hostname}:{port} within {timeout:g}s")
        except OSError as exc:
            said.append(REASONS.get(exc.errno, exc.strerror or str(exc)))

    thread = threading.Thread(target=attempt, daemon=True, name="orchestra-reach")
    thread.start()
    thread.join(timeout + 0.5)
    return said[0] if said else ""


def failure_words(failure: Optional[ApiFailure], line: str, profile: Profile, env: Mapping[str, str]) -> str:
    """describe(failure) when it was told by this line, else ""."""
    if failure is None or failure.line[:len(line)] != line or not line:
        return ""
    return describe(failure, profile, env)


def retried(what: str, count: int) -> str:
    """"API error 529 overloaded: retried 3 times": what an agent retried, in a summary's errors."""
    return f"{what}: retried {count} time{'s' if count != 1 else ''}"
