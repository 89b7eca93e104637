"""While an agent works on a terminal, one status line shows it: agent, elapsed time, latest output."""
import sys

import pexpect

from conftest import TOY


def test_a_terminal_gets_a_live_status_line(workdir, tmux_sessions):
    gate = workdir / "gate"
    import os
    os.mkfifo(gate)
    child = pexpect.spawn(sys.executable, ["-m", "orchestra", "run", "--no-tmux", "--done", "^DONE", "--task", "t",
                                           "--cmd", f"{sys.executable} {TOY} --task t --wait-fifo {gate}"],
                          cwd=str(workdir), timeout=30, encoding="utf-8")
    try:
        # the agent is blocked on its gate: the line shows it is alive and what it last said
        child.expect(r"⏳ python \d+\.\ds │ working on: t")
        with open(gate, "w") as fh:
            fh.write("go")
        child.expect("completed task")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
