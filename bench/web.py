"""orchestra web, measured: a table, not a timed test.

    python bench/web.py [--agents 8] [--seconds 10] [--runs 1000] [--mb 200] [--big-mb 20] [--before REV]

1. Lag: N agents, each printing a stamped line every 50 ms, live at once; for each line, from the agent
   writing it (its stamp) to the next frame painted after the page's terminal took it (a MutationObserver
   in the page, then requestAnimationFrame: not a poll from Python), with every watched terminal on
   screen (the viewport as tall as the page): p50, p99, max. Two ways to watch them: N runs (`orchestra
   run --cmd`), a chromium tab on each run's page; and one run of N secondaries (`delegate --parallel N`)
   on its one page. Then the same N runs to a plain WebSocket client (the server's own part).
2. The runs page of a directory with 1,000 runs (copies of a demo run's record): from navigation to
   1,000 rows in the table (timed from Python's goto and by the page from its navigation's start), with
   a server that has served nothing yet, then again.
3. The server's memory (VmRSS) while one transcript grows to --mb MB, streamed live to a client
   (raw, then rendered): it should not grow with the transcript.
4. Opening the page of an agent that has written --big-mb MB: from navigation to its current last line
   painted, and the longest the page's main thread was busy at once (a tab that freezes), live and once
   it is done; with the server and page of --before (a git revision, main by default: its files taken
   with `git archive`) and of this checkout, in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestra.procs import process_started  # noqa: E402
from trees import build_native  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
AGENT = r"""
import sys, time
n, every = int(sys.argv[1]), 0.05
for i in range(n):
    print(f"tick {i} {time.time():.6f}", flush=True)
    time.sleep(every)
