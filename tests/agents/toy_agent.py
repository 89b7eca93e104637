"""A small terminal program that behaves like an agent, for tests: prompt, work, report, finish.

It is a test double for the engine's tests only; the end-to-end tests run the real agents.
"""
import argparse
import os
import signal
import sys
import time


def out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", default=None, help="print this and read one line (the task)")
    ap.add_argument("--task", default=None, help="the task, given in argv")
    ap.add_argument("--task-file", default=None, help="the task, read from this file")
    ap.add_argument("--raw", action="store_true", help="with --prompt: read the task in raw mode, up to Enter")
    ap.add_argument("--digest", action="store_true", help="print the task's length in bytes and its sha256")
    ap.add_argument("--files", default="", help="comma-separated paths to create and report")
    ap.add_argument("--many-files", type=int, default=0, help="create and report this many files under gen/")
    ap.add_argument("--done", default="DONE", help="the completion line")
    ap.add_argument("--ask", default=None, help="a question to print and wait for an answer to")
    ap.add_argument("--ask-again", action="store_true", help="ask the --ask question again after each answer")
    ap.add_argument("--line", action="append", default=[], help="print this line first (e.g. a retry notice)")
    ap.add_argument("--exit", type=int, default=0, help="exit code after the work")
    ap.add_argument("--kill-self", default=None, help="die by this signal instead of finishing")
    ap.add_argument("--hang", action="store_true", help="never finish")
    ap.add_argument("--spawn-child", action="store_true", help="start a grandchild that outlives a plain kill")
    ap.add_argument("--setsid-child", action="store_true",
                    help="start a daemon in a session of its own (setsid), off the pty: it outlives the agent")
    ap.add_argument("--pidfile", default=None, help="write this process's (and its child's) pid here")
    ap.add_argument("--wait-fifo", default=None, help="block until someone writes to this FIFO, then go on")
    ap.add_argument("--signal-fifo", default=None, help="write a line to this FIFO (blocks until someone reads it)")
    ap.add_argument("--files-then-wait-fifo", default=None,
                    help="once its files are written, block until someone writes to this FIFO, then finish")
    ap.add_argument("--linger", action="store_true", help="keep running after the completion line")
    ap.add_argument("--ignore-term", action="store_true", help="ignore SIGTERM")
    ap.add_argument("--note-term", default=None, help="on SIGTERM, write this file and go on (ignore it)")
    ap.add_argument("--term-exit", type=int, default=None, help="on SIGTERM, exit with this code")
    ap.add_argument("--flood", type=float, default=0, help="MB of output before finishing")
    ap.add_argument("--flood-style", default="lines", choices=["lines", "nonl", "binary", "ansi"])
    ap.add_argument("--echo-env", default=None, help="print the value of this environment variable")
    ap.add_argument("--color", action="store_true", help="wrap output in colour escapes")
    ap.add_argument("--stamp", action="store_true", help="put time.time() in the completion line")
    ap.add_argument("--reply", action="append", default=[],
                    help="an interactive turn: print this reply, then the completion line, then prompt again")
    args = ap.parse_args()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.term_exit is not None:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(args.term_exit))
    if args.note_term:
        signal.signal(signal.SIGTERM, lambda *_: open(args.note_term, "w").close())
    pids = [os.getpid()]
    if args.spawn_child:
        import subprocess
        pids.append(subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"]).pid)
    if args.setsid_child:
        import subprocess
        pids.append(subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"], start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL).pid)
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as fh:
            fh.write(" ".join(map(str, pids)))
        os.replace(args.pidfile + ".tmp", args.pidfile)
    task = args.task
    if args.reply:
        return turns(args)
    if args.task_file:
        with open(args.task_file, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            task = fh.read()
    if args.prompt is not None and args.raw:
        task = read_raw(args.prompt)
    elif args.prompt is not None:
        out(args.prompt)
        task = sys.stdin.readline().rstrip("\n")
    if args.digest:
        import hashlib

        data = (task or "").encode("utf-8", "surrogateescape")
        out(f"task digest: {len(data)} {hashlib.sha256(data).hexdigest()}\n")
    else:
        out(f"working on: {task}\n")
    for line in args.line:
        out(line + "\n")
    if args.signal_fifo:
        with open(args.signal_fifo, "w") as fh:
            fh.write("go\n")
    if args.wait_fifo:
        with open(args.wait_fifo) as fh:
            fh.read()
    if args.echo_env:
        out(f"env {args.echo_env}={os.environ.get(args.echo_env, '')}\n")
    while args.ask:
        out(args.ask)
        answer = sys.stdin.readline()
        out(f"\ngot answer: {answer.strip()}\n")
        if not (args.ask_again and answer):
            break
    if args.flood:
        flood(args.flood, args.flood_style)
    many = [f"gen/generated-file-{i:05d}.txt" for i in range(args.many_files)]
    for path in [*filter(None, args.files.split(",")), *many]:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as fh:
            fh.write(f"# written for: {task}\n")
        line = f"modified: {path}\n"
        out(f"\x1b[32m{line}\x1b[0m" if args.color else line)
    if args.files_then_wait_fifo:
        with open(args.files_then_wait_fifo) as fh:
            fh.read()
    if args.kill_self:
        os.kill(os.getpid(), getattr(signal, args.kill_self))
    if args.hang:
        while True:
            signal.pause()
    done = f"{args.done} {time.time():.6f}" if args.stamp else args.done
    out(done + "\n")
    if args.linger:
        while True:
            signal.pause()
    return args.exit


def read_raw(prompt: str) -> str:
    """Show the prompt and read a line as a TUI does: the terminal in raw mode (set first), so no
    line limit and no line editing."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    tty.setraw(fd)
    out(prompt)
    data = b""
    try:
        while not data.endswith(b"\r"):
            data += os.read(fd, 65536)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, old)
    return data[:-1].decode("utf-8", "surrogateescape")


def turns(args) -> int:
    """An interactive agent: for each reply, read a message at the prompt and answer it."""
    for reply in args.reply:
        out(args.prompt or "> ")
        message = sys.stdin.readline()
        if not message:
            return 1
        out(f"got: {message.strip()}\n")
        out(reply.replace("\\n", "\n") + "\n")
        out(args.done + "\n")
    out(args.prompt or "> ")
    sys.stdin.readline()  # an exit command, or the end of input
    return args.exit


def flood(mb: float, style: str) -> None:
    total = int(mb * 1024 * 1024)
    if style == "lines":
        block = (b"x" * 79 + b"\n") * 512
    elif style == "nonl":
        block = b"y" * 40960
    elif style == "binary":
        block = bytes(range(256)) * 160 + b"\xff\xfe\x00\xc3"
    else:
        block = b"\x1b[31m\x1b[1;1H\x1b[2K\x1b]0;t\x07z\x1b[0m" * 1024
    fd = sys.stdout.fileno()
    sent = 0
    while sent < total:
        sent += os.write(fd, block[: total - sent])
    out("\n")


if __name__ == "__main__":
    sys.exit(main())
