"""A test double of a headless agent that speaks JSON (Claude Code's stream-json events) and prints a
multi-line key from its environment in each way a JSON-speaking agent writes line breaks.

    json_agent.py VARIABLE [--ready FILE --go FILE] [--fail]

--ready/--go: after the key, write FILE (--ready) and wait until FILE (--go) exists, so that a test can
look at a run while it goes on. --fail: the result event reports an error that quotes the key.
"""
import argparse
import json
import os
import signal
import sys
import time


def emit(event: dict, slashes_escaped: bool = False) -> None:
    line = json.dumps(event, separators=(",", ":"))  # as Claude Code writes them
    if slashes_escaped:  # as PHP's json_encode and some others write "/"
        line = line.replace("/", "\\/")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def said(text: str) -> dict:
    return {"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("variable")
    ap.add_argument("--ready")
    ap.add_argument("--go")
    ap.add_argument("--fail", action="store_true")
    args = ap.parse_args()
    key = os.environ[args.variable]
    crlf = key.replace("\n", "\r\n")
    emit({"type": "system", "subtype": "init", "model": "toy", "cwd": os.getcwd(), "session_id": "s-1"})
    emit(said("The key is:\n" + key + "\nkept."))  # JSON's \n
    emit(said("With CR LF: " + crlf))  # \r\n
    emit(said("Slashes escaped: " + key), slashes_escaped=True)  # \/ and \n
    # a key in JSON inside a JSON string (a tool's argument): \\r\\n, and a first line longer than a window shows
    command = "printf '%s' " + json.dumps(json.dumps({"note": "x" * 150, "key": crlf})) + " > key.json"
    emit({"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "Bash", "id": "t1",
                                                        "input": {"command": command}}]}})
    emit({"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1",
                                                   "content": "wrote " + "y" * 150 + crlf}]}})
    if args.ready:
        open(args.ready, "w").close()
        while not os.path.exists(args.go):
            time.sleep(0.02)
    # its type last, as Claude Code writes it: what a summary keeps of the line that ended the run starts with the key
    emit({"subtype": "error_during_execution" if args.fail else "success", "is_error": args.fail,
          "result": "Could not use " + key if args.fail else "Done with " + key, "total_cost_usd": 0.01,
          "usage": {"input_tokens": 10, "output_tokens": 20}, "session_id": "s-1", "type": "result"})
    signal.pause()  # ended by orchestra: the result line is what ended the run (its summary's ended_by)
    return 0


if __name__ == "__main__":
    sys.exit(main())