print("BENCH-DONE", flush=True)
"""


def start_server(workdir: Path, code: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """`orchestra web` on workdir, of the orchestra whose source is in code."""
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "web", "--port", "0", "--workdir", str(workdir),
                             "--token", TOKEN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=code, env={**os.environ, "PYTHONPATH": str(code)})
    return proc, proc.stdout.readline().split()[-1]


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


def rss_kb(pid: int) -> int:
    import psutil  # (VmRSS on Linux; a Mac has no /proc)

    return psutil.Process(pid).memory_info().rss // 1024


# A line counts once the frame after its terminal took it is painted: a requestAnimationFrame callback
# runs just before that frame is drawn, and a task queued from it runs once it is.
LAGS_JS = """(n) => {
    window.lags = []; const seen = new Set(); let stamps = [], frame = false;
    const painted = (batch) => { const now = Date.now() / 1000; for (const s of batch) window.lags.push(now - s); };
    const drawn = () => { frame = false; const batch = stamps; stamps = []; setTimeout(() => painted(batch), 0); };
    const terms = [...document.querySelectorAll('.term')].slice(0, n);
    terms.forEach((term, k) => new MutationObserver(() => {
        for (const m of term.textContent.matchAll(/tick (\\d+) (\\d+\\.\\d+)/g)) {
            if (!seen.has(k + ':' + m[1])) { seen.add(k + ':' + m[1]); stamps.push(Number(m[2])); }
        }
        if (stamps.length && !frame) { frame = true; requestAnimationFrame(drawn); }
    }).observe(term, {subtree: true, childList: true, characterData: true}));
}"""


def all_on_screen(page) -> None:
    """The viewport as tall as the page: every terminal on it is laid out and painted."""
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1300, "height": max(900, height)})


def start_gated(work: Path, agent: Path, gate: Path, seconds: float, procs: list) -> str:
    """`orchestra run` of one bench agent that waits on the gate (so all start at once, once watched);
    its run id, once its transcript exists."""
    runs_dir = work / ".orchestra" / "runs"
    before = set(os.listdir(runs_dir)) if runs_dir.exists() else set()
    cmd = f"sh -c 'read _ < {gate}; exec {sys.executable} {agent} {int(seconds / 0.05)}'"
    procs.append(subprocess.Popen([sys.executable, "-m", "orchestra", "run", "--cmd", cmd, "--done",
                                   "^BENCH-DONE", "--task", "bench", "--no-tmux"], cwd=work,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    while not runs_dir.exists() or not set(os.listdir(runs_dir)) - before:
        time.sleep(0.01)
    run_id = (set(os.listdir(runs_dir)) - before).pop()
    while not list((runs_dir / run_id).glob("*.cast")):
        time.sleep(0.01)
    return run_id


def lag(browser, agents: int, seconds: float) -> list[float]:
    work = Path(tempfile.mkdtemp(prefix="orchestra-bench-web-"))
    agent = work / "agent.py"
    agent.write_text(AGENT)
    server, url = start_server(work)
    base = url.split("/?")[0]
    procs, pages = [], []
    try:
        gate = work / "gate"
        os.mkfifo(gate)
        for _ in range(agents):
            run_id = start_gated(work, agent, gate, seconds, procs)
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(f"{base}/run/{run_id}?token={TOKEN}")
            page.wait_for_selector('.term[data-mode="live"] .ap-term', timeout=30000)
            all_on_screen(page)
            page.evaluate(LAGS_JS, 1)
            pages.append(page)
        with open(gate, "w") as fh:  # a reader per agent: each gets its line, all start
            fh.write("go\n" * agents)
        for p in procs:
            p.wait(seconds + 60)
        lags = []
        for page in pages:
            lags += page.evaluate("() => window.lags")
            page.close()
        return lags
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


def lag_one_page(browser, agents: int, seconds: float) -> list[float]:
    """The same lag with the N agents in one run (`delegate --parallel N`), watched on its one page."""
    work = Path(tempfile.mkdtemp(prefix="orchestra-bench-web-"))
    repo, gate, agent = work / "repo", work / "gate", work / "agent.py"
    agent.write_text(AGENT)
    os.mkfifo(gate)
    repo.mkdir()
    for args in (["init", "-q"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    config = work / "orchestra.yaml"
    config.write_text(json.dumps({"agents": {"ticker": {
        "command": ["sh", "-c", f"read _ < {gate}; exec {sys.executable} {agent} {int(seconds / 0.05)}"],
        "completion": "^BENCH-DONE", "parser": "generic", "timeout": seconds + 120}}}))
    server, url = start_server(repo)
    base = url.split("/?")[0]
    runs_dir = repo / ".orchestra" / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "orchestra", "delegate", "--to", "ticker", "--parallel", str(agents),
                             "--no-analyze", "--task", "bench", "--no-tmux", "--config", str(config)], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not runs_dir.exists() or not os.listdir(runs_dir):
            time.sleep(0.01)
        (run_id,) = os.listdir(runs_dir)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{base}/run/{run_id}?token={TOKEN}")
        page.wait_for_function(f"() => document.querySelectorAll('.term[data-mode=live] .ap-term').length >= {agents}",
                               timeout=60000)
        all_on_screen(page)
        page.evaluate(LAGS_JS, agents)
        with open(gate, "w") as fh:
            fh.write("go\n" * agents)
        proc.wait(seconds + 120)
        lags = page.evaluate("() => window.lags")
        page.close()
        return lags
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        stop(server)
        subprocess.run(["git", "worktree", "prune"], cwd=repo, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def lag_socket(agents: int, seconds: float) -> list[float]:
    """The same lag to a WebSocket client of the server's (no browser): the server's own part of it."""
    import re
    import threading

    from websockets.sync.client import connect

    work = Path(tempfile.mkdtemp(prefix="orchestra-bench-web-"))
    agent = work / "agent.py"
    agent.write_text(AGENT)
    server, url = start_server(work)
    host = url.split("//")[1].split("/")[0]
    runs_dir, gate = work / ".orchestra" / "runs", work / "gate"
    os.mkfifo(gate)
    procs, casts, lags = [], [], []
    try:
        for _ in range(agents):
            run_id = start_gated(work, agent, gate, seconds, procs)
            casts.append((run_id, next((runs_dir / run_id).glob("*.cast")).stem))

        def client(run_id: str, name: str) -> None:
            with connect(f"ws://{host}/ws/cast/{run_id}/{name}?token={TOKEN}",
                         subprotocols=["v2.asciicast"]) as ws:
                ws.recv(timeout=30)
                for message in ws:
                    now = time.time()
                    lags.extend(now - float(s) for s in re.findall(r"tick \d+ (\d+\.\d+)", json.loads(message)[2]))

        threads = [threading.Thread(target=client, args=c) for c in casts]
        for t in threads:
            t.start()
        time.sleep(1)  # the clients connected
        with open(gate, "w") as fh:
            fh.write("go\n" * agents)
        for p in procs:
            p.wait(seconds + 60)
        for t in threads:
            t.join(30)
        return sorted(lags)
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


def runs_page(browser, count: int) -> tuple[tuple[float, float], tuple[float, float]]:
    work = Path(tempfile.mkdtemp(prefix="orchestra-bench-web-"))
    try:
        subprocess.run([sys.executable, "-m", "orchestra", "delegate", "--demo", "--task", "a run", "--no-tmux"],
                       cwd=work, capture_output=True, check=True)
        runs = work / ".orchestra" / "runs"
        (model,) = list(runs.iterdir())
        record = json.loads((model / "run.json").read_text())
        for i in range(count - 1):
            run_id = f"2026{i // 40000 + 1:02d}{i // 1440 % 28 + 1:02d}-{i // 60 % 24:02d}{i % 60:02d}00-{i:06x}"
            folder = runs / run_id
            folder.mkdir()
            (folder / "run.json").write_text(json.dumps({**record, "run_id": run_id, "task": f"task number {i}"}))
        server, url = start_server(work)
        try:
            times = []
            for _ in range(2):
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                start = time.perf_counter()
                page.goto(url)
                shown = page.wait_for_function(  # the page's own clock: from its navigation's start
                    f"() => document.querySelectorAll('#runs tbody tr').length >= {count} && performance.now()",
                    timeout=60000, polling="raf")
                times.append((time.perf_counter() - start, shown.json_value() / 1000))
                page.close()
            return times[0], times[1]
        finally:
            stop(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def memory(mb: int, view: str) -> list[tuple[int, int]]:
    from websockets.sync.client import connect

    work = Path(tempfile.mkdtemp(prefix="orchestra-bench-web-"))
    run_id = "20261129-120000-abcdef"
    folder = work / ".orchestra" / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "run_id": run_id, "status": "running", "pid": os.getpid(), "pid_started": process_started(os.getpid()),
        "task": "grow", "secondaries": [{"agent": "demo-droid", "role": "secondary-1", "status": "running",
                                         "transcript": f".orchestra/runs/{run_id}/secondary-1.cast"}]}))
    cast = folder / "secondary-1.cast"
    header = {"version": 2, "width": 120, "height": 40, "orchestra": {"parser": "droid", "view": "rendered"}}
    line = json.dumps({"type": "tool_call", "toolName": "Execute", "parameters": {"command": "x" * 200}})
    chunk = (line + "\r\n") * 16  # about 4 KB an event, as a pty read gives
    server, url = start_server(work)
    host = url.split("//")[1].split("/")[0]
    samples = []
    try:
        with open(cast, "wb") as fh:
            fh.write(json.dumps(header).encode() + b"\n")
            fh.flush()
            with connect(f"ws://{host}/ws/cast/{run_id}/secondary-1?token={TOKEN}&view={view}",
                         max_size=None, subprotocols=["v2.asciicast"]) as ws:
                ws.recv(timeout=10)
                samples.append((0, rss_kb(server.pid)))
                written, step = 0, mb * 1024 * 1024 // 8
                for k in range(1, 9):
                    event = (json.dumps([float(k), "o", chunk]) + "\n").encode()
                    while written < k * step:
                        fh.write(event * 64)
                        written += len(event) * 64
                    fh.write((json.dumps([k + 0.5, "o", f"step {k}\r\n"]) + "\n").encode())  # the step's last event
                    fh.flush()
                    while json.loads(ws.recv(timeout=60))[0] < k + 0.5:  # until the client has had it all
                        pass
                    samples.append((written // (1024 * 1024), rss_kb(server.pid)))
        return samples
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


# Installed before the page's own scripts: the time (from navigation start) of the first frame painted
# with `text` in a terminal, and the longest task the main thread ran (the longest the tab was frozen).
PAINTED_JS = """(text) => {
    window.longest = 0;
    new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.longest = Math.max(window.longest, e.duration);
    }).observe({type: "longtask", buffered: true});
    const seen = new MutationObserver(() => {
        const term = document.querySelector('.term');
        if (!term || !term.textContent.includes(text)) return;
        seen.disconnect();
        requestAnimationFrame(() => setTimeout(() => { window.painted = performance.now(); }, 0));
    });
    document.addEventListener("DOMContentLoaded", () =>
        seen.observe(document.body, {subtree: true, childList: true, characterData: true}));
}"""
LAST_LINE = "the current last line"


def source_of(rev: str, into: Path) -> Path:
    """orchestra's files at a git revision (`git archive`: nothing in the repository is changed)."""
    into.mkdir()
    files = ["orchestra", "pyproject.toml"]
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{rev}:setup.py"], capture_output=True).returncode == 0:
        files.append("setup.py")  # (its C extension, built as pip would)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *files], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    build_native(into)
    return into


