"""A headless agent that keeps sessions, as Claude Code's stream-json shows them, for tests of follow-ups.

    resumable_agent.py TASK [--resume SESSION_ID] [--tokens N]

It writes the file the task's last word names (its content: the task, the session id, new or resumed),
prints `system/init`, one `assistant` event with a Write and N input tokens, and a `result` with a cost;
a resumed session keeps its id. A test double for orchestra's tests; test_budget_real.py resumes the
real Claude Code.
"""
import argparse
import json
import os
import sys
import uuid


def out(event: dict) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("task")
    ap.add_argument("--resume", default=None)
    ap.add_argument("--tokens", type=int, default=100)
    args = ap.parse_args()
    session = args.resume or uuid.uuid4().hex
    out({"type": "system", "subtype": "init", "session_id": session, "cwd": os.getcwd()})
    name = args.task.split()[-1]
    with open(name, "w") as fh:
        fh.write(f"{args.task} (session {session}, {'resumed' if args.resume else 'new'})\n")
    out({"type": "assistant", "session_id": session, "message": {
        "id": uuid.uuid4().hex, "usage": {"input_tokens": args.tokens, "output_tokens": 5},
        "content": [{"type": "tool_use", "name": "Write", "input": {"file_path": name}}]}})
    out({"type": "result", "subtype": "success", "is_error": False, "result": f"Wrote {name}.",
         "total_cost_usd": 0.01, "usage": {"input_tokens": args.tokens, "output_tokens": 5}, "session_id": session})
    return 0


if __name__ == "__main__":
    sys.exit(main())
