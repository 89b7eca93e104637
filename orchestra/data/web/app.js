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
const badge = (status) => el("span", {class: "badge s-" + (status || "unknown"), text: (status || "?").replace(/_/g, " ")});
// a run's badge says its verdict (the server's words: a stopped merge is not a green "completed")
const verdictBadge = (v) => el("span", {class: "badge k-" + v.kind, text: v.label});
const count = (n, one, many) => `${n} ${n === 1 ? one : many || one + "s"}`;
// acceptance checks (verified: true, false, or null when none ran); the failed one's end of output on hover
function checksMark(verified, checks) {
  if (verified !== true && verified !== false) return null;
  const failed = (checks || []).filter((c) => c && c.exit_code !== 0);
  const title = failed.map((c) => `${c.command} → ${c.timed_out ? "timed out" : "exit " + c.exit_code}\n${c.output || ""}`).join("\n\n");
  return el("span", {class: "checks " + (verified ? "k-ok" : "k-error"), title: title || null,
    text: verified ? "verified ✓" : "checks failed ✗"});
}

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
      el("td", {class: "status", title: run.verdict.text || null}, verdictBadge(run.verdict), " ", checksMark(run.verified)),
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
    c.facts = el("span", {class: "facts muted"});
    c.ended = el("p", {class: "ended"});
    c.files = el("ul", {class: "files chips"});
    c.errors = el("ul", {class: "errors"});
    c.latest = el("p", {class: "latest muted"});
    c.term = el("div", {class: "term"});
    const controls = el("div", {class: "controls"});
    if ((a.views || []).length > 1) {
      const views = el("select", {class: "view", title: "what the terminal shows"});
      for (const v of a.views) views.append(el("option", {value: v, text: v, selected: v === c.view ? "" : null}));
      views.onchange = () => { c.view = views.value; c.mode = null; update(c, c.agent, c.live); };
      controls.append(el("label", {}, "view ", views));
    }
    c.speedBox = el("select", {class: "speed", title: "playback speed"});
    for (const s of [0.5, 1, 2, 4, 8]) c.speedBox.append(el("option", {value: s, text: s + "×", selected: s === 1 ? "" : null}));
    c.speedBox.onchange = () => { c.speed = Number(c.speedBox.value); c.mode = null; update(c, c.agent, c.live); };
    c.speedLabel = el("label", {}, "speed ", c.speedBox);
    c.earlierBox = el("button", {class: "earlier", type: "button"});
    c.earlierBox.onclick = () => { c.earlier = !c.earlier; c.mode = null; update(c, c.agent, c.live); };
    controls.append(c.speedLabel, " ", c.earlierBox);
    c.node = el("article", {class: "agent", id: "agent-" + key, "data-cast": key},
      el("div", {class: "agent-head"}, c.title, c.facts, controls), c.ended, c.files, c.errors, c.latest, c.term);
    document.getElementById("agents").append(c.node);
    cards.set(key, c);
    return c;
  }

  // The terminal as small as what it shows: a finished one gets the rows its recording used (the server
  // counts them), a live one all of its own; past MAX_ROWS the font shrinks instead, so no terminal is
  // taller than about MAX_ROWS lines of 13px text. Its width follows the recording's, scaled to fit.
  const MAX_ROWS = 36, MIN_ROWS = 4, CHAR_PX = 7.83;  // a 13px monospace character's width
  function termLayout(c, a, live) {
    const cols = a.cols || 120, height = a.rows || 40;
    const used = (a.rows_used || {})[c.view];
    const rows = live || !used ? height : Math.min(height, Math.max(MIN_ROWS, used));
    const scale = Math.min(1, MAX_ROWS / rows);
    c.term.style.maxWidth = Math.ceil(cols * CHAR_PX * scale) + 2 + "px";
    c.term.dataset.rows = rows;
    clearInterval(c.clipping);
    c.term.style.height = "";
    if (live) c.clipping = setInterval(() => clipLive(c), 500);
    return {fit: "width", terminalFontSize: "13px", cols, rows, controls: live ? "auto" : true};
  }

  // A live terminal has all its rows (what the agent draws next may go anywhere), but shows them only
  // down to the lowest one written so far: it grows as the agent writes, up to its whole height.
  function clipLive(c) {
    const term = c.term.querySelector(".ap-term");
    if (!term) return;
    const lines = term.querySelectorAll(".ap-line");
    let last = 0;
    lines.forEach((line, i) => { if (line.textContent.trim()) last = i; });
    const box = term.getBoundingClientRect(), pad = box.top - c.term.getBoundingClientRect().top;
    const shown = Math.min(lines.length, Math.max(MIN_ROWS, last + 2));  // and the cursor's row below it
    c.term.style.height = Math.ceil(2 * pad + shown * box.height / Math.max(lines.length, 1)) + "px";
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
    const layout = termLayout(c, a, live);
    const create = (source, options) => {
      if (made !== c.made) return;
      c.player = AsciinemaPlayer.create(source, c.term, {...layout, ...options});
      c.term.player = c.player;  // for scripts (and tests) driving the page: pause, seek, getCurrentTime
    };
    if (live) {
      create({driver: "websocket", url: wsURL(`/ws/cast/${cast}`, view), bufferTime: 0}, {autoPlay: true});
      return;
    }
    const recording = `/cast/${cast}.cast` + query(view);
    const playback = {idleTimeLimit: 2, speed: c.speed};
    fetch(`/screen/${cast}` + query(view)).then((r) => (r.ok ? r.json() : null)).catch(() => null)
      .then((screen) => create(recording, screen ? {...playback, poster: "data:text/plain," + screen.text}
                                                 : {...playback, poster: "npt:99999"}));
  }

  function update(c, a, live) {
    c.agent = a;
    c.live = live;
    c.node.dataset.status = a.status || "";
    c.title.replaceChildren(el("span", {class: "role", text: a.role || "?"}), " ", el("span", {class: "name", text: a.agent || "?"}),
      " ", badge(a.status), ...(a.phase && a.status === "running" ? [el("span", {class: "phase", text: a.phase})] : []),
      " ", checksMark(a.verified, a.checks));
    const facts = [a.cost_usd == null ? "cost not reported" : cost(a.cost_usd) + (a.cost_source === "estimated" ? " (estimated)" : ""),
      duration(a.duration_s)];
    if (a.budget_text) facts.push("budget: " + a.budget_text);
    if (a.branch) facts.push("branch " + a.branch);
    if (a.tmux_target) facts.push("tmux " + a.tmux_target);
    c.facts.textContent = facts.join(" · ");
    c.ended.replaceChildren(...ended(a));
    c.ended.className = "ended" + (a.ended ? " k-" + a.ended.kind : "");
    c.files.replaceChildren(...(a.files_modified || []).map((f) => el("li", {text: f})));
    c.errors.replaceChildren(...(a.errors || []).map((e) => el("li", {text: e})));
    // the live terminal shows the latest line as it is written (the record's is up to a second older)
    c.latest.textContent = a.status === "running" && a.latest && !a.cast ? "latest: " + a.latest : "";
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

  // What ended an agent, in the server's words (summary.ended_by_words), coloured by what it means.
  function ended(a) {
    if (!a.ended) return a.status !== "running" && a.reason ? [a.reason] : [];
    const parts = [el("strong", {text: a.ended.words, title: a.ended.detail || null})];  // the pattern, on hover
    if (a.reason && a.status !== "completed" && !(a.errors || []).includes(a.reason)) parts.push(el("span", {text: a.reason}));
    if (a.ended.line) parts.push(el("span", {class: "on", title: a.ended.line, text: "on: " + a.ended.line}));
    return parts;
  }

  function shown(node, on) { node.hidden = !on; return on; }

  function overview(run, agents) {
    const v = run.verdict || {label: run.status, kind: "unknown", text: run.reason || ""};
    document.getElementById("status").replaceWith(Object.assign(verdictBadge(v), {id: "status"}));
    const verdict = document.getElementById("verdict");
    verdict.textContent = v.text;
    verdict.className = "verdict k-" + v.kind;
    document.getElementById("task").textContent = run.task || "(task not recorded)";
    const files = run.files || [];
    const facts = [["cost", run.total_cost_usd == null ? "not reported" : cost(run.total_cost_usd)], ["time", duration(run.duration_s)], ["files", files.length ? count(files.length, "file") : "none"]];
    if (run.started_at) facts.push(["started", new Date(run.started_at).toLocaleString()]);
    if (run.verified === true || run.verified === false) facts.push(["checks", run.verified ? "verified ✓" : "failed ✗"]);
    if (run.tmux_session && run.status === "running") facts.push(["watch", `tmux attach -t ${run.tmux_session}`]);
    document.getElementById("facts").replaceChildren(...facts.map(([k, val]) => el("div", {class: "fact"}, el("dt", {text: k}), el("dd", {text: val}))));
    const fileList = document.getElementById("run-files");
    if (shown(fileList, files.length > 0)) fileList.replaceChildren(...files.map((f) => el("li", {text: f})));
    const next = document.getElementById("next");
    if (shown(next, (run.next_steps || []).length > 0)) next.querySelector("ol").replaceChildren(...run.next_steps.map((s) => el("li", {}, el("code", {text: s}))));
    const branches = document.getElementById("branches");
    if (shown(branches, (run.merges || []).length > 0)) {
      branches.querySelector("ul").replaceChildren(...run.merges.map((m) => el("li", {class: "k-" + (m.kind || "unknown")},
        el("code", {text: m.branch}), " ", el("span", {class: "state", text: m.state}))));
    }
    const roster = document.getElementById("roster");
    if (shown(roster, agents.length > 1)) {
      roster.tBodies[0].replaceChildren(...agents.map((a) => el("tr", {},
        el("td", {}, el("a", {href: "#agent-" + (a.cast || a.role)}, el("span", {class: "role", text: a.role + " "}), a.agent || "?")),
        el("td", {}, badge(a.status)),
        el("td", {class: a.ended ? "k-" + a.ended.kind : "muted", text: a.ended ? a.ended.words : a.phase || "–"}),
        el("td", {class: "num", text: String((a.files_modified || []).length)}),
        el("td", {class: "num", text: cost(a.cost_usd)}),
        el("td", {class: "num", text: duration(a.duration_s)}))));
    }
    const reply = document.getElementById("reply");
    if (shown(document.getElementById("reply-box"), Boolean(run.primary_reply))) reply.textContent = run.primary_reply;
  }

  socket("/ws/run/" + encodeURIComponent(runId), (run) => {
    if (run.error) { document.getElementById("task").textContent = run.error; return; }
    document.body.dataset.status = run.status;
    document.body.dataset.verdict = (run.verdict || {}).label || run.status;
    const agents = [run.primary, ...(run.secondaries || [])].filter((a) => a && typeof a === "object");
    overview(run, agents);
    for (const a of agents) update(card(a), a, run.status === "running" && a.status === "running");
    for (const r of agents.flatMap((a) => (Array.isArray(a.fix_rounds) ? a.fix_rounds : []))) update(card(r), r, false);
  });
}

if (document.body.dataset.page === "runs") runsPage();
else runPage();
