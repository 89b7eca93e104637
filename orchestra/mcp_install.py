"""`orchestra mcp install claude|codex`: add orchestra's MCP server to an agent's own configuration,
by the absolute path of this orchestra (its Python and `-m orchestra`), so the agent finds it whether
or not orchestra's virtual environment is on its PATH. Claude Code through its own `claude mcp add`;
Codex by the block the README documents, in its config.toml."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

from . import agents
from .config import Config
from .errors import OrchestraError

NAME = "orchestra"
SERVER = [sys.executable, "-m", "orchestra", "mcp"]


def install(client: str, scope: str, config: Config, cwd: Path) -> list[str]:
    """Add the server to `client`'s configuration; what was done, in lines to print."""
    if client == "claude":
        return _claude(scope, cwd)
    if client == "codex":
        if scope == "project":
            raise OrchestraError("Codex reads MCP servers from its user configuration only "
                                 "(~/.codex/config.toml, or $CODEX_HOME): use --scope user")
        return _codex(config)
    raise OrchestraError(f"no MCP set-up for {client!r}: orchestra mcp install claude, or codex")


def _claude(scope: str, cwd: Path) -> list[str]:
    claude = agents.which("claude")
    if not claude:
        raise OrchestraError("Claude Code ('claude') was not found in the agents cache or on PATH: "
                             "scripts/install-agents claude (or npm install -g @anthropic-ai/claude-code)")
    # a server of that name already there (an older path) is replaced
    subprocess.run([claude, "mcp", "remove", "--scope", scope, NAME], cwd=cwd, capture_output=True, timeout=60,
                   stdin=subprocess.DEVNULL)
    done = subprocess.run([claude, "mcp", "add", "--scope", scope, NAME, "--", *SERVER], cwd=cwd,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise OrchestraError(f"claude mcp add failed: {(done.stderr or done.stdout).strip()[:500]}")
    where = {"user": "every project of this user", "project": f"{cwd} (.mcp.json, to commit)",
             "local": f"{cwd}, for you alone"}[scope]
    return [f"✅ Claude Code: orchestra's MCP server added for {where}: {' '.join(SERVER)}",
            f"   Check: {claude} mcp list   (orchestra: ... ✔ Connected)"]


def codex_home() -> Path:
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")


def codex_block(config: Config) -> str:
    keys = sorted({p.api_key_env for p in config.agents.values() if p.api_key_env})
    if os.environ.get("ORCHESTRA_AGENTS_DIR"):
        keys.append("ORCHESTRA_AGENTS_DIR")
    quote = lambda text: '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'  # noqa: E731 (TOML basic string)
    return "\n".join([
        f"[mcp_servers.{NAME}]",
        f"command = {quote(SERVER[0])}",
        f"args = [{', '.join(quote(a) for a in SERVER[1:])}]",
        "tool_timeout_sec = 600.0                  # how long Codex waits for one tool call",
        "required = true                           # start orchestra before the first turn, or stop",
        'default_tools_approval_mode = "approve"   # else exec mode refuses every call to it',
        f"env_vars = [{', '.join(quote(k) for k in keys)}]   # the secondaries' keys, by name",
    ]) + "\n"


def _codex(config: Config) -> list[str]:
    path = codex_home() / "config.toml"
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        path.parent.mkdir(parents=True, exist_ok=True)
        new = _replace_table(text, f"mcp_servers.{NAME}", codex_block(config))
        tmp = path.with_name(path.name + ".orchestra.tmp")
        tmp.write_text(new, encoding="utf-8")
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        raise OrchestraError(f"cannot write {path}: {exc.strerror or exc}") from None
    found = agents.which("codex")
    return [f"✅ Codex: orchestra's MCP server written to {path} ([mcp_servers.{NAME}])",
            f"   Check: {found or 'codex'} mcp get {NAME}"]


def _replace_table(text: str, table: str, block: str) -> str:
    """text with TOML table `table` (and its sub-tables) replaced by block, or block added at its end."""
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    out: list[str] = []
    skipping, placed = False, False
    for line in text.splitlines(keepends=True):
        m = header.match(line)
        if m:
            name = m.group(1).replace('"', "")
            skipping = name == table or name.startswith(table + ".")
            if skipping and not placed:
                out.append(block)
                placed = True
        if not skipping:
            out.append(line)
    if not placed:
        if out and not out[-1].endswith("\n"):
            out.append("\n")
        out.append(("\n" if out else "") + block)
    return "".join(out)


def hint_for_a_terminal() -> Optional[str]:
    """What `orchestra mcp` started by hand in a terminal says on stderr (an agent starts it on pipes)."""
    if not sys.stdin.isatty():
        return None
    return (f"orchestra mcp: an MCP server for {Path.cwd()}, speaking JSON-RPC on this terminal's stdin/stdout. "
            "An agent starts it, not a person: `orchestra mcp install claude` (or codex) sets that up once. "
            "Waiting for a client; Ctrl-C to stop.")
