#!/usr/bin/env bash
# Cursor's agent, headless: one JSON event per line, ending in a `result` event.
#   cursor.sh TASK [EXTRA FLAGS...]
set -euo pipefail
task="$1"
shift
exec cursor-agent -p --output-format stream-json --force "$@" -- "$task"
