/* Promenade dashboard: service cards, live logs, banners and toasts.
 *
 * One WebSocket (/api/logs/stream?events=1&batch=1) brings the status document, state
 * changes, config events and log batches; /api/status is polled for CPU, memory and
 * uptime. The log view keeps at most MAX_DOM lines in the DOM and renders in
 * requestAnimationFrame batches, so a flooding service cannot freeze the page.
 */
(function () {
  "use strict";

  const Ansi = window.PromenadeAnsi;
  const MAX_DOM = 5000;        // lines in the DOM
  const MAX_BUFFER = 20000;    // lines kept in memory (re-filtering draws from these)
  const LINES_PER_FRAME = 1500;
  const CHUNK = 200;           // lines per DOM block; blocks off screen skip layout
  const INITIAL_TAIL = MAX_DOM;
  const POLL_MS = 2000;
  const TOAST_LIMIT = 6;

  const $ = (id) => document.getElementById(id);
  const el = {
    services: $("services"), empty: $("services-empty"), template: $("card-template"),
    configPath: $("config-path"), managerUptime: $("manager-uptime"), conn: $("conn"),
    restartAll: $("restart-all"), banner: $("banner"), bannerTitle: $("banner-title"),
    bannerMessage: $("banner-message"), bannerDetails: $("banner-details"),
    bannerClose: $("banner-close"), logService: $("log-service"), logFilter: $("log-filter"),
    autoscroll: $("autoscroll"), logClear: $("log-clear"), logStats: $("log-stats"),
    view: $("log-view"), jump: $("jump-latest"), toasts: $("toasts"), mutes: $("log-mutes"),
  };

  /* ---------------------------------------------------------------- services */

  const services = new Map();   // name -> {status, card, stateSeq, uptimeBase, uptimeAt}
  let statusSeq = 0;            // bus seq the last full status document reflects

  function fmtUptime(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.floor(seconds);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "—";
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
    if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
    return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
  }

  /* `5001`; `41234 auto` for a port picked at start (port: auto), `auto` before it. */
  function fmtPort(s) {
    if (!s.port_auto) return s.port ? String(s.port) : "—";
    return s.port ? `${s.port} auto` : "auto";
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function hue(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) % 360;
    return h;
  }

  function makeCard(name) {
    const card = el.template.content.firstElementChild.cloneNode(true);
    card.dataset.service = name;
    card.style.setProperty("--svc-hue", hue(name));
    card.querySelector(".name").textContent = name;
    card.querySelectorAll("button[data-action]").forEach((button) => {
      button.addEventListener("click", () => control(name, button.dataset.action));
    });
    return card;
  }

  function renderCard(entry) {
    const s = entry.status;
    const card = entry.card;
    card.dataset.status = s.status;
    card.dataset.health = s.health || "unknown";
    setText(card.querySelector(".status"), (s.status || "").replace("_", " ").toUpperCase());
    setText(card.querySelector(".health"),
      s.health && s.health !== "unknown" ? ` (${s.health})` : "");
    const url = card.querySelector(".url");
    const open = card.querySelector(".open");
    if (s.url) {
      if (url.getAttribute("href") !== s.url) { url.href = s.url; open.href = s.url; }
      setText(url, s.url);
      url.hidden = false;
      open.hidden = false;
    } else {
      setText(url, "—");
      url.removeAttribute("href");
      open.hidden = true;
    }
    setText(card.querySelector(".command"), s.command || "");
    card.querySelector(".command").title = s.command || "";
    setText(card.querySelector(".pid"), s.pid ? String(s.pid) : "—");
    setText(card.querySelector(".port"), fmtPort(s));
    card.querySelector(".port").title = s.port_auto
      ? "port: auto (a free port picked at each start; the service gets it as PORT)" : "";
    setText(card.querySelector(".restarts"), String(s.restart_count ?? 0));
    setText(card.querySelector(".exit"),
      s.last_exit_code === null || s.last_exit_code === undefined ? "—" : String(s.last_exit_code));
    setText(card.querySelector(".cpu"),
      s.cpu_percent === null || s.cpu_percent === undefined ? "—" : `${s.cpu_percent.toFixed(1)}%`);
    setText(card.querySelector(".mem"), fmtBytes(s.memory_bytes));
    renderWhy(card, s);
    const alive = ["starting", "running", "stopping"].includes(s.status);
    const busy = card.dataset.busy === "1";
    card.querySelector('[data-action="start"]').hidden = alive;
    card.querySelector('[data-action="stop"]').hidden = !alive;
    card.querySelectorAll("button[data-action]").forEach((b) => { b.disabled = busy; });
    renderUptime(entry);
  }

  /* Why the service is where it is: its status_reason, the "completed" badge of a task
   * that exited 0, "manual start" for autostart: false, and while pending the
   * dependencies it waits for with their condition. Text only, never HTML. */
  function renderWhy(card, s) {
    const reason = card.querySelector(".reason");
    setText(reason, s.status_reason || "");
    reason.hidden = !s.status_reason;
    card.querySelector(".tag.completed").hidden = !(s.status === "stopped" && s.completed);
    card.querySelector(".tag.manual").hidden = s.autostart !== false;
    const deps = card.querySelector(".deps");
    const names = s.status === "pending" ? (s.depends_on || []) : [];
    deps.hidden = names.length === 0;
    deps.replaceChildren();
    if (names.length === 0) return;
    deps.append("waits for ");
    names.forEach((dep, i) => {
      const [condition, met] = dependencyState(dep, (s.conditions || {})[dep]);
      const item = document.createElement("span");
      item.textContent = `${dep} (${condition})${met ? " ✓" : ""}`;
      item.className = met ? "dep met" : "dep";
      item.dataset.dep = dep;
      if (i) deps.append(", ");
      deps.append(item);
    });
  }

  /* A dependency's condition (the written one, or what the list form means: healthy
   * when it has a ready_check, else started) and whether its status meets it now. */
  function dependencyState(dep, written) {
    const entry = services.get(dep);
    const d = entry ? entry.status : {};
    const condition = written || (d.ready_check ? "healthy" : "started");
    const running = d.status === "running";
    const met = condition === "completed_successfully"
      ? d.status === "stopped" && d.completed === true
      : running && (condition !== "healthy" || d.health === "healthy");
    return [condition, met];
  }

  function renderUptime(entry) {
    const s = entry.status;
    let up = null;
    if (s.status === "running" && entry.uptimeBase !== null) {
      up = entry.uptimeBase + (performance.now() - entry.uptimeAt) / 1000;
    }
    setText(entry.card.querySelector(".uptime"), fmtUptime(up));
  }

  function setService(name, status) {
    let entry = services.get(name);
    if (!entry) {
      entry = { status, card: makeCard(name), stateSeq: 0, uptimeBase: null, uptimeAt: 0 };
      services.set(name, entry);
      el.services.appendChild(entry.card);
      addServiceOption(name);
    }
    entry.status = status;
    entry.uptimeBase = status.uptime_seconds ?? null;
    entry.uptimeAt = performance.now();
    renderCard(entry);
    for (const other of services.values()) {   // a pending card shows what it waits for
      const o = other.status;
      if (o.status === "pending" && (o.depends_on || []).includes(name)) renderWhy(other.card, o);
    }
    return entry;
  }

  function addServiceOption(name) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    el.logService.appendChild(option);
    addMuteChip(name);
  }

  function removeService(name) {
    const entry = services.get(name);
    if (!entry) return;
    entry.card.remove();
    services.delete(name);
    for (const option of el.logService.options) {
      if (option.value === name) option.remove();
    }
    for (const chip of el.mutes.querySelectorAll(".mute-chip")) {
      if (chip.dataset.service === name) chip.remove();
    }
  }

  /* A whole status document: from the WebSocket's first message or from a poll. */
  function applyStatusDocument(doc, fromPoll) {
    if (newRun(doc.run_id)) fromPoll = false;  // a restarted manager: take it whole
    const seq = doc.bus && typeof doc.bus.seq === "number" ? doc.bus.seq : 0;
    const names = Object.keys(doc.services || {});
    for (const name of names) {
      const fresh = doc.services[name];
      const entry = services.get(name);
      if (fromPoll && entry && entry.stateSeq > seq) {
        // A state event newer than this document already arrived: keep its state,
        // take only the measurements.
        Object.assign(entry.status, {
          cpu_percent: fresh.cpu_percent, memory_bytes: fresh.memory_bytes,
        });
        renderCard(entry);
      } else {
        setService(name, fresh);
      }
    }
    if (!fromPoll || seq >= statusSeq) {
      for (const name of [...services.keys()]) if (!names.includes(name)) removeService(name);
    }
    statusSeq = Math.max(statusSeq, seq);
    el.empty.hidden = services.size > 0;
    if (el.empty.hidden === false) el.empty.textContent = "No services.";
    setText(el.configPath, doc.config_path || "");
    managerUptime = { base: doc.manager_uptime_seconds, at: performance.now() };
    tickUptimes();
    if (doc.config_error) showConfigError(doc.config_error);
    else if (bannerKind === "invalid") hideBanner();
  }

  let managerUptime = { base: null, at: 0 };

  function tickUptimes() {
    if (managerUptime.base !== null && managerUptime.base !== undefined) {
      const up = managerUptime.base + (performance.now() - managerUptime.at) / 1000;
      setText(el.managerUptime, `up ${fmtUptime(up)}`);
    }
    for (const entry of services.values()) renderUptime(entry);
  }

  const TOAST_FOR = {
    running: ["success", (n) => `${n} is running`],
    stopped: ["info", (n) => `${n} stopped`],
    failed: ["error", (n, s) => `${n} failed${exitText(s)}`],
    gave_up: ["error", (n, s) => `${n} gave up after ${s.restart_count} restart(s)${exitText(s)}`],
    retrying: ["warning", (n, s) => `${n} crashed${exitText(s)} — retrying`],
  };

  function exitText(s) {
    return s.last_exit_code === null || s.last_exit_code === undefined
      ? "" : ` (exit code ${s.last_exit_code})`;
  }

  function applyState(msg) {
    if (msg.seq && msg.seq <= statusSeq) return; // already in the status document
    const name = msg.service;
    const before = services.get(name);
    const previous = before ? before.status.status : null;
    const previousHealth = before ? before.status.health : null;
    const entry = setService(name, msg.status);
    entry.stateSeq = msg.seq || 0;
    delete entry.card.dataset.busy;
    renderCard(entry);
    el.empty.hidden = true;
    const now = msg.status.status;
    if (now !== previous && TOAST_FOR[now]) {
      const [level, text] = TOAST_FOR[now];
      toast(text(name, msg.status), level,
        level === "error" || level === "warning" ? `trouble:${name}` : null);
      if (level === "error") flash(entry.card);
    } else if (msg.status.health === "unhealthy" && previousHealth !== "unhealthy") {
      toast(`${name} is unhealthy`, "warning");
    }
  }

  function flash(card) {
    card.classList.remove("flash");
    void card.offsetWidth; // restart the animation
    card.classList.add("flash");
  }

  async function api(method, path) {
    const response = await fetch(path, { method, headers: { Accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const err = body && body.error ? body.error : { message: response.statusText };
      throw new Error(err.message || `${method} ${path} failed (${response.status})`);
    }
    return body;
  }

  async function control(name, action) {
    const entry = services.get(name);
    if (entry) { entry.card.dataset.busy = "1"; renderCard(entry); }
    try {
      // The card changes with the state events that follow, not with this reply.
      await api("POST", `/api/services/${encodeURIComponent(name)}/${action}?wait=false`);
    } catch (err) {
      toast(`${action} ${name}: ${err.message}`, "error");
    } finally {
      if (entry) {
        // A state event re-enables the buttons; do it anyway if none comes.
        setTimeout(() => { delete entry.card.dataset.busy; renderCard(entry); }, 1500);
      }
    }
  }

  async function restartAll() {
    el.restartAll.disabled = true;
    try {
      const result = await api("POST", "/api/restart-all");
      toast(`Restarting ${result.services.length} service(s)`, "info");
    } catch (err) {
      toast(`Restart all: ${err.message}`, "error");
    } finally {
      setTimeout(() => { el.restartAll.disabled = false; }, 1000);
    }
  }

  async function poll() {
    try {
      applyStatusDocument(await api("GET", "/api/status"), true);
    } catch (err) {
      /* the connection indicator already says so */
    }
  }

  /* ------------------------------------------------------------ banner, toasts */

  let bannerKind = null;
  let bannerTimer = null;

  function showBanner(kind, title, message, details) {
    bannerKind = kind;
    el.banner.dataset.kind = kind;
    setText(el.bannerTitle, title);
    setText(el.bannerMessage, message || "");
    el.bannerDetails.hidden = !details;
    el.bannerDetails.textContent = details || "";
    el.banner.hidden = false;
    clearTimeout(bannerTimer);
    if (kind !== "invalid") bannerTimer = setTimeout(hideBanner, 10000);
  }

  function hideBanner() {
    el.banner.hidden = true;
    bannerKind = null;
  }

  function describeConfigError(error) {
    if (!error) return ["", ""];
    if (typeof error === "string") return [error, ""];
    const where = error.file ? `${error.file}${error.line ? ":" + error.line : ""}: ` : "";
    const problems = Array.isArray(error.problems) ? error.problems.join("\n") : "";
    return [`${where}${error.message || ""}`, problems];
  }

  function showConfigError(error) {
    const [message, details] = describeConfigError(error);
    showBanner("invalid", "Config invalid — still running the previous config.", message,
      details && details !== message ? details : "");
  }

  function applyConfigEvent(msg) {
    if (msg.event === "invalid") {
      showConfigError(msg.error);
    } else if (msg.event === "reloaded") {
      showBanner("reloaded", "Config reloaded.", msg.summary || "");
      poll();
    }
  }

  const toastsByKey = new Map();

  /* A toast; one with the same `key` (e.g. one service's failure, reported both by
   * its state change and by the manager's message) gains a line instead. */
  function toast(text, level, key) {
    const existing = key ? toastsByKey.get(key) : null;
    if (existing && existing.isConnected && level === "error" && existing.dataset.level !== "error") {
      existing.remove(); // a warning that became an error gets a fresh, sticky toast
    } else if (existing && existing.isConnected) {
      const body = existing.querySelector("span");
      if (!body.textContent.includes(text)) {
        const more = document.createElement("div");
        more.className = "detail";
        more.textContent = text;
        body.appendChild(more);
      }
      return;
    }
    const node = document.createElement("div");
    node.className = `toast ${level || "info"}`;
    node.dataset.level = level || "info";
    node.setAttribute("role", level === "error" ? "alert" : "status");
    const body = document.createElement("span");
    body.textContent = text;
    const close = document.createElement("button");
    close.className = "icon-btn";
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => node.remove());
    node.append(body, close);
    el.toasts.appendChild(node);
    if (key) toastsByKey.set(key, node);
    while (el.toasts.children.length > TOAST_LIMIT) el.toasts.firstElementChild.remove();
    // Errors stay until dismissed: a failing service must be impossible to miss.
    if (level !== "error") setTimeout(() => node.remove(), level === "warning" ? 8000 : 4000);
  }

  /* The manager's own messages: a line in the log view; warnings and errors a toast. */
  function applyManagerMessage(msg) {
    if (!msg.message) return;
    const level = msg.level || "info";
    addRecords([{
      seq: msg.seq, ts: new Date().toISOString(), service: "promenade",
      stream: level === "info" ? "stdout" : "stderr", text: msg.message,
      tag: level === "info" ? null : `[${level}]`,
      plain: Ansi.plainText(msg.message),
    }]);
    if (level === "warning" || level === "error") {
      // `service` names what the message is about (null: the manager itself)
      toast(msg.message, level, msg.service ? `trouble:${msg.service}` : null);
    }
  }

  /* ------------------------------------------------------------ manager runs */

  /* Every message names the manager run it comes from. A restarted manager counts its
   * seqs from 0 again, so everything this page keeps by seq (lines, the status seq,
   * the seq to resume from) belongs to the old run: drop it and take the new run's
   * status and backlog, or the page would wait for seqs the new run reaches much later. */
  let runId = null;

  function newRun(id) {
    if (!id || id === runId) return false;
    const restarted = runId !== null;
    runId = id;
    if (!restarted) return false;
    buffer = [];
    lastLogSeq = null;
    statusSeq = 0;
    for (const entry of services.values()) entry.stateSeq = 0;
    redraw();
    toast("the manager was restarted", "info");
    return true;
  }

  /* ----------------------------------------------------------------------- logs */

  let buffer = [];              // {seq, ts, service, stream, text, plain, segs?} or {gap}
  let pending = [];             // records waiting to be drawn
  let frameScheduled = false;
  let unseen = 0;               // lines that arrived while auto-scroll was paused
  let lastLogSeq = null;
  let domLines = 0;
  let filterService = "";
  let filterText = "";
  const timeCache = new Map();

  function shortTime(ts) {
    let t = timeCache.get(ts);
    if (t === undefined) {
      const d = new Date(ts);
      const p = (n, w = 2) => String(n).padStart(w, "0");
      t = isNaN(d) ? ts : `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
      if (timeCache.size > 2000) timeCache.clear();
      timeCache.set(ts, t);
    }
    return t;
  }

  function matches(rec) {
    if (rec.gap) return true;
    if (filterService) {
      if (rec.service !== filterService) return false;
    } else if (muted.has(rec.service)) {
      return false;   // choosing a muted service in the select still shows it
    }
    return !filterText || rec.plain.toLowerCase().includes(filterText);
  }

  /* Per-service mute: a chip per service hides its lines from this view only (the
   * lines are still received and kept, so unmuting shows them at once). The choice is
   * remembered in localStorage, per dashboard address. */
  const MUTE_KEY = "promenade.mutedServices";
  const muted = loadMuted();

  function loadMuted() {
    try {
      const saved = JSON.parse(localStorage.getItem(MUTE_KEY) || "[]");
      return new Set(Array.isArray(saved) ? saved.filter((n) => typeof n === "string") : []);
    } catch (e) {
      return new Set();   // storage disabled or a value we did not write
    }
  }

  function saveMuted() {
    try {
      localStorage.setItem(MUTE_KEY, JSON.stringify([...muted]));
    } catch (e) {
      /* storage disabled or full: the mute still holds for this page */
    }
  }

  function renderMuteChip(chip) {
    const on = muted.has(chip.dataset.service);
    chip.setAttribute("aria-pressed", on ? "true" : "false");
    chip.title = on ? `${chip.dataset.service} is muted in this view: click to show its lines`
      : `Mute ${chip.dataset.service} in this view`;
  }

  function addMuteChip(name) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "mute-chip";
    chip.dataset.service = name;
    chip.textContent = name;
    chip.style.setProperty("--svc-hue", hue(name));
    renderMuteChip(chip);
    el.mutes.appendChild(chip);
  }

  el.mutes.addEventListener("click", (e) => {
    const chip = e.target.closest(".mute-chip");
    if (!chip) return;
    const name = chip.dataset.service;
    if (muted.has(name)) muted.delete(name);
    else muted.add(name);
    saveMuted();
    renderMuteChip(chip);
    redraw();
  });

  function addRecords(records) {
    for (const rec of records) buffer.push(rec);
    if (buffer.length > MAX_BUFFER * 1.25) buffer = buffer.slice(-MAX_BUFFER);
    for (const rec of records) if (matches(rec)) pending.push(rec);
    if (pending.length > MAX_DOM) pending = pending.slice(-MAX_DOM);
    schedule();
  }

  function addBatch(msg) {
    const records = new Array(msg.lines.length);
    for (let i = 0; i < msg.lines.length; i++) {
      const text = msg.lines[i];
      records[i] = {
        seq: msg.first_seq + i, ts: msg.timestamp, service: msg.service,
        stream: msg.stream, text, plain: Ansi.plainText(text),
      };
    }
    if (msg.seq !== undefined) lastLogSeq = Math.max(lastLogSeq ?? 0, msg.seq);
    addRecords(records);
  }

  function addGap(msg) {
    const why = msg.reason === "bus" ? "the web process fell behind the manager"
      : "the browser fell behind";
    addRecords([{ gap: true, text: `⋯ ${msg.dropped} line(s) skipped: ${why} ⋯` }]);
  }

  function schedule() {
    if (!frameScheduled) {
      frameScheduled = true;
      requestAnimationFrame(flush);
    }
  }

  function lineNode(rec, needle) {
    const row = document.createElement("div");
    if (rec.gap) {
      row.className = "line gap";
      row.textContent = rec.text;
      return row;
    }
    row.className = rec.stream === "stderr" ? "line stderr" : "line";
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = shortTime(rec.ts);
    ts.title = rec.ts;
    const svc = document.createElement("span");
    svc.className = "svc";
    svc.textContent = `[${rec.service}]`;
    svc.style.setProperty("--svc-hue", hue(rec.service));
    row.append(ts, svc);
    if (rec.stream === "stderr") {
      const tag = document.createElement("span");
      tag.className = "tag-stderr";
      tag.textContent = rec.tag || "[stderr]";
      row.appendChild(tag);
    }
    const msg = document.createElement("span");
    msg.className = "msg";
    if (!rec.segs) rec.segs = Ansi.parse(rec.text).segs;
    Ansi.render(msg, rec.segs, needle ? Ansi.findMatches(rec.plain, needle) : []);
    row.appendChild(msg);
    return row;
  }

  function flush() {
    frameScheduled = false;
    if (!el.autoscroll.checked) {
      if (pending.length) {
        unseen += pending.length;
        pending = [];
        el.jump.hidden = false;
        setText(el.jump, `↓ ${unseen.toLocaleString()} new line(s)`);
      }
      updateStats();
      return;
    }
    const batch = pending.length > LINES_PER_FRAME ? pending.splice(0, LINES_PER_FRAME) : pending;
    if (batch === pending) pending = [];
    appendLines(batch);
    el.view.scrollTop = el.view.scrollHeight;
    updateStats();
    if (pending.length) schedule();
  }

  /* Lines live in blocks of CHUNK; `content-visibility: auto` lets the browser skip
   * the layout of blocks off screen, which is what keeps a flood cheap. */
  function appendLines(records) {
    let i = 0;
    while (i < records.length) {
      let chunk = el.view.lastElementChild;
      if (!chunk || chunk.childElementCount >= CHUNK) {
        chunk = document.createElement("div");
        chunk.className = "chunk";
        el.view.appendChild(chunk);
      }
      const room = Math.min(CHUNK - chunk.childElementCount, records.length - i);
      const fragment = document.createDocumentFragment();
      for (let k = 0; k < room; k++) fragment.appendChild(lineNode(records[i + k], filterText));
      chunk.appendChild(fragment);
      i += room;
    }
    domLines += records.length;
    trimDom();
  }

  function trimDom() {
    let excess = domLines - MAX_DOM;
    while (excess > 0 && el.view.firstElementChild) {
      const first = el.view.firstElementChild;
      const n = first.childElementCount;
      if (n <= excess) {
        first.remove();
        excess -= n;
        domLines -= n;
      } else {
        const range = document.createRange();
        range.setStart(first, 0);
        range.setEnd(first, excess);
        range.deleteContents();
        domLines -= excess;
        excess = 0;
      }
    }
  }

  /* Redraw from the buffer: after a filter change, a clear, or leaving pause. */
  function redraw() {
    pending = [];
    unseen = 0;
    el.jump.hidden = true;
    const chosen = [];
    for (let i = buffer.length - 1; i >= 0 && chosen.length < MAX_DOM; i--) {
      if (matches(buffer[i])) chosen.push(buffer[i]);
    }
    chosen.reverse();
    el.view.textContent = "";
    domLines = 0;
    pending = chosen;
    schedule();
  }

  function updateStats() {
    const shown = domLines;
    let text = filterService || filterText
      ? `${shown.toLocaleString()} matching`
      : `${shown.toLocaleString()} line(s)`;
    if (muted.size && !filterService) text += ` · ${muted.size} muted`;
    setText(el.logStats, el.autoscroll.checked ? text : `${text} · paused`);
  }

  function setAutoscroll(on) {
    if (el.autoscroll.checked === on) return;
    el.autoscroll.checked = on;
    if (on) redraw();
    else updateStats();
  }

  function atBottom() {
    const v = el.view;
    return v.scrollHeight - v.scrollTop - v.clientHeight < 24;
  }

  /* Pausing follows what the user does (wheel, keys, dragging the scrollbar, touch),
   * not every scroll event: blocks being laid out also move the scroll position. */
  let userScrolling = false;
  function userScrolled() {
    if (el.autoscroll.checked && !atBottom()) setAutoscroll(false);
  }
  el.view.addEventListener("wheel", (e) => {
    if (e.deltaY < 0 && el.view.scrollHeight > el.view.clientHeight) setAutoscroll(false);
  }, { passive: true });
  el.view.addEventListener("keydown", (e) => {
    if (["PageUp", "ArrowUp", "Home"].includes(e.key)) setAutoscroll(false);
  });
  el.view.addEventListener("pointerdown", () => { userScrolling = true; });
  el.view.addEventListener("touchstart", () => { userScrolling = true; }, { passive: true });
  window.addEventListener("pointerup", () => { userScrolling = false; });
  window.addEventListener("touchend", () => { userScrolling = false; });
  el.view.addEventListener("scroll", () => {
    if (userScrolling) userScrolled();
    // Coming back to the bottom resumes.
    if (!el.autoscroll.checked && unseen > 0 && atBottom()) setAutoscroll(true);
  }, { passive: true });
  el.autoscroll.addEventListener("change", () => {
    if (el.autoscroll.checked) redraw();
    else updateStats();
  });
  el.jump.addEventListener("click", () => setAutoscroll(true));
  el.logService.addEventListener("change", () => { filterService = el.logService.value; redraw(); });
  let filterTimer = null;
  el.logFilter.addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      filterText = el.logFilter.value.trim().toLowerCase();
      redraw();
    }, 120);
  });
  el.logClear.addEventListener("click", () => { buffer = []; redraw(); });

  /* ------------------------------------------------------ the log files: history */

  /* The buffer holds what arrived since the page opened (and the manager's backlog).
   * Older lines come from the log files: with one service chosen, scrolling to the
   * top asks GET /api/services/<name>/history for what precedes its oldest line here
   * (`skip` leaves out the lines of that same millisecond the page has already).
   * "Search files" greps the files of the chosen service, or of every one. */
  const OLDER_PAGE = 500;
  const SEARCH_LIMIT = 1000;
  const noOlder = new Set();    // services whose files hold nothing older
  let loadingOlder = false;
  let showingSearch = false;    // the view holds search results, not the buffer

  function fileRecord(name, line) {
    return {
      ts: line.timestamp, service: name, text: line.text, plain: Ansi.plainText(line.text),
      stream: line.stream === "stdout" || line.stream === "info" ? "stdout" : "stderr",
      tag: ["warning", "error"].includes(line.stream) ? `[${line.stream}]` : null,
    };
  }

  function historyPath(name, params) {
    const query = new URLSearchParams(params).toString();
    return `/api/services/${encodeURIComponent(name)}/history?${query}`;
  }

  async function loadOlder() {
    const name = filterService;
    if (!name || showingSearch || loadingOlder || noOlder.has(name)
        || buffer.length >= MAX_BUFFER) return;
    const room = Math.min(OLDER_PAGE, MAX_DOM - domLines);
    if (room <= 0) return;
    const first = buffer.find((r) => !r.gap && r.service === name);
    const before = first ? first.ts : new Date().toISOString();
    const skip = first ? buffer.filter((r) => r.service === name && r.ts === before).length : 0;
    loadingOlder = true;
    try {
      const doc = await api("GET", historyPath(name, { before, skip, limit: room }));
      if (!doc.lines.length) {
        noOlder.add(name);
        return;
      }
      if (name !== filterService || showingSearch) return;   // the user moved on
      const records = doc.lines.map((line) => fileRecord(name, line));
      buffer = records.concat(buffer);
      prependLines(records.filter(matches));
    } catch (err) {
      toast(`older lines: ${err.message}`, "warning");
    } finally {
      loadingOlder = false;
    }
  }

  /* Older lines above what is drawn, the scroll position kept on the same line. */
  function prependLines(records) {
    if (!records.length) return;
    const height = el.view.scrollHeight;
    const chunk = document.createElement("div");
    chunk.className = "chunk";
    for (const rec of records) chunk.appendChild(lineNode(rec, filterText));
    el.view.insertBefore(chunk, el.view.firstElementChild);
    domLines += records.length;
    el.view.scrollTop += el.view.scrollHeight - height;
    updateStats();
  }

  /* Only what the user does at the top asks for more (a redraw also scrolls to 0):
   * a wheel or a key upwards there (a view too short to scroll never scrolls), or
   * dragging the scrollbar to the top. */
  function atTop() { return el.view.scrollTop === 0 && filterService; }
  el.view.addEventListener("wheel", (e) => {
    if (e.deltaY < 0 && atTop()) loadOlder();
  }, { passive: true });
  el.view.addEventListener("keydown", (e) => {
    if (["PageUp", "ArrowUp", "Home"].includes(e.key) && atTop()) loadOlder();
  });
  el.view.addEventListener("scroll", () => { if (userScrolling && atTop()) loadOlder(); });

  function escapeRegex(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  /* The filter's text searched in the log files (case-insensitive, as the filter is):
   * the results replace the view until auto-scroll is turned back on. */
  async function searchFiles() {
    const needle = el.logFilter.value.trim();
    if (!needle) {
      toast("type what to search for in the filter first", "info");
      return;
    }
    clearTimeout(filterTimer);    // a filter redraw due now would wipe the results
    filterText = needle.toLowerCase();
    const names = filterService ? [filterService]
      : [...services.keys(), "promenade"];
    const params = { grep: escapeRegex(needle), ignore_case: "true", limit: SEARCH_LIMIT };
    try {
      const docs = await Promise.all(names.map((name) => api("GET", historyPath(name, params))));
      const found = docs.flatMap((doc) => doc.lines.map((line) => fileRecord(doc.service, line)));
      found.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
      const shown = found.slice(-MAX_DOM);
      setAutoscroll(false);
      showingSearch = true;
      el.view.textContent = "";
      domLines = 0;
      const header = { gap: true, text: `⋯ ${shown.length.toLocaleString()} line(s) from the `
        + `log files matching “${needle}” (turn Auto-scroll on to go back) ⋯` };
      appendLines([header, ...shown]);
      setText(el.logStats, `${shown.length.toLocaleString()} found in the files`);
    } catch (err) {
      toast(`search: ${err.message}`, "warning");
    }
  }

  $("log-search").addEventListener("click", searchFiles);
  el.autoscroll.addEventListener("change", () => { showingSearch = false; });

  /* ------------------------------------------------------------------ the socket */

  let socket = null;
  let retryMs = 500;

  function setConn(state, text) {
    el.conn.dataset.state = state;
    setText(el.conn, text);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const from = lastLogSeq === null ? `tail=${INITIAL_TAIL}`
      : `since=${lastLogSeq}&run=${encodeURIComponent(runId ?? "")}`;
    socket = new WebSocket(`${scheme}://${location.host}/api/logs/stream?events=1&batch=1&${from}`);
    socket.addEventListener("open", () => { retryMs = 500; setConn("live", "live"); });
    socket.addEventListener("message", (event) => {
      let messages;
      try { messages = JSON.parse(event.data); } catch (e) { return; }
      if (!Array.isArray(messages)) messages = [messages];
      for (const msg of messages) dispatch(msg);
    });
    socket.addEventListener("close", () => {
      setConn("down", "reconnecting…");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 5000);
    });
  }

  function dispatch(msg) {
    newRun(msg.run_id);
    switch (msg.type) {
      case "logs": addBatch(msg); break;
      case "log": addBatch({ ...msg, first_seq: msg.seq, lines: [msg.line] }); break;
      case "status": applyStatusDocument(msg.status, false); break;
      case "state": applyState(msg); break;
      case "config": applyConfigEvent(msg); break;
      case "manager": applyManagerMessage(msg); break;
      case "gap": addGap(msg); break;
      default: break;
    }
  }

  el.restartAll.addEventListener("click", restartAll);
  el.bannerClose.addEventListener("click", hideBanner);
  setInterval(tickUptimes, 1000);
  setInterval(poll, POLL_MS);
  el.empty.hidden = false;
  connect();

  // For tests and the curious: a read-only view of the page's state.
  window.promenade = {
    get bufferedLines() { return buffer.length; },
    get domLines() { return domLines; },
    get lastLogSeq() { return lastLogSeq; },
    get runId() { return runId; },
  };
})();