def big_page(browser, mb: int, before: str) -> dict:
    """(code, live or done) -> (seconds from navigation to the last line painted or None, longest task s)."""
    work = Path(tempfile.mkdtemp(prefix="orchestra-bench-web-"))
    run_id = "20261129-120000-abcdef"
    folder = work / ".orchestra" / "runs" / run_id
    folder.mkdir(parents=True)
    agent = {"agent": "flood", "role": "agent", "status": "running", "transcript": f".orchestra/runs/{run_id}/flood.cast"}
    record = {"run_id": run_id, "status": "running", "pid": os.getpid(), "pid_started": process_started(os.getpid()),
              "task": "write a lot", "primary": None, "secondaries": [agent]}
    with open(folder / "flood.cast", "w") as fh:  # colored lines, a pty read (about 4 KB) an event
        fh.write(json.dumps({"version": 2, "width": 120, "height": 40}) + "\n")
        line = "line {} of a long output, \x1b[32min colour\x1b[0m, and more words to make it longer\r\n"
        n = written = 0
        while written < mb * 1024 * 1024:
            event = json.dumps([n / 100, "o", "".join(line.format(n * 50 + i) for i in range(50))]) + "\n"
            fh.write(event)
            n, written = n + 1, written + len(event)
        fh.write(json.dumps([n / 100, "o", LAST_LINE + "\r\n"]) + "\n")
    results = {}
    try:
        old = source_of(before, work / "before")
        for state in ("live", "done"):
            if state == "done":
                record = {**record, "status": "completed", "secondaries": [{**agent, "status": "completed"}]}
            (folder / "run.json").write_text(json.dumps(record))
            for name, code in ((f"{before}", old), ("this checkout", ROOT)):
                server, url = start_server(work, code)
                page = browser.new_page(viewport={"width": 1300, "height": 1000})
                try:
                    page.add_init_script(f"({PAINTED_JS})({json.dumps(LAST_LINE)})")
                    page.goto(url.replace("/?", f"/run/{run_id}?"))
                    try:
                        page.wait_for_function("() => window.painted", timeout=120000, polling=200)
                        shown = page.evaluate("window.painted") / 1000
                    except Exception:  # not in 120 s: said as such
                        shown = None
                    results[name, state] = (shown, page.evaluate("window.longest") / 1000)
                finally:
                    page.close()
                    stop(server)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--big-mb", type=int, default=20)
    ap.add_argument("--before", default="main", help="the git revision measured beside this checkout (4.)")
    ap.add_argument("--only-big", action="store_true", help="measure 4. only")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        big = big_page(browser, args.big_mb, args.before)
        if args.only_big:
            browser.close()
            return print_big(big, args.big_mb)
        lags = sorted(lag(browser, args.agents, args.seconds))
        one_page = sorted(lag_one_page(browser, args.agents, args.seconds))
        cold, warm = runs_page(browser, args.runs)
        browser.close()
    print("| measure | result | target |")
    print("| --- | --- | --- |")
    for what, got in ((f"on the page (chromium, a tab per run), {args.agents} agents live", lags),
                      (f"on the page (chromium, one run of {args.agents} agents, `delegate --parallel`)", one_page),
                      (f"to a WebSocket client (no browser), {args.agents} agents live",
                       lag_socket(args.agents, args.seconds))):
        p99 = got[min(len(got) - 1, int(len(got) * 0.99))]
        print(f"| line written -> {what} ({len(got)} lines) | p50 {statistics.median(got) * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms, max {got[-1] * 1000:.1f} ms | p99 < 100 ms |")
    print(f"| runs page, {args.runs} runs, to every row shown (from goto / from the page's navigation start) | "
          f"{cold[0]:.2f} / {cold[1]:.2f} s (first load), {warm[0]:.2f} / {warm[1]:.2f} s (second load) | < 1 s |")
    for view in ("raw", "rendered"):
        samples = memory(args.mb, view)
        shown = ", ".join(f"{m} MB: {kb / 1024:.1f}" for m, kb in samples)
        print(f"| server RSS (MB) as a transcript grows, streamed live {view} | {shown} | flat |")
    print()
    print_big(big, args.big_mb)


def print_big(big: dict, mb: int) -> None:
    print(f"| the page of an agent that wrote {mb} MB | code | its last line painted, from navigation | "
          "longest the tab was busy at once |")
    print("| --- | --- | --- | --- |")
    for (code, state), (shown, longest) in big.items():
        what = "live" if state == "live" else "done (its recording)"
        print(f"| {what} | {code} | {f'{shown:.2f} s' if shown is not None else 'not within 120 s'} | {longest:.2f} s |")


if __name__ == "__main__":
    main()
