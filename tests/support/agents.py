"""Sealed environments for running the real agent CLIs against a ModelServer.

Each helper writes the config files an agent needs into a fresh HOME and
returns the environment and extra arguments to run it with, so that nothing of
the user's own setup (keys, settings, sessions, git identity) is read or
touched. Facts behind the settings are in shared/AGENTS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

AGENTS = ("claude", "droid", "aider", "codex", "gemini", "opencode")

# Fake keys, shaped like real ones; the scripted server accepts anything.
ANTHROPIC_TEST_KEY = "sk-ant-api03-orchestra-test-key-0123456789abcdefghij"
OPENAI_TEST_KEY = "sk-orchestra-test-key-0123456789"
GEMINI_TEST_KEY = "AIzaSy-orchestra-test-key-0123456789"

DROID_MODEL = "claude-sonnet-4-5"
AIDER_MODEL = "openai/gpt-4o-mini"
# A model Codex CLI 0.169.0 has metadata for: with an unknown one it warns ("Defaulting to
# fallback metadata") and offers no apply_patch tool, only shell commands.
CODEX_MODEL = "gpt-5.5"
GEMINI_MODEL = "gemini-2.5-flash"

# Inherited from the caller's environment; everything else is dropped so that
# no ANTHROPIC_*/OPENAI_*/FACTORY_* or config-dir variable leaks in.
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL")


@dataclass
class AgentSetup:
    """How to run one agent: executable, env, and arguments to add."""

    name: str
    executable: str | None  # None when the CLI is not installed
    home: Path
    env: dict[str, str]
    argv: list[str] = field(default_factory=list)  # extra arguments, before the task

    def command(self, *args: str) -> list[str]:
        """[executable, *args, *extra argv]; raises if the agent is missing."""
        if self.executable is None:
            raise FileNotFoundError(f"{self.name} is not installed (run scripts/install-agents)")
        return [self.executable, *args, *self.argv]


def agents_dir() -> Path:
    default = Path.home() / ".cache" / "orchestra" / "agents"
    return Path(os.environ.get("ORCHESTRA_AGENTS_DIR") or default)


def find_agent(name: str) -> str | None:
    """The agent's executable: the install-agents cache first, then PATH."""
    cached = agents_dir() / "bin" / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which(name)


