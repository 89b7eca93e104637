"""Budgets: how much one agent may spend (cost, tokens, time), and the meter that ends it when it crosses one.

    Budget      the limits: max_cost_usd, max_tokens (input + output), max_time_s; from the config's
                top-level `budget:`, a profile's own `budget:`, then --max-* or the MCP call, each over the last
    enforceable an OrchestraError, before anything starts, for a limit the agent's output gives no way to follow
    Meter       what an agent has spent so far, read from its parser's running result, and the first limit
                it has crossed; session.py asks it when the parser's figures change and when time passes
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Optional

from .errors import OrchestraError

LIMITS = ("max_cost_usd", "max_tokens", "max_time_s")
OVER_BUDGET = "over_budget"  # the agent's status once a limit ended it (summary.STATUSES)


@dataclass
class Budget:
    max_cost_usd: Optional[float] = None
    max_tokens: Optional[int] = None
    max_time_s: Optional[float] = None

    def __bool__(self) -> bool:
        return any(getattr(self, name) is not None for name in LIMITS)

    def over(self, other: Optional["Budget"]) -> "Budget":
        """These limits with other's wherever other sets one (a profile's over the config's, an option's over both)."""
        if other is None:
            return Budget(**asdict(self))
        return Budget(**{f.name: getattr(other, f.name) if getattr(other, f.name) is not None else getattr(self, f.name)
                         for f in fields(self)})

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def remaining(self, spent: list[dict]) -> "Budget":
        """What is left of these limits after earlier rounds of the same agent (their summaries: cost_usd,
        tokens, duration_s), for the next round's meter: one budget across an agent's rounds."""
        cost = sum(s.get("cost_usd") or 0.0 for s in spent)
        tokens = sum((s.get("tokens") or {}).get("input") or 0 for s in spent) + \
            sum((s.get("tokens") or {}).get("output") or 0 for s in spent)
        took = sum(s.get("duration_s") or 0.0 for s in spent)

        def left(limit_, used):  # a limit used up leaves the least there is: the next round's first figure crosses it
            return None if limit_ is None else max(limit_ - used, 1e-9 if isinstance(limit_, float) else 1)
        return Budget(left(self.max_cost_usd, cost), left(self.max_tokens, tokens), left(self.max_time_s, took))

    def argv(self) -> list[str]:
        """The command-line options that give these limits (a run started in the background)."""
        out = []
        for name, option in zip(LIMITS, ("--max-cost", "--max-tokens", "--max-time")):
            value = getattr(self, name)
            if value is not None:
                out += [option, repr(value) if isinstance(value, float) else str(value)]
        return out


def limit(value: Any, name: str) -> Optional[float]:
    """One limit, checked: a positive number (max_tokens a whole one), or None. Raises ValueError saying why."""
    if value is None:
        return None
    whole = name == "max_tokens"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf") \
            or (whole and value != int(value)):
        raise ValueError(f"expected a positive {'whole number' if whole else 'number'}, got {value!r}")
    return int(value) if whole else float(value)


def from_mapping(data: Any, fail: Callable[[str, str], Exception], where: str) -> Budget:
    """A config's `budget:` mapping (top level or a profile's); fail(where, message) makes the error, where
    is `where` with `{}` replaced by nothing or by `.<limit>`."""
    if data is None:
        return Budget()
    if not isinstance(data, dict):
        raise fail(where.format(""), f"expected a mapping of {', '.join(LIMITS)}")
    for key in data:
        if key not in LIMITS:
            raise fail(where.format(f".{key}"), f"unknown limit (known: {', '.join(LIMITS)})")
    out = {}
    for key in LIMITS:
        try:
            out[key] = limit(data.get(key), key)
        except ValueError as exc:
            raise fail(where.format(f".{key}"), str(exc)) from None
    return Budget(**out)


def enforceable(budget: Budget, profile: Any, config: Any) -> None:
    """Refuse, before anything starts, a limit the agent's output gives orchestra no way to follow: never a
    limit silently not enforced. What its parser reads (reports_cost, reports_tokens) and the config's
    prices (tokens times prices make a cost) decide."""
    from .parsers import PARSERS  # (late: the parsers import the config, which imports this module)

    parser = PARSERS[profile.parser]
    cost, tokens, priced = parser.reports_cost, parser.reports_tokens, profile.name in config.prices
    agent = f"agent '{profile.name}' reports"
    if budget.max_cost_usd is not None and not cost and not (tokens and priced):
        if tokens:
            raise OrchestraError(f"{agent} no cost, only tokens, and {config.path} has no price for it: a cost limit "
                                 f"(max_cost_usd) could not be enforced. Add prices: {profile.name}: "
                                 "{input_per_mtok: N, output_per_mtok: N} to the config, or give a token limit "
                                 "(--max-tokens, max_tokens) instead")
        raise OrchestraError(f"{agent} neither cost nor tokens (its parser '{parser.name}' reads none from its "
                             "output): a cost limit (max_cost_usd) could not be enforced; a time limit "
                             "(--max-time, max_time_s) can")
    if budget.max_tokens is not None and not tokens:
        raise OrchestraError(f"{agent} no tokens (its parser '{parser.name}' reads none from its output): a token "
                             "limit (max_tokens) could not be enforced; a time limit (--max-time, max_time_s) can")


class Meter:
    """What one agent has spent, against its budget. cost(parsed) -> (usd or None, source): summary.cost_of,
    for its agent and config (reported where it reports one, else tokens times prices)."""

    def __init__(self, budget: Budget, cost: Callable[[Any], tuple[Optional[float], str]]):
        self.budget = budget
        self.cost = cost
        self.seen: tuple = ()  # the parser's figures last judged: a read that changes none costs a comparison
        self.spent_usd: Optional[float] = None
        self.spent_tokens: Optional[int] = None

    def crossed(self, parsed: Any) -> Optional[tuple[str, str]]:
        """(the limit, what was spent) when the parser's figures cross one, else None. Cheap when they did not change."""
        figures = (parsed.cost_usd, parsed.tokens_in, parsed.tokens_out)
        if figures == self.seen:
            return None
        self.seen = figures
        b = self.budget
        if b.max_cost_usd is not None:
            self.spent_usd, source = self.cost(parsed)
            if self.spent_usd is not None and self.spent_usd > b.max_cost_usd:
                return (f"max_cost_usd {b.max_cost_usd:g}", f"spent ${self.spent_usd:.6g} ({source}), "
                        f"over the limit of ${b.max_cost_usd:g}")
        tokens = [t for t in (parsed.tokens_in, parsed.tokens_out) if t is not None]
        self.spent_tokens = sum(tokens) if tokens else None
        if b.max_tokens is not None and self.spent_tokens is not None and self.spent_tokens > b.max_tokens:
            return (f"max_tokens {b.max_tokens}", f"spent {self.spent_tokens} tokens ({parsed.tokens_in or 0} in, "
                    f"{parsed.tokens_out or 0} out), over the limit of {b.max_tokens}")
        return None

    def time_up(self, elapsed: float) -> tuple[str, str]:
        return f"max_time_s {self.budget.max_time_s:g}", f"ran {elapsed:.1f}s, over the limit of {self.budget.max_time_s:g}s"

    def state(self, parsed: Any, elapsed: float) -> dict:
        """Spent against each limit, for the live record, the final summary and every view of them."""
        cost, _ = self.cost(parsed)
        tokens = [t for t in (parsed.tokens_in, parsed.tokens_out) if t is not None]
        out = self.budget.to_dict()
        if self.budget.max_cost_usd is not None:
            out["spent_usd"] = cost
        if self.budget.max_tokens is not None:
            out["spent_tokens"] = sum(tokens) if tokens else None
        if self.budget.max_time_s is not None:
            out["spent_s"] = round(elapsed, 1)
        return out


def describe(state: Optional[dict]) -> str:
    """`$0.0123 of $0.05, 1200 of 5000 tokens, 12s of 60s`: a budget's state in words ("" without one)."""
    if not isinstance(state, dict):
        return ""
    parts = []
    if state.get("max_cost_usd") is not None:
        spent = state.get("spent_usd")
        parts.append(f"{'$%.4f' % spent if isinstance(spent, (int, float)) else '$?'} of ${state['max_cost_usd']:g}")
    if state.get("max_tokens") is not None:
        spent = state.get("spent_tokens")
        parts.append(f"{spent if isinstance(spent, int) else '?'} of {state['max_tokens']} tokens")
    if state.get("max_time_s") is not None:
        spent = state.get("spent_s")
        parts.append(f"{'%.0f' % spent if isinstance(spent, (int, float)) else '?'}s of {state['max_time_s']:g}s")
    return ", ".join(parts)
