#!/usr/bin/env bash
# OpenCode, headless: `opencode run --format json`, one JSON event per line; it exits when done.
#   opencode.sh TASK [EXTRA FLAGS...]     e.g. opencode.sh "$summary" --session "$session_id"
# Provider and model come from its opencode.json; OPENCODE_MODEL=provider/model picks another.
# The task is one argument, after --, so even a task starting with '-' is only text.
set -euo pipefail
task="$1"
shift
export TMPDIR="${OPENCODE_TMPDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orchestra/opencode-tmp}"
mkdir -p "$TMPDIR"
args=(run --format json)
if [ -n "${OPENCODE_MODEL:-}" ]; then
  args+=(-m "$OPENCODE_MODEL")
fi
exec opencode "${args[@]}" "$@" -- "$task"