def base_env(home: Path, term: str = "xterm-256color") -> dict[str, str]:
    """A minimal environment rooted at `home`, with its own config/cache/temp dirs."""
    env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    tmp = home / "tmp"  # agents leave temp files behind; keep them inside HOME
    for sub in (".config", ".cache", ".local/share", ".local/state", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.update({
        "HOME": str(home),
        "TERM": term,
        "TMPDIR": str(tmp),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "NO_UPDATE_NOTIFIER": "1",
    })
    return env


def init_git_repo(path: Path, name: str = "Orchestra Test", email: str = "test@orchestra.invalid") -> Path:
    """A git repository with its own identity (aider otherwise writes a placeholder one)."""
    path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", name)
    git("config", "user.email", email)
    git("config", "commit.gpgsign", "false")
    return path


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def claude_setup(home: Path, workdir: Path, base_url: str, api_key: str = ANTHROPIC_TEST_KEY) -> AgentSetup:
    """Claude Code: onboarding done, `workdir` trusted, the custom key pre-approved.

    Without these the TUI shows the onboarding, "trust this folder" and "use
    this API key?" dialogs (the last defaults to No, ending in "Not logged in").
    """
    home.mkdir(parents=True, exist_ok=True)
    project = {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True,
               "allowedTools": []}
    # Claude keys projects by its cwd; list both spellings when /tmp is a symlink.
    dirs = {str(workdir.absolute()), str(workdir.resolve())}
    _write_json(home / ".claude.json", {
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "autoUpdates": False,
        "customApiKeyResponses": {"approved": [api_key[-20:]], "rejected": []},
        "projects": {d: project for d in dirs},
    })
    env = base_env(home)
    env.update({
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    })
    return AgentSetup("claude", find_agent("claude"), home, env)


def droid_setup(home: Path, workdir: Path, base_url: str, api_key: str = ANTHROPIC_TEST_KEY,
                model: str = DROID_MODEL, airgap: bool = True) -> AgentSetup:
    """Droid: a custom Anthropic-protocol model at the server; no Factory login needed.

    argv selects that model (`-m custom:<model>`); use it with `droid exec`.
    airgap: set FACTORY_AIRGAP_ENABLED=1. Without it `droid exec` lingers
    about 6 s after its `completion` event (it tries to reach Factory's
    servers, unreachable here); with it, it exits right after (measured on
    0.225.2: 6.7 s -> 0.5 s, same output).
    """
    _write_json(home / ".factory" / "settings.json", {
        "customModels": [{
            "model": model,
            "displayName": f"scripted {model}",
            "baseUrl": base_url,
            "apiKey": api_key,
            "provider": "anthropic",
            "maxOutputTokens": 8192,
        }],
    })
    env = base_env(home)
    if airgap:
        env["FACTORY_AIRGAP_ENABLED"] = "1"
    return AgentSetup("droid", find_agent("droid"), home, env, ["-m", f"custom:{model}"])


def aider_setup(home: Path, workdir: Path, openai_url: str, api_key: str = OPENAI_TEST_KEY,
                model: str = AIDER_MODEL) -> AgentSetup:
    """Aider: the OpenAI endpoint of the server, whole-file edits, no prompts.

    A model metadata file with prices makes aider print a cost line and keeps
    it from trying to download litellm's price list at start. `workdir`
    should be a git repository made by init_git_repo (it needs an identity).
    """
    meta = home / "aider-model-metadata.json"
    bare = model.split("/", 1)[-1]
    price = {"max_tokens": 16384, "max_input_tokens": 128000, "max_output_tokens": 16384,
             "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07,
             "litellm_provider": "openai", "mode": "chat"}
    _write_json(meta, {model: price, bare: price})
    env = base_env(home)
    env.update({"OPENAI_API_KEY": api_key, "OPENAI_API_BASE": openai_url})
    argv = [
        "--model", model,
        "--openai-api-base", openai_url,
        "--openai-api-key", api_key,
        "--edit-format", "whole",
        "--yes-always",
        "--no-pretty",
        "--no-check-update",
        "--no-show-model-warnings",
        "--analytics-disable",
        "--model-metadata-file", str(meta),
    ]
    return AgentSetup("aider", find_agent("aider"), home, env, argv)


def codex_setup(home: Path, workdir: Path, openai_url: str, api_key: str = OPENAI_TEST_KEY,
                model: str = CODEX_MODEL) -> AgentSetup:
    """Codex CLI: a provider of its own at the server's Responses API (`wire_api = "chat"` is
    refused by 0.169.0), its key in OPENAI_API_KEY.

    Plugins off: otherwise every start runs `git ls-remote` on a GitHub repository (no network
    here). TMPDIR is HOME/tmp (base_env); what it still leaves in /tmp: see TMP_LEFTOVERS.
    """
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    (home / ".codex" / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "scripted"\n'
        "\n[model_providers.scripted]\n"
        'name = "scripted"\n'
        f'base_url = "{openai_url}"\n'
        'wire_api = "responses"\n'
        'env_key = "OPENAI_API_KEY"\n'
        "\n[features]\n"
        "plugins = false\n"
        "remote_plugin = false\n"
    )
    env = base_env(home)
    env["OPENAI_API_KEY"] = api_key
    return AgentSetup("codex", find_agent("codex"), home, env)


def gemini_setup(home: Path, workdir: Path, base_url: str, api_key: str = GEMINI_TEST_KEY,
                 model: str = GEMINI_MODEL) -> AgentSetup:
    """Gemini CLI: the server as its Gemini API, an API-key login, no usage statistics.

    Without `selectedType` the base URL switches it to an auth type it then rejects ("Invalid
    auth method selected.", exit 41); usage statistics would look up play.googleapis.com.
    argv: the model (without one it first asks a routing model), --yolo (else no file tools are
    offered), --skip-trust (else an untrusted folder exits 55).
    """
    _write_json(home / ".gemini" / "settings.json", {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
    })
    env = base_env(home)
    env.update({"GOOGLE_GEMINI_BASE_URL": base_url, "GEMINI_API_KEY": api_key})
    return AgentSetup("gemini", find_agent("gemini"), home, env,
                      ["--output-format", "stream-json", "-m", model, "--yolo", "--skip-trust"])


# Empty folders two CLIs make in /tmp whatever TMPDIR says: Codex CLI 0.169.0 whenever it runs
# a tool in its sandbox (bwrap mounts over it), OpenCode 1.18.33 at every start.
TMP_LEFTOVERS = (Path("/tmp") / f"codex-daemon-{os.getuid()}", Path("/tmp") / "opencode")


@contextlib.contextmanager
def tmp_leftovers_removed() -> Iterator[None]:
    """Remove TMP_LEFTOVERS afterwards: those that were not there before and are still empty."""
    existed = {path for path in TMP_LEFTOVERS if path.exists()}
    try:
        yield
    finally:
        for path in TMP_LEFTOVERS:
            if path not in existed and path.is_dir():
                with contextlib.suppress(OSError):  # not empty: something else uses it
                    path.rmdir()


def opencode_setup(home: Path, workdir: Path, openai_url: str, api_key: str = OPENAI_TEST_KEY,
                   model: str = "gpt-4o-mini") -> AgentSetup:
    """OpenCode: an OpenAI-compatible provider of its own at the server's chat completions.

    At every start it fails to fetch its model list from the internet ("Failed to fetch
    models.dev", in its log only) and goes on with the configured provider.
    """
    _write_json(home / ".config" / "opencode" / "opencode.json", {
        "provider": {"scripted": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "scripted",
            "options": {"baseURL": openai_url, "apiKey": "{env:OPENAI_API_KEY}"},
            "models": {model: {"name": model, "tool_call": True}},
        }},
        "model": f"scripted/{model}",
        "autoupdate": False,
        "share": "disabled",
    })
    env = base_env(home)
    env["OPENAI_API_KEY"] = api_key
    return AgentSetup("opencode", find_agent("opencode"), home, env)


def agent_setup(name: str, home: Path, workdir: Path, server_url: str) -> AgentSetup:
    """Dispatch on the agent name; `server_url` is ModelServer.url (no /v1)."""
    if name == "claude":
        return claude_setup(home, workdir, server_url)
    if name == "droid":
        return droid_setup(home, workdir, server_url)
    if name == "aider":
        return aider_setup(home, workdir, f"{server_url}/v1")
    if name == "codex":
        return codex_setup(home, workdir, f"{server_url}/v1")
    if name == "gemini":
        return gemini_setup(home, workdir, server_url)
    if name == "opencode":
        return opencode_setup(home, workdir, f"{server_url}/v1")
    raise ValueError(f"unknown agent {name!r}; expected one of {AGENTS}")
