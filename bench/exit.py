#!/usr/bin/env python3
"""From the last agent's completion to orchestra's exit, with 8 agents, beside a bare loop over the same agents.

    python bench/exit.py [--agents 8] [--runs 9] [--before main] [--no-files] [--no-tmux]

Issue 23 asks for this within 3x of a bare loop. Each agent is a small Python program that prints a few
lines, waits until a common moment (so all end together), writes its file (with `--files`, the default:
a secondary changes something) and prints `DONE <time.time()>` (its stamp, also written to a file), then
exits. The time measured is from the latest stamp to the moment the process that read them has exited
(its waitpid in this bench): what the user waits for once the last agent has said it is done.

  bare loop    one Python process: the agents on ptys of their own, one selector over them, every read
               searched for the completion regex, each agent's exit reaped; then it exits. The floor of
               reading agents from Python.
  bare loop + git   the same, each agent in a worktree of its own, and as each one's exit is reaped a thread
               asks its worktree's `git status` and, if anything changed, adds and commits it (no maintenance
               run); once all are done, every branch's tip (for-each-ref) and what each changed (diff-tree):
               the floor with the agents' work committed, what no way out that keeps the work can go below.
  orchestra    `python -m orchestra delegate --no-analyze --to stamp --parallel N` in a fresh git repository
               (a worktree and a branch each, their work committed, the merge report, run.json), tmux
               windows on a private server (unless --no-tmux); this checkout and --before side by side,
               byte-compiled first. The runs alternate.

Where orchestra's time goes (this checkout): the same command under a wrapper that stamps, with
time.time(), the end of each step (the last agent's end seen, the summaries, the branches committed and
reported, run.json, stragglers looked for, the windows' pipes closed, the CLI's last line); the rest up to
the exit is the interpreter's teardown.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trees import Tree, med, python  # noqa: E402

# (no braces in it: a profile's command reads {...} as a placeholder)
AGENT = textwrap.dedent("""
    import os, sys, time
    stamps, at, write = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
    for i in range(5):
        print("step %d: working on the task" % i, flush=True)
    time.sleep(max(0.0, at - time.time()))
    if write:
        with open("part_%d.py" % os.getpid(), "w") as fh:
            fh.write("def part():\\n    return %d\\n" % os.getpid())
    stamp = time.time()
    with open(os.path.join(stamps, str(os.getpid())), "w") as fh:
        fh.write("%.6f" % stamp)
    print("DONE %.6f" % stamp, flush=True)
""")
# The bare loop. With "git" (the floor with the agents' work committed): each agent in a git worktree of its
# own (made before they start), and the git work orchestra's way out cannot do without, done as plainly: as
# each agent's exit is reaped, a thread asks its worktree's status and, if anything changed, adds and commits
# it; once all are done, every branch's tip in one call and what each changed in another.
BARE = textwrap.dedent("""
    import os, re, selectors, subprocess, sys, threading
    argv, n, cwd, with_git = sys.argv[1:-3], int(sys.argv[-3]), sys.argv[-2], sys.argv[-1] == "git"
    git = lambda where, *a, stdin=None: subprocess.run(["git", *a], cwd=where, capture_output=True, input=stdin)
    trees = [cwd] * n
    if with_git:
        for i in range(n):
            trees[i] = os.path.join(cwd, ".orchestra", "bare", str(i))
            git(cwd, "worktree", "add", "-q", "-b", "bare/%d" % i, trees[i], "HEAD")
    status = ["--no-optional-locks", "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all",
              "--no-renames"]

    def keep(path):
        out = git(path, *status).stdout.split(b"\\0")
        paths = [e.split(b" ", 8)[8] for e in out if e.startswith(b"1 ")] + [e[2:] for e in out if e.startswith(b"? ")]
        if paths:
            git(path, "add", "-A", "--", *[p.decode() for p in paths])
            git(path, "-c", "maintenance.auto=false", "commit", "-q", "--no-verify", "-m", "bare")

    done = re.compile(rb"^DONE \\d", re.M)
    sel = selectors.DefaultSelector()
    children, threads = {}, []
    for i in range(n):
        master, slave = os.openpty()
        child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=trees[i], start_new_session=True)
        os.close(slave)
        sel.register(master, selectors.EVENT_READ)
        children[master] = [child, b"", False, trees[i]]
    while children:
        for key, _ in sel.select():
            fd = key.fd
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            entry = children[fd]
            if data:
                entry[1] = (entry[1] + data)[-4096:]
                if not entry[2] and done.search(entry[1]):
                    entry[2] = True
                continue
            sel.unregister(fd)
            os.close(fd)
            entry[0].wait()
            if with_git:
                threads.append(threading.Thread(target=keep, args=(entry[3],)))
                threads[-1].start()
            del children[fd]
    if with_git:
        for t in threads:
            t.join()
        refs = ["refs/heads/bare/%d" % i for i in range(n)] + ["refs/heads/main"]
        tips = git(cwd, "for-each-ref", "--format=%(objectname)", *refs).stdout.decode().split()
        git(cwd, "diff-tree", "-r", "--no-renames", "--name-status", "-z", "--stdin",
            stdin="".join(t + "\\n" for t in tips).encode())
