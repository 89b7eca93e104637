"""A parser configured from the profile's `parse:` regexes; the seed's patterns by default."""
from __future__ import annotations

import re

from .base import Parser

DEFAULTS = {
    "files": re.compile(r"^\s*(?:modified|created|wrote|new file):\s*(\S.*?)\s*$", re.M | re.I),
    "errors": re.compile(r"^\s*(?:ERROR|Error|FATAL)[:!]\s*(.*?)\s*$", re.M),
    "cost": re.compile(r"^\s*(?:💰\s*)?Cost:\s*\$\s*([0-9]+(?:\.[0-9]+)?)", re.M),
    "tokens_in": re.compile(r"^\s*Tokens:\s*([0-9,]+)\s+(?:sent|in)", re.M),
    "tokens_out": re.compile(r"^\s*Tokens:.*?([0-9,]+)\s+(?:received|out)", re.M),
}


class GenericParser(Parser):
    name = "generic"

    def __init__(self, profile=None):
        super().__init__(profile)
        custom = getattr(profile, "parse", None) or {}
        self.patterns = {key: custom.get(key, default) for key, default in DEFAULTS.items()}

    def feed(self, lines: str) -> None:
        p = self.parsed
        p.add_reply(lines)
        for m in self.patterns["files"].finditer(lines):
            p.add_file(m.group(1))
        for m in self.patterns["errors"].finditer(lines):
            p.add_error(m.group(1) if m.groups() else m.group(0))
        for m in self.patterns["cost"].finditer(lines):
            p.cost_usd = float(m.group(1))
        for key in ("tokens_in", "tokens_out"):
            for m in self.patterns[key].finditer(lines):
                setattr(p, key, int(m.group(1).replace(",", "")))
