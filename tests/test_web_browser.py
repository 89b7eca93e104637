"""orchestra web in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).

A failing test saves a screenshot under its tmp dir and prints the path. In CI (CI=true) a browser that
cannot run fails the test, naming what is missing; elsewhere the tests are skipped.
"""
import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, orchestra, toy, write_config
from test_web import TOKEN, WebServer

# the platform's chromium (Debian's, Homebrew's...): scripts/test finds it and names it in ORCHESTRA_CHROMIUM
CHROMIUM = os.environ.get("ORCHESTRA_CHROMIUM") or "/usr/bin/chromium"
DROID_CAST = ROOT / "fixtures" / "droid-secondary.cast"
WAIT_MS = 30000  # for what the page shows; a loaded 2-core machine can be slow to start chromium


def missing() -> str:
    if not os.path.exists(CHROMIUM):
        return (f"{CHROMIUM} is missing (apt-get install chromium, or brew install --cask chromium, or name one in "
                "ORCHESTRA_CHROMIUM; scripts/test installs it and finds it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return ""


@pytest.fixture(scope="module")
def browser():
    why = missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, request, tmp_path):
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        pg.screenshot(path=str(shot), full_page=True)
        print(f"\nscreenshot of the failing page: {shot}\npage errors: {errors}")
    context.close()


@pytest.fixture
def server(workdir):
    s = WebServer(workdir, "--token", TOKEN)
    yield s
    s.stop()


class GatedRun:
    """`orchestra run` of an agent that writes a line, waits for the test, writes another, waits again,
    then replays a recorded Droid session (JSON events, rendered): the test decides when it moves on."""

    def __init__(self, workdir: Path):
        self.gates = [workdir / "gate-1", workdir / "gate-2"]
        for gate in self.gates:
            os.mkfifo(gate)
        script = ('echo "first line from the agent"; read _ < "$1"; echo "second line, written live"; '
                  'read _ < "$2"; exec "$3" -m orchestra.replay "$4" --speed 0')
        config = write_config(workdir / "web.yaml", {"gated": {
            "command": ["sh", "-c", script, "gated", *map(str, self.gates), sys.executable, str(DROID_CAST), "{task}"],
            "completion": '"type":"completion"', "parser": "droid", "view": "rendered", "timeout": 90}})
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--agent", "gated", "--task",
                                      "watch me work", "--config", str(config), "--no-tmux", "--json"],
                                     cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.open = 0

    def release(self) -> None:
        with open(self.gates[self.open], "w") as fh:  # blocks until the agent reads: it is waiting there
            fh.write("go\n")
        self.open += 1

    def finish(self) -> dict:
        while self.open < len(self.gates):
            self.release()
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return json.loads(out)


@pytest.fixture
def gated(workdir):
    run = GatedRun(workdir)
    yield run
    if run.proc.poll() is None:
        run.finish()


class ScriptRun:
    """`orchestra run --cmd '<dir>/NAME {task}'` of a shell script that runs `body`, then waits on a gate
    (a FIFO) and prints DONE: a program whose name (and so its agent's, and its transcript's) is NAME."""

    def __init__(self, workdir: Path, name: str, body: str):
        self.gate = workdir / f"{name}.gate"
        os.mkfifo(self.gate)
        script = workdir / name
        script.write_text(f"#!/bin/sh\n{body}\nread _ < '{self.gate}'\necho DONE\n")
        script.chmod(0o755)
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--cmd", f"{script} {{task}}",
                                      "--done", "^DONE", "--task", "t", "--no-tmux", "--json"],
                                     cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.runs, self.name = workdir / ".orchestra" / "runs", name

    def run_id(self) -> str:
        """Once its folder exists (orchestra makes it before the program starts)."""
        return wait_for(lambda: next(iter(os.listdir(self.runs)), None) if self.runs.exists() else None)

    def finish(self) -> dict:
        if self.gate.exists():
            with open(self.gate, "w") as fh:  # blocks until the program reads: it is waiting there
                fh.write("go\n")
            self.gate.unlink()
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        return json.loads(out)


    def cast(self) -> Path:
        return self.runs / self.run_id() / f"{self.name}.cast"

    def wrote(self, text: str) -> None:
        """Until the program's transcript ends with a line holding text (its last 4 KB are looked at)."""
        def ends_with_it():
            try:
                with open(self.cast(), "rb") as fh:
                    fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
                    return text.encode() in fh.read()
            except OSError:
                return False
        wait_for(ends_with_it)


