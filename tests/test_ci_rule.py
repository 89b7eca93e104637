"""In CI (CI=true) a real-agent test whose agent is missing fails, naming the binary and the install log;
elsewhere it is skipped with that reason."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from tests.support.ci import in_ci, install_log, missing_reason, skip_fails


@pytest.mark.parametrize("ci, fails", [("true", True), ("1", True), ("", False), ("false", False)])
def test_a_real_agent_tests_skip_fails_only_in_ci(tmp_path, ci, fails):
    env = {"CI": ci, "ORCHESTRA_AGENTS_DIR": str(tmp_path)}
    reason = missing_reason(["droid"], env)
    assert "not installed: droid" in reason and str(tmp_path / "install.log") in reason
    failure = skip_fails(reason, env)
    assert in_ci(env) is fails and (failure is not None) is fails
    if fails:
        assert "may not skip in CI" in failure and "not installed: droid" in failure


def test_a_skip_for_another_reason_still_names_the_install_log_in_ci(tmp_path):
    env = {"CI": "true", "ORCHESTRA_AGENTS_DIR": str(tmp_path)}
    assert str(install_log(env)) in skip_fails("tmux is not installed", env)


@pytest.mark.parametrize("ci, outcome", [("true", "1 failed"), ("", "1 skipped")])
def test_a_real_agent_test_without_its_agent_fails_in_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    # the real rule, end to end: one real-agent test run by pytest with no agent installed anywhere
    env = dict(os.environ, CI=ci, ORCHESTRA_AGENTS_DIR=str(tmp_path / "agents"),
               PATH=os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"]))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs",
                           "tests/test_real_agents.py::test_run_droid_alone_reports_the_file_and_tokens"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=100)
    assert outcome in done.stdout, done.stdout + done.stderr
    assert "not installed: droid" in done.stdout and str(tmp_path / "agents" / "install.log") in done.stdout
