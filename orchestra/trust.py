"""Which project config files the user trusts.

A project's ./orchestra.yaml names the commands orchestra runs for its agents; a repository someone else wrote
can ship one. So it is used only once the user has read it and said so (`orchestra trust`), and again after
each change: what is recorded is the sha256 of the file's bytes, by the file's resolved path."""
from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

from .errors import ConfigError, OrchestraError

STORE = "trusted.json"


def check(path: Path, digest: str, folder: Path) -> None:
    """Nothing when the user trusted these very bytes at this path; else an error that says how to trust it."""
    entry = _trusted(folder).get(str(Path(path).resolve()))
    if isinstance(entry, dict) and entry.get("sha256") == digest:
        return
    shown = Path(path).absolute()
    why = "has changed since you trusted it" if entry else "is not trusted yet"
    raise ConfigError(f"{shown}: this project's config {why}, and its profiles name the commands orchestra runs. "
                      f"Read it, then trust it: orchestra trust {shlex.quote(str(shown))}   "
                      "(or give a config of your own with --config FILE)")


def record(path: Path, digest: str, folder: Path) -> Path:
    """Trust these bytes at this path from now on; the record is the user's alone (0600)."""
    store = folder / STORE
    files = _trusted(folder)
    files[str(Path(path).resolve())] = {"sha256": digest, "trusted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    tmp = folder / f".{STORE}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"files": files}, fh, indent=2, sort_keys=True)
        os.replace(tmp, store)  # a reader sees the old record or the new one, never half of one
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OrchestraError(f"cannot record the trust in {store}: {exc.strerror or exc}") from None
    return store


def _trusted(folder: Path) -> dict:
    """Path -> {sha256, trusted_at}; an unreadable record trusts nothing (`orchestra trust` writes it anew)."""
    try:
        data = json.loads((folder / STORE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}