@pytest.fixture
def script_runs(workdir):
    made: list[ScriptRun] = []
    yield lambda name, body: made.append(ScriptRun(workdir, name, body)) or made[-1]
    for run in made:
        if run.proc.poll() is None:
            run.finish()


def wait_for(found, timeout: float = 120):
    """found()'s first true value, asked every 50 ms until timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not found within {timeout} s")


def terminal(page, cast: str) -> str:
    """The terminal's text: its lines one after another, each padded to the terminal's width (the player puts
    each run of one style in an element of its own, and symbols such as ▸ and ■ in a layer apart)."""
    return page.text_content(f'article[data-cast="{cast}"] .term')


def wait_terminal(page, cast: str, text: str, timeout: float = WAIT_MS) -> None:
    page.wait_for_function(
        "([cast, text]) => (document.querySelector(`article[data-cast='${cast}'] .term`) || {}).textContent?.includes(text)",
        arg=[cast, text], timeout=timeout)


def test_the_runs_page_shows_a_running_replay_agent_and_flips_it_to_completed(server, gated, page):
    page.goto(server.url)
    row = page.wait_for_selector('tr[data-status="running"]', timeout=WAIT_MS)  # it appears by itself
    assert "gated" in row.inner_text() and "watch me work" in row.inner_text()
    agent = gated.finish()
    page.wait_for_selector(f'tr[data-run-id="{agent["run_id"]}"][data-status="completed"]', timeout=WAIT_MS)
    assert "3: models/user.py" in page.inner_text(f'tr[data-run-id="{agent["run_id"]}"]')


def test_a_line_the_agent_writes_appears_in_its_terminal_and_its_tool_calls_are_rendered(server, gated, workdir, page):
    runs = workdir / ".orchestra" / "runs"
    page.goto(server.url)
    link = page.wait_for_selector('tr[data-status="running"] a', timeout=WAIT_MS)
    link.click()
    wait_terminal(page, "gated", "first line from the agent")  # from the transcript's first byte
    assert page.get_attribute('article[data-cast="gated"] .term', "data-mode") == "live"
    gated.release()
    wait_terminal(page, "gated", "second line, written live")  # as it happens
    gated.release()
    wait_terminal(page, "gated", "Create routers/users.py")  # the rendering, as in its tmux window
    wait_terminal(page, "gated", "completed · 4 turns · 15123 in / 387 out tokens")
    assert '"type":"tool_call"' not in terminal(page, "gated")
    gated.finish()
    page.wait_for_selector('article[data-cast="gated"][data-status="completed"]', timeout=WAIT_MS)
    assert "routers/users.py" in page.inner_text('article[data-cast="gated"] ul.files')
    page.select_option('article[data-cast="gated"] select.view', "raw")  # the bytes the agent wrote
    wait_terminal(page, "gated", '"type":"completion"')
    assert len(os.listdir(runs)) == 1


def test_a_past_run_plays_back_with_pause_and_seek(server, workdir, page):
    done = orchestra("delegate", "--demo", "--task", "a past run", "--no-tmux", "--json", cwd=workdir)
    run_id = json.loads(done.stdout)["run_id"]
    page.goto(f"{server.base}/run/{run_id}?token={TOKEN}")
    page.wait_for_selector('body[data-status="completed"]', timeout=WAIT_MS)
    assert "The secondary created models/user.py" in page.inner_text("#reply")  # the primary's reply
    term = 'article[data-cast="secondary-1"] .term'
    assert page.get_attribute(term, "data-mode") == "playback"
    wait_terminal(page, "secondary-1", "completed · 4 turns")  # its last frame, before it is played
    page.select_option('article[data-cast="secondary-1"] select.speed', "0.5")
    page.click(f"{term} .ap-player")  # play
    page.wait_for_function(f"() => document.querySelector('{term}').player.getCurrentTime() > 0", timeout=WAIT_MS)
    page.evaluate(f"async () => {{ const p = document.querySelector('{term}').player; await p.pause(); await p.seek(0.05); }}")
    page.wait_for_function(f"() => document.querySelector('{term}').player.getCurrentTime() < 0.1", timeout=WAIT_MS)
    assert "completed · 4 turns" not in terminal(page, "secondary-1")  # back at its start


def test_without_the_token_the_browser_gets_403_and_a_foreign_origin_websocket_is_refused(server, page):
    assert page.goto(server.base + "/").status == 403
    assert page.goto(server.url).status == 200
    page.wait_for_selector(".conn.ok", timeout=WAIT_MS)  # its own WebSocket opened
    with foreign_site() as elsewhere:  # another origin on this machine (chromium keeps remote ones off loopback)
        page.goto(elsewhere)
        outcome = page.evaluate("""(url) => new Promise((done) => {
            const ws = new WebSocket(url);
            ws.onopen = () => done("opened");
            ws.onclose = (e) => done("refused " + e.code);
        })""", f"ws://{server.host}/ws/runs?token={TOKEN}")
    assert outcome.startswith("refused"), outcome
    assert f"refused a WebSocket from {elsewhere.rstrip('/')}" in server.stop()  # by the server, for its origin


@contextlib.contextmanager
def foreign_site():
    """A page of another origin, served on 127.0.0.1 by the test."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>another site</body></html>")

        def log_message(self, *args):
            pass

    site = http.server.HTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=site.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/"
    finally:
        site.shutdown()
        thread.join()
        site.server_close()


