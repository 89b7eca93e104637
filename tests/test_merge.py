"""--merge and the user's own work in the checkout: orchestra merges only into a checkout at rest,
and never aborts, resets or touches a merge, rebase or index it did not start.

Every test runs in a temporary git repository with real git commands; git itself is asked what is left.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git, needs_git, new_repo, orchestra
from orchestra import worktree
from orchestra.errors import OrchestraError
from orchestra.worktree import BranchReport, Repo, git as git_of_orchestra
from test_parallel import branches, config, toy, wait_for

pytestmark = needs_git

HALF_RESOLVED = "mine\ntheirs, half resolved by hand\n"


@pytest.fixture
def repo(tmp_path):
    """main at "start" (README.md, lib.py), and the user's branch `feature`, whose README.md conflicts with main's."""
    path = new_repo(tmp_path / "repo", {"README.md": "# project\n", "lib.py": "# lib\n"})
    git(path, "switch", "-q", "-c", "feature")
    commit(path, "README.md", "theirs\n")
    git(path, "switch", "-q", "main")
    return path


def commit(repo: Path, name: str, text: str) -> None:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-qm", f"{name}: {text.strip()}")


def conflicted(repo: Path, *command: str) -> None:
    """The user's git command (merge, rebase, cherry-pick, revert) stopped on a conflict in README.md, and
    the user half way through resolving it: another file's resolution staged, README.md edited by hand."""
    done = subprocess.run(["git", *command], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "GIT_EDITOR": "true"})
    assert done.returncode != 0 and "CONFLICT" in done.stdout + done.stderr, done.stdout + done.stderr
    (repo / "resolved.txt").write_text("settled\n")
    git(repo, "add", "resolved.txt")
    (repo / "README.md").write_text(HALF_RESOLVED)


def users_merge(repo: Path) -> None:
    commit(repo, "README.md", "mine\n")
    conflicted(repo, "merge", "feature")


def checkout(repo: Path) -> dict:
    """Everything of the user's that orchestra must leave as it found it: HEAD, the index with its
    conflict stages, the files, and what git keeps of a command under way."""
    gitdir = repo / ".git"
    kept = ["MERGE_HEAD", "MERGE_MSG", "CHERRY_PICK_HEAD", "REVERT_HEAD", "BISECT_LOG", "BISECT_START"]
    return {
        "head": git(repo, "rev-parse", "HEAD"), "on": git(repo, "rev-parse", "--abbrev-ref", "HEAD"),
        "main": git(repo, "rev-parse", "main"), "index": git(repo, "ls-files", "-s"),
        "status": git(repo, "status", "--porcelain"),
        "files": {str(p.relative_to(repo)): p.read_bytes() for p in repo.rglob("*")
                  if p.is_file() and ".git" not in p.relative_to(repo).parts},
        "git": {name: (gitdir / name).read_text() for name in kept if (gitdir / name).exists()},
        "rebase": sorted(str(p.relative_to(gitdir)) for p in gitdir.glob("rebase-*/**/*")),
    }


BRANCH = "orchestra/20261202-210000-abcdef/a"


@pytest.fixture
def run(repo):
    """A run's view of the repository as it starts on main, and its branch with one commit: a.py added, lib.py changed."""
    started = Repo(repo)
    git(repo, "switch", "-q", "-c", BRANCH)
    (repo / "a.py").write_text("# a\n")
    (repo / "lib.py").write_text("# lib, by a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a's work")
    git(repo, "switch", "-q", "main")
    return started, BranchReport("a", BRANCH, "completed", commits=1, files=["a.py", "lib.py"], merges_cleanly=True)


def revert_conflict(repo):
    commit(repo, "README.md", "mine\n")
    commit(repo, "README.md", "mine, again\n")
    conflicted(repo, "revert", "--no-edit", "HEAD~1")


def staged(repo):
    (repo / "notes.txt").write_text("mine\n")
    git(repo, "add", "notes.txt")