""")
# stamps the end of each step of orchestra's way out (this checkout's names; a step it lacks is skipped)
WRAPPER = textwrap.dedent("""
    import atexit, json, sys, time
    out = sys.argv.pop(1)
    marks = {}

    def stamp(owner, attr, key, first=False):
        original = getattr(owner, attr, None)
        if original is None:
            return
        def wrapped(*args, **kwargs):
            try:
                return original(*args, **kwargs)
            finally:
                if not (first and key in marks):
                    marks[key] = time.time()
        setattr(owner, attr, wrapped)

    from orchestra import delegate, run, session, worktree
    stamp(session.AgentSession, "_finish", "agents ended")
    stamp(delegate._Flow, "result_of", "summaries")
    stamp(worktree.Repo, "keep", "branches committed")
    stamp(worktree.Repo, "settle", "merge report")
    stamp(run.Run, "write_json", "run.json")
    stamp(run.Run, "end_stragglers", "stragglers")
    stamp(run.Run, "close_viewer", "windows")
    atexit.register(lambda: open(out, "w").write(json.dumps({**marks, "CLI done": time.time()})))
    sys.argv[0] = "orchestra"
    from orchestra.cli import main
    main()
""")
STEPS = ["agents ended", "summaries", "branches committed", "merge report", "run.json", "stragglers", "windows",
         "CLI done"]


def stamps(folder: Path) -> float:
    values = [float(p.read_text()) for p in folder.iterdir()]
    return max(values)


def waited(argv: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """Run argv to its end; the time.time() at which its exit was seen, and its CPU ms (children too)."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    ended = time.time()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... exited {os.waitstatus_to_exitcode(status)}: "
                         f"{err.decode(errors='replace')[-3000:]}")
    return ended, (usage.ru_utime + usage.ru_stime) * 1000


