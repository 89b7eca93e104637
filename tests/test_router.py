"""Routing: keyword rules on whole words, first rule wins, a default, and fallback past missing agents."""
import pytest

from orchestra.config import SHIPPED_CONFIG, load_config
from orchestra.router import route

CFG = load_config(str(SHIPPED_CONFIG))


@pytest.mark.parametrize("task, agent, rule, word", [
    ("Create a React navbar", "cursor", "ui", "react"),
    ("Add a User model to FastAPI with CRUD endpoints", "droid", "backend", "fastapi"),
    ("Add a REST API for users", "droid", "backend", "api"),
    ("commit the changes", "aider", "git", "commit"),
    ("Build a React component calling the API", "cursor", "ui", "react"),  # first rule wins
    ("Write a poem", "droid", None, None),
])
def test_the_first_rule_with_a_whole_word_wins(task, agent, rule, word):
    r = route(task, CFG)
    assert (r.agent, r.rule, r.word) == (agent, rule, word)


@pytest.mark.parametrize("task", ["rapid prototyping", "capitalize names", "reactive streams", "debranching",
                                  "apis", "submerge"])
def test_words_inside_other_words_do_not_count(task):
    assert route(task, CFG).rule is None


def test_a_routed_agent_that_is_not_installed_falls_back_to_the_next_rule():
    r = route("React component for the API", CFG, installed=lambda agent: agent != "cursor")
    assert (r.agent, r.rule, r.word, r.skipped) == ("droid", "backend", "api", ["cursor"])


def test_falls_back_to_the_default_when_no_installed_agent_matches():
    r = route("a tailwind frontend", CFG, installed=lambda agent: agent != "cursor")
    assert (r.agent, r.rule, r.skipped) == ("droid", None, ["cursor"])
