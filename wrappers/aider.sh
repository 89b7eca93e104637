#!/usr/bin/env bash
# Aider, one message then exit. Model and endpoint come from aider's own variables
# (AIDER_MODEL, OPENAI_API_BASE, OPENAI_API_KEY, AIDER_MODEL_METADATA_FILE, AIDER_EDIT_FORMAT, ...).
#   aider.sh TASK [EXTRA FLAGS OR FILES...]
# --message=TASK keeps a task that starts with '-' from being read as a flag.
set -euo pipefail
task="$1"
shift
exec aider --yes-always --no-pretty --no-check-update --no-show-model-warnings --analytics-disable \
  --no-gitignore "$@" --message="$task"
