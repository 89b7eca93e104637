"""What a person is shown of an agent's transcript: its raw bytes, or its parser's rendering.

The rendering of a recording is made as the live window's was: the same Stream and parser, fed the
recorded output, drawing each complete line as it is parsed (parsers/render.py).
"""
from __future__ import annotations

from typing import Optional

from .parsers import PARSERS, make_parser
from .parsers import render as draw
from .stream import Stream

RAW, RENDERED = "raw", "rendered"


class Renderer:
    """An agent's output bytes in, the drawing of its complete lines out."""

    def __init__(self, parser: str):
        self.stream = Stream(make_parser(parser).rendering())

    def feed(self, data: bytes, final: bool = False) -> str:
        self.stream.feed(data, final)
        return self.stream.parser.take_rendered()

    @staticmethod
    def sent(text: str) -> str:
        """What orchestra typed to the agent, as its rendered window shows it."""
        return draw.sent(text) if text.strip() else ""


def cast_view(header: dict, config=None) -> tuple[Optional[str], str]:
    """(parser, view) of a recording: from its header (orchestra writes both), else from the profile its
    title names ("orchestra: droid") in config; (None, raw) when neither tells."""
    own = header.get("orchestra")
    if isinstance(own, dict) and own.get("parser") in PARSERS:
        parser = own["parser"]
        return parser, RENDERED if own.get("view") == RENDERED and PARSERS[parser].render else RAW
    title = header.get("title")
    name = title[len("orchestra: "):] if isinstance(title, str) and title.startswith("orchestra: ") else None
    profile = config.agents.get(name) if config is not None and name else None
    if profile is None:
        return None, RAW
    return profile.parser, profile.view if PARSERS[profile.parser].render else RAW


def can_render(parser: Optional[str]) -> bool:
    return parser in PARSERS and PARSERS[parser].render is not None
