// The console page: noVNC's RFB client on the WebSocket relay of ironidc.
// Served with a strict CSP (script-src 'self'), so no inline script anywhere.

const NOVNC = '/console/novnc/core/rfb.js';
const NOT_INSTALLED = 'noVNC is not installed on this server: run scripts/setup';

const statusText = document.getElementById('status');
const screen = document.getElementById('screen');
const ctrlAltDel = document.getElementById('ctrl-alt-del');
const scale = document.getElementById('scale');

function show(text, state) {
  statusText.textContent = text;
  statusText.dataset.state = state;
}

// The token is single-use: take it out of the address bar so a reload, the
// history or a copied link does not carry a spent (or live) token around.
const token = new URLSearchParams(location.search).get('token');
if (token !== null) {
  history.replaceState(null, '', location.pathname);
}

async function start() {
  if (statusText.dataset.state === 'error') {
    return; // the server already said why the console cannot work
  }
  if (!token) {
    show('No console token: open the console from the VM page', 'error');
    return;
  }
  let RFB;
  try {
    ({ default: RFB } = await import(NOVNC));
  } catch (e) {
    show(NOT_INSTALLED, 'error');
    return;
  }
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${location.host}/api/client/console/ws?token=${encodeURIComponent(token)}`;
  // Our own WebSocket (noVNC accepts one) so that the close reason the
  // server sends, e.g. "console session expired or revoked", can be shown:
  // noVNC's disconnect event does not carry it.
  const ws = new WebSocket(url);
  let closed = null;
  ws.addEventListener('close', (e) => { closed = e; });

  show('Connecting…', 'connecting');
  const rfb = new RFB(screen, ws);
  rfb.scaleViewport = scale.checked;
  rfb.background = '#000';
  rfb.addEventListener('connect', () => {
    show('Connected', 'connected');
    ctrlAltDel.disabled = false;
    rfb.focus();
  });
  rfb.addEventListener('disconnect', (e) => {
    ctrlAltDel.disabled = true;
    let why = e.detail.clean ? '' : 'the connection was lost';
    if (closed && closed.reason) {
      why = closed.reason;
    }
    show(why ? `Disconnected: ${why}` : 'Disconnected', 'disconnected');
  });
  rfb.addEventListener('securityfailure', (e) => {
    show(`Disconnected: authentication failed (${e.detail.reason || e.detail.status})`, 'error');
  });
  rfb.addEventListener('desktopname', (e) => {
    document.title = `${e.detail.name} — console`;
  });
  ctrlAltDel.addEventListener('click', () => rfb.sendCtrlAltDel());
  scale.addEventListener('change', () => { rfb.scaleViewport = scale.checked; });
}

start();