# ---- the layout: what became of the run first, compact terminals, words for what ended an agent --------------

def shot(page, tmp_path: Path, name: str) -> Path:
    """A screenshot of the whole page in the test's tmp dir (kept there to look at)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def run_page(page, server, run_id: str) -> None:
    page.goto(f"{server.base}/run/{run_id}?token={TOKEN}")
    page.wait_for_selector("body[data-status]", timeout=WAIT_MS)
    page.wait_for_function("() => [...document.querySelectorAll('article.agent .term')].every((t) => "
                           "t.querySelector('.ap-line') || t.textContent.includes('no transcript'))", timeout=WAIT_MS)


def toy_run(workdir: Path, name: str, *args: str, **fields) -> str:
    """`orchestra run` of the toy agent with args; its run's id."""
    body = {"command": toy("--task", "{task}", *args), "completion": "^DONE", "timeout": 20, **fields}
    cfg = write_config(workdir.parent / f"{name}.yaml", {name: body})
    done = orchestra("run", "--agent", name, "--task", f"a task for {name}", "--config", str(cfg), "--no-tmux", "--json",
                     cwd=workdir)
    return json.loads(done.stdout)["run_id"]


def color(page, selector: str) -> str:
    return page.eval_on_selector(selector, "(node) => getComputedStyle(node).color")


GREEN, AMBER, RED = "rgb(63, 185, 80)", "rgb(227, 179, 65)", "rgb(242, 107, 100)"


def test_the_verdict_cost_time_files_and_reply_come_before_the_first_terminal(server, workdir, page, tmp_path):
    done = orchestra("delegate", "--demo", "--task", "a demo run", "--no-tmux", "--json", cwd=workdir)
    run_page(page, server, json.loads(done.stdout)["run_id"])
    shot(page, tmp_path, "completed")
    terminal_top = page.locator("article.agent .term").first.bounding_box()["y"]
    for part in ("#status", "#verdict", "#facts", "#run-files", "#reply"):
        box = page.locator(part).bounding_box()
        assert box and box["y"] + box["height"] <= terminal_top, part
    assert page.inner_text("#status") == "completed" and page.inner_text("#verdict") == "Completed."
    facts = page.inner_text("#facts")
    assert "$0.0929" in facts and "3 files" in facts
    assert "The secondary created models/user.py" in page.inner_text("#reply")


