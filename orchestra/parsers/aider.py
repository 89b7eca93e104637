"""Aider's plain text output (`--no-pretty`)."""
from __future__ import annotations

import re

from .base import Parser


class AiderParser(Parser):
    name = "aider"
    reports_cost = True
    reports_tokens = True
    names_files = True  # "Applied edit to X" for each edit it applies
    APPLIED = re.compile(r"^Applied edit to (.+?)\s*$", re.M)
    COMMIT = re.compile(r"^Commit ([0-9a-f]{7,40}) (.*)$", re.M)
    TOKENS = re.compile(r"^Tokens: ([\d.,]+)(k?) sent(?:, [\d.,]+k? cache \w+)*, ([\d.,]+)(k?) received\.(?: Cost: \$([\d.]+) message, \$([\d.]+) session\.)?", re.M)
    CONNECTION = re.compile(r"APIConnectionError|Exception - Connection\b")
    ERROR = re.compile(r"^((?:litellm\.\w+|\w+Error)\b.*)$", re.M)

    def feed(self, lines: str) -> None:
        p = self.parsed
        p.add_reply(lines)
        for m in self.APPLIED.finditer(lines):
            p.add_file(m.group(1))
        for m in self.TOKENS.finditer(lines):
            p.tokens_in = (p.tokens_in or 0) + _count(m.group(1), m.group(2))
            p.tokens_out = (p.tokens_out or 0) + _count(m.group(3), m.group(4))
            if m.group(6):
                p.cost_usd = float(m.group(6))  # the session total
        for m in self.ERROR.finditer(lines):
            p.add_error(m.group(1))
            p.is_error = True
            # litellm names a refused key by its class; a request that got no answer, "Connection error."
            self.api_failed(m.group(1), m.group(1), key_refused=m.group(1).startswith("litellm.AuthenticationError"),
                            unreachable=bool(self.CONNECTION.search(m.group(1))))


def _count(number: str, k: str) -> int:
    value = float(number.replace(",", ""))
    return int(round(value * 1000)) if k else int(value)