def make_repo(path: Path) -> None:
    path.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "Bench"],
                 ["config", "user.email", "bench@orchestra.invalid"], ["config", "commit.gpgsign", "false"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    (path / "README.md").write_text("# bench project\n")
    (path / "app.py").write_text("print('hello')\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "start"], cwd=path, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--before", default="main", help="the revision to compare with (default: main)")
    ap.add_argument("--no-tmux", action="store_true")
    ap.add_argument("--no-files", action="store_true", help="the agents change nothing (nothing to commit)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-exit-"))
    tmux_dir = tempfile.mkdtemp(prefix="orchestra-bench-tmux-")
    old = None
    write = "0" if args.no_files else "1"
    tmux = not args.no_tmux and shutil.which("tmux")
    try:
        exe = python(tmp / "venv")
        old, new = Tree(args.before, exe), Tree(None, exe)
        for tree in (old, new):
            tree.env = {**tree.env, "TMUX_TMPDIR": tmux_dir}
            tree.env.pop("TMUX", None)
        results = {"bare loop": [], "bare loop + git": [], f"orchestra ({old.name})": [], f"orchestra ({new.name})": []}
        cpu = {name: [] for name in results}
        where: list[dict] = []
        for r in range(args.runs):
            order = list(results) if r % 2 == 0 else list(results)[::-1]
            for name in order + ["where"]:
                run_dir = tmp / f"run-{r}-{name.split()[0]}-{len(where)}"
                repo, marks = run_dir / "repo", run_dir / "stamps"
                make_repo(repo)
                marks.mkdir()
                at = time.time() + 1.0 + 0.05 * args.agents  # all agents started by then
                agent = [exe, "-c", AGENT, str(marks), f"{at:.6f}", write]
                if name.startswith("bare loop"):
                    ended, used = waited([exe, "-c", BARE, *agent, str(args.agents), str(repo),
                                          "git" if name.endswith("git") else "plain"], new.env, repo)
                else:
                    tree = old if name.endswith(f"({old.name})") else new
                    cfg = run_dir / "o.yaml"
                    cfg.write_text(json.dumps({"agents": {"stamp": {
                        "command": [*agent, "{task}"], "completion": r"^DONE \d", "parser": "generic",
                        "timeout": 60, "linger": 5, "kill_grace": 1}}}))
                    argv = ["-m", "orchestra", "delegate", "--no-analyze", "--to", "stamp", "--parallel",
                            str(args.agents), "--task", "bench", "--config", str(cfg), *([] if tmux else ["--no-tmux"])]
                    if name == "where":
                        out = run_dir / "where.json"
                        argv = ["-c", WRAPPER, str(out), *argv[2:]]
                    ended, used = waited([exe, *argv], tree.env, repo)
                    if name == "where":
                        last = stamps(marks)
                        where.append({k: (v - last) * 1000 for k, v in json.loads(out.read_text()).items()}
                                     | {"exit": (ended - last) * 1000})
                        continue
                results[name].append((ended - stamps(marks)) * 1000)
                cpu[name].append(used)
                shutil.rmtree(run_dir, ignore_errors=True)
            print(f"# run {r + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in results.items()),
                  file=sys.stderr, flush=True)
    finally:
        if old is not None:
            old.remove()
        if tmux:
            subprocess.run(["tmux", "kill-server"], env={**os.environ, "TMUX_TMPDIR": tmux_dir}, capture_output=True)
        shutil.rmtree(tmux_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    bare = med(results["bare loop"])
    print(f"# orchestra bench: last completion -> process exit, {args.agents} agents "
          f"({'each writes a file' if write == '1' else 'changing nothing'}), tmux {'on' if tmux else 'off'}, "
          f"{args.runs} runs alternating (ms); before = {args.before}; target: within 3x the bare loop")
    head = f"{'who':>28} | {'p50 ms':>7} | {'min':>7} | {'max':>7} | {'x bare':>6} | {'CPU ms (whole run)':>18}"
    print(head)
    print("-" * len(head))
    for name, values in results.items():
        print(f"{name:>28} | {med(values):>7.1f} | {min(values):>7.1f} | {max(values):>7.1f} | "
              f"{med(values) / bare:>5.1f}x | {med(cpu[name]):>18.0f}")
    print()
    print(f"# where orchestra's time goes ({new.name}, under the wrapper): each step's end after the last "
          "completion, ms (median)")
    keys = [k for k in STEPS if all(k in w for w in where)] + ["exit"]
    print(" | ".join(f"{k:>10}" for k in keys))
    print(" | ".join(f"{statistics.median(w[k] for w in where):>10.1f}" for k in keys))
    ratio = med(results[f"orchestra ({new.name})"]) / bare
    print(f"\n# {new.name}: {ratio:.1f}x the bare loop (target <= 3x): {'met' if ratio <= 3 else 'MISSED'}")


if __name__ == "__main__":
    main()
