// orchestra web: the runs page and a run's page. Everything comes from the server's read-only
// WebSockets (it reads the run folders); nothing the page does reaches an agent.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const query = (extra) => "?token=" + encodeURIComponent(TOKEN) + (extra || "");
const wsURL = (path, extra) => (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path + query(extra);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function setConn(ok, text) {
  const conn = document.getElementById("conn");
  conn.textContent = text || (ok ? "live" : "reconnecting…");
  conn.className = "conn " + (ok ? "ok" : "down");
}

// A JSON WebSocket that comes back after a drop (the server may restart; the page goes on).
function socket(path, onMessage) {
  let delay = 500;
  function open() {
    const ws = new WebSocket(wsURL(path));
    ws.onopen = () => { delay = 500; setConn(true); };
    ws.onmessage = (e) => onMessage(JSON.parse(e.data));
    ws.onclose = (e) => {
      if (e.code === 1008) { setConn(false, "refused: " + (e.reason || "reload with the printed URL")); return; }
      setConn(false);
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  open();
}

const cost = (v) => (typeof v === "number" ? "$" + (v < 1 ? v.toFixed(4) : v.toFixed(2)) : "–");
function duration(s) {
  if (typeof s !== "number") return "–";
  if (s < 60) return s.toFixed(1) + "s";
  const m = Math.floor(s / 60), r = Math.round(s % 60);
  return m < 60 ? `${m}m ${String(r).padStart(2, "0")}s` : `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}
const badge = (status) => el("span", {class: "badge s-" + (status || "unknown"), text: status || "?"});

// ---- the runs page ---------------------------------------------------------------------------

function runsPage() {
  const tbody = document.querySelector("#runs tbody");
  const rows = new Map();

  function row(run) {
    const agents = el("td", {class: "agents"});
    for (const a of run.agents) {
      agents.append(el("span", {class: "agent", title: a.phase ? "phase: " + a.phase : null},
        `${a.role || "?"} ${a.agent || "?"} `, badge(a.status)), " ");
    }
    const files = el("td", {class: "files", title: run.files.join("\n")},
      run.files_count ? `${run.files_count}: ${run.files.slice(0, 3).join(", ")}${run.files_count > 3 ? ", …" : ""}` : "–");
    return el("tr", {"data-run-id": run.run_id, "data-status": run.status},
      el("td", {}, el("a", {href: "/run/" + encodeURIComponent(run.run_id) + query(), text: run.run_id})),
      el("td", {class: "status", title: run.reason || null}, badge(run.status)),
      agents,
      el("td", {class: "num", text: cost(run.total_cost_usd)}),
      el("td", {class: "num", text: duration(run.duration_s)}),
      files,
      el("td", {class: "task", title: run.task, text: run.task}));
  }

  socket("/ws/runs", (msg) => {
    if (msg.all) { tbody.textContent = ""; rows.clear(); }
    for (const id of msg.gone) { const tr = rows.get(id); if (tr) tr.remove(); rows.delete(id); }
    const batch = document.createDocumentFragment();
    for (const run of msg.runs) {  // newest first
      const tr = row(run);
      const old = rows.get(run.run_id);
      rows.set(run.run_id, tr);
      if (old) { old.replaceWith(tr); continue; }
      if (msg.all) { batch.append(tr); continue; }
      const after = [...tbody.children].find((r) => r.dataset.runId < run.run_id);
      tbody.insertBefore(tr, after || null);
    }
    tbody.append(batch);
    document.getElementById("empty").hidden = rows.size > 0;
  });
}

// ---- a run's page ----------------------------------------------------------------------------

function runPage() {
  const runId = decodeURIComponent(location.pathname.split("/").pop());
  document.getElementById("run-id").textContent = runId;
  document.getElementById("home").href = "/" + query();
  document.title = "Orchestra: " + runId;
  const cards = new Map();  // transcript name -> its card

  function card(a) {
    const key = a.cast || a.role;
    if (cards.has(key)) return cards.get(key);
    const c = {key, view: a.view || "raw", speed: 1, mode: null};
    c.title = el("h2", {});
    c.facts = el("p", {class: "facts muted"});
    c.ended = el("p", {class: "ended"});
    c.files = el("ul", {class: "files"});
    c.errors = el("ul", {class: "errors"});
    c.latest = el("p", {class: "latest muted"});
    c.term = el("div", {class: "term"});
    const controls = el("div", {class: "controls"});
    if ((a.views || []).length > 1) {
      const views = el("select", {class: "view", title: "what the terminal shows"});
      for (const v of a.views) views.append(el("option", {value: v, text: v, selected: v === c.view ? "" : null}));
      views.onchange = () => { c.view = views.value; c.mode = null; update(c, c.agent, c.live); };
      controls.append("view ", views, " ");
    }
    c.speedBox = el("select", {class: "speed", title: "playback speed"});
    for (const s of [0.5, 1, 2, 4, 8]) c.speedBox.append(el("option", {value: s, text: s + "×", selected: s === 1 ? "" : null}));
    c.speedBox.onchange = () => { c.speed = Number(c.speedBox.value); c.mode = null; update(c, c.agent, c.live); };
    c.speedLabel = el("span", {}, "speed ", c.speedBox);
    c.earlierBox = el("button", {class: "earlier", type: "button"});
    c.earlierBox.onclick = () => { c.earlier = !c.earlier; c.mode = null; update(c, c.agent, c.live); };
    controls.append(c.speedLabel, " ", c.earlierBox);
    c.node = el("article", {class: "agent", "data-cast": key},
      c.title, c.facts, c.ended, c.files, c.errors, c.latest, controls, c.term);
    document.getElementById("agents").append(c.node);
    cards.set(key, c);
    return c;
  }

  // A live terminal starts at a recent point of its transcript, not its first byte (the server picks
  // it: a tab fed 20 MB at once froze for a minute); a recording first shows its last screen (a poster
  // the server draws from that same point) and is loaded, then fed from its start, only when played.
  function player(c, a, live) {
    if (c.player) { try { c.player.dispose(); } catch (e) { /* already gone */ } }
    c.player = c.term.player = null;
    c.term.textContent = "";
    c.term.dataset.mode = live ? "live" : "playback";
    c.term.dataset.view = c.view;
    const view = "&view=" + encodeURIComponent(c.view);
    const cast = `${encodeURIComponent(runId)}/${encodeURIComponent(a.cast)}`;
    const made = c.made = (c.made || 0) + 1;  // a later call replaces this player while its poster is fetched
    const create = (source, options) => {
      if (made !== c.made) return;
      c.player = AsciinemaPlayer.create(source, c.term, {fit: "width", terminalFontSize: "13px", ...options});
      c.term.player = c.player;  // for scripts (and tests) driving the page: pause, seek, getCurrentTime
    };
    if (live) {
      create({driver: "websocket", url: wsURL(`/ws/cast/${cast}`, view), bufferTime: 0}, {autoPlay: true});
      return;
    }
    const recording = `/cast/${cast}.cast` + query(view);
    const playback = {idleTimeLimit: 2, speed: c.speed};
    fetch(`/screen/${cast}` + query(view)).then((r) => (r.ok ? r.json() : null)).catch(() => null)
      .then((screen) => create(recording, screen ? {...playback, cols: screen.width, rows: screen.height,
                                                    poster: "data:text/plain," + screen.text}
                                                 : {...playback, poster: "npt:99999"}));
  }

  function update(c, a, live) {
    c.agent = a;
    c.live = live;
    c.node.dataset.status = a.status || "";
    c.title.replaceChildren(el("span", {class: "role", text: a.role || "?"}), " ", el("span", {class: "name", text: a.agent || "?"}),
      " ", badge(a.status), ...(a.phase && a.status === "running" ? [el("span", {class: "phase", text: a.phase})] : []));
    const facts = [`cost ${cost(a.cost_usd)}${a.cost_source === "estimated" ? " (estimated)" : ""}`, `time ${duration(a.duration_s)}`];
    if (a.tmux_target) facts.push("tmux " + a.tmux_target);
    if (a.branch) facts.push("branch " + a.branch);
    c.facts.textContent = facts.join(" · ");
    const ended = a.ended_by || a.reason;
    c.ended.textContent = ended && a.status !== "running" ? "ended: " + (typeof ended === "string" ? ended : JSON.stringify(ended)) : "";
    c.files.replaceChildren(...(a.files_modified || []).map((f) => el("li", {text: f})));
    c.errors.replaceChildren(...(a.errors || []).map((e) => el("li", {text: e})));
    c.latest.textContent = a.status === "running" && a.latest ? "latest: " + a.latest : "";
    if (!live) c.earlier = false;
    const playing = !live || c.earlier;  // the recording, or (earlier output) the recording so far
    c.speedLabel.hidden = !playing;
    c.earlierBox.hidden = !live;
    c.earlierBox.textContent = c.earlier ? "back to live" : "earlier output";
    c.earlierBox.title = c.earlier ? "" : "the recording so far: play, pause, seek";
    if (!a.cast) { c.term.textContent = "(no transcript)"; return; }
    const mode = live ? (c.earlier ? "so far" : "live") : "playback";
    if (c.mode !== mode) { c.mode = mode; player(c, a, !playing); }
  }

  socket("/ws/run/" + encodeURIComponent(runId), (run) => {
    if (run.error) { document.getElementById("task").textContent = run.error; return; }
    document.body.dataset.status = run.status;
    document.getElementById("status").replaceWith(Object.assign(badge(run.status), {id: "status"}));
    document.getElementById("task").textContent = run.task || "(task not recorded)";
    document.getElementById("facts").textContent =
      `started ${run.started_at || "?"} · cost ${cost(run.total_cost_usd)} · time ${duration(run.duration_s)}` +
      (run.tmux_session ? ` · tmux attach -t ${run.tmux_session}` : "");
    const reason = document.getElementById("reason");
    reason.hidden = !run.reason;
    reason.textContent = run.reason || "";
    const agents = [run.primary, ...(run.secondaries || [])].filter((a) => a && typeof a === "object");
    for (const a of agents) update(card(a), a, run.status === "running" && a.status === "running");
    const finished = run.status !== "running";
    document.getElementById("done").hidden = !finished;
    if (finished) {
      const lines = agents.map((a) => el("li", {},
        `${a.role} ${a.agent}: `, badge(a.status),
        ` ${(a.files_modified || []).length} files, ${cost(a.cost_usd)}, ${duration(a.duration_s)}` + (a.reason ? " — " + a.reason : "")));
      for (const m of run.merges || []) lines.push(el("li", {text: `branch ${m.branch}: ${m.merged ? "merged" : m.merges_cleanly ? "merges cleanly" : "conflicts: " + (m.conflicts || []).join(", ")}`}));
      if (run.merge_stopped) lines.push(el("li", {text: "merge stopped " + run.merge_stopped}));
      document.getElementById("summary").replaceChildren(el("ul", {}, ...lines));
      const reply = document.getElementById("reply");
      reply.hidden = document.getElementById("reply-title").hidden = !run.primary_reply;
      reply.textContent = run.primary_reply || "";
    }
  });
}

if (document.body.dataset.page === "runs") runsPage();
else runPage();
