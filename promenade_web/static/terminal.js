/* Promenade dashboard: a terminal panel per service (xterm.js, vendored).
 *
 * Each service card gets a "Terminal" button; the panel shows the service's last log
 * lines (dimmed, for context: a prompt printed before it opened), then its raw output
 * live from /api/services/<name>/terminal (binary frames, byte for byte) and, for the
 * client that has the service's keyboard, sends keystrokes back (binary frames) and
 * the panel's size (text frames). The page token rendered into this page by the server
 * is what lets the socket type at all; without it the terminal is read-only.
 * It only adds to the page: app.js owns the cards, this script watches for them.
 */
(function () {
  "use strict";

  const tokenMeta = document.querySelector('meta[name="promenade-token"]');
  const token = tokenMeta ? tokenMeta.content : "";
  const encoder = new TextEncoder();
  const RECENT = 20;   // log lines shown for context when a panel opens
  let open = null;   // {name, ws, term, panel}

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function addButtons(root) {
    for (const card of root.querySelectorAll(".card[data-service]")) {
      const actions = card.querySelector(".card-actions");
      if (!actions || actions.querySelector(".terminal-open")) continue;
      const button = el("button", "btn terminal-open", "⌨ Terminal");
      button.type = "button";
      button.title = "Open a terminal attached to this service";
      button.addEventListener("click", () => openTerminal(card.dataset.service));
      actions.appendChild(button);
    }
  }

  function buildPanel(name) {
    const panel = el("section", "terminal-panel");
    panel.setAttribute("aria-label", `Terminal: ${name}`);
    const head = el("div", "terminal-head");
    head.appendChild(el("strong", "terminal-title", `Terminal: ${name}`));
    const state = el("span", "terminal-state", "connecting…");
    head.appendChild(state);
    const take = el("button", "btn subtle terminal-take", "Take keyboard");
    take.type = "button";
    take.hidden = true;
    head.appendChild(take);
    const close = el("button", "icon-btn terminal-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Close the terminal");
    head.appendChild(close);
    const screen = el("div", "terminal-screen");
    panel.append(head, screen);
    document.body.appendChild(panel);
    return {panel, state, take, close, screen};
  }

  function fit(term, screen) {
    // xterm.js draws cells of a fixed size; without its fit addon, estimate from the
    // panel and a measured cell (the renderer's own dimensions once it has drawn).
    const probe = el("span", "terminal-probe", "W".repeat(10));
    screen.appendChild(probe);
    const cell = probe.getBoundingClientRect();
    probe.remove();
    const cols = Math.max(20, Math.floor((screen.clientWidth - 16) / (cell.width / 10 || 8)));
    const rows = Math.max(5, Math.floor((screen.clientHeight - 8) / (cell.height || 17)));
    term.resize(cols, rows);
    return {rows, cols};
  }

  async function recent(name, term) {
    try {
      const reply = await fetch(`/api/services/${encodeURIComponent(name)}/logs?tail=${RECENT}`);
      if (!reply.ok) return;
      const body = await reply.json();
      for (const entry of body.lines) term.write(`\x1b[2m${entry.line}\x1b[0m\r\n`);
    } catch (err) {
      // no context then: the live stream still comes
    }
  }

  async function openTerminal(name) {
    if (open) closeTerminal();
    if (!window.Terminal) return;
    const ui = buildPanel(name);
    const term = new window.Terminal({convertEol: true, cursorBlink: true, fontSize: 13,
                                      scrollback: 5000});
    term.open(ui.screen);
    const size = fit(term, ui.screen);
    open = {name, ws: null, term, panel: ui.panel};
    ui.close.addEventListener("click", closeTerminal);
    await recent(name, term);
    if (!open || open.term !== term) return;   // closed meanwhile
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = token ? `?token=${encodeURIComponent(token)}` : "";
    const ws = new WebSocket(
      `${scheme}//${location.host}/api/services/${encodeURIComponent(name)}/terminal${query}`);
    ws.binaryType = "arraybuffer";
    const session = {name, ws, term, panel: ui.panel, writer: false};
    open = session;

    const sendSize = () => {
      if (session.writer && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({type: "resize", rows: size.rows, cols: size.cols}));
      }
    };
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        term.write(new Uint8Array(event.data));
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "attached" || message.type === "keyboard") {
        const was = session.writer;
        session.writer = message.writer;
        ui.take.hidden = message.writer || !message.can_type;
        ui.state.textContent = message.writer ? "attached: typing goes to the service"
          : message.can_type ? "read-only: another client has the keyboard"
          : "read-only";
        ui.panel.dataset.writer = message.writer ? "1" : "0";
        if (message.writer && !was) sendSize();
      } else if (message.type === "error") {
        ui.state.textContent = message.message;
      }
    });
    ws.addEventListener("close", () => {
      ui.state.textContent = "disconnected";
      ui.panel.dataset.writer = "0";
      session.writer = false;
    });
    term.onData((data) => {
      if (session.writer && ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
    });
    term.onBinary((data) => {
      if (!session.writer || ws.readyState !== WebSocket.OPEN) return;
      ws.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff));
    });
    ui.take.addEventListener("click", () => ws.send(JSON.stringify({type: "take"})));
    term.focus();
  }

  function closeTerminal() {
    if (!open) return;
    if (open.ws) open.ws.close();
    open.term.dispose();
    open.panel.remove();
    open = null;
  }

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && open && event.target.closest &&
        !event.target.closest(".terminal-panel")) closeTerminal();
  });

  function start() {
    const services = document.getElementById("services");
    if (!services) return;
    addButtons(services);
    new MutationObserver(() => addButtons(services)).observe(services, {childList: true,
                                                                        subtree: true});
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
