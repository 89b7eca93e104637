"""While an agent works on a terminal, one status line shows it: agent, elapsed time, latest output."""
import sys

import pexpect

from conftest import TOY


def status_line_shows(workdir, line: str, options: tuple = (), toy_args: str = "") -> None:
    """`orchestra run` on a terminal, its agent (the toy) blocked on a gate: its status line matches `line`
    while it waits, and the run completes once the gate opens."""
    import os

    gate = workdir / "gate"
    os.mkfifo(gate)
    child = pexpect.spawn(sys.executable, ["-m", "orchestra", "run", "--no-tmux", "--done", "^DONE", "--task", "t",
                                           *options, "--cmd",
                                           f"{sys.executable} {TOY} --task t {toy_args} --wait-fifo {gate}"],
                          cwd=str(workdir), timeout=30, encoding="utf-8")
    try:
        child.expect(line)
        with open(gate, "w") as fh:
            fh.write("go")
        child.expect("completed task")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_a_terminal_gets_a_live_status_line(workdir, tmux_sessions):
    # the agent is blocked on its gate: the line shows it is alive and what it last said
    status_line_shows(workdir, r"⏳ python \d+\.\ds │ working on: t")
