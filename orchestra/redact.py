"""Keep secrets out of everything orchestra writes: transcripts, run.json, tmux, --json.

A key reaches a terminal whole, or cut apart by what does not change what a person
reads: escape sequences (`sk-\\x1b[1mabc`), a TUI's hard wrap (a line break and the
next line's indentation), and a multi-line key's own line breaks, which the pty writes
as CR LF. An agent that speaks JSON writes them as escapes (`\\n`, `\\r\\n`, or `\\\\r\\\\n`
when the JSON is itself in a JSON string), and may write the `/` of a base64 key as `\\/`. All
of these are masked. Encodings of a key (base64, a hash...) are not.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable, Mapping, Optional

MASK = b"***"
SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET)$")
MIN_SECRET_LEN = 6  # shorter values ("1", "true") would mask ordinary output

# What may come between two characters of a key on a terminal (see the module's docstring); a
# space too, as keys have none (but a PEM key's header) and a hard wrap may indent with them;
# and backslashes, as keys have none either: what JSON's escapes (`\\n`, `\\/`) add.
_GAP = (r"(?:\x1b\[[0-?]*[ -/]*[@-~]|\x1b[\]P^_][^\x07\x1b\n]{0,256}(?:\x07|\x1b\\)?"
        r"|\x1b[()*+][0-9A-Za-z]|\x1b[78=>]|\r|\n[ \t]*| |\\+)")
_PART = r"\x1b(?:\[[0-?]*[ -/]*|[\]P^_][^\x07\x1b\n]{0,256}\x1b?|[()*+])?"  # a gap the next read may finish
PROBE = 64  # characters: a PEM key's line
# A read that ends in a key's first characters and a gap is held back when they are at least this
# many (one would hold back every line that ends in a letter a key has, until the next read).
HOLD_GAPPED = 4


def secrets_from_env(env: Mapping[str, str], names: Iterable[Optional[str]] = ()) -> list[str]:
    """Values of the named variables and of every *_KEY, *_TOKEN, *_SECRET variable."""
    wanted = {n for n in names if n}
    values = {v for k, v in env.items() if (k in wanted or SECRET_NAME.search(k)) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def _cores(secret: str) -> list[str]:
    """The key's characters apart from what may be a gap: its spaces (a PEM key's header has some) and its
    own line breaks, which leave nothing as the pty writes them (CR LF, cleaned) or, JSON-escaped, once a
    skeleton has no backslashes: `\\n` leaves n, `\\r\\n` and `\\\\r\\\\n` leave rn."""
    lines = secret.replace("\r", "").split("\n")
    return [skeleton(sep.join(lines)) for sep in (("", "n", "rn") if len(lines) > 1 else ("",))]


def _probe(secret: str) -> str:
    """A piece of every core of the key, looked for before them: a substring test costs as much as its
    needle is long (Python prepares a long one at each test), and a PEM key has three cores of 2 KB."""
    return skeleton(max(secret.replace("\r", "").split("\n"), key=len))[:PROBE]


def _gapped(core: str) -> str:
    """A regex for the key with any gaps between its characters."""
    return (_GAP + "*").join(re.escape(c) for c in core)


@lru_cache(maxsize=64)
def _gapped_re(core: str, in_bytes: bool) -> re.Pattern:
    """Compiled when a key is first seen, not before: a 2 KB key's regex takes a second to compile
    (a gap is possible between any two characters), and a key has up to three cores."""
    pattern = _gapped(core)
    return re.compile(pattern.encode() if in_bytes else pattern)


@lru_cache(maxsize=64)
def _gapped_prefix_at_end(prefix: str) -> re.Pattern:
    return re.compile((_gapped(prefix) + "(?:%s|%s)*\\Z" % (_GAP, _PART)).encode())


def skeleton(text: str, backslashes: bool = True) -> str:
    """Cleaned text as far as a key is concerned: no line breaks, no spaces (keys have neither, and
    a hard wrap leaves a line break and the next line's indentation in the middle of one), no
    backslashes (keys have none: JSON's `\\/` leaves `/`, and `\\n` n, a variant of a key's core).
    backslashes=False keeps them: JSON's escapes cut no key without a line break or a `/`."""
    if backslashes and "\\" in text:  # one more pass, for JSON; the variants cost a substring test each
        text = text.replace("\\", "")
    return text.replace("\n", "").replace(" ", "")


class Redactor:
    """Masks secrets in a byte stream, even when one is split across two reads or cut apart by gaps.

    A trailing piece that could be the start of a secret is held back until the
    next read shows whether it is one; flush() releases it at the end.

    Looking for a key cut apart by gaps with a regex costs about 70 us per 4 KB read; so it
    is looked for in the read's cleaned text (escape sequences gone, which the stream has
    made already), without its line breaks, spaces and backslashes, where it is whole: one
    substring test per core of a key (see _cores). Only when one is there does the regex find
    where it is in the bytes.
    """

    def __init__(self, secrets: Iterable[str] = ()):
        secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.secrets = [s.encode() for s in secrets]
        self.cores = [c for s in secrets for c in _cores(s) if c]
        self._plain_cores = [c for c in (_cores(s)[0] for s in secrets) if c]  # no JSON escapes in sight
        self._raw_cores = [c.encode() for c in self._plain_cores]
        self._probed = [(_probe(s), _cores(s)) for s in secrets if _cores(s)[0]]
        self._escapable = any(c in s for s in secrets for c in "\n/\\")  # by JSON's escapes
        self._keep = max((len(c) for c in self.cores), default=1) - 1  # of the skeleton, for a key across reads
        self._window = 2 * max((len(c) for c in self._raw_cores), default=0) + 256
        self.held = b""
        self._shown = ""  # the end of the skeleton of what came before
        self._unescaped = 0  # characters of the skeleton since the last read with a backslash (see feed)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def feed(self, data: bytes, clean: str) -> bytes:
        """Mask a read. clean: the same read as the stream cleaned it (Stream.clean)."""
        if not self.secrets:
            return data
        if self.held:
            data, self.held = self.held + data, b""
        # a core with JSON's line breaks (`n`, `rn`) is looked for only where JSON's escapes are: in
        # this read, or close enough before it for a key that ends in it
        escaped = "\\" in clean
        near_json = escaped or self._unescaped < self._keep
        cores = self.cores if near_json else self._plain_cores
        skel = skeleton(clean, self._escapable)
        self._unescaped = 0 if escaped else min(self._unescaped + len(skel), self._keep)
        shown = self._shown + skel
        found = [core for probe, each in self._probed if probe in shown
                 for core in (each if near_json else each[:1]) if core in shown]
        if found:
            for core in found:
                data = _gapped_re(core, True).sub(MASK, data)
            # what follows the last key may begin another, which the next read finishes
            shown = shown[max(shown.rfind(core) + len(core) for core in found):]
        self._shown = shown[-self._keep:] if self._keep else ""
        keep = self._partial_suffix(data, shown, cores)
        if keep:
            self.held = data[len(data) - keep:]
            return data[: len(data) - keep]
        return data

    def flush(self) -> bytes:
        out, self.held, self._shown, self._unescaped = self.held, b"", "", 0
        return out

    def text(self, text: str, more: bool = False) -> str:
        """Mask a whole string (typed input, argv, reports). more: text is the start of a line still
        coming, whose end may be a key's first characters (at least HOLD_GAPPED): masked too."""
        if not self.secrets or not text:
            return text
        for secret in self.secrets:
            text = text.replace(secret.decode(), MASK.decode())
        shown = skeleton(text.replace("\r", ""))  # (a stream's cleaned text has no CR; a string may)
        found = [core for core in self.cores if core in shown]
        for core in found:
            text = _gapped_re(core, False).sub(MASK.decode(), text)
        if more:
            if found:
                shown = skeleton(text.replace("\r", ""))
            data = text.encode()
            begun = self._gapped_start(data, shown, self.cores)
            if begun:
                text = data[:len(data) - begun].decode() + MASK.decode()
        return text

    def data(self, value: Any) -> Any:
        """Every string in a JSON-like value masked (before it is serialised: a multi-line key
        is no longer whole in JSON text, where its line breaks are written as \\n)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        return value

    def _partial_suffix(self, data: bytes, shown: str, cores: list[str]) -> int:
        """How many bytes at the end of data could begin a secret that the next read completes."""
        best = 0
        for core in self._raw_cores:  # the key's first characters, unbroken, at the very end
            i = data.find(core[:1], max(len(data) - len(core) + 1, 0))
            while i != -1:
                if core.startswith(data[i:]):
                    best = max(best, len(data) - i)
                    break
                i = data.find(core[:1], i + 1)
        return max(best, self._gapped_start(data, shown, cores))

    def _gapped_start(self, data: bytes, shown: str, cores: list[str]) -> int:
        """How many bytes at the end of data are a secret's first HOLD_GAPPED characters or more, cut
        by gaps (a colour change, a wrap) or not: found in the skeleton (shown), then in the bytes."""
        best = 0
        for core in cores:
            i = shown.find(core[:1], max(len(shown) - len(core) + 1, 0))
            while i != -1 and len(shown) - i >= HOLD_GAPPED:
                if core.startswith(shown[i:]):
                    tail = data[-self._window:]
                    found = _gapped_prefix_at_end(shown[i:]).search(tail)
                    if found is not None:
                        best = max(best, len(tail) - found.start())
                    break
                i = shown.find(core[:1], i + 1)
        return best