def test_a_terminal_is_as_tall_as_its_recording_needs_and_no_taller_than_the_bound(server, workdir, page, tmp_path):
    short = toy_run(workdir, "short")  # two lines
    long = toy_run(workdir, "long", "--many-files", "150")  # more lines than its 40-row terminal has
    heights = {}
    for run_id in (short, long):
        run_page(page, server, run_id)
        shot(page, tmp_path, run_id)
        heights[run_id] = page.locator("article.agent .term").bounding_box()["height"]
    assert heights[short] < 160, heights  # four rows and the controls
    assert 400 < heights[long] <= 720, heights  # about 36 rows of 13px text at most, however long the recording


def test_what_ended_an_agent_is_words_coloured_by_what_it_means(server, workdir, page, tmp_path):
    asked = toy_run(workdir, "asker", "--ask", "Overwrite config.py? [y/N]", input_wait=0.5)
    crashed = toy_run(workdir, "crasher", "--done", "oops", "--exit", "2")
    done = orchestra("delegate", "--demo", "--task", "a demo run", "--no-tmux", "--json", cwd=workdir)
    run_page(page, server, asked)
    shot(page, tmp_path, "waiting")
    ended = page.inner_text("article.agent .ended")
    assert ended.startswith("waiting for input: it asked a question and went quiet"), ended
    assert "Overwrite config.py? [y/N]" in ended  # the question it asked
    assert "signal" not in ended and "(?:" not in ended and "{" not in ended  # not the record's JSON, nor a regex
    assert color(page, "article.agent .ended") == AMBER and color(page, "#status") == AMBER
    run_page(page, server, crashed)
    assert page.inner_text("article.agent .ended").startswith("its process exited before any pattern decided")
    assert color(page, "article.agent .ended") == RED
    run_page(page, server, json.loads(done.stdout)["run_id"])
    assert color(page, 'article[data-cast="secondary-1"] .ended') == GREEN


