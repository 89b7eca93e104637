"""The path a Mac takes, taken on Linux with ORCHESTRA_PORTABLE=1 (no pidfds, no /proc, a selector on poll,
the pty slave held until the exit is seen), each probe in a process of its own (the path is chosen at import)."""
import json
import os
import subprocess
import sys

import pytest

from orchestra.procs import process_alive

BRIEF_AGENTS = r"""
import json, sys, tempfile
from pathlib import Path
from orchestra.config import Profile
from orchestra.session import AgentSession, drive
tmp = Path(tempfile.mkdtemp(prefix="orchestra-brief-"))
lost, held = [], []
for i in range(100):
    prof = Profile(name="brief", command=["/bin/sh", "-c", f"echo the last line {i}"], completion=None, timeout=20)
    s = AgentSession(prof, "", tmp, tmp / f"{i}.cast")
    s.start()
    held.append(s.slave >= 0)
    drive([s])
    if f"the last line {i}" not in s.stream.last_lines or f"the last line {i}" not in (tmp / f"{i}.cast").read_text():
        lost.append(i)
    assert s.slave == -1 and s.result().status == "completed", (s.slave, s.result())
print(json.dumps({"lost": lost, "held": sum(held)}))
"""


@pytest.mark.parametrize("portable", ["0", "1"], ids=["linux", "portable"])
def test_the_last_line_of_an_agent_that_prints_and_exits_at_once_is_never_lost(portable, tmp_path):
    done = subprocess.run([sys.executable, "-c", BRIEF_AGENTS], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "ORCHESTRA_PORTABLE": portable, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["lost"] == []
    assert said["held"] == (100 if portable == "1" else 0)  # the slave is held on the portable path only


HELD_SLAVE = r"""
import json, os, sys, tempfile
from pathlib import Path
from orchestra.config import Profile
from orchestra.session import AgentSession, drive
tmp = Path(tempfile.mkdtemp(prefix="orchestra-held-"))
prof = Profile(name="tty", command=[sys.executable, "-c", "import os; print('tty', os.ttyname(0))"], completion=None,
               timeout=20)
s = AgentSession(prof, "", tmp, tmp / "a.cast")
s.start()
held = os.ttyname(s.slave)
drive([s])
said = next(line for line in s.stream.last_lines if line.startswith("tty "))
print(json.dumps({"held": held, "agent": said.split()[1], "released": s.slave == -1}))
"""


def test_on_the_portable_path_orchestra_holds_the_agents_own_terminal_until_its_exit():
    done = subprocess.run([sys.executable, "-c", HELD_SLAVE], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ORCHESTRA_PORTABLE": "1"})
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["held"] == said["agent"] and said["released"]


QUIET_AGENT = r"""
import json, sys, tempfile
from pathlib import Path
from orchestra import session
from orchestra.config import Profile
from orchestra.session import AgentSession, drive
tmp = Path(tempfile.mkdtemp(prefix="orchestra-quiet-"))
# quiet for a few probes, then its last lines, and out at once
agent = f"import time; time.sleep({session.HANGUP_PROBE * 3.5}); print('\\n'.join(f'line {{i}}' for i in range(50)))"
s = AgentSession(Profile(name="quiet", command=[sys.executable, "-c", agent], completion=None, timeout=30), "",
                 tmp, tmp / "a.cast")
held_at_output = []
s.on_output = lambda s: held_at_output.append(s.slave >= 0)
s.start()
drive([s])
print(json.dumps({"probed": s.probed_at > 0, "held": held_at_output[:1], "status": s.result().status,
                  "last": s.stream.last_lines[-1] if s.stream.last_lines else ""}))
"""


def test_a_quiet_agent_is_probed_for_a_closed_terminal_and_its_slave_held_again_so_its_last_lines_stay(tmp_path):
    done = subprocess.run([sys.executable, "-c", QUIET_AGENT], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ORCHESTRA_PORTABLE": "1", "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said == {"probed": True, "held": [True], "status": "completed", "last": "line 49"}


ESCAPED_EXIT = r"""
import json, os, signal, sys, tempfile, threading
from pathlib import Path
from orchestra import procs
from orchestra.config import Profile
from orchestra.session import AgentSession, drive
tmp = Path(sys.argv[2])
# the agent leaves a straggler in a session of its own that keeps the pty open, and exits with code 3:
# only the exit watch (not an EOF) can tell orchestra it ended
agent = ("import os, subprocess, sys; p = subprocess.Popen(['sleep', '60'], start_new_session=True); "
         f"open({str(tmp / 'straggler')!r}, 'w').write(str(p.pid)); sys.exit(3)")
prof = Profile(name="escapes", command=[sys.executable, "-c", agent], completion=None, timeout=30)
s = AgentSession(prof, "", tmp, tmp / "a.cast")
before = signal.getsignal(signal.SIGCHLD)
s.start()
if sys.argv[1] == "thread":  # where no SIGCHLD handler can be installed: the bounded wait finds the exit
    t = threading.Thread(target=drive, args=([s],)); t.start(); t.join()
else:
    drive([s])
r = s.result()
print(json.dumps({"status": r.status, "code": r.exit_code, "pidfd": s.pidfd, "portable": procs.PORTABLE,
                  "selector": type(procs.selector()).__name__,
                  "handler_restored": signal.getsignal(signal.SIGCHLD) == before}))
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_the_portable_loop_sees_an_exit_without_pidfds_while_a_straggler_keeps_the_pty_open(where, tmp_path):
    done = subprocess.run([sys.executable, "-c", ESCAPED_EXIT, where, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "ORCHESTRA_PORTABLE": "1"})
    straggler = int((tmp_path / "straggler").read_text())
    try:
        assert done.returncode == 0, done.stderr
        said = json.loads(done.stdout)
        assert said["portable"] and said["pidfd"] == -1 and said["selector"] != "EpollSelector"
        assert (said["status"], said["code"]) == ("crashed", 3)  # its exit, not the 30 s timeout
        assert said["handler_restored"]
    finally:
        if process_alive(straggler):
            os.kill(straggler, 9)


def test_the_tests_tmux_socket_path_fits_macos_bound_of_104_bytes():
    socket = os.path.join(os.environ["TMUX_TMPDIR"], f"tmux-{os.getuid()}", "default")
    assert len(socket.encode()) < 104, socket


FLOODING_STRAGGLER = r"""
import json, sys, time
from pathlib import Path
from orchestra.config import Profile
from orchestra.session import AgentSession, drive
tmp = Path(sys.argv[1])
# the agent leaves a straggler in a session of its own that writes to the pty without end, and exits
pidfile = str(tmp / "straggler")
flood = (f"import itertools, os; os.write(1, b'y' * 4096); open({pidfile!r} + '.new', 'w').write(str(os.getpid())); "
         f"os.rename({pidfile!r} + '.new', {pidfile!r}); [os.write(1, b'y' * 4096) for _ in itertools.count()]")
# (it exits once the straggler floods: then, while orchestra holds the slave, its reads never run dry)
agent = (f"import os, subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {flood!r}], start_new_session=True)\n"
         f"while not os.path.exists({pidfile!r}): time.sleep(0.01)")
prof = Profile(name="leaves", command=[sys.executable, "-c", agent], completion=None, timeout=30)
s = AgentSession(prof, "", tmp, tmp / "a.cast")
s.start()
drive([s])
print(json.dumps({"status": s.result().status, "released": s.slave == -1}))
"""


def test_an_exit_is_final_while_a_straggler_floods_the_held_terminal(tmp_path):
    done = subprocess.run([sys.executable, "-c", FLOODING_STRAGGLER, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "ORCHESTRA_PORTABLE": "1"})
    straggler = int((tmp_path / "straggler").read_text())
    try:
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"status": "completed", "released": True}
    finally:
        if process_alive(straggler):
            os.kill(straggler, 9)
