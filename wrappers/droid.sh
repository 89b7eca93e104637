#!/usr/bin/env bash
# Droid, headless: `droid exec` with one JSON event per line, ending in a `completion` event.
#   droid.sh TASK [EXTRA FLAGS...]        e.g. droid.sh "$task" -s "$session_id"
# DROID_MODEL (e.g. custom:claude-sonnet-4-5) picks the model; DROID_AUTO the autonomy (default low).
set -euo pipefail
task="$1"
shift
args=(exec --auto "${DROID_AUTO:-low}" -o stream-json)
if [ -n "${DROID_MODEL:-}" ]; then
  args+=(-m "$DROID_MODEL")
fi
exec droid "${args[@]}" "$@" -- "$task"