def test_a_stopped_merge_is_not_a_green_completed_and_says_what_to_do(tmp_path, page):
    from test_parallel import stopped_merge

    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.name", "T"], ["config", "user.email", "t@x.invalid"],
                 ["commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    _, run_id = stopped_merge(tmp_path, repo)
    s = WebServer(repo, "--token", TOKEN)
    try:
        run_page(page, s, run_id)
        shot(page, tmp_path, "merge-stopped")
        assert page.get_attribute("body", "data-status") == "completed"  # the agents completed...
        assert page.inner_text("#status") == "merge stopped"  # ...but the run did not
        assert color(page, "#status") != GREEN
        assert "the merge stopped at" in page.inner_text("#verdict")
        branches = page.inner_text("#branches")
        assert f"orchestra/{run_id}/a merged" in branches
        assert f"orchestra/{run_id}/b not merged (the merge stopped here): conflicts in shared.py" in branches
        assert f"orchestra/{run_id}/c not merged (the merge stopped before it): merges cleanly" in branches
        steps = page.inner_text("#next")
        assert f"git merge orchestra/{run_id}/c (on main)" in steps
        assert f"git merge orchestra/{run_id}/b, resolve the conflicts in shared.py" in steps
        page.goto(s.url)
        assert page.wait_for_selector(f'tr[data-run-id="{run_id}"] .badge', timeout=WAIT_MS).inner_text() == "merge stopped"
    finally:
        s.stop()
        orchestra("clean", run_id, cwd=repo)


def test_no_heading_or_label_is_left_empty_and_counts_agree_in_number(server, workdir, page, tmp_path):
    # a run that failed before any agent started: its record names no agent
    failed = "20261201-120000-abcdef"
    (workdir / ".orchestra" / "runs" / failed).mkdir(parents=True)
    (workdir / ".orchestra" / "runs" / failed / "run.json").write_text(json.dumps({
        "run_id": failed, "task": "t", "status": "failed", "reason": "cannot start agent 'x'", "primary": None,
        "secondaries": [], "merges": [], "total_cost_usd": None, "duration_s": 0.01}))
    one = toy_run(workdir, "one", "--files", "only.py")
    run_page(page, server, failed)
    shot(page, tmp_path, "failed-before-start")
    assert page.inner_text("#verdict") == "cannot start agent 'x'"
    headings = page.locator("main h2:visible, main h3:visible, main dt:visible")
    for i in range(headings.count()):
        assert headings.nth(i).inner_text().strip() in ("cost", "time", "files", "started", "COST", "TIME", "FILES",
                                                        "STARTED"), headings.nth(i).inner_text()
    assert "Summary" not in page.inner_text("body")
    run_page(page, server, one)
    shot(page, tmp_path, "one-file")
    body = page.inner_text("body")
    assert "1 file" in page.inner_text("#facts") and "1 files" not in body and "conflicts:" not in body


def test_the_runs_page_names_its_directory_and_a_long_status_stays_in_its_column(server, workdir, page, tmp_path):
    toy_run(workdir, "asker", "--ask", "Overwrite config.py? [y/N]", input_wait=0.5)
    page.goto(server.url)
    badge = page.wait_for_selector('tr[data-status="waiting_for_input"] td.status .badge', timeout=WAIT_MS)
    shot(page, tmp_path, "runs")
    assert page.inner_text("header").startswith("Orchestra") and str(workdir.resolve()) in page.inner_text("header")
    agents = page.locator('tr[data-status="waiting_for_input"] td.agents').bounding_box()
    assert badge.bounding_box()["x"] + badge.bounding_box()["width"] <= agents["x"]
    assert badge.inner_text() == "waiting for input"


def test_a_live_terminal_shows_down_to_its_lowest_written_row(server, gated, page, tmp_path):
    page.goto(server.url)
    page.wait_for_selector('tr[data-status="running"] a', timeout=WAIT_MS).click()
    wait_terminal(page, "gated", "first line from the agent")
    term = 'article[data-cast="gated"] .term'
    page.wait_for_function(f"() => document.querySelector('{term}').getBoundingClientRect().height < 160",
                           timeout=WAIT_MS)  # its 40 rows are there, the empty ones below not shown
    shot(page, tmp_path, "live")
    assert page.locator(f"{term}").bounding_box()["y"] > page.locator("#verdict").bounding_box()["y"]
    gated.finish()


def test_a_program_whose_name_has_a_dot_shows_its_live_terminal_and_then_its_recording(server, script_runs, page):
    run = script_runs("slow.sh", "echo 'first line from slow.sh'")  # its agent, and its transcript, are slow.sh
    run.wrote("first line from slow.sh")
    page.goto(f"{server.base}/run/{run.run_id()}?token={TOKEN}")
    wait_terminal(page, "slow.sh", "first line from slow.sh")
    assert page.get_attribute('article[data-cast="slow.sh"] .term', "data-mode") == "live"
    run.finish()
    page.wait_for_selector('article[data-cast="slow.sh"][data-status="completed"]', timeout=WAIT_MS)
    wait_terminal(page, "slow.sh", "DONE")  # its recording's last screen
    assert page.get_attribute('article[data-cast="slow.sh"] .term', "data-mode") == "playback"


WRITER = """
import sys
write = sys.stdout.write
for i in range(int(sys.argv[1])):
    write(f"line {i} of a long output, \\x1b[32min colour\\x1b[0m, and more words to make it longer\\n")
"""
COUNT_CAST_BYTES = """
window.castBytes = 0;
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(url, protocols) {
    super(url, protocols);
    if (String(url).includes("/ws/cast/")) this.addEventListener("message", (e) => { window.castBytes += e.data.length; });
  }
};
"""


def test_a_live_20_mb_transcript_opens_at_its_current_last_line_and_the_page_stays_responsive(
        server, script_runs, workdir, page, tmp_path):
    (workdir / "writer.py").write_text(WRITER)
    run = script_runs("flood", f"{sys.executable} writer.py 240000; echo 'the current last line'")
    run.wrote("the current last line")
    assert run.cast().stat().st_size > 20 * 1024 * 1024
    page.add_init_script(COUNT_CAST_BYTES)
    page.goto(f"{server.base}/run/{run.run_id()}?token={TOKEN}")
    wait_terminal(page, "flood", "the current last line", timeout=10000)  # where feeding 20 MB took minutes
    page.wait_for_function("() => true", timeout=10000)  # its main thread answers: the tab is not frozen
    shot = tmp_path / "live-20mb.png"
    page.locator('article[data-cast="flood"]').screenshot(path=str(shot))  # the card, its last line in it
    print(f"\nscreenshot: {shot}")
    assert "line 239999 of a long output" in terminal(page, "flood")  # the last screen, whole
    assert page.evaluate("window.castBytes") < 2 * 1024 * 1024  # a recent part of it, not all 20 MB


def test_earlier_output_plays_the_recording_so_far_and_back_to_live_returns(server, script_runs, page):
    run = script_runs("talker", "echo 'said before you came'")
    run.wrote("said before you came")
    page.goto(f"{server.base}/run/{run.run_id()}?token={TOKEN}")
    term = 'article[data-cast="talker"] .term'
    wait_terminal(page, "talker", "said before you came")
    page.click('article[data-cast="talker"] button.earlier')
    page.wait_for_selector(f'{term}[data-mode="playback"] .ap-player', timeout=WAIT_MS)
    wait_terminal(page, "talker", "said before you came")  # its last screen, until it is played
    page.click(f"{term} .ap-player")  # play, from the start
    page.wait_for_function(f"() => document.querySelector('{term}').player?.getCurrentTime() > 0", timeout=WAIT_MS)
    page.click('article[data-cast="talker"] button.earlier')  # now "back to live"
    page.wait_for_selector(f'{term}[data-mode="live"]', timeout=WAIT_MS)
    wait_terminal(page, "talker", "said before you came")


def checked_run(workdir: Path, name: str, *checks: str, **fields) -> str:
    """`orchestra run` of a toy agent that writes its task into m.py and can be resumed, with checks; its run's id."""
    args = ["--task", "{task}", "--files", "m.py", "--line", "session: toy-1"]
    body = {"command": toy(*args), "completion": "^DONE", "timeout": 20, "parse": {"session_id": r"session: (\S+)"},
            "resume": toy(*args, "--line", "resumed {session_id}"), **fields}
    cfg = write_config(workdir.parent / f"{name}.yaml", {name: body})
    done = orchestra("run", "--agent", name, "--task", "t", "--config", str(cfg), "--no-tmux", "--json", *checks,
                     cwd=workdir)
    return json.loads(done.stdout)["run_id"]


def test_checks_say_verified_or_failed_and_a_fix_round_is_one_more_terminal(server, workdir, page, tmp_path):
    fixed = checked_run(workdir, "fixer", "--check", "grep -q 'acceptance checks' m.py", "--fix-rounds", "1")
    failed = checked_run(workdir, "failer", "--check", "sh -c 'echo the check said no; exit 1'")
    run_page(page, server, fixed)
    shot(page, tmp_path, "fixed")
    assert page.inner_text('article[data-cast="fixer"] .checks') == "verified ✓"
    assert color(page, 'article[data-cast="fixer"] .checks') == GREEN
    wait_terminal(page, "fixer-fix-1", "resumed toy-1")  # the round's own terminal, played back
    assert "verified ✓" in page.inner_text('article[data-cast="fixer-fix-1"] h2')
    run_page(page, server, failed)
    shot(page, tmp_path, "failed")
    mark = page.locator('article[data-cast="failer"] .checks')
    assert mark.inner_text() == "checks failed ✗" and color(page, 'article[data-cast="failer"] .checks') == RED
    assert "the check said no" in mark.get_attribute("title")  # its output, on hover
    assert "failed ✗" in page.inner_text("#facts")
    page.goto(server.url)
    row = page.wait_for_selector(f'tr[data-run-id="{failed}"]', timeout=WAIT_MS)
    assert "checks failed ✗" in row.inner_text()


def test_an_agent_over_its_budget_shows_what_it_spent_against_the_limit_and_what_stopped_it(server, workdir, page,
                                                                                              tmp_path):
    over = toy_run(workdir, "spender", "--line", "Tokens: 900 sent, 10 received", "--hang",
                   budget={"max_tokens": 500}, kill_grace=0.5)
    run_page(page, server, over)
    shot(page, tmp_path, "over-budget")
    assert "budget: 910 of 500 tokens" in page.inner_text("article.agent .facts")
    assert page.inner_text("article.agent .ended").startswith("stopped: it crossed a limit of its budget")
    assert "on: spent 910 tokens (900 in, 10 out), over the limit of 500" in page.inner_text("article.agent .ended")
