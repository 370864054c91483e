// The VM console in the browser: wires the markup the Leptos `VmConsole` component renders
// (`[data-console]`) to noVNC (graphical console, RFB over WebSocket), xterm.js (serial console) and the
// console log. Each connection asks the portal for a fresh single-use console token
// (`POST /api/v1/vms/{id}/console`, session cookie, same origin) and opens `ws(s)://host/console/{vm}/ws`.
//
// Served as /js/console.js and loaded once per document by the page shell (a <script> that client-side
// navigation inserts would never run), so it works on every path to a VM page: full load, in-app link,
// back/forward, pop-out. noVNC and xterm.js are vendored under /vendor (scripts/build-web.sh), no CDN, and
// imported only when a console first connects, so pages without one do not pay for them.
// It waits for the Leptos app to hydrate (`<body data-hydrated="true">`) before touching the DOM, then
// follows elements appearing, disappearing and changing `data-running` with a MutationObserver.

// The page's Content-Security-Policy admits `<style>` elements only with the page's nonce (the one on
// Leptos' own scripts). xterm.js adds `<style>` elements for its layout and theme, so each one this
// document creates gets the nonce; nothing else is touched.
const styleNonce = document.querySelector('script[nonce]')?.nonce || '';
if (styleNonce) {
  const create = Document.prototype.createElement;
  Document.prototype.createElement = function createElement(name, options) {
    const el = create.call(this, name, options);
    if (String(name).toLowerCase() === 'style') el.nonce = styleNonce;
    return el;
  };
}

let novnc = null;
/** noVNC's RFB class and keysym table, imported on first use. */
function loadNoVnc() {
  novnc ??= Promise.all([
    import('/vendor/novnc/core/rfb.js'),
    import('/vendor/novnc/core/input/keysymdef.js'),
  ]).then(([rfb, keysyms]) => ({ RFB: rfb.default, keysyms: keysyms.default }));
  return novnc;
}

/** The X keysym that types `ch` (Enter for a newline); the VMM adds Shift where a US layout needs it. */
function toKeysym(keysyms, ch) {
  if (ch === '\n') return 0xff0d;
  if (ch === '\t') return 0xff09;
  const cp = ch.codePointAt(0);
  if (cp >= 0x20 && cp <= 0x7e) return cp;
  return keysyms.lookup(cp) ?? null;
}

const consoles = new Map(); // element -> Console

