"""What bench/start.py and bench/history.py share: this checkout and an older revision side by side, each run
as a fresh process, and the wall and CPU time of that process.

    python(dir)     an interpreter that sees this one's packages (click, pexpect...) but not orchestra's editable
                    install (its finder would win over PYTHONPATH): a venv whose site-packages names this one's
    Tree(rev)       a revision's sources (`git archive`), byte-compiled and its C extension built as `pip install .`
                    would; None: this checkout (its extension built by `pip install -e .`)
    build_native(dir)   a tree's C extension built in place, as pip builds it
    timed(argv)     one run of a command: wall ms, CPU ms (user + system of the process and its children)
    series(cases)   every case run `runs` times, alternating, so the machine's load falls on all alike
"""
from __future__ import annotations

import compileall
import os
import sysconfig
import venv
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent


def python(where: Path) -> str:
    """A venv in `where` (no pip) whose one .pth file adds this interpreter's site-packages: their packages
    without their .pth files, so orchestra is imported from PYTHONPATH alone. Returns its python."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(where)
    exe = where / "bin" / "python"
    site = subprocess.run([str(exe), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "bench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(exe)


def build_native(tree: Path) -> None:
    """The tree's optional C extension (setup.py: orchestra._cclean), built in place as pip would build it;
    nothing for a revision that has none. A build that fails stops the bench: the figures would be Python's."""
    if not (tree / "orchestra" / "_cclean.c").exists():
        return
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--build-temp",
                           str(tree / "build-temp")], cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"building the C extension of {tree} failed:\n{done.stderr[-2000:]}")


class Tree:
    """Orchestra's sources at one revision, importable with PYTHONPATH by `python`."""

    def __init__(self, rev: Optional[str], python: str = sys.executable):
        self.rev = rev
        self.python = python
        self.tmp: Optional[Path] = None
        self.path = ROOT
        try:
            if rev is not None:
                self.tmp = self.path = Path(tempfile.mkdtemp(prefix="orchestra-bench-tree-"))
                done = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True)
                if done.returncode != 0:
                    raise SystemExit(f"--before {rev}: git archive says {done.stderr.decode(errors='replace').strip()}")
                archive = done.stdout
                subprocess.run(["tar", "-x", "-C", str(self.tmp)], input=archive, check=True)
                build_native(self.tmp)
            # an installed orchestra has its bytecode; where PYTHONDONTWRITEBYTECODE is set, a checkout would
            # compile its sources at every start
            compileall.compile_dir(str(self.path / "orchestra"), quiet=1)
            self.env = {**os.environ, "PYTHONPATH": str(self.path)}
            found = subprocess.run([python, "-c", "import orchestra; print(orchestra.__file__)"],
                                   env=self.env, cwd="/", capture_output=True, text=True, check=True).stdout.strip()
            if not found.startswith(str(self.path)):
                raise SystemExit(f"PYTHONPATH={self.path} imports orchestra from {found}, not from the tree")
        except BaseException:
            self.remove()
            raise

    @property
    def name(self) -> str:
        return self.rev or "this checkout"

    def remove(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def timed(argv: list[str], env: Optional[dict] = None, cwd: Optional[Path] = None) -> tuple[float, float]:
    """Run argv to its end (its output read and dropped); its wall ms and CPU ms (user + system, children too)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def series(cases: dict[str, tuple], runs: int) -> dict[str, dict[str, list[float]]]:
    """Each case (argv, env, cwd[, a function called before each run, untimed]) `runs` times, one of each in
    turn, the order turned each round."""
    out = {name: {"wall": [], "cpu": []} for name in cases}
    names = list(cases)
    for r in range(runs):
        for name in (names if r % 2 == 0 else names[::-1]):
            argv, env, cwd, *before = cases[name]
            for prepare in before:
                prepare()
            wall, cpu = timed(argv, env, cwd)
            out[name]["wall"].append(wall)
            out[name]["cpu"].append(cpu)
    return out


def med(values: list[float]) -> float:
    return statistics.median(values)
