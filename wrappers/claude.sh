#!/usr/bin/env bash
# Claude Code, headless: one JSON event per line, ending in a `result` event.
#   claude.sh TASK [EXTRA FLAGS...]       e.g. claude.sh "$task" --resume "$session_id"
# The task is one argument, after --, so even a task starting with '-' is only text.
set -euo pipefail
task="$1"
shift
exec claude -p --output-format stream-json --verbose --permission-mode acceptEdits "$@" -- "$task"
