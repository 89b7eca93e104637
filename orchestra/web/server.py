"""The web server of `orchestra web`: Starlette on uvicorn, read-only, behind a token.

Pages: `/` (the runs) and `/run/<id>` (one run: a terminal per agent). Their data come over
WebSockets that the server feeds by polling the run folders: `/ws/runs` (rows, as they change),
`/ws/run/<id>` (the record, as it changes) and `/ws/cast/<id>/<name>` (an agent's transcript from
a recent point, its first byte if it is short (web/recent.py), then as it grows, in asciinema's live
v2.asciicast protocol). A transcript plays from `/cast/<id>/<name>.cast` (raw as recorded so far, or
rendered as it is sent); `/screen/<id>/<name>` is its last screen, the poster a player shows before
it loads the recording.

Every request and WebSocket needs the token (403 without); a WebSocket whose Origin is not this
server is refused; served on a loopback address, a request must name a loopback host (a DNS
rebinding page cannot reach it). What a browser sends on a WebSocket is read and dropped.
"""
from __future__ import annotations

import asyncio
import hmac
import html
import ipaddress
import json
import os
import socket
import sys
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..config import DATA_DIR
from ..errors import OrchestraError
from ..views import RAW, RENDERED
from .feeds import CastTail, RunsIndex, agent_running, cast_path, last_screen, recorded_cast, rendered_cast, run_page

STATIC = DATA_DIR / "web"
WATCH_EVERY = 0.005  # seconds between two looks at the size of the transcripts being streamed: the page's lag
RECORD_EVERY = 0.25  # ... at a run's record (its page's status, files, cost)
RUNS_EVERY = 0.5  # ... at the run folders (the runs page)
ALIVE_EVERY = 0.5  # how often a live transcript's stream asks whether its agent is done
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
HEADERS = [(b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer"),
           (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"content-security-policy", CSP.encode())]


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cookie(header: str, name: str) -> str:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return unquote(value)
    return ""


class Guard:
    """ASGI middleware: the token on every request and WebSocket, a WebSocket's Origin, the Host."""

    def __init__(self, app, token: str, loopback: bool):
        self.app, self.token, self.loopback = app, token, loopback

    @staticmethod
    def cookie_name(scope) -> str:
        """One cookie a server: cookies are kept per host, not per port, and two servers may share a host."""
        server = scope.get("server") or ("", 0)
        return f"orchestra_token_{server[1] if len(server) > 1 else 0}"

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        in_url = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        cookie = self.cookie_name(scope)
        given = in_url or _cookie(headers.get("cookie", ""), cookie)
        host = headers.get("host", "")
        why = ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            why = "a token is needed: use the URL orchestra web printed"
        elif self.loopback and not is_loopback(urlsplit(f"//{host}").hostname or ""):
            why = "this server answers requests for a loopback address only"
        elif scope["type"] == "websocket" and "origin" in headers and urlsplit(headers["origin"]).netloc != host:
            why = "a WebSocket from another origin is refused"
        if why:
            if scope["type"] == "websocket" and "origin" in headers:
                print(f"orchestra web: refused a WebSocket from {headers['origin'][:200]}: {why}", file=sys.stderr,
                      flush=True)
            if scope["type"] == "websocket":
                await receive()  # websocket.connect; a close before accepting is a 403 to the client
                await send({"type": "websocket.close", "code": 1008, "reason": why})
            else:
                await send({"type": "http.response.start", "status": 403, "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"), *HEADERS]})
                await send({"type": "http.response.body", "body": f"403 Forbidden: {why}\n".encode()})
            return

        # a browser that came with the token keeps it as a cookie: the addresses run and delegate print
        # (and every log that holds them) need no token, and the token is in no URL after the first
        remember = [(b"set-cookie", f"{cookie}={quote(self.token, safe='')}; Path=/; HttpOnly; SameSite=Strict"
                     .encode("latin-1"))] if in_url else []

        async def guarded_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS, *remember]}
            await send(message)

        await self.app(scope, receive, guarded_send if scope["type"] == "http" else send)


