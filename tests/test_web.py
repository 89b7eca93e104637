"""orchestra web without a browser: the token, the Origin check, what it reads, web.json."""
import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, orchestra, toy, write_config
from orchestra.web import WEB_JSON, announce, web_url
from orchestra.web.feeds import CastTail, RunsIndex

TOKEN = "tests-token-0123456789abcdef"
DROID_CAST = ROOT / "fixtures" / "droid-secondary.cast"


class WebServer:
    """`orchestra web` in a process of its own, on a free port; ended by the test's teardown."""

    def __init__(self, workdir, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestra", "web", "--port", "0", "--workdir",
                                      str(workdir), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # the URL, once it serves
        if "http://" not in line:
            self.stop()
            raise AssertionError(f"orchestra web did not start: {line}{self.proc.stderr.read()}")
        self.url = line.split()[-1]
        self.base = self.url.split("/?")[0]
        self.host = self.base.split("//")[1]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.stderr.read()


@pytest.fixture
def server(workdir):
    s = WebServer(workdir, "--token", TOKEN)
    yield s
    s.stop()


def get(url: str, headers=None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def ws_open(url: str, origin=None, subprotocols=None):
    """Open a WebSocket and read its first message; the HTTP status when the server refuses the upgrade."""
    import websockets
    from websockets.sync.client import connect

    try:
        with connect(url, origin=origin, open_timeout=10, subprotocols=subprotocols) as ws:
            return 101, ws.recv(timeout=10)
    except websockets.exceptions.InvalidStatus as exc:
        return exc.response.status_code, None


def test_every_request_without_the_token_gets_403(server, workdir):
    orchestra("delegate", "--demo", "--task", "t", "--no-tmux", cwd=workdir)
    run_id = os.listdir(workdir / ".orchestra" / "runs")[0]
    for path in ("/", f"/run/{run_id}", "/api/runs", "/static/app.js", "/static/vendor/asciinema-player.min.js",
                 f"/cast/{run_id}/primary.cast"):
        assert get(server.base + path)[0] == 403, path
        assert get(server.base + path + "?token=wrong-token-0123456789")[0] == 403, path
        assert get(server.base + path + "?token=" + TOKEN)[0] == 200, path
    assert ws_open(f"ws://{server.host}/ws/runs")[0] == 403


def test_a_websocket_from_a_foreign_origin_is_refused(server):
    status, first = ws_open(f"ws://{server.host}/ws/runs?token={TOKEN}", origin=f"http://{server.host}")
    assert status == 101 and json.loads(first)["all"] is True
    for origin in ("http://evil.example", f"http://localhost:{server.host.split(':')[1]}", "null"):
        assert ws_open(f"ws://{server.host}/ws/runs?token={TOKEN}", origin=origin)[0] == 403, origin


def test_a_request_naming_another_host_is_refused(server):
    # a DNS rebinding page: its own name, resolved to 127.0.0.1, with a stolen or guessed token
    assert get(f"{server.base}/?token={TOKEN}", headers={"Host": "rebind.example:80"})[0] == 403
    assert get(f"{server.base}/?token={TOKEN}", headers={"Host": "localhost"})[0] == 200


def test_a_host_that_is_not_loopback_needs_an_explicit_token(workdir):
    done = orchestra("web", "--host", "0.0.0.0", "--port", "0", "--workdir", str(workdir))
    assert done.returncode == 2
    assert "--host 0.0.0.0 is not a loopback address" in done.stderr and "--token" in done.stderr


def test_a_port_in_use_is_a_clear_error(server, workdir):
    port = server.host.split(":")[1]
    done = orchestra("web", "--port", port, "--workdir", str(workdir), "--token", TOKEN)
    assert done.returncode == 2
    assert f"cannot serve on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr


def test_run_and_delegate_print_the_web_address_while_a_server_serves_the_directory(server, workdir):
    done = orchestra("delegate", "--demo", "--task", "t", "--no-tmux", cwd=workdir)
    run_id = os.listdir(workdir / ".orchestra" / "runs")[0]
    assert f"   Web: {server.base}/run/{run_id}\n" in done.stdout and TOKEN not in done.stdout
    status, page = get(f"{server.base}/run/{run_id}?token={TOKEN}")
    assert status == 200 and "app.js" in page


def test_a_browser_that_opened_the_servers_address_opens_the_printed_run_pages_without_the_token(server, workdir):
    import http.cookiejar

    done = orchestra("delegate", "--demo", "--task", "t", "--no-tmux", cwd=workdir)
    printed = next(line.split()[-1] for line in done.stdout.splitlines() if "Web:" in line)
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    assert get(printed)[0] == 403  # a stranger without the token
    with browser.open(server.url, timeout=10) as first:
        assert first.status == 200
    with browser.open(printed, timeout=10) as page:
        assert page.status == 200 and "app.js" in page.read().decode()
    run_id = printed.rsplit("/", 1)[1]
    with browser.open(f"{server.base}/api/run/{run_id}?token=", timeout=10) as data:
        assert json.loads(data.read())["run_id"] == run_id  # what the page asks for, with the cookie alone


def test_a_token_with_a_plus_or_slash_prints_an_address_that_works(workdir):
    s = WebServer(workdir, "--token", "abc+def/ghi=0123456789+xyz")
    try:
        assert "+" not in s.url.split("token=")[1] and get(s.url)[0] == 200
    finally:
        s.stop()


def test_the_token_comes_from_a_variable_or_a_private_file_and_a_shared_file_is_refused(workdir, tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRA_WEB_TOKEN", "from-the-environment-0123456789")
    s = WebServer(workdir)
    try:
        assert s.url.endswith("?token=from-the-environment-0123456789") and get(s.url)[0] == 200
    finally:
        s.stop()
    monkeypatch.delenv("ORCHESTRA_WEB_TOKEN")
    secret = tmp_path / "token"
    secret.write_text("from-a-private-file-0123456789\n")
    secret.chmod(0o644)
    refused = orchestra("web", "--port", "0", "--workdir", str(workdir), "--token-file", str(secret))
    assert refused.returncode == 2 and "chmod 600" in refused.stderr and "Traceback" not in refused.stderr
    secret.chmod(0o600)
    s = WebServer(workdir, "--token-file", str(secret))
    try:
        assert s.url.endswith("?token=from-a-private-file-0123456789") and get(s.url)[0] == 200
    finally:
        s.stop()


def test_a_detached_runs_log_holds_no_token_and_its_folder_is_its_owners_alone(server, workdir):
    started = orchestra("delegate", "--demo", "--task", "t", "--no-tmux", "--detach", cwd=workdir)
    run_id = started.stdout.split("run ", 1)[1].split()[0]
    done = orchestra("wait", run_id, cwd=workdir)
    assert done.returncode == 0, done.stderr
    folder = workdir / ".orchestra" / "runs" / run_id
    log = (folder / "orchestra.log").read_text()
    assert "Web:" in log and TOKEN not in log
    assert folder.stat().st_mode & 0o077 == 0
    assert (folder / "orchestra.log").stat().st_mode & 0o077 == 0


def test_a_web_json_left_by_a_server_that_is_gone_is_ignored(workdir):
    announce(workdir, "http://127.0.0.1:9/?token=x")
    assert web_url(workdir) == "http://127.0.0.1:9/?token=x"
    info = json.loads((workdir / WEB_JSON).read_text())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (workdir / WEB_JSON).write_text(json.dumps({**info, "pid": dead.pid}))
    assert web_url(workdir) is None
    done = orchestra("delegate", "--demo", "--task", "t", "--no-tmux", cwd=workdir)
    assert "Web:" not in done.stdout


def test_the_server_removes_its_web_json_when_it_stops(workdir):
    s = WebServer(workdir, "--token", TOKEN)
    assert json.loads((workdir / WEB_JSON).read_text())["url"] == s.url
    assert (workdir / WEB_JSON).stat().st_mode & 0o077 == 0  # the URL holds the token
    s.stop()
    assert not (workdir / WEB_JSON).exists()


def test_a_live_transcript_is_sent_from_its_first_byte_then_as_it_grows(tmp_path):
    cast = tmp_path / "secondary-1.cast"
    cast.write_text(json.dumps({"version": 2, "width": 100, "height": 30}) + "\n" + '[0.1, "o", "first\\r\\n"]\n')
    tail = CastTail(cast)
    assert tail.start() == {"version": 2, "width": 100, "height": 30}
    assert tail.read() == [[0.1, "o", "first\r\n"]]
    assert tail.read() == []
    with open(cast, "a") as fh:
        fh.write('[0.2, "o", "sec')  # an event still being written is not sent half
        fh.flush()
        assert tail.read() == []
        fh.write('ond\\r\\n"]\n[0.3, "i", "typed"]\n[0.4, "o", "third\\r\\n"]\n')
    assert tail.read() == [[0.4, "o", "second\r\nthird\r\n"]]
    tail.close()


def test_a_rendered_transcript_is_sent_as_its_parser_draws_it(tmp_path):
    header = json.loads(DROID_CAST.read_text().split("\n", 1)[0])
    cast = tmp_path / "secondary-1.cast"
    cast.write_text(json.dumps({**header, "orchestra": {"parser": "droid", "view": "rendered"}}) + "\n"
                    + DROID_CAST.read_text().split("\n", 1)[1])
    tail = CastTail(cast, "rendered")
    text = "".join(e[2] for e in tail.read() + tail.finish())
    assert "▸ \x1b[1mCreate\x1b[0m\x1b[36m routers/users.py" in text and '"type"' not in text
    tail.close()


def test_the_runs_index_finds_new_runs_and_rereads_only_changed_records(workdir):
    index = RunsIndex(workdir)
    index.scan()
    sent: dict = {}
    assert index.since(sent) == ([], [])
    orchestra("delegate", "--demo", "--task", "first", "--no-tmux", cwd=workdir)
    index.scan()
    rows, gone = index.since(sent)
    assert [r["task"] for r in rows] == ["first"] and rows[0]["status"] == "completed" and not gone
    assert rows[0]["files"] == ["models/user.py", "schemas/user.py", "routers/users.py"]
    index.scan()
    assert index.since(sent) == ([], [])


def test_a_running_record_whose_orchestra_is_gone_shows_as_lost(workdir):
    folder = workdir / ".orchestra" / "runs" / "20261129-120000-abcdef"
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / "run.json").write_text(json.dumps({"run_id": folder.name, "status": "running", "pid": dead.pid,
                                                 "task": "t", "secondaries": []}))
    index = RunsIndex(workdir)
    index.scan()
    assert index.rows[folder.name]["status"] == "lost"


def test_a_live_stream_wakes_when_its_transcript_grows_and_nothing_watches_once_none_waits(tmp_path):
    """A stream waits on its transcript's size (one look a file every few ms, shared by its viewers),
    not on a sleep of its own; the look stops with the last stream."""
    from orchestra.web.server import Growth

    cast = tmp_path / "secondary-1.cast"
    cast.write_bytes(b"{}\n")

    async def scenario():
        growth = Growth(every=0.001)
        viewers = [asyncio.ensure_future(growth.wait(str(cast), 3, timeout=60)) for _ in range(2)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert not any(v.done() for v in viewers)  # nothing new: they wait
        with open(cast, "ab") as fh:
            fh.write(b'[0.1, "o", "a line\\r\\n"]\n')
        await asyncio.wait_for(asyncio.gather(*viewers), 30)  # woken by the growth, not the 60 s timeout
        assert growth.waiting == {}
        await asyncio.wait_for(growth.task, 30)  # and the watch ends with no stream left

    asyncio.run(scenario())


def test_the_runs_page_names_the_directory_it_serves(server, workdir):
    status, page = get(f"{server.base}/?token={TOKEN}")
    assert status == 200 and f'<code id="workdir">{workdir.resolve()}</code>' in page


def test_what_ended_an_agent_is_sent_in_words_with_what_it_means(workdir):
    from orchestra.web.feeds import run_page

    orchestra("delegate", "--demo", "--task", "t", "--no-tmux", cwd=workdir)
    cfg = write_config(workdir.parent / "asker.yaml", {"asker": {
        "command": toy("--task", "{task}", "--ask", "Overwrite config.py? [y/N]"), "completion": "^DONE",
        "timeout": 20, "input_wait": 0.5}})
    done = orchestra("run", "--agent", "asker", "--task", "t", "--config", str(cfg), "--no-tmux", "--json", cwd=workdir)
    demo, asked = sorted(os.listdir(workdir / ".orchestra" / "runs"))
    waiting = run_page(workdir, asked)["secondaries"][0]
    assert json.loads(done.stdout)["status"] == "waiting_for_input"
    assert waiting["ended"]["words"] == "waiting for input: it asked a question and went quiet"
    assert waiting["ended"]["kind"] == "waiting" and waiting["ended"]["line"] == "Overwrite config.py? [y/N]"
    secondary = run_page(workdir, demo)["secondaries"][0]
    assert secondary["ended"]["kind"] == "ok" and secondary["ended"]["words"].startswith("finished")
    assert secondary["ended"]["detail"] == 'completion /"type":"completion"/ (decided in ' \
        f'{secondary["ended_by"]["decided_ms"]:g} ms)'  # describe_ended_by's words, as `show` prints them


def test_a_finished_terminal_is_sized_to_the_rows_its_recording_used(tmp_path):
    from orchestra.web.feeds import rows_used

    cast = tmp_path / "a.cast"
    cast.write_text(json.dumps({"version": 2, "width": 20, "height": 40}) + "\n"
                    + '[0.1, "o", "one\\r\\ntwo\\r\\n"]\n[0.2, "o", "' + "x" * 45 + '"]\n')
    assert rows_used(cast, "raw", 40, 20) == 5  # two lines, then one of 45 characters wrapped on 3 rows
    with open(cast, "a") as fh:
        fh.write('[0.3, "o", "\\u001b[12;1Hdrawn on row 12"]\n')  # a full-screen program moves its cursor
    assert rows_used(cast, "raw", 40, 20) == 12
    with open(cast, "a") as fh:
        fh.write('[0.4, "o", "' + "\\r\\n" * 100 + '"]\n')
    assert rows_used(cast, "raw", 40, 20) == 40  # never more than the terminal has
    header, events = DROID_CAST.read_text().split("\n", 1)
    rendered = tmp_path / "rendered.cast"
    rendered.write_text(json.dumps({**json.loads(header), "orchestra": {"parser": "droid", "view": "rendered"}}) + "\n"
                        + events)
    assert rows_used(rendered, "rendered", 40, 120) < rows_used(rendered, "raw", 40, 120)  # as the view shows it


def test_a_transcript_is_served_by_whatever_name_its_agent_has_and_only_if_its_run_names_it(server, workdir):
    script = workdir / "tiny.sh"
    script.write_text("#!/bin/sh\necho 'tiny says hello'\necho DONE\n")
    script.chmod(0o755)
    done = orchestra("run", "--cmd", f"{script} {{task}}", "--done", "^DONE", "--task", "t", "--no-tmux", "--json",
                     cwd=workdir)
    run_id = json.loads(done.stdout)["run_id"]
    folder = workdir / ".orchestra" / "runs" / run_id
    assert (folder / "tiny.sh.cast").is_file()  # named after the agent, whose name has a dot
    status, cast = get(f"{server.base}/cast/{run_id}/tiny.sh.cast?token={TOKEN}")
    assert status == 200 and "tiny says hello" in cast
    status, first = ws_open(f"ws://{server.host}/ws/cast/{run_id}/tiny.sh?token={TOKEN}", subprotocols=["v2.asciicast"])
    assert status == 101 and json.loads(first)["width"] > 0
    (folder / "stray.cast").write_text((folder / "tiny.sh.cast").read_text())  # in the folder, not in the record
    assert get(f"{server.base}/cast/{run_id}/stray.cast?token={TOKEN}")[0] == 404
    assert get(f"{server.base}/cast/{run_id}/..%2Frun.cast?token={TOKEN}")[0] == 404
    assert ws_open(f"ws://{server.host}/ws/cast/{run_id}/stray?token={TOKEN}", subprotocols=["v2.asciicast"])[0] == 403


def long_cast(path, after: list[str], before: tuple[str, ...] = (), header: dict | None = None, mb: float = 2) -> None:
    """A transcript of output events: `before`, then mb MB of numbered lines, then `after`."""
    line = "filler line {} with some words to make it longer\r\n"
    filler = ["".join(line.format(n * 20 + i) for i in range(20)) for n in range(int(mb * 1024 * 1024 / 1000))]
    with open(path, "w") as fh:
        fh.write(json.dumps(header or {"version": 2, "width": 80, "height": 24}) + "\n")
        for n, text in enumerate([*before, *filler, *after]):
            fh.write(json.dumps([n / 1000, "o", text]) + "\n")


def streamed(tail: CastTail) -> str:
    text = ""
    while events := tail.read():
        text += "".join(e[2] for e in events)
    return text


def test_a_long_live_transcript_is_streamed_from_a_line_start_near_its_end_saying_what_was_left_out(tmp_path):
    cast = tmp_path / "secondary-1.cast"
    long_cast(cast, ["the last line\r\n"])
    tail = CastTail(cast)
    skipped = tail.start_recent()
    text = streamed(tail)
    assert skipped > cast.stat().st_size - 300 * 1024  # a recent part is sent: the last 256 KB at most
    assert text.startswith(f"\x1b[2m⋯ {skipped / 1048576:.1f} MB of earlier output left out here")
    first = text.split("\r\n")[1]
    assert first.startswith("filler line ") and first.endswith("to make it longer")  # a whole line
    assert text.endswith("the last line\r\n")
    tail.close()


def test_a_long_live_transcript_is_streamed_from_its_last_full_screen_clear(tmp_path):
    cast = tmp_path / "secondary-1.cast"
    long_cast(cast, ["an old screen\r\n", "\x1b[H\x1b[2Jthe screen now\r\n", "more of it\r\n"])
    tail = CastTail(cast)
    tail.start_recent()
    text = streamed(tail)
    assert "an old screen" not in text and "filler line" not in text
    assert text.endswith("\x1b[H\x1b[2Jthe screen now\r\nmore of it\r\n")
    tail.close()


def test_the_terminal_modes_in_force_where_a_live_stream_starts_are_set_first(tmp_path):
    cast = tmp_path / "secondary-1.cast"
    long_cast(cast, ["the last line\r\n"], before=("\x1b[?7l\x1b[?25l\x1b[?1049h", "\x1b[1;20r\x1b[?25h"), mb=0.5)
    tail = CastTail(cast)
    tail.start_recent()
    left_out, rest = streamed(tail).split("\r\n", 1)
    assert rest.startswith("\x1b[?1049h\x1b[1;20r\x1b[?7l\x1b[?25h" + "filler line")  # the screen first, then its region
    tail.close()
    long_cast(cast, ["the last line\r\n"], before=("\x1b[?1049h\x1b[1;20r", "\x1bc"))
    tail = CastTail(cast)
    tail.start_recent()
    assert streamed(tail).split("\r\n", 1)[1].startswith("filler line")  # nothing set before a reset is in force
    tail.close()


def test_a_long_rendered_transcript_is_streamed_from_a_whole_json_line(tmp_path):
    header = json.loads(DROID_CAST.read_text().split("\n", 1)[0])
    events = [e[2] for e in map(json.loads, DROID_CAST.read_text().splitlines()[1:]) if e[1] == "o"]
    cast = tmp_path / "secondary-1.cast"
    long_cast(cast, events, header={**header, "orchestra": {"parser": "droid", "view": "rendered"}})
    tail = CastTail(cast, "rendered")
    assert tail.start_recent() > 0
    text = streamed(tail) + "".join(e[2] for e in tail.finish())
    assert "▸ \x1b[1mCreate\x1b[0m\x1b[36m routers/users.py" in text and '"type"' not in text
    tail.close()


def test_a_recording_so_far_is_served_up_to_its_last_whole_event(tmp_path):
    from orchestra.web.feeds import recorded_cast

    cast = tmp_path / "secondary-1.cast"
    whole = json.dumps({"version": 2, "width": 80, "height": 24}) + "\n" + '[0.1, "o", "done\\r\\n"]\n' * 5000
    cast.write_text(whole + '[0.2, "o", "being wri')  # the agent is writing its next event
    assert b"".join(recorded_cast(cast)).decode() == whole
