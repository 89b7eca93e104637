"""What a primary is told about its secondaries: one bounded text, made from their records.

The same words reach a primary whichever way it delegated: `orchestra delegate` types or resumes
them into the primary's session (one line), `orchestra mcp` returns them to the calling model (one
section per line). Whatever the secondaries did (thousands of files, megabytes of errors), the text
stays within its limit; each part says how many there were before it is cut, and where the whole
record is.
"""
from __future__ import annotations

import re
from typing import Optional

from . import budget
from .summary import OTHERS_LABEL, describe_ended_by

TEXT_MAX = 4000  # characters, the whole text: a headless primary gets it as one argument, an
# interactive one typed at its prompt (a terminal in line mode keeps 4095 bytes of a line)
FILES_SHOWN = 20
ERRORS_SHOWN = 5
REASON_MAX = 500


def clip(text: str, limit: int, more: str = " ...") -> str:
    return text if len(text) <= limit else text[:max(0, limit - len(more))] + more


def one_line(text: str) -> str:
    """Text orchestra types for an agent: control characters (newlines too) would act, not be typed."""
    return re.sub(r"[\x00-\x08\x0a-\x1f\x7f]+", " ", text)


def money(value, source: Optional[str] = None) -> str:
    if not isinstance(value, (int, float)):
        return "unknown"
    return f"${value:.4f}" + (f" ({source})" if source and source != "unknown" else "")


def seconds(value) -> str:
    return f"{value:.1f}s" if isinstance(value, (int, float)) else "?"


def count(value) -> str:
    return str(value) if isinstance(value, int) else "unknown"


def merge_stopped_text(why: str) -> str:
    """A stopped --merge, said before anything else can be cut: nothing was merged from that branch on."""
    return clip(f"The merge stopped {why}", 600)


def checks_text(checks: list, limit: int, rounds: int = 0, what: str = "checks") -> str:
    """Acceptance checks in at most `limit` characters: the failed ones, each with the end of its
    output (where a failure is said), cut from the front."""
    checks = [c for c in checks if isinstance(c, dict)]
    if not checks:
        return ""
    after = f" after {rounds} fix round{'s' if rounds != 1 else ''}" if rounds else ""
    failed = [c for c in checks if c.get("exit_code") != 0]
    if not failed:
        return clip(f"{what} passed{after} ({len(checks)}): "
                    + "; ".join(clip(str(c.get("command")), 200) for c in checks), limit)
    head = f"{what} FAILED{after} ({len(failed)} of {len(checks)}): "
    share = (limit - len(head)) // len(failed) - 2
    parts = []
    for c in failed:
        how = ("timed out" if c.get("timed_out") else "could not start" if c.get("exit_code") is None
               else f"exited {c.get('exit_code')}")
        said = f"`{clip(str(c.get('command')), 200)}` {how}, its output ends: "
        tail = " ".join(str(c.get("output") or "").split()) or "(none)"
        room = max(20, share - len(said))
        parts.append(said + (tail if len(tail) <= room else "..." + tail[-(room - 3):]))
    return clip(head + "; ".join(parts), limit)


def merged_checks_text(checks: list) -> list[str]:
    """The merged checkout's checks, for the end of the text (a failure before anything that can be cut)."""
    text = checks_text(checks or [], 1200, what="checks on the merged checkout")
    return [text] if text else []


