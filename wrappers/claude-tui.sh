#!/usr/bin/env bash
# Claude Code's interactive screen; orchestra types the task at its prompt.
set -euo pipefail
exec claude "$@"
