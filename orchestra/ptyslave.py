"""Holding an agent's pty slave open until orchestra has seen the agent exit.

On macOS and the BSDs the last close of a pty's slave can throw away what the agent wrote and orchestra
has not read yet (pexpect issue #662): an agent that prints its last line and exits at once loses it.
So orchestra holds a slave descriptor of its own from before the agent runs (the forked child sends its
stdin, the slave, over a Unix socket before it execs: opening the slave by name after the spawn would
race an agent that exits at once), reads what is left once it has seen the exit, and only then lets the
slave go (release()), after which the master reads the rest and then EOF.

Taken on the portable path (procs.PORTABLE): on Linux the kernel keeps that output, and the slave held
open would hide an agent that closes its terminal and stays (a closed terminal is only seen at its exit).
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from typing import Callable


class SlaveKeeper:
    """One spawn's hold on its pty slave: give preexec() to pexpect, then call received() after the spawn."""

    def __init__(self) -> None:
        # a socket with a path (the forked child closes every inherited descriptor above 2 before preexec)
        self.dir = tempfile.mkdtemp(prefix="orch-pty-", dir="/tmp" if os.path.isdir("/tmp") else None)
        self.path = os.path.join(self.dir, "s")  # short: macOS bounds a socket's path at 104 bytes
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    @property
    def preexec(self) -> Callable[[], None]:
        path = self.path

        def send_slave() -> None:  # runs in the forked child, its slave on 0, 1 and 2
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                    s.connect(path)  # (send_fds ignores its address before Python 3.13)
                    socket.send_fds(s, [b"s"], [0])
            except OSError:
                pass  # the agent still runs; only its last output is not guarded

        return send_slave

    def received(self) -> int:
        """The slave descriptor the child sent (-1 if none came), not inherited by later children."""
        fd = -1
        try:
            self.sock.setblocking(False)
            _, fds, _, _ = socket.recv_fds(self.sock, 16, 1)
            if fds:
                fd = fds[0]
                os.set_inheritable(fd, False)
        except OSError:
            pass
        finally:
            self.close()
        return fd

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)