def agent_lines(a: dict, share: int, n: int, record: str, branch_state: Optional[str] = None) -> list[str]:
    """One secondary's part, most telling first (a cut keeps the status, what ended it, the counts)."""
    files = [str(f) for f in a.get("files_modified") or []]
    errors = [str(e) for e in a.get("errors") or []]
    n_files, n_errors = max(3, FILES_SHOWN // n), max(1, ERRORS_SHOWN // n)
    tokens = a.get("tokens") if isinstance(a.get("tokens"), dict) else {}
    reason = str(a.get("reason") or "")
    lines = [f"[{a.get('role') or 'secondary'}: {a.get('agent')}] status: {a.get('status')}"
             + (f" ({clip(reason, min(REASON_MAX, max(40, share // 4)))})" if reason else "")]
    checked = checks_text(a.get("checks") or [], max(120, share // 2), len(a.get("fix_rounds") or []))
    if checked:  # right after the status: whether the work passed is what a primary needs first
        lines.append(checked)
    if a.get("ended_by") is not None or "ended_by" in a:
        lines.append("ended by: " + describe_ended_by(a.get("ended_by"), line=False, limit=80))
    whole = f"; the whole list: {record}" if len(files) > n_files else ""
    lines.append(clip(f"files modified ({len(files)}{whole}): "
                      + (", ".join(clip(f, 200) for f in files[:n_files]) or "none")
                      + (" ..." if len(files) > n_files else ""), max(60, share // 3)))
    others = [str(f) for f in a.get("files_changed_by_others") or []]
    if others:  # git saw them change while it ran, and it did not name them (summary.attribute)
        whole = f"; the whole list: {record}" if len(others) > n_files else ""
        lines.append(clip(f"{OTHERS_LABEL} ({len(others)}{whole}): " + ", ".join(clip(f, 200) for f in others[:n_files])
                          + (" ..." if len(others) > n_files else ""), max(60, share // 4)))
    if a.get("files_note"):
        lines.append(f"note: {clip(str(a['files_note']), REASON_MAX)}")
    whole = f"; all of them: {record}" if len(errors) > n_errors else ""
    lines.append(clip(f"errors ({len(errors)}{whole}): " + ("; ".join(clip(e, 300) for e in errors[:n_errors]) or "none")
                      + (" ..." if len(errors) > n_errors else ""), max(40, share // 4)))
    lines.append(f"cost: {money(a.get('cost_usd'), a.get('cost_source'))}; tokens: {count(tokens.get('input'))} in, "
                 f"{count(tokens.get('output'))} out; duration: {seconds(a.get('duration_s'))}")
    if isinstance(a.get("budget"), dict):
        lines.append(f"budget: {budget.describe(a['budget'])}")
    if a.get("branch"):
        lines.append(f"branch: {a['branch']}" + (f" ({clip(branch_state, REASON_MAX)})" if branch_state else ""))
    reply = " ".join(str(a.get("reply") or "").split())
    if reply:
        lines.append(clip(f"its reply: {reply}", max(40, share // 4)))
    last = [str(line)[:200] for line in (a.get("last_lines") or [])[-5:]]
    if last and not reply:
        lines.append(clip("last lines: " + " | ".join(last), max(40, share // 4)))
    if a.get("transcript"):
        lines.append(f"transcript: {a['transcript']}")
    return lines


def secondaries_text(agents: list[dict], head: str, tail: list[str], record: str,
                     branch_states: Optional[dict[str, str]] = None, limit: int = TEXT_MAX,
                     sep: str = "\n") -> str:
    """The text a primary gets: head, one section per secondary (each at most its share of `limit`),
    a note when something was cut, then tail. With sep " " it is one line, to be typed."""
    branch_states = branch_states or {}
    n = max(1, len(agents))
    cut_note = f"(Parts cut short end in '...'; the whole summary: {record}.)"
    fixed = len(head) + len(cut_note) + sum(len(t) + len(sep) for t in tail) + 2 * len(sep)
    share = max(40, (limit - fixed) // n - len(sep))
    sections = []
    for a in agents:
        lines = agent_lines(a, share, n, record, branch_states.get(a.get("branch") or ""))
        sections.append(clip((" " if sep == " " else "\n").join(line.strip() for line in lines), share))
    cut = [cut_note] if any(s.endswith(" ...") or "; the whole list: " in s or "; all of them: " in s
                            for s in sections) else []
    text = sep.join([head, *sections, *cut, *tail])
    return one_line(text) if sep == " " else clip(text, limit)
