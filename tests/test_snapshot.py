"""The git snapshot that tells which files an agent changed: right, and cheap whatever the repository holds."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import git, needs_git
from orchestra.summary import GitSnapshot

pytestmark = needs_git


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "README.md").write_text("# project\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=T", "-c", "user.email=t@t.invalid", "commit", "-qm", "start")
    return tmp_path


def test_a_big_untracked_file_is_never_read_into_memory(repo):
    with open(repo / "big.bin", "wb") as fh:  # sparse: 2 GB that take no disk
        fh.truncate(2 << 30)
    probe = textwrap.dedent("""
        import sys
        from pathlib import Path
        from orchestra.summary import GitSnapshot
        snap = GitSnapshot.take(Path(sys.argv[1]))
        assert "big.bin" in snap.dirty and snap.changed() == []
        # VmHWM: this process's peak RSS (ru_maxrss would count the parent's too: Linux keeps it across exec);
        # macOS has no /proc, and its ru_maxrss (in bytes) is this process's own
        if sys.platform.startswith("linux"):
            print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))  # kB
        else:
            import resource
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # kB
    """)
    done = subprocess.run([sys.executable, "-c", probe, str(repo)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 200 * 1024, f"peak RSS {int(done.stdout) // 1024} MB"


def test_a_dirty_file_the_agent_writes_is_changed_and_one_it_leaves_alone_is_not(repo):
    (repo / "README.md").write_text("# edited before the run\n")
    (repo / "notes.txt").write_text("untracked before the run\n")
    (repo / "kept.txt").write_text("untracked, left alone\n")
    snap = GitSnapshot.take(repo)
    assert sorted(snap.dirty) == ["README.md", "kept.txt", "notes.txt"]
    clock_moves_past(repo / "README.md")  # the kernel stamps files at a coarse tick (ms)
    before = os.stat(repo / "README.md").st_mtime_ns
    with open(repo / "README.md", "r+") as fh:  # the same size, and then the same mtime: only the ctime tells
        fh.write("# EDITED")
    os.utime(repo / "README.md", ns=(before, before))
    (repo / "notes.txt").write_text("rewritten by the agent\n")
    (repo / "new.py").write_text("")
    assert snap.changed() == ["README.md", "new.py", "notes.txt"]


def clock_moves_past(path: Path) -> None:
    """Wait (bounded) until a file written now gets a later ctime than `path` has."""
    scratch = path.with_name(".tick")
    for _ in range(100000):
        scratch.write_text("")
        if os.stat(scratch).st_ctime_ns > os.stat(path).st_ctime_ns:
            scratch.unlink()
            return
    raise AssertionError("the file system's clock did not move")
