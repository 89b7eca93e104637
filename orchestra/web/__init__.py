"""`orchestra web`: the runs of a directory and their agents' terminals in a browser, live and played back.

The server only reads the run folders (records and transcripts); it never talks to a run's process.
While it serves a directory, .orchestra/web.json says where (its URL with its token, its pid), so
`run` and `delegate` can print the address. Importing this module imports no web library.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

WEB_JSON = Path(".orchestra") / "web.json"


def announce(workdir: Path, url: str) -> Path:
    """Say in the directory that this process serves it (mode 0600: the URL holds the token)."""
    from ..procs import process_started

    from ..runfolder import home

    path = home(workdir) / WEB_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"web.json.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as fh:
        json.dump({"url": url, "pid": os.getpid(), "pid_started": process_started(os.getpid())}, fh)
    os.replace(tmp, path)
    return path


def withdraw(workdir: Path) -> None:
    """Remove web.json if it is this process's (another server may have taken the directory since)."""
    from ..runfolder import home

    path = home(workdir) / WEB_JSON
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def web_url(workdir: Path, run_id: Optional[str] = None) -> Optional[str]:
    """The address of the server serving workdir with its token (of a run's page, given its id, without
    it), or None: none is, or the one that said so is gone (a web.json left by a killed server is ignored)."""
    from ..procs import process_alive
    from ..runfolder import home

    try:
        info = json.loads((home(workdir) / WEB_JSON).read_text())
        url, pid, started = info["url"], info.get("pid"), info.get("pid_started")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(url, str) or not process_alive(pid, started):
        return None
    if run_id is None:
        return url
    # no token: these addresses are printed, and a detached run's output is kept in its log; a browser
    # that opened the server's own address once has the token as a cookie
    return f"{url.partition('?')[0].rstrip('/')}/run/{run_id}"
