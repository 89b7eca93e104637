"""Pick the secondary for a task from the config's routing rules: whole words, case-insensitive, first rule wins."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from .config import Config


@dataclass
class Route:
    agent: str
    rule: Optional[str]  # None: the default
    word: Optional[str]
    skipped: list[str]  # agents a rule chose but that are not installed

    def to_dict(self) -> dict:
        return {"agent": self.agent, "rule": self.rule or "default", "word": self.word, "skipped": self.skipped}

    def warnings(self, config: Config) -> list[str]:
        """One line per agent a rule chose but that is not installed, naming its binary."""
        lines = []
        for name in self.skipped:
            p = config.agents[name]
            lines.append(f"⚠️  {name} is not installed ('{p.binary or p.command[0]}' not found): falling back")
        return lines

    def describe(self) -> str:
        if self.rule is None:
            return "default"
        return f"rule: {self.rule}, word: {self.word}"


def route(task: str, config: Config, installed: Callable[[str], bool] = lambda agent: True) -> Route:
    """The first rule with a word in the task whose agent is installed; else the default."""
    skipped = []
    for rule in config.rules:
        word = first_word(task, rule.words)
        if word is None:
            continue
        if installed(rule.agent):
            return Route(rule.agent, rule.name, word, skipped)
        skipped.append(rule.agent)
    return Route(config.default_agent, None, None, skipped)


def first_word(task: str, words: list[str]) -> Optional[str]:
    """The first of words that appears in task as a whole word ('api' is not in 'rapid')."""
    for word in words:
        if re.search(r"\b" + re.escape(word) + r"\b", task, re.IGNORECASE):
            return word
    return None