BUSY = {  # the state the user left the checkout in, what orchestra must say of it, and what to do first
    "merge": (users_merge, "a merge is in progress", "finish or abort your merge"),
    "rebase": (lambda r: (commit(r, "README.md", "mine\n"), conflicted(r, "rebase", "feature")),
               "a rebase is in progress", "finish or abort your rebase"),
    "cherry-pick": (lambda r: (commit(r, "README.md", "mine\n"), conflicted(r, "cherry-pick", "feature")),
                    "a cherry-pick is in progress", "finish or abort your cherry-pick"),
    "revert": (revert_conflict, "a revert is in progress", "finish or abort your revert"),
    "bisect": (lambda r: git(r, "bisect", "start"), "a bisect is in progress", "end your bisect (git bisect reset)"),
    "staged": (staged, "has staged changes", "commit or stash them"),
    "detached": (lambda r: git(r, "switch", "-q", "--detach"), "is detached", "git switch main"),
    "another branch": (lambda r: git(r, "switch", "-q", "feature"), "is on feature now, the run started on main",
                       "git switch main"),
}


@pytest.mark.parametrize("state", list(BUSY))
def test_merge_stops_before_a_busy_checkout_leaves_it_as_it_is_and_says_what_to_do(repo, run, state):
    started, report = run
    make, why, todo = BUSY[state]
    make(repo)
    before, tip = checkout(repo), git(repo, "rev-parse", BRANCH)
    said, stopped = started.merge([report])
    assert said == [] and not report.merged
    assert stopped.startswith(f"at {BRANCH}: ") and why in stopped, stopped
    assert stopped.endswith(f"every branch is kept: {todo}, then merge it yourself: git merge {BRANCH}"), stopped
    assert report.conflicts == [] and "README.md" not in stopped  # the user's conflict is not orchestra's
    assert checkout(repo) == before
    assert git(repo, "rev-parse", BRANCH) == tip


@pytest.mark.parametrize("state", ["bisect", "rebase", "revert"])
def test_merge_is_refused_up_front_during_a_bisect_a_rebase_or_a_revert(repo, state):
    make, why, todo = BUSY[state]
    make(repo)
    with pytest.raises(OrchestraError) as refused:
        Repo(repo).ready_to_merge()
    assert f"--merge: {why} in {repo.resolve()}; {todo} first" in str(refused.value)


def test_a_merge_the_user_starts_just_after_the_check_is_not_aborted_nor_its_conflicts_claimed(repo, run, monkeypatch):
    started, report = run
    commit(repo, "README.md", "mine\n")
    late = []

    def user_merges_first(cwd, *args):  # the race no check can close: then git merge itself refuses
        if "merge" in args and "--no-ff" in args and not late:
            conflicted(repo, "merge", "feature")
            late.append(True)
        return git_of_orchestra(cwd, *args)

    monkeypatch.setattr(worktree, "git", user_merges_first)
    said, stopped = started.merge([report])
    assert late and said == [] and not report.merged
    assert git(repo, "rev-parse", "MERGE_HEAD") == git(repo, "rev-parse", "feature")
    assert git(repo, "diff", "--name-only", "--diff-filter=U") == "README.md"
    assert (repo / "README.md").read_text() == HALF_RESOLVED and git(repo, "show", ":resolved.txt") == "settled"
    assert report.conflicts == [] and "README.md" not in stopped
    assert "a merge is in progress" in stopped and f"finish or abort your merge, then merge it yourself: " \
        f"git merge {BRANCH}" in stopped, stopped


def test_uncommitted_changes_to_a_file_the_branch_changes_stop_the_merge_and_are_kept(repo, run):
    started, report = run
    (repo / "lib.py").write_text("# the user's, not committed\n")
    (repo / "README.md").write_text("# the user's too, in a file the branch leaves alone\n")
    before = checkout(repo)
    said, stopped = started.merge([report])
    assert not report.merged
    assert stopped == (f"at {BRANCH}: your uncommitted changes to lib.py would be overwritten by the merge, so git "
                       f"refused it and nothing was touched; every branch is kept: commit or stash them, then "
                       f"merge it yourself: git merge {BRANCH}")
    assert checkout(repo) == before


