"""Process facts on both paths: /proc and pidfds (Linux), and the portable one a Mac takes (psutil, kqueue or
polling), forced here with ORCHESTRA_PORTABLE=1 in a process of its own."""
import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, os, signal, subprocess, sys, time
from orchestra import procs
mark = "ORCHESTRA_PROBE_MARK"
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True,
                         env={**os.environ, mark: "probe-1"})
while not procs.marked(mark, "probe-"  , prefix=True):
    time.sleep(0.01)  # (its environment is readable once it has exec'd)
facts = {
    "portable": procs.PORTABLE,
    "started": procs.process_started(child.pid),
    "alive": procs.process_alive(child.pid, procs.process_started(child.pid)),
    "alive_other_start": procs.process_alive(child.pid, -5),
    "marked": procs.marked(mark, "probe-", prefix=True),
    "exact": procs.marked(mark, "probe-1"),
    "cmdline_has_sleep": b"time.sleep(60)" in (procs.command_line(child.pid) or b""),
    "name": procs.process_name(child.pid),
    "ended_within": procs.exit_within(child.pid, 0.2),
}
facts["ended"] = procs.end_processes([child.pid], grace=1.0)
child.wait()
facts["alive_after"] = procs.process_alive(child.pid)
gone = subprocess.Popen(["true"]); gone.wait()
facts["gone_ends_at_once"] = procs.exit_within(gone.pid, 5)
print(json.dumps({k: (list(v.items()) if isinstance(v, dict) else v) for k, v in facts.items()}))
"""


@pytest.mark.parametrize("portable", ["0", "1"], ids=["linux", "portable"])
def test_process_facts_hold_on_either_path(portable):
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ORCHESTRA_PORTABLE": portable})
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["portable"] is (portable == "1")
    assert isinstance(facts["started"], (int, float)) and facts["started"] > 0
    assert facts["alive"] and not facts["alive_other_start"]
    assert [v for _, v in facts["marked"]] == ["probe-1"] and len(facts["exact"]) == 1
    assert facts["cmdline_has_sleep"] and facts["name"]
    assert facts["ended_within"] is False and facts["ended"] and not facts["alive_after"]
    assert facts["gone_ends_at_once"] is True
