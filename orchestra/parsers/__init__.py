"""Summary parsers, one per agent; `PARSERS` maps a profile's `parser:` name to its class."""
from __future__ import annotations

from .base import Parsed, Parser
from .aider import AiderParser
from .claude import ClaudeParser, ClaudeScreenParser
from .codex import CodexParser
from .cursor import CursorParser
from .droid import DroidParser
from .gemini import GeminiParser
from .generic import GenericParser
from .opencode import OpenCodeParser

PARSERS: dict[str, type] = {cls.name: cls for cls in (
    GenericParser, ClaudeParser, ClaudeScreenParser, DroidParser, AiderParser, CursorParser, CodexParser,
    GeminiParser, OpenCodeParser)}


def make_parser(name: str, profile=None) -> Parser:
    return PARSERS[name](profile)


__all__ = ["PARSERS", "Parsed", "Parser", "make_parser"]