@pytest.mark.parametrize("ignored", [False, True], ids=["untracked", "ignored"])
def test_a_file_of_the_users_not_in_git_that_the_branch_adds_stops_the_merge_and_is_kept(repo, run, ignored):
    started, report = run
    if ignored:  # git itself would write over it without a word
        (repo / ".git" / "info" / "exclude").write_text("a.py\n")
    (repo / "a.py").write_text("# the user's, not in git\n")
    before = checkout(repo)
    said, stopped = started.merge([report])
    assert not report.merged
    assert stopped == (f"at {BRANCH}: the merge would write over your files that are not in git (git does so to "
                       f"ignored ones without asking): a.py; nothing was touched; every branch is kept: move them "
                       f"away, then merge it yourself: git merge {BRANCH}")
    assert checkout(repo) == before


def test_a_merge_the_user_starts_while_the_agents_work_survives_the_run(tmp_path, repo):
    commit(repo, "README.md", "mine\n")  # main and feature conflict: the user will merge feature by hand
    pid, fifo = tmp_path / "a.pid", tmp_path / "go"
    os.mkfifo(fifo)
    # a works until the test writes to the FIFO, which it does once the user's merge is under way
    cfg = config(tmp_path, a=toy("--task", "{task}", "--files", "a.py", "--pidfile", str(pid), "--wait-fifo", str(fifo)),
                 b=toy("--task", "{task}", "--files", "b.py"))
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "delegate", "--config", str(cfg), "--to", "a",
                             "--to", "b", "--task", "t", "--no-analyze", "--merge", "--no-tmux", "--json"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(pid.exists)  # the up-front check is behind: the agents are at work
        conflicted(repo, "merge", "feature")
        with open(fifo, "w") as fh:
            fh.write("go\n")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    result = json.loads(out)
    rid = result["run_id"]
    assert result["status"] == "completed"
    a, b = f"orchestra/{rid}/a", f"orchestra/{rid}/b"
    # the user's merge, as they left it
    assert git(repo, "rev-parse", "MERGE_HEAD") == git(repo, "rev-parse", "feature")
    assert git(repo, "diff", "--name-only", "--diff-filter=U") == "README.md"
    assert (repo / "README.md").read_text() == HALF_RESOLVED and git(repo, "show", ":resolved.txt") == "settled"
    assert not (repo / "a.py").exists() and not (repo / "b.py").exists()
    assert result["merge_stopped"] == (
        f"at {a}: a merge is in progress in {repo.resolve()} (left as it is); every branch is kept: finish or abort "
        f"your merge, then merge each yourself: git merge {a}; git merge {b}")
    assert [(m["merged"], m["conflicts"]) for m in result["merges"]] == [(False, []), (False, [])]
    # every branch, with its work
    assert branches(repo) == [a, b]
    for branch, name in ((a, "a.py"), (b, "b.py")):
        assert git(repo, "rev-list", "--count", f"main..{branch}") == "1"
        assert git(repo, "show", f"{branch}:{name}") == "# written for: t"
    cleaned = orchestra("clean", rid, cwd=repo)
    assert cleaned.returncode == 0 and branches(repo) == [a, b], cleaned.stdout + cleaned.stderr
    assert git(repo, "rev-parse", "MERGE_HEAD") == git(repo, "rev-parse", "feature")


