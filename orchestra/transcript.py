"""asciicast v2 transcripts: a writer that owns its file, and a reader.

Events are written whole (one os.writev for one or more of them), so a run that is killed leaves a
valid file up to its last event written. A writer may hold events for a moment (`hold`) and write them
together: a TUI's 26 frames a second cost one write per few frames instead of one each.
"""
from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Iterator, Optional, Union

from .errors import OrchestraError

# A JSON string of ASCII text is the text itself with a few bytes escaped. Finding which
# of those bytes a chunk holds (one bytes.translate) and replacing each kind of them is faster
# than json.dumps while they are few: 4.0 against 6.6 us for 4 KB of 80-column lines, as fast
# at one byte in 12 to escape (measured here). Escape-dense output goes to json.dumps.
_JSON_PLAIN = bytes(c for c in range(32, 127) if c not in b'"\\')
_JSON_ESCAPES = {c: (bytes((c,)), json.dumps(chr(c)).encode()[1:-1]) for c in range(128) if c not in _JSON_PLAIN}


# Other text in C where pip built it (orchestra/_cclean.c): its non-ASCII characters as UTF-8, as asciinema
# writes them, instead of json.dumps' \uXXXX (the more non-ASCII text, the smaller), and faster than the Python
# below for every kind of output in bench/per_read.py.
try:
    from ._cclean import json_string as _native_json
except ImportError:  # pragma: no cover (no compiler at install time)
    _native_json = None


def json_string(text: str, plain: bool = False) -> bytes:
    """text as a JSON string literal in UTF-8: json.dumps(text), faster for ASCII with few escapes; with
    the C extension, what json.dumps(text, ensure_ascii=False) gives, encoded (a lone surrogate escaped).

    plain: text is known to hold printable ASCII, tabs, CRs and LFs only (Stream.plain)."""
    if _native_json is not None and not plain:
        return _native_json(text)
    if plain:
        data = text.encode("ascii")
        present = [c for c in b'\\"\t' if c in data]  # (the backslash first) a memchr each
        present += b"\r\n"
    else:
        if not text.isascii() or ("\x1b" in text and text.count("\x1b", 0, 512) * 16 > min(len(text), 512)):
            # (escape-dense: judged from the first 512 characters, cheaply) json.dumps' own step for a string
            return encode_basestring_ascii(text).encode()
        data = text.encode("ascii")
        special = data.translate(None, _JSON_PLAIN)
        if not special:
            return b'"' + data + b'"'
        if len(special) * 16 > len(data):
            return encode_basestring_ascii(text).encode()
        present = sorted(set(special), key=lambda c: c != 0x5C)  # the backslash first: the others add backslashes
    for byte in present:
        data = data.replace(*_JSON_ESCAPES[byte])
    return b'"' + data + b'"'


def event_bytes(text: str) -> bytes:
    """An event's text as the bytes it stands for: bytes that were not UTF-8 come back as they
    were (surrogateescape); a lone surrogate, which only a foreign recording holds, as "?"."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


HOLD_BYTES = 65536  # events held are written once they hold this much text...
HOLD_PARTS = 3 * 64  # ...or are this many (3 parts each: an os.writev takes at most IOV_MAX = 1024 parts)


class CastWriter:
    """Never raises on a failed write (a full disk, a removed folder): the agent it records goes on,
    and is ended as usual. The first error is kept in `error`, and nothing more is written."""

    def __init__(self, path: Union[str, Path], width: int, height: int, title: str = "", command: str = "",
                 orchestra: Optional[dict] = None, hold: float = 0.0):
        """hold: seconds an event may wait to be written with those after it (flush() by `due`); 0: at once."""
        self.path = Path(path)
        self.hold = hold
        self.due = float("inf")  # when the events held must be written (flush())
        self._held: list[bytes] = []
        self._held_size = 0
        self.error: Optional[str] = None
        self.fd: Optional[int] = None
        self.start = time.monotonic()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        except OSError as exc:
            self._failed(exc)
        header = {
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": int(time.time()),
            "env": {"TERM": "xterm-256color", "SHELL": os.environ.get("SHELL", "/bin/sh")},
        }
        if title:
            header["title"] = title
        if command:
            header["command"] = command
        if orchestra:  # whose it is and how its window shows it (players ignore keys they do not know)
            header["orchestra"] = orchestra
        self._write(json.dumps(header).encode() + b"\n")

    def __enter__(self) -> "CastWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def output(self, text: str, at: Optional[float] = None, plain: bool = False) -> None:
        """plain: text holds printable ASCII, tabs, CRs and LFs only (Stream.plain says so)."""
        if text:
            self._event("o", text, at, plain)

    def input(self, text: str, at: Optional[float] = None) -> None:
        if text:
            self._event("i", text, at)

    def _event(self, kind: str, text: str, at: Optional[float], plain: bool = False) -> None:
        t = (at if at is not None else time.monotonic()) - self.start
        # written with one writev: the event is whole in the file or not there, and the text is not copied again
        data = json_string(text, plain)
        self._held += (b'[%.6f, "%s", ' % (t, kind.encode()), data, b']\n')
        self._held_size += len(data)
        if self._held_size >= HOLD_BYTES or len(self._held) >= HOLD_PARTS or not self.hold:
            self.flush()
        elif self.due == float("inf"):
            self.due = time.monotonic() + self.hold

    def flush(self) -> None:
        """Write the events held."""
        if self._held:
            held, self._held, self._held_size, self.due = self._held, [], 0, float("inf")
            self._write(*held)

    def _write(self, *parts: bytes) -> None:
        if self.fd is not None:
            try:
                written = os.writev(self.fd, parts)
                if written < sum(map(len, parts)):  # the disk filled mid-event: stop at the cut line
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError as exc:
                self._failed(exc)
                self.close()

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            self.error = f"cannot write {self.path}: {exc.strerror or exc}"

    def close(self) -> None:
        self.flush()
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError as exc:  # a network file system may report a failed write only here
                self._failed(exc)
            self.fd = None


@dataclass
class Event:
    time: float
    kind: str
    data: str


@dataclass
class Cast:
    header: dict
    path: Path

    def events(self) -> Iterator[Event]:
        return read_events(self.path)


def read_cast(path: Union[str, Path]) -> Cast:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise OrchestraError(f"{path}: cannot read transcript: {exc}") from None
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("version") != 2:
        raise OrchestraError(f"{path}: not an asciicast v2 file (the first line must be a header with \"version\": 2)")
    return Cast(header, path)


def header_of(path: Union[str, Path]) -> dict:
    """A transcript's header, or {} when it has none that can be read (a damaged or foreign file)."""
    try:
        with open(path, "rb") as fh:
            header = json.loads(fh.readline(65536))
    except (OSError, ValueError):
        return {}
    return header if isinstance(header, dict) else {}


def read_events(path: Union[str, Path]) -> Iterator[Event]:
    """Events in order; a truncated last line (a killed run) is skipped, other damage is an error."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        fh.readline()
        for number, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            try:
                t, kind, data = json.loads(line)
                yield Event(float(t), str(kind), str(data))
            except (ValueError, TypeError):
                if not line.endswith("\n"):
                    return  # cut off mid-event
                raise OrchestraError(f"{path}: line {number} is not an asciicast event") from None
