#!/usr/bin/env bash
# Codex CLI, headless: `codex exec --json`, one JSON event per line, a turn ending in
# `turn.completed` (or `turn.failed`).
#   codex.sh TASK [EXTRA ARGS...]     e.g. codex.sh "$summary" resume "$thread_id"
# Model and provider come from ~/.codex/config.toml; CODEX_MODEL picks another model,
# CODEX_SANDBOX another sandbox (default workspace-write: it may write in its directory only).
# The task is one argument, after --, so even a task starting with '-' is only text.
set -euo pipefail
task="$1"
shift
# It leaves codex-* folders in the temp directory: give it one of its own.
export TMPDIR="${CODEX_TMPDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orchestra/codex-tmp}"
mkdir -p "$TMPDIR"
args=(exec --json --skip-git-repo-check --sandbox "${CODEX_SANDBOX:-workspace-write}")
if [ -n "${CODEX_MODEL:-}" ]; then
  args+=(-m "$CODEX_MODEL")
fi
exec codex "${args[@]}" "$@" -- "$task"
