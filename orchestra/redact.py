"""Keep secrets out of everything orchestra writes: transcripts, run.json, tmux, --json."""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional

MASK = b"***"
SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET)$")
MIN_SECRET_LEN = 6  # shorter values ("1", "true") would mask ordinary output


def secrets_from_env(env: Mapping[str, str], names: Iterable[Optional[str]] = ()) -> list[str]:
    """Values of the named variables and of every *_KEY, *_TOKEN, *_SECRET variable."""
    wanted = {n for n in names if n}
    values = {v for k, v in env.items() if (k in wanted or SECRET_NAME.search(k)) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


class Redactor:
    """Masks secrets in a byte stream, even when one is split across two reads.

    A trailing piece that could be the start of a secret is held back until the
    next read shows whether it is one; flush() releases it at the end.
    """

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = [s.encode() for s in secrets if s]
        self.held = b""

    def feed(self, data: bytes) -> bytes:
        if not self.secrets:
            return data
        data = self.held + data
        for secret in self.secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        keep = self._partial_suffix(data)
        self.held = data[len(data) - keep:] if keep else b""
        return data[: len(data) - keep] if keep else data

    def flush(self) -> bytes:
        out, self.held = self.held, b""
        return out

    def text(self, text: str) -> str:
        """Mask a whole string (typed input, argv, reports)."""
        for secret in self.secrets:
            text = text.replace(secret.decode(), MASK.decode())
        return text

    def _partial_suffix(self, data: bytes) -> int:
        best = 0
        for secret in self.secrets:
            start = max(len(data) - len(secret) + 1, 0)
            i = data.find(secret[:1], start)
            while i != -1:
                if secret.startswith(data[i:]):
                    best = max(best, len(data) - i)
                    break
                i = data.find(secret[:1], i + 1)
        return best

