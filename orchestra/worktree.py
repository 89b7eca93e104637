"""Git worktrees for secondaries that work at the same time: one worktree and one branch each.

    start      the repository's HEAD; each secondary gets `orchestra/<run-id>/<agent>` checked out
               in .orchestra/worktrees/<run-id>/<agent>, so no two agents write the same files
    collect    whatever a secondary left uncommitted is committed on its branch (nothing is lost)
    report     per branch: does it merge cleanly into the starting branch (git merge-tree, the
               working tree untouched)
    merge      only on request: the completed branches one by one, stopping at the first conflict, or
               where the user's checkout is busy with their own merge, rebase, staged changes...
    clean      `orchestra clean RUN_ID`: what the run left running, its worktrees (their work committed
               first), its branches that hold nothing unmerged, the tmux session
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from . import runfolder
from .errors import OrchestraError
from .procs import end_processes
from .summary import AgentSummary, GitSnapshot, as_dict, without_ignored

WORKTREES_DIR = Path(".orchestra") / "worktrees"
BRANCH_PREFIX = "orchestra"
# Used only when the repository has no identity of its own, so a commit never fails for want of one.
IDENTITY = ["-c", "user.name=Orchestra", "-c", "user.email=orchestra@localhost"]
# what a git command under way leaves in the git directory (as `git status` tells them), and how it ends
UNDER_WAY = (("MERGE_HEAD", "a merge"), ("rebase-merge", "a rebase"), ("rebase-apply", "a rebase"),
             ("CHERRY_PICK_HEAD", "a cherry-pick"), ("REVERT_HEAD", "a revert"), ("BISECT_LOG", "a bisect"))
FINISH = {"a merge": "finish or abort your merge", "a rebase": "finish or abort your rebase",
          "a cherry-pick": "finish or abort your cherry-pick", "a revert": "finish or abort your revert",
          "a bisect": "end your bisect (git bisect reset)"}


@dataclass
class Tree:
    """One secondary's worktree."""

    agent: str
    window: str
    branch: str
    path: Path  # the worktree's root
    workdir: Path  # where the agent runs: the same place inside the worktree as the run's workdir in the repo

    def to_dict(self) -> dict:
        return {"agent": self.agent, "window": self.window, "branch": self.branch, "path": str(self.path)}


