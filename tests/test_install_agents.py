"""scripts/install-agents where a Mac's tools are all there is: no GNU timeout, no readlink -f, `uname` saying
Darwin; npm stands in (a fake that installs a stub claude), so nothing is downloaded."""
import os
import shutil
import subprocess
import sys

from conftest import ROOT

FAKE_UNAME = "#!/bin/sh\necho Darwin\n"
# npm install --prefix P ... PKG: a claude stub that prints the pinned version
FAKE_NPM = """#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix=$2; shift; done
mkdir -p "$prefix/node_modules/.bin"
printf '#!/bin/sh\\necho "2.1.328 (Claude Code)"\\n' > "$prefix/node_modules/.bin/claude"
chmod +x "$prefix/node_modules/.bin/claude"
"""
TOOLS = ["bash", "sh", "env", "mkdir", "ln", "rm", "tee", "date", "head", "grep", "tail", "cat", "chmod",
         "perl", "dirname", "printf"]


def test_install_agents_runs_with_bsd_tools_and_names_the_agents_without_a_macos_package(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bin_dir / tool)
    os.symlink(os.path.realpath(sys.executable), bin_dir / "python3")  # (not a version manager's shim)
    for name, text in (("uname", FAKE_UNAME), ("npm", FAKE_NPM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    assert not (bin_dir / "timeout").exists() and not (bin_dir / "readlink").exists()
    agents = tmp_path / "agents"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "install-agents"), "claude", "droid", "opencode"],
                          env={"PATH": str(bin_dir), "HOME": str(tmp_path), "ORCHESTRA_AGENTS_DIR": str(agents)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = {line.split()[0]: line for line in done.stdout.splitlines()[2:] if line.strip()}
    assert "2.1.328" in table["claude"] and (agents / "bin" / "claude").resolve().name == "claude"
    assert "no macOS package: @factory/cli-darwin-*" in table["droid"]
    assert "no macOS package: opencode-darwin-*" in table["opencode"]
    assert not (agents / "bin" / "droid").exists() and not (agents / "bin" / "opencode").exists()
