#!/usr/bin/env bash
# Gemini CLI, headless: `gemini --prompt` with one JSON event per line, ending in a `result` event.
#   gemini.sh TASK [EXTRA FLAGS...]   e.g. gemini.sh "$summary" --resume "$session_id"
# GEMINI_MODEL picks the model (default gemini-2.5-flash; without one it first asks a routing
# model). --yolo: without it the file tools are not offered; --skip-trust: an untrusted folder
# would exit 55.
# --prompt=TASK keeps a task that starts with '-' from being read as a flag.
set -euo pipefail
task="$1"
shift
# It writes crash reports to the temp directory: give it one of its own.
export TMPDIR="${GEMINI_TMPDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/orchestra/gemini-tmp}"
mkdir -p "$TMPDIR"
exec gemini --output-format stream-json -m "${GEMINI_MODEL:-gemini-2.5-flash}" --yolo --skip-trust \
  "$@" --prompt="$task"
