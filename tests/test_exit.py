"""The way out of a run: from the last agent's completion to orchestra's exit (issue 23), nothing lost on it.

The records are made as dataclasses.asdict made them; the process ends at once once its output is out and
its atexit handlers have run; orchestra's commits start no `git maintenance` of their own.
"""
from __future__ import annotations

import copy
import dataclasses

from orchestra.checks import CheckResult
from orchestra.summary import AgentSummary, RunSummary, as_dict
from orchestra.worktree import BranchReport


def full_agent() -> AgentSummary:
    """An agent's summary with every kind of field filled: nested dicts and lists, None, bools, floats."""
    return AgentSummary(
        agent="claude", role="secondary-1", status="completed", reason="", files_modified=["a.py", "b/c.py"],
        ended_by={"signal": "completion", "pattern": "^DONE", "line": "DONE", "decided_ms": 0.42},
        files_seen_by_git=["a.py", "b/c.py"], errors=["x"], cost_usd=0.12, cost_source="reported",
        tokens={"input": 10, "output": None}, duration_s=1.5, exit_code=0, answers=[{"q": "y/n", "a": "y"}],
        verified=True, checks=[CheckResult("pytest", 0, 1.0, "ok").to_dict()],
        fix_rounds=[{"round": 1, "checks": [{"command": "pytest", "exit_code": 1}], "verified": False}],
        budget={"limits": {"max_cost_usd": 1.0}, "spent": {"cost_usd": 0.12}}, node=None, branch="orchestra/x/claude",
        last_lines=["one", "two"], reply_transcript=None)


def test_as_dict_makes_what_asdict_makes():
    agent = full_agent()
    run = RunSummary(run_id="20261203-000000-abcdef", task="t", status="completed", secondaries=[agent.to_dict()],
                     merges=[BranchReport("claude", "orchestra/x/claude", "completed", files=["a.py"]).to_dict()],
                     base={"branch": "main", "commit": "0" * 40}, route={"agent": "claude", "rule": None})
    for record in (agent, run, BranchReport("a", "b", "failed", conflicts=["x"])):
        assert as_dict(record) == dataclasses.asdict(record)
        assert type(as_dict(record)) is dict


def test_as_dict_copies_what_it_is_given():
    """Changing the dict made (as the CLI and the records do) leaves the summary as it was, as asdict's copy did."""
    agent = full_agent()
    before = copy.deepcopy(agent)
    made = agent.to_dict()
    made["files_modified"].append("z.py")
    made["ended_by"]["line"] = "changed"
    made["fix_rounds"][0]["checks"][0]["exit_code"] = 0
    made["tokens"]["input"] = 0
    assert agent == before