# Branches from main's start, each a list of (path, text or None to delete): whether they merge one after
# another without asking git (Repo.apart), and what git's own rehearsal says of them
SHAPES = {
    "apart": ([[("a.py", "a\n")], [("b.py", "b\n"), ("lib.py", "# lib, by b\n")], [("pkg/c.py", "c\n")]], True),
    "same file": ([[("lib.py", "# lib, by a\n")], [("lib.py", "# lib, by b\n")]], False),
    "a file where another has a folder": ([[("pkg", "a file\n")], [("pkg/c.py", "c\n")]], False),
    "a deletion": ([[("lib.py", None)], [("b.py", "# lib\n")]], False),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_branches_that_change_different_files_are_reported_as_gits_rehearsal_reports_them(repo, shape, monkeypatch):
    changes, apart = SHAPES[shape]
    started = Repo(repo)
    trees = []
    for n, files in enumerate(changes):
        branch = f"orchestra/r/{n}"
        git(repo, "switch", "-q", "-c", branch, "main")
        for path, text in files:
            if text is None:
                git(repo, "rm", "-q", path)
                continue
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(text)
            git(repo, "add", path)
        git(repo, "commit", "-qm", f"branch {n}")
        trees.append(worktree.Tree(str(n), f"secondary-{n}", branch, repo, repo))
    git(repo, "switch", "-q", "main")
    reports = [started.report(t, "completed", []) for t in trees]
    assert all(r.merges_cleanly and r.commits == 1 for r in reports)  # (main has not moved: each alone is clean)
    assert started.apart(reports) is apart
    started.rehearse(reports)
    monkeypatch.setattr(Repo, "apart", lambda self, reports: False)  # git's own rehearsal, merge by merge
    by_git = [BranchReport(r.agent, r.branch, r.status, commits=r.commits, merges_cleanly=True) for r in reports]
    started.rehearse(by_git)
    assert [r.conflicts_with_earlier for r in reports] == [r.conflicts_with_earlier for r in by_git]
    assert any(r.conflicts_with_earlier for r in by_git) is (shape != "apart" and shape != "a deletion")


def test_a_branch_of_a_starting_branch_that_moved_is_checked_by_a_merge(repo):
    started = Repo(repo)
    git(repo, "switch", "-q", "-c", "orchestra/r/a")
    commit(repo, "lib.py", "# lib, by a\n")
    git(repo, "switch", "-q", "main")
    commit(repo, "lib.py", "# lib, by you meanwhile\n")  # main moved on: a merge, not a fast-forward
    report = started.report(worktree.Tree("a", "secondary-1", "orchestra/r/a", repo, repo), "completed", [])
    assert (report.commits, report.merges_cleanly, report.conflicts) == (1, False, ["lib.py"])
    assert started.apart([report]) is False


def agent_work(tree: Path, shape: str) -> None:
    """What an agent may leave in its worktree, one way each."""
    (tree / "new.py").write_text("new\n")                      # untracked
    (tree / "lib.py").write_text("# lib, changed\n")          # tracked, changed
    (tree / "README.md").unlink()                             # tracked, deleted
    (tree / "sub").mkdir()
    (tree / "sub" / "deep.py").write_text("deep\n")           # untracked, in a folder
    (tree / "staged.py").write_text("staged\n")
    git(tree, "add", "staged.py")                             # staged new
    (tree / "gone.py").write_text("gone\n")
    git(tree, "add", "gone.py")
    (tree / "gone.py").unlink()                               # staged new, then deleted: no change at all
    if shape == "changed back":
        git(tree, "add", "lib.py")
        (tree / "lib.py").write_text("# lib\n")               # staged, then changed back as it was
    if shape == "committed":
        git(tree, "commit", "-qm", "the agent's own commit")


@pytest.mark.parametrize("shape", ["uncommitted", "changed back", "committed"])
@pytest.mark.parametrize("sub", ["", "sub"])
def test_one_git_status_tells_what_changed_in_a_worktree_as_the_two_calls_do(repo, shape, sub):
    from orchestra.summary import GitSnapshot

    tree = repo.parent / "tree"
    git(repo, "worktree", "add", "-q", "-b", "orchestra/r/a", str(tree), "main")
    base = git(repo, "rev-parse", "HEAD")
    agent_work(tree, shape)
    where = tree / sub
    one = GitSnapshot(where, base, {}, alone=True, top=tree).changed()
    two = GitSnapshot(where, base, {}, alone=True).changed()
    assert one == two and one  # (each shape: what git's diff and list of untracked files say)
    from orchestra.summary import _status_since  # the one call answers, or leaves it to the two

    assert (_status_since(tree, where, base) is not None) is (shape == "uncommitted")