async function ticket(vmId, kind) {
  const res = await fetch(`/api/v1/vms/${encodeURIComponent(vmId)}/console`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ kind }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body?.error?.message || `The portal answered ${res.status}.`);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}${body.ws_path}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Console {
  constructor(root) {
    this.root = root;
    this.vmId = root.dataset.vmId;
    this.rfb = null;
    this.term = null;
    this.serialWs = null;
    this.tab = 'screen';
    this.generation = 0; // ignores events of connections replaced meanwhile
    this.$ = (sel) => root.querySelector(sel);
    this.on('[data-action="reconnect"]', 'click', () => this.connect());
    this.on('[data-action="ctrlaltdel"]', 'click', () => this.rfb?.sendCtrlAltDel());
    this.on('[data-action="paste"]', 'click', () => this.openPaste());
    this.on('[data-action="type"]', 'click', () => this.typePaste());
    this.on('[data-action="fit"]', 'change', () => this.applyFit());
    this.on('[data-action="fullscreen"]', 'click', () => this.fullscreen());
    this.on('[data-action="refresh-log"]', 'click', () => this.loadLog());
    this.on('[data-action="reconnect-serial"]', 'click', () => this.connectSerial());
    for (const button of root.querySelectorAll('[data-tab]')) {
      button.addEventListener('click', () => this.show(button.dataset.tab));
    }
    this.runningChanged();
  }

  on(selector, event, handler) {
    this.$(selector)?.addEventListener(event, handler);
  }

  get running() {
    return this.root.dataset.running === 'true';
  }

  status(text, state) {
    const el = this.$('[data-status]');
    if (el) {
      el.textContent = text;
      el.dataset.state = state;
    }
    this.root.dataset.state = state;
  }

  serialStatus(text) {
    const el = this.$('[data-serial-status]');
    if (el) el.textContent = text;
  }

  runningChanged() {
    if (this.running) {
      if (!this.rfb) this.connect();
      if (this.tab === 'serial' && !this.serialWs) this.connectSerial();
    } else {
      this.disconnect();
      this.status('The VM is not running', 'stopped');
      this.serialStatus('The VM is not running');
    }
  }

  async connect() {
    const generation = ++this.generation;
    this.disconnectScreen();
    if (!this.running) {
      this.status('The VM is not running', 'stopped');
      return;
    }
    this.status('Connecting…', 'connecting');
    let url;
    try {
      url = await ticket(this.vmId, 'vnc');
    } catch (err) {
      if (generation === this.generation) this.status(`Not connected: ${err.message}`, 'error');
      return;
    }
    const { RFB } = await loadNoVnc();
    if (generation !== this.generation) return;
    const screen = this.$('[data-screen]');
    // Our own WebSocket, so the portal's close reason (access revoked, VM stopped) can be shown: noVNC's
    // disconnect event only says whether the close was clean.
    const ws = new WebSocket(url, ['binary']);
    let closed = null;
    ws.addEventListener('close', (e) => {
      closed = e;
    });
    const rfb = new RFB(screen, ws, { shared: true });
    rfb.background = '#101418';
    rfb.focusOnClick = true;
    this.rfb = rfb;
    this.applyFit();
    rfb.addEventListener('connect', () => {
      if (generation === this.generation) this.status('Connected', 'connected');
    });
    rfb.addEventListener('disconnect', (e) => {
      if (generation !== this.generation) return;
      this.rfb = null;
      if (closed?.reason) this.status(`Disconnected: ${closed.reason}`, closed.code === 1008 ? 'error' : 'disconnected');
      else this.status(e.detail.clean ? 'Disconnected' : 'Disconnected: the connection was lost', 'disconnected');
    });
    rfb.addEventListener('securityfailure', (e) => {
      if (generation === this.generation) this.status(`Refused: ${e.detail.reason || 'security failure'}`, 'error');
    });
  }

  disconnectScreen() {
    const rfb = this.rfb;
    this.rfb = null;
    if (rfb) {
      try {
        rfb.disconnect();
      } catch {
        // already closed
      }
    }
  }

  disconnect() {
    this.generation++;
    this.disconnectScreen();
    if (this.serialWs) {
      this.serialWs.onclose = null;
      this.serialWs.close();
      this.serialWs = null;
    }
  }

  applyFit() {
    const fit = this.$('[data-action="fit"]');
    if (this.rfb) this.rfb.scaleViewport = fit ? fit.checked : true;
  }

  fullscreen() {
    const target = this.$('[data-screen]') || this.root;
    if (document.fullscreenElement) document.exitFullscreen();
    else target.requestFullscreen?.().catch(() => {});
    this.rfb?.focus();
  }

  async openPaste() {
    const panel = this.$('[data-paste]');
    const text = this.$('[data-paste-text]');
    if (!panel || !text) return;
    panel.hidden = false;
    try {
      const clip = await navigator.clipboard.readText();
      if (clip) text.value = clip;
    } catch {
      // No clipboard permission: the user pastes into the text box.
    }
    text.focus();
  }

  async typePaste() {
    const text = this.$('[data-paste-text]');
    const rfb = this.rfb;
    if (!text || !rfb) return;
    const value = text.value.replace(/\r\n?/g, '\n');
    this.$('[data-paste]').hidden = true;
    const { keysyms } = await loadNoVnc();
    for (const ch of value) {
      const keysym = toKeysym(keysyms, ch);
      if (keysym === null || this.rfb !== rfb) continue;
      rfb.sendKey(keysym, null, true);
      rfb.sendKey(keysym, null, false);
      // Paced: the guest reads its keyboard queue at its own speed.
      await sleep(15);
    }
    rfb.focus();
  }

  show(tab) {
    this.tab = tab;
    for (const button of this.root.querySelectorAll('[data-tab]')) {
      button.setAttribute('aria-selected', String(button.dataset.tab === tab));
    }
    for (const pane of this.root.querySelectorAll('[data-pane]')) {
      pane.hidden = pane.dataset.pane !== tab;
    }
    if (tab === 'serial' && !this.serialWs) this.connectSerial();
    if (tab === 'serial') setTimeout(() => this.fitAddon?.fit(), 0);
    if (tab === 'log') this.loadLog();
  }

  async ensureTerminal() {
    if (this.term) return this.term;
    const [{ Terminal }, { FitAddon }] = await Promise.all([
      import('/vendor/xterm/xterm.mjs'),
      import('/vendor/xterm/addon-fit.mjs'),
    ]);
    if (!document.querySelector('link[data-xterm-css]')) {
      const link = document.createElement('link');
      link.rel = 'stylesheet';
      link.href = '/vendor/xterm/xterm.css';
      link.dataset.xtermCss = '';
      document.head.append(link);
    }
    const term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 14, scrollback: 5000 });
    this.fitAddon = new FitAddon();
    term.loadAddon(this.fitAddon);
    term.open(this.$('[data-terminal]'));
    this.fitAddon.fit();
    window.addEventListener('resize', () => this.fitAddon.fit());
    const encoder = new TextEncoder();
    term.onData((data) => {
      if (this.serialWs?.readyState === WebSocket.OPEN) this.serialWs.send(encoder.encode(data));
    });
    this.term = term;
    return term;
  }

  async connectSerial() {
    if (this.serialWs) {
      this.serialWs.onclose = null;
      this.serialWs.close();
      this.serialWs = null;
    }
    if (!this.running) {
      this.serialStatus('The VM is not running');
      return;
    }
    const term = await this.ensureTerminal();
    this.serialStatus('Connecting…');
    let url;
    try {
      url = await ticket(this.vmId, 'serial');
    } catch (err) {
      this.serialStatus(`Not connected: ${err.message}`);
      return;
    }
    const ws = new WebSocket(url, ['binary']);
    ws.binaryType = 'arraybuffer';
    this.serialWs = ws;
    ws.onopen = () => {
      // Every connection starts with the server's replay of recent output: start from a clean terminal so a
      // reconnect (button, VM restarted) shows that output once, not after a copy of it.
      term.reset();
      this.serialStatus('Connected');
      term.focus();
    };
    ws.onmessage = (e) => term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
    ws.onclose = (e) => {
      if (this.serialWs === ws) this.serialWs = null;
      this.serialStatus(e.reason ? `Disconnected: ${e.reason}` : 'Disconnected');
    };
  }

  async loadLog() {
    const pre = this.$('[data-log]');
    if (!pre) return;
    try {
      const res = await fetch(`/api/v1/vms/${encodeURIComponent(this.vmId)}/console-log`, {
        credentials: 'same-origin',
        headers: { accept: 'application/json' },
      });
      const body = await res.json().catch(() => ({}));
      pre.textContent = res.ok ? body.text || '(no output yet)' : body?.error?.message || `Error ${res.status}`;
      pre.scrollTop = pre.scrollHeight;
    } catch (err) {
      pre.textContent = `Could not load the console log: ${err.message}`;
    }
  }

  destroy() {
    this.disconnect();
    this.term?.dispose();
  }
}

function scan() {
  for (const el of document.querySelectorAll('[data-console]')) {
    if (!consoles.has(el)) consoles.set(el, new Console(el));
  }
  for (const [el, c] of consoles) {
    if (!el.isConnected) {
      c.destroy();
      consoles.delete(el);
    }
  }
}

function start() {
  scan();
  new MutationObserver((records) => {
    let rescan = false;
    for (const r of records) {
      if (r.type === 'attributes' && r.attributeName === 'data-running' && consoles.has(r.target)) {
        consoles.get(r.target).runningChanged();
      } else if (r.type === 'childList') {
        rescan = true;
      }
    }
    if (rescan) scan();
  }).observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-running'] });
}

function whenHydrated(fn) {
  if (document.body?.dataset.hydrated === 'true') return fn();
  const obs = new MutationObserver(() => {
    if (document.body.dataset.hydrated === 'true') {
      obs.disconnect();
      fn();
    }
  });
  obs.observe(document.body, { attributes: true, attributeFilter: ['data-hydrated'] });
}

whenHydrated(start);
