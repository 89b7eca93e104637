"""The command line's exit status and usage errors: a script can tell what happened."""
import pytest

from conftest import orchestra, toy, write_config


@pytest.mark.parametrize("command", ["run", "delegate"])
@pytest.mark.parametrize("task", ["", "  \n\t "])
def test_an_empty_task_is_a_usage_error(workdir, command, task):
    cfg = write_config(workdir / "o.yaml", {"argv": {"command": toy("--task", "{task}"), "completion": "^DONE"}})
    who = ["--agent", "argv"] if command == "run" else ["--to", "argv", "--no-analyze"]
    done = orchestra(command, "--config", str(cfg), *who, "--task", task, "--no-tmux", cwd=workdir)
    assert done.returncode == 2 and "the task is empty" in done.stderr, done.stderr
    assert not (workdir / ".orchestra").exists()


def test_summarize_exits_1_when_it_judges_the_transcript_failed(workdir):
    cfg = write_config(workdir / "o.yaml", {"toy": {"command": ["toy"], "completion": "^DONE"}})
    failed = workdir / "failed.txt"
    failed.write_text("working on: it\nsomething went wrong\n")
    done = orchestra("summarize", "--config", str(cfg), "--agent", "toy", str(failed), cwd=workdir)
    assert done.returncode == 1 and "failed" in done.stdout, done.stdout + done.stderr
    completed = workdir / "completed.txt"
    completed.write_text("working on: it\nDONE\n")
    done = orchestra("summarize", "--config", str(cfg), "--agent", "toy", str(completed), cwd=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
