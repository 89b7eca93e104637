"""A parser configured from the profile's `parse:` regexes; the seed's patterns by default."""
from __future__ import annotations

import re

from .base import Parser

# Literal words one of which a line must contain for the pattern to match: a cheap
# substring test skips the regex for the many blocks that cannot match.
GUARDS = {
    "files": ("odified:", "reated:", "rote:", "ew file:"),
    "errors": ("ERROR", "Error", "FATAL"),
    "cost": ("Cost:",),
    "tokens_in": ("Tokens:",),
    "tokens_out": ("Tokens:",),
}

DEFAULTS = {
    "files": re.compile(r"^\s*(?:[Mm]odified|[Cc]reated|[Ww]rote|[Nn]ew file):\s*(\S.*?)\s*$", re.M),
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
        self.guards = {key: () if key in custom else GUARDS[key] for key in DEFAULTS}

    def matches(self, key: str, lines: str):
        guard = self.guards[key]
        if guard:
            for word in guard:
                if word in lines:
                    break
            else:
                return ()
        return self.patterns[key].finditer(lines)

    def feed(self, lines: str) -> None:
        p = self.parsed
        p.add_reply(lines)
        for m in self.matches("files", lines):
            p.add_file(m.group(1))
        for m in self.matches("errors", lines):
            p.add_error(m.group(1) if m.groups() else m.group(0))
        for m in self.matches("cost", lines):
            p.cost_usd = float(m.group(1))
        for key in ("tokens_in", "tokens_out"):
            for m in self.matches(key, lines):
                setattr(p, key, int(m.group(1).replace(",", "")))