class Growth:
    """Wakes the streams waiting on a transcript when it grows. One task looks at the size of each
    transcript a stream waits on (one os.stat a file, however many viewers) every WATCH_EVERY, and only
    while one waits: so a line reaches the page within a few ms, and an idle server does nothing."""

    def __init__(self, every: float = WATCH_EVERY):
        self.every = every
        self.waiting: dict[asyncio.Future, tuple[str, int]] = {}
        self.task: Optional[asyncio.Task] = None

    async def wait(self, path: str, size: int, timeout: float) -> None:
        """Until the file at path is no longer `size` bytes long, or timeout seconds."""
        done = asyncio.get_running_loop().create_future()
        self.waiting[done] = (path, size)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._watch())
        try:
            await asyncio.wait({done}, timeout=timeout)
        finally:
            self.waiting.pop(done, None)

    async def _watch(self) -> None:
        while self.waiting:
            sizes: dict[str, int] = {}
            for done, (path, size) in list(self.waiting.items()):
                if path not in sizes:
                    try:
                        sizes[path] = os.stat(path).st_size
                    except OSError:
                        sizes[path] = -1
                if sizes[path] != size and not done.done():
                    done.set_result(None)
            await asyncio.sleep(self.every)


def make_app(workdir: Path, token: str, loopback: bool = True):
    workdir = Path(workdir).resolve()
    index = RunsIndex(workdir, every=RUNS_EVERY / 2)
    index.scan()  # every record read once before the first page asks (1,000 runs: about 0.5 s here)
    growth = Growth()

    def page(name: str):
        text = (STATIC / name).read_text(encoding="utf-8").replace("__TOKEN__", html.escape(quote(token, safe="")))
        text = text.replace("__WORKDIR__", html.escape(str(workdir)))  # the runs page says which directory it serves

        async def handler(request):
            return HTMLResponse(text)
        return handler

    # The pages' few files, read once: the first request for one does not pay for a thread pool and
    # mimetypes' set-up (about 0.25 s here), nor any request for a look at the disk.
    types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
    static = {str(p.relative_to(STATIC)): (p.read_bytes(), types.get(p.suffix, "text/plain"))
              for p in STATIC.rglob("*") if p.is_file()}

    async def static_file(request):
        found = static.get(request.path_params["path"])
        if found is None:
            return Response("not found", status_code=404)
        return Response(found[0], media_type=found[1])

    async def api_runs(request):
        index.scan()
        return JSONResponse(sorted(index.rows.values(), key=lambda r: r["run_id"], reverse=True))

    async def api_run(request):
        try:
            return JSONResponse(run_page(workdir, request.path_params["run_id"]))
        except OrchestraError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def cast_file(request):
        try:
            path = cast_path(workdir, request.path_params["run_id"], request.path_params["name"])
        except OrchestraError as exc:
            return Response(str(exc), status_code=404)
        if request.query_params.get("view") == RENDERED:
            return StreamingResponse(rendered_cast(path), media_type="application/x-asciicast")
        return StreamingResponse(recorded_cast(path), media_type="application/x-asciicast")

    async def screen(request):
        view = RENDERED if request.query_params.get("view") == RENDERED else RAW
        try:
            path = cast_path(workdir, request.path_params["run_id"], request.path_params["name"])
            shown = await asyncio.to_thread(last_screen, path, view)
        except (OrchestraError, OSError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return Response(json.dumps(shown), media_type="application/json")  # (ASCII: bytes that were not UTF-8 pass)

    async def ws_runs(ws: WebSocket):
        async def feed(send):
            sent: dict = {}
            first = True
            while True:
                index.scan()
                changed, gone = index.since(sent)
                if first or changed or gone:
                    await send(json.dumps({"runs": changed, "gone": gone, "all": first}))
                first = False
                await asyncio.sleep(RUNS_EVERY)
        await serve_socket(ws, feed)

    async def ws_run(ws: WebSocket):
        run_id = ws.path_params["run_id"]

        async def feed(send):
            last = None
            while True:
                try:
                    record = run_page(workdir, run_id)
                except OrchestraError as exc:
                    record = {"error": str(exc)}
                if record != last:
                    await send(json.dumps(record))
                    last = record
                await asyncio.sleep(RECORD_EVERY)
        await serve_socket(ws, feed)

    async def ws_cast(ws: WebSocket):
        run_id, name = ws.path_params["run_id"], ws.path_params["name"]
        view = RENDERED if ws.query_params.get("view") == RENDERED else RAW
        try:
            tail = CastTail(cast_path(workdir, run_id, name), view)
        except (OrchestraError, OSError, ValueError):
            await ws.close(code=1008)
            return
        try:
            await asyncio.to_thread(tail.start_recent)  # (looking back for the modes in force reads the file)
        except (OSError, ValueError):
            tail.close()
            await ws.close(code=1008)
            return

        async def feed(send):
            await send(json.dumps(tail.start()))
            loop = asyncio.get_running_loop()
            asked = 0.0
            while True:
                events = tail.read()
                for event in events:
                    await send(json.dumps(event))
                if events:
                    continue  # more may be there already (a long transcript is sent a chunk at a time)
                now = loop.time()
                if now - asked >= ALIVE_EVERY:
                    asked = now
                    if not agent_running(workdir, run_id, name):
                        for event in tail.read() + tail.finish():  # what came just before it ended
                            await send(json.dumps(event))
                        return  # then closed with 1000: the player says the stream ended
                await growth.wait(str(tail.path), tail.fh.tell(), ALIVE_EVERY)

        try:
            await serve_socket(ws, feed, subprotocol="v2.asciicast")
        finally:
            tail.close()

    routes = [
        Route("/", page("runs.html")),
        Route("/run/{run_id}", page("run.html")),
        Route("/api/runs", api_runs),
        Route("/api/run/{run_id}", api_run),
        Route("/cast/{run_id}/{name}.cast", cast_file),
        Route("/screen/{run_id}/{name}", screen),
        WebSocketRoute("/ws/runs", ws_runs),
        WebSocketRoute("/ws/run/{run_id}", ws_run),
        WebSocketRoute("/ws/cast/{run_id}/{name}", ws_cast),
        Route("/static/{path:path}", static_file),
    ]
    return Guard(Starlette(routes=routes), token, loopback)


async def serve_socket(ws: WebSocket, feed: Callable, subprotocol: Optional[str] = None) -> None:
    """Accept, then run feed(send) until it returns (close 1000) or the browser goes; what the browser
    sends is read and dropped (read-only), which is also how its going is noticed at once."""
    await ws.accept(subprotocol=subprotocol)

    async def drain():
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass

    sender = asyncio.ensure_future(feed(ws.send_text))
    receiver = asyncio.ensure_future(drain())
    try:
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver):
            task.cancel()
    if sender in done and sender.exception() is None:
        try:
            await ws.close(code=1000)
        except (RuntimeError, WebSocketDisconnect):
            pass
    elif sender in done and not isinstance(sender.exception(), (WebSocketDisconnect, OSError, RuntimeError)):
        raise sender.exception()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a port in use is a clear error and port 0 picks one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise OrchestraError(f"cannot serve on {host}:{port}: {exc.strerror or exc} (--port N for another port, "
                             "--port 0 for any free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(workdir: Path, sock: socket.socket, token: str, loopback: bool,
          on_ready: Callable[[], None] = lambda: None) -> None:
    """Run the server on sock until SIGINT or SIGTERM."""
    import uvicorn

    app = make_app(workdir, token, loopback)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1,
                            ws_ping_interval=20, ws_ping_timeout=20)
    server = uvicorn.Server(config)

    async def run():
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            on_ready()
        await task

    asyncio.run(run())