@dataclass
class BranchReport:
    """What a secondary's branch holds and what became of it."""

    agent: str
    branch: str
    status: str  # the secondary's status
    commits: int = 0
    files: list[str] = field(default_factory=list)
    merges_cleanly: Optional[bool] = None  # into the starting branch alone; None: nothing to merge, or unknown
    conflicts: list[str] = field(default_factory=list)
    # merged after the completed branches before it (what --merge would do): the files that would conflict
    conflicts_with_earlier: list[str] = field(default_factory=list)
    merged: bool = False
    uncommitted: bool = False  # orchestra could not commit the work: it is only in the worktree
    note: str = ""

    def to_dict(self) -> dict:
        return as_dict(self)

    @classmethod
    def from_dict(cls, record: dict) -> "BranchReport":
        """A branch as a run.json's `merges` holds it (keys this version does not know are left out)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def describe(self, merge_stopped: Optional[str] = None) -> str:
        """Its state in words. Given the run's merge_stopped, a branch --merge left alone says it is not
        merged and why, before what it holds."""
        state = self._holds()
        if merge_stopped is None or self.merged or state == "no changes":
            return state
        if self.status != "completed":
            why = f"its agent's status is {self.status}"
        elif merge_stopped.startswith(f"at {self.branch}:"):
            why = "the merge stopped here"
        else:
            why = "the merge stopped before it"
        return f"not merged ({why}): {state}"

    def next_step(self, into: str) -> str:
        """What merges it by hand (`into`: the starting branch), or "" (merged, or nothing on it)."""
        if self.merged or not (self.commits or self.uncommitted):
            return ""
        if self.uncommitted:
            return f"commit the work left in its worktree, then git merge {self.branch} into {into}"
        step = f"git merge {self.branch}"
        conflicts = self.conflicts or self.conflicts_with_earlier
        if conflicts:
            step += f", resolve the conflicts in {', '.join(conflicts)}, git commit"
        if self.status != "completed":
            step = f"its agent's status is {self.status}: read its work first, then {step}"
        return step + f" (on {into})"

    def _holds(self) -> str:
        if self.merged:
            return "merged"
        if self.uncommitted:
            return f"work left uncommitted in the worktree ({self.note})"
        if not self.commits:
            return "no changes"
        if self.conflicts:
            return "conflicts in " + ", ".join(self.conflicts)
        if self.merges_cleanly and self.conflicts_with_earlier:
            return "merges cleanly alone, but conflicts with the branches before it in " + \
                ", ".join(self.conflicts_with_earlier)
        if self.merges_cleanly:
            return "merges cleanly"
        return self.note or "merge not checked"


class Repo:
    """The repository a run's workdir is in, as it was when the run started."""

    def __init__(self, workdir: Path, isolate: bool = False):
        self.workdir = Path(workdir).resolve()
        self.run_id = ""  # set once the run has its id
        # isolate: one agent in a worktree of its own (--isolate); else several secondaries, one each
        who, why, instead = (("--isolate needs", "the agent works in a worktree of its own", "leave out --isolate")
                             if isolate else
                             ("several secondaries need", "each works in a worktree of its own so they do not "
                              "overwrite each other's files", "delegate to one secondary"))
        top = git(self.workdir, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            raise OrchestraError(f"{who} a git repository: {why}, and {self.workdir} is not in one "
                                 f"(run `git init` and commit, or {instead})")
        self.root = Path(top.stdout.strip()).resolve()
        head = git(self.workdir, "rev-parse", "--verify", "-q", "HEAD")
        if head.returncode != 0:
            raise OrchestraError(f"{who} a commit to start from: the repository at {self.root} has none yet "
                                 f"(commit once, then {'run' if isolate else 'delegate'} again)")
        self.base_commit = head.stdout.strip()
        branch = git(self.workdir, "symbolic-ref", "--short", "-q", "HEAD")
        self.base_branch: Optional[str] = branch.stdout.strip() if branch.returncode == 0 else None
        self.sub = self.workdir.relative_to(self.root)
        self._tip: Optional[str] = None  # the commit the starting branch is at, as reports() last found it
        self._changes: dict[str, tuple[set, bool]] = {}  # branch -> (paths it changed, only added or modified)
        self._at_start: set[str] = set()  # branches save() left at the starting commit, as git's status saw them
        self.trees: list[Tree] = []
        self.warnings: list[str] = []  # for the user, said by the flow
        self.has_identity = bool(git(self.workdir, "config", "user.email").stdout.strip())
        version = re.search(r"(\d+)\.(\d+)", git(self.workdir, "version").stdout)
        # `git merge-tree --write-tree` (2.38+) checks a merge without a working tree; older gits merge for real
        self.can_rehearse = bool(version) and (int(version.group(1)), int(version.group(2))) >= (2, 38)

    def ready_to_merge(self) -> None:
        """--merge writes into the user's checkout: refuse, before any agent starts, where that could go wrong."""
        busy = self.busy()
        if busy:
            why, todo = busy
            raise OrchestraError(f"--merge: {why}; {todo} first, so orchestra's merge never mixes with yours")

    def busy(self) -> Optional[tuple[str, str]]:
        """Why orchestra must not merge into the checkout now, and what the user should do first; None
        if it may. Asked up front and again right before each merge: the user works on meanwhile."""
        for marker, what in UNDER_WAY:
            path = git(self.root, "rev-parse", "--git-path", marker).stdout.strip()
            if path and (self.root / path).exists():
                return f"{what} is in progress in {self.root}", FINISH[what]
        if git(self.root, "diff", "--cached", "--quiet").returncode != 0:
            return f"{self.root} has staged changes", "commit or stash them"
        now = git(self.root, "symbolic-ref", "--short", "-q", "HEAD").stdout.strip()
        if not now:
            return f"HEAD in {self.root} is detached", f"git switch {self.base_branch or 'a branch'}"
        if self.base_branch and now != self.base_branch:
            return (f"{self.root} is on {now} now, the run started on {self.base_branch}",
                    f"git switch {self.base_branch}")
        return None

    @property
    def base(self) -> str:
        """What branches merge into: the starting branch, or the starting commit if HEAD was detached."""
        return self.base_branch or self.base_commit

    def left_out(self) -> Optional[str]:
        """What to say of the changes in the run's workdir that the worktrees will not have, if any."""
        left = self.uncommitted()
        if not left:
            return None
        return (f"⚠️  uncommitted changes stay out of the worktrees (they start from HEAD): "
                f"{', '.join(left[:5])}{' ...' if len(left) > 5 else ''}")

    def uncommitted(self) -> list[str]:
        """Changes in the run's workdir that the worktrees (made from HEAD) will not have."""
        out = git(self.workdir, "status", "--porcelain", "-z", "--untracked-files=normal")
        return [entry[3:] for entry in out.stdout.split("\0") if entry[3:] and not entry[3:].startswith(".orchestra")]

    def add(self, secondaries: list[tuple[str, str]]) -> list[Tree]:
        """A worktree and branch for each (agent, window), all made before any agent starts (the agents
        would slow the checkouts)."""
        return self.make(self.plan(secondaries))

    def plan(self, secondaries: list[tuple[str, str]]) -> list[Tree]:
        """The worktree and branch each (agent, window) will get, none made yet."""
        trees: list[Tree] = []
        for agent, window in secondaries:
            safe = re.sub(r"[^A-Za-z0-9_-]+", "-", agent).strip("-") or "agent"  # a valid branch and folder name
            name, n = safe, 1
            while any(t.branch == f"{BRANCH_PREFIX}/{self.run_id}/{name}" for t in self.trees + trees):
                n += 1
                name = f"{safe}-{n}"
            path = self.workdir / WORKTREES_DIR / self.run_id / name
            trees.append(Tree(agent, window, f"{BRANCH_PREFIX}/{self.run_id}/{name}", path, path / self.sub))
        return trees

    def make(self, trees: list[Tree]) -> list[Tree]:
        """Check out the planned worktrees. One after another: concurrent `git worktree add`s race on
        .git/worktrees/ ("failed to read .git/worktrees/a/commondir", seen 2 in 30 runs under load)."""
        if trees:
            trees[0].path.parent.mkdir(parents=True, exist_ok=True)
        failed = []
        for tree in trees:
            proc = git(self.workdir, "worktree", "add", "-q", "-b", tree.branch, str(tree.path), self.base_commit)
            # a failing post-checkout hook (git-lfs's, without git-lfs) fails the command after the
            # worktree is checked out: the worktree is there, so go on and say so
            made = proc.returncode == 0 or ((tree.path / ".git").exists() and
                                            git(tree.path, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip() == tree.branch)
            if made:
                self.trees.append(tree)
                tree.workdir.mkdir(parents=True, exist_ok=True)
                if proc.returncode != 0:
                    self.warnings.append(f"⚠️  {tree.branch}: git worktree add reported {proc.stderr.strip()!r}; "
                                         f"the worktree was made, going on")
            else:
                failed.append(f"{tree.path} on branch {tree.branch}: {proc.stderr.strip()}")
        if failed:
            raise OrchestraError("git could not create the worktree " + "; ".join(failed))
        return trees

    def commit(self, tree: Tree, ignore: list[str], message: str,
               changed: Optional[list[str]] = None) -> tuple[list[str], Optional[str]]:
        """Commit whatever the agent left uncommitted anywhere in its worktree (but `ignore` globs) on its branch
        (changed: git's view of the whole worktree, if just taken). Returns the paths committed and what went
        wrong, if anything."""
        return commit_all(tree.path, self.base_commit, ignore, message, self._identity(), changed, listed=False)

    def report(self, tree: Tree, status: str, files: list[str], problem: Optional[str] = None) -> BranchReport:
        return self.reports([(tree, status, files, problem)])[0]

    def reports(self, saved: list[tuple[Tree, str, list[str], Optional[str]]]) -> list[BranchReport]:
        """Each branch's report, from what save() returned for it (its tree, its agent's status and files, what
        went wrong committing): its commits since the start and whether it merges cleanly into the starting
        branch. Two git calls for them all where the starting branch has not moved (the usual): every tip, the
        starting branch's and their parents (a branch at the start, or one commit on it, merges by fast-forward:
        no merge to ask git about), then what each such commit changed (for rehearse()); git is asked branch by
        branch as before for any other."""
        out = [BranchReport(tree.agent, tree.branch, status, files=files, note=problem or "", uncommitted=bool(problem))
               for tree, status, files, problem in saved]
        asked = [r for r in out if r.branch not in self._at_start]  # (the others hold nothing: no commit)
        tips = self._tips([r.branch for r in asked]) if self.can_rehearse and asked else {}
        one_commit: dict[str, str] = {}  # branch -> its one commit on the start
        for r in asked:
            tip, parents = tips.get(r.branch, (None, None))
            if self._tip == self.base_commit and tip == self.base_commit:
                continue  # nothing on it
            if self._tip == self.base_commit and parents == [self.base_commit]:
                r.commits, r.merges_cleanly = 1, True
                one_commit[r.branch] = tip
                continue
            count = git(self.root, "rev-list", "--count", f"{self.base_commit}..{r.branch}")
            r.commits = int(count.stdout.strip() or 0) if count.returncode == 0 else 0
            if r.commits:
                r.merges_cleanly, r.conflicts, r.note = self.check(r.branch, self.base)
        if one_commit:
            self._note_changes(one_commit)
        return out

    def _tips(self, branches: list[str]) -> dict[str, tuple[str, list[str]]]:
        """branch -> (its tip, the tip's parents), in one git call, which also tells where the starting
        branch is now (self._tip)."""
        refs = [f"refs/heads/{b}" for b in branches] + ([f"refs/heads/{self.base_branch}"] if self.base_branch else [])
        listed = git(self.root, "for-each-ref", "--format=%(refname) %(objectname) %(parent)", *refs)
        found = {}
        for line in listed.stdout.splitlines() if listed.returncode == 0 else []:
            ref, oid, *parents = line.split()
            found[ref[len("refs/heads/"):]] = (oid, parents)
        base = found.get(self.base_branch) if self.base_branch else (self.base_commit, None)
        self._tip = base[0] if base else ""
        return found

    def _note_changes(self, commits: dict[str, str]) -> None:
        """What each branch's one commit changed, path by path, and whether it only added and modified files
        (one git call for them all): what rehearse() needs to know the branches merge one after another
        without asking git to merge them."""
        by_commit = {c: b for b, c in commits.items()}
        listed = git(self.root, "diff-tree", "-r", "--no-renames", "--name-status", "-z", "--stdin",
                     stdin="".join(c + "\n" for c in commits.values()))
        parts = listed.stdout.split("\0") if listed.returncode == 0 else []
        branch, i = None, 0
        while i < len(parts):
            part = parts[i]
            if part in by_commit:  # the commit whose changes follow
                branch = by_commit[part]
                self._changes[branch] = (set(), True)
                i += 1
            elif branch is not None and part and i + 1 < len(parts):
                paths, simple = self._changes[branch]
                paths.add(parts[i + 1])
                self._changes[branch] = (paths, simple and part in ("A", "M"))
                i += 2
            else:
                i += 1

    def save(self, tree: Tree, summary: AgentSummary, ignore: list[str], title: str,
             at_start: bool = False) -> tuple[Tree, str, list[str], Optional[str]]:
        """Commit what the agent left in its worktree on its branch, so its work is kept whatever happens. The
        summary gets the branch, and the error if the commit failed. Returns what reports() takes. at_start:
        git's status for the summary (just taken) saw the branch checked out at the starting commit still (the
        agent committed nothing): if nothing is committed now either, reports() needs no git call for it. (Safe
        to call for several trees at once, each in a thread of its own.)"""
        summary.branch = tree.branch
        # at the worktree's top, git's view in the summary (just taken) is the whole worktree's
        changed = summary.files_seen_by_git if tree.workdir == tree.path else None
        committed, problem = self.commit(tree, ignore, f"orchestra: {summary.agent} ({summary.status}): {title[:72]}"
                                                       f"\n\nrun {self.run_id}", changed)
        if problem:
            summary.errors.append(problem)
        elif at_start and not committed:
            self._at_start.add(tree.branch)
        return tree, summary.status, summary.files_modified, problem

    def keep(self, tree: Tree, summary: AgentSummary, ignore: list[str], title: str) -> BranchReport:
        """save() and report() for one branch."""
        return self.reports([self.save(tree, summary, ignore, title)])[0]

    def settle(self, reports: list[BranchReport], merge: bool, hint: str) -> tuple[list[str], Optional[str]]:
        """Each branch's merge state (rehearsed), then with merge the completed branches merged; without,
        hint is said when there is work to merge. Returns what to say, and where a merge stopped."""
        base = self.base_branch or f"the starting commit {self.base_commit[:12]}"
        self.rehearse(reports)
        said = []
        for r in reports:
            icon = "🌿" if (r.merges_cleanly and not r.conflicts_with_earlier) or not r.commits else "⚠️ "
            state = r.describe()
            said.append(f"{icon} {r.branch}: {state}" + (f" into {base}" if state == "merges cleanly" else ""))
        if not merge:
            if any(r.commits and r.status == "completed" for r in reports):
                said.append(hint)
            return said, None
        merged, stopped = self.merge(reports)
        said += merged
        if stopped:
            said.append(f"⛔ merge stopped {stopped}")
        return said, stopped

    def rehearse(self, reports: list[BranchReport]) -> None:
        """Merge the completed branches one after another in git's object store only (merge-tree and
        commit-tree: no working tree, no ref moves), to tell which would conflict with those before it."""
        current = self.base
        if not self.can_rehearse or self.apart(reports):
            return
        for r in reports:
            if r.status != "completed" or not r.commits or not r.merges_cleanly:
                continue
            done = git(self.root, "merge-tree", "--write-tree", "--name-only", "--no-messages", current, r.branch)
            if done.returncode == 1:
                r.conflicts_with_earlier = [line for line in done.stdout.splitlines()[1:] if line]
                continue
            if done.returncode != 0:
                return
            tree = done.stdout.split("\n", 1)[0].strip()
            made = git(self.root, *self._identity(), "commit-tree", tree, "-p", current, "-p", r.branch,
                       "-m", "orchestra: rehearsal")
            if made.returncode != 0:
                return
            current = made.stdout.strip()

    def apart(self, reports: list[BranchReport]) -> bool:
        """Whether the branches to rehearse merge one after another as surely as each merges alone, with no
        merge asked of git: the starting branch has not moved, and each branch only added and modified files,
        none of them another branch's, nor a folder of another's file (a rename, a deletion, a file where
        another branch has a folder: git is asked, as before)."""
        rehearsed = [r for r in reports if r.status == "completed" and r.commits and r.merges_cleanly]
        if self._tip != self.base_commit or any(r.branch not in self._changes for r in rehearsed):
            return False
        owner: dict[str, str] = {}
        folders: dict[str, set] = {}
        for r in rehearsed:
            paths, simple = self._changes[r.branch]
            if not simple:
                return False
            for path in paths:
                if owner.setdefault(path, r.branch) != r.branch:
                    return False
                parts = path.split("/")
                for i in range(1, len(parts)):
                    folders.setdefault("/".join(parts[:i]), set()).add(r.branch)
        return not any(path in folders and folders[path] - {branch} for path, branch in owner.items())

    def _identity(self) -> list[str]:
        return [] if self.has_identity else IDENTITY

    def check(self, branch: str, into: str) -> tuple[Optional[bool], list[str], str]:
        """Would `branch` merge into `into` without conflict? Asked of git without touching any working tree."""
        if not self.can_rehearse:
            return None, [], "not checked: git 2.38 or newer checks a merge without doing it"
        done = git(self.root, "merge-tree", "--write-tree", "--name-only", "--no-messages", into, branch)
        if done.returncode == 0:
            return True, [], ""
        if done.returncode == 1:
            return False, [line for line in done.stdout.splitlines()[1:] if line], ""
        return None, [], f"git could not check the merge: {done.stderr.strip()}"

    def merge(self, reports: list[BranchReport]) -> tuple[list[str], Optional[str]]:
        """Merge the completed branches into the starting branch, one by one; stop at the first conflict,
        or where the checkout is busy with the user's own work (checked again before each merge), which
        is left as it is: only a merge orchestra itself started is ever aborted. Returns what to tell
        the user, and where and why it stopped ("at BRANCH: conflicts in FILES"), if it did."""
        said: list[str] = []
        for i, r in enumerate(reports):
            if r.status != "completed":
                continue
            if r.uncommitted:
                return said, f"at {r.branch}: {r.describe()}"
            if not r.commits:
                continue
            busy = self.busy()
            if busy:
                return said, f"at {r.branch}: {busy[0]} (left as it is); " + _left_to_you(reports[i:], busy[1])
            in_the_way = self.not_in_git(r.branch)
            if in_the_way:
                return said, (f"at {r.branch}: the merge would write over your files that are not in git (git "
                              f"does so to ignored ones without asking): {_some(in_the_way)}; nothing was touched; "
                              + _left_to_you(reports[i:], "move them away"))
            done = git(self.root, *self._identity(), "merge", "--no-ff", "--no-edit", "-q",
                       "-m", f"orchestra: merge {r.branch} ({r.agent})", r.branch)
            if done.returncode != 0:
                return said, f"at {r.branch}: {self._failed(r, done, reports[i:])}"
            r.merged = True
            said.append(f"🔀 merged {r.branch} into {self.base_branch}")
        return said, None

    def _failed(self, r: BranchReport, done: subprocess.CompletedProcess, rest: list[BranchReport]) -> str:
        """Why `git merge r.branch` failed. A conflicted merge is aborted only if it is orchestra's own
        (MERGE_HEAD is the branch's tip): the user may have started one of theirs since the check."""
        touched = set(self.touched(r.branch))
        tip = git(self.root, "rev-parse", "-q", "--verify", r.branch).stdout.strip()
        merging = git(self.root, "rev-parse", "-q", "--verify", "MERGE_HEAD")
        if tip and merging.returncode == 0 and merging.stdout.strip() == tip:
            unmerged = git(self.root, "diff", "--name-only", "-z", "--diff-filter=U").stdout.split("\0")
            conflicts = [f for f in unmerged if f in touched]
            git(self.root, "merge", "--abort")
            r.conflicts = r.conflicts or conflicts
            r.note = (f"conflicts in {', '.join(conflicts)}" if conflicts
                      else f"git merge failed: {(done.stderr or done.stdout).strip()}")
            return r.note
        busy = self.busy()
        if busy:
            return f"{busy[0]} (left as it is); " + _left_to_you(rest, busy[1])
        yours = [f for f in git(self.root, "diff", "--name-only", "-z").stdout.split("\0") if f in touched]
        if yours:
            return (f"your uncommitted changes to {_some(yours)} would be overwritten by the merge, so git "
                    f"refused it and nothing was touched; " + _left_to_you(rest, "commit or stash them"))
        return f"git merge failed: {(done.stderr or done.stdout).strip()}; " + _left_to_you(rest)

    def not_in_git(self, branch: str) -> list[str]:
        """Files in the checkout that git does not track and merging `branch` would write: git refuses
        for untracked ones, but writes over ignored ones (the user's .env) without a word."""
        there = [f for f in self.touched(branch) if os.path.lexists(self.root / f)]
        if not there:
            return []
        tracked = set(git(self.root, "ls-files", "-z").stdout.split("\0"))
        return [f for f in there if f not in tracked]

    def touched(self, branch: str) -> list[str]:
        """The files a branch changed since the run started (both names of a renamed one)."""
        return [f for f in git(self.root, "diff", "--name-only", "--no-renames", "-z", self.base_commit,
                               branch).stdout.split("\0") if f]


def _left_to_you(rest: list[BranchReport], todo: str = "") -> str:
    """How the user merges the branches orchestra stopped before: every one is kept."""
    left = [r.branch for r in rest if r.status == "completed" and r.commits and not r.uncommitted and not r.merged]
    return (f"every branch is kept: {todo + ', then ' if todo else ''}merge {'each' if len(left) > 1 else 'it'} "
            f"yourself: " + "; ".join(f"git merge {b}" for b in left))


def commit_all(path: Path, since: str, ignore: list[str], message: str, identity: list[str],
               changed: Optional[list[str]] = None, listed: bool = True) -> tuple[list[str], Optional[str]]:
    """Commit, on the branch checked out at `path`, every file changed since `since` (git's list, or `changed`
    when the caller has just taken it; but `ignore` globs) that is not committed yet. Returns the files
    committed (listed: as git staged them; else the paths given to it) and what went wrong, if anything."""
    paths = without_ignored(GitSnapshot(path, since, {}).changed() if changed is None else changed, ignore)
    if not paths:
        return [], None
    added = git(path, "add", "-A", "--", *paths)
    if added.returncode != 0:
        return [], f"git add failed: {added.stderr.strip()}"
    files = paths
    if listed:
        staged = git(path, "diff", "--cached", "--name-only", "-z")
        files = [f for f in staged.stdout.split("\0") if f]
        if staged.returncode == 0 and not files:
            return [], None  # the agent committed everything itself (aider does)
    # orchestra's own commit on its own branch: no hooks, no signing prompt to fail it, and no `git maintenance
    # run --auto` after it (a process each, for a few loose objects: the user's own next commit or fetch looks)
    done = git(path, *identity, "-c", "commit.gpgsign=false", "-c", "maintenance.auto=false", "commit", "-q",
               "--no-verify", "-m", message)
    if done.returncode == 0:
        return files, None
    if not listed and git(path, "diff", "--cached", "--quiet").returncode == 0:
        return [], None  # nothing was staged: the agent committed everything itself (aider does)
    return [], f"git commit failed: {done.stderr.strip()}"


def tree_ignores(profile) -> list[str]:
    """What is not the agent's work in its worktree: its profile's housekeeping files, and orchestra's own folder."""
    return [*profile.ignore_files, ".orchestra"]


def clean(workdir: Path, run_id: str, force: bool = False, ignore: Optional[list[str]] = None) -> list[str]:
    """`orchestra clean RUN_ID`: end what the run left running (whatever carries its mark), remove its
    worktrees (what is uncommitted in them committed on their branches first), delete its branches
    that hold nothing unmerged, close its tmux session; say what was done. Work is never destroyed
    but with force: then worktrees go without a commit, and unmerged branches are deleted too."""
    from .viewer import kill_session, session_exists

    runfolder.check_id(run_id)
    workdir = Path(workdir).resolve()
    pids, owners = runfolder.left_running(run_id)
    if owners:
        raise OrchestraError(f"run {run_id} is still going (orchestra process {owners[0]}): stop it first "
                             f"(Ctrl-C where it runs, or kill {owners[0]}), then clean it")
    runfolder.unmark_live(workdir, run_id)  # a lost run is no longer listed as under way
    said: list[str] = []
    names = end_processes(pids)
    if names:
        said.append(f"🧹 ended {len(names)} process{'es' if len(names) != 1 else ''} the run left running: "
                    + ", ".join(sorted(set(names))))
    kept: set[Path] = set()
    top = git(workdir, "rev-parse", "--show-toplevel")
    if top.returncode == 0:
        root = Path(top.stdout.strip())
        ignore = [*(ignore or []), ".orchestra"]
        identity = [] if git(root, "config", "user.email").stdout.strip() else IDENTITY
        trees = _worktrees_of(root, run_id)
        for path, branch in trees:
            removed, lines = _remove_worktree(root, path, branch, force, ignore, identity,
                                              f"orchestra clean: what was left uncommitted in the worktree\n\nrun {run_id}")
            said += lines
            if not removed:
                kept.add(path)
            elif path.parent.name == run_id and path.parent.is_dir() and not any(path.parent.iterdir()):
                path.parent.rmdir()
        git(root, "worktree", "prune")
        said += _clean_branches(workdir, root, run_id, force, {branch for path, branch in trees if path in kept})
    leftover = workdir / WORKTREES_DIR / run_id
    if leftover.is_dir():
        kept_here = {k.resolve() for k in kept}
        stray = [p for p in leftover.iterdir() if p.resolve() not in kept_here]
        if stray and force:  # left by a worktree git no longer knew of
            for p in stray:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink()
            said.append(f"🧹 removed {leftover} ({', '.join(p.name for p in stray)})")
        elif stray:
            said.append(f"⚠️  kept {', '.join(str(p) for p in stray)}: not a worktree git knows of; "
                        f"--force removes {'them' if len(stray) > 1 else 'it'}")
        if not any(leftover.iterdir()):
            leftover.rmdir()
    session = f"orchestra-{run_id}"
    if session_exists(session) and kill_session(session):
        said.append(f"🧹 closed tmux session {session}")
    if not said and not (workdir / ".orchestra" / "runs" / run_id).is_dir():
        raise OrchestraError(f"no run {run_id} here: no worktree, branch or tmux session of it, "
                             f"and no .orchestra/runs/{run_id} in {workdir} (see `orchestra runs`)")
    return said or [f"nothing to clean for {run_id}: no process, worktree, branch or tmux session left"]


def _remove_worktree(root: Path, path: Path, branch: Optional[str], force: bool, ignore: list[str],
                     identity: list[str], message: str) -> tuple[bool, list[str]]:
    """Remove a worktree, what is uncommitted in it committed on its branch first (but with force).
    Returns whether it was removed, and what to say."""
    left = without_ignored(GitSnapshot(path, "HEAD", {}).changed(), ignore) if path.is_dir() else []
    said = []
    if left and not force:
        files, problem = [], "it is on no branch (detached HEAD)"
        if branch:
            files, problem = commit_all(path, "HEAD", ignore, message, identity)
        if problem:
            return False, [f"⚠️  kept worktree {path}: its uncommitted files could not be committed ({problem}): "
                           f"{_some(left)}; --force removes it and them"]
        if files:
            said.append(f"💾 committed {_count(files, 'file')} left uncommitted in {path} on {branch}: {_some(files)}")
    done = git(root, "worktree", "remove", "--force", str(path))
    if done.returncode != 0:
        return False, said + [f"⚠️  could not remove worktree {path}: {done.stderr.strip()}"]
    return True, said + [f"🧹 removed worktree {path}" + (f" (discarded, uncommitted: {_some(left)})"
                                                         if force and left else "")]


def _clean_branches(workdir: Path, root: Path, run_id: str, force: bool, in_use: set) -> list[str]:
    """Delete the run's branches that hold no commit the starting branch lacks; keep the others (but
    with force), and those whose worktree was kept."""
    said = []
    base = _base_of(workdir, root, run_id)
    # merged into the starting branch as it is now; without a record of it, into the current HEAD
    into = base["branch"] if base["branch"] and git(root, "rev-parse", "-q", "--verify",
                                                   f"refs/heads/{base['branch']}").returncode == 0 else None
    into = into or base["commit"] or "HEAD"
    shown = into if into != base["commit"] else into[:12]
    refs = git(root, "for-each-ref", "--format=%(refname:short) %(objectname)", f"refs/heads/{BRANCH_PREFIX}/{run_id}/")
    for line in refs.stdout.splitlines():
        branch, tip = line.rsplit(" ", 1)
        if branch in in_use:
            said.append(f"🔖 kept branch {branch}: its worktree is kept")
            continue
        count = git(root, "rev-list", "--count", f"{into}..{tip}")
        unmerged = int(count.stdout.strip()) if count.returncode == 0 else None
        if unmerged is None and not force:
            said.append(f"⚠️  kept branch {branch}: git cannot tell whether it is merged into {shown} "
                        f"({count.stderr.strip()}); --force deletes it")
            continue
        if unmerged and not force:
            said.append(f"🔖 kept branch {branch}: {_count(unmerged, 'commit')} not merged into {shown}; "
                        f"--force deletes it")
            continue
        done = git(root, "branch", "-D", "-q", branch)
        if done.returncode != 0:
            said.append(f"⚠️  could not delete branch {branch}: {done.stderr.strip()}")
        elif unmerged:
            said.append(f"🧹 deleted branch {branch} ({_count(unmerged, 'unmerged commit')} dropped)")
        else:
            said.append(f"🧹 deleted branch {branch} (nothing on it that {shown} lacks)")
    return said


def _count(n, what: str) -> str:
    n = len(n) if isinstance(n, list) else n
    return f"{n} {what}{'s' if n != 1 else ''}"


def _some(files: list[str], shown: int = 10) -> str:
    return ", ".join(files[:shown]) + (f" and {len(files) - shown} more" if len(files) > shown else "")


def _base_of(workdir: Path, root: Path, run_id: str) -> dict:
    """The branch and commit the run started from, as its run.json says (found from the workdir or the root)."""
    for where in (workdir, root):
        try:
            base = json.loads((where / ".orchestra" / "runs" / run_id / "run.json").read_text()).get("base")
        except (OSError, ValueError):
            continue
        if isinstance(base, dict):
            return {"branch": base.get("branch"), "commit": base.get("commit")}
    return {"branch": None, "commit": None}


def _worktrees_of(root: Path, run_id: str) -> list[tuple[Path, Optional[str]]]:
    """The run's worktrees and the branch each has checked out (None: a detached HEAD)."""
    listing = git(root, "worktree", "list", "--porcelain").stdout
    found = []
    for block in listing.split("\n\n"):
        fields = dict(line.split(" ", 1) for line in block.splitlines() if " " in line)
        branch = fields.get("branch", "")
        path = fields.get("worktree", "")
        if branch.startswith(f"refs/heads/{BRANCH_PREFIX}/{run_id}/") or f"/{WORKTREES_DIR}/{run_id}/" in path + "/":
            found.append((Path(path), branch[len("refs/heads/"):] if branch.startswith("refs/heads/") else None))
    return found


GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def git(cwd: Path, *args: str, stdin: Optional[str] = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, input=stdin,
                              env={**os.environ, **GIT_ENV})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["git", *args], 127, "", str(exc))



def next_steps(record: dict) -> list[str]:
    """What is left to do by hand with a run's branches (from its run.json): one line per branch not
    merged that holds work, naming the branch. Empty for a run without branches, or all merged."""
    base = record.get("base") if isinstance(record.get("base"), dict) else {}
    into = base.get("branch") or str(base.get("commit") or "the starting commit")[:12]
    steps = []
    for m in record.get("merges") or []:
        step = BranchReport.from_dict(m).next_step(into)
        if step:
            steps.append(step)
    return steps
