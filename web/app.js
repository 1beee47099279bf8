/*
 * app.js: the knock page. Imports profiles (paste, QR code, or the page
 * link's # fragment), keeps them in this origin's localStorage, knocks in
 * mode source with one TCP SYN per port (a fetch to https://HOST:PORT/
 * that the server's firewall drops), then tries the service's port. It
 * cannot knock in mode bound: a page does not learn the address the
 * server sees (no STUN, no view of its own addresses).
 */
(function () {
  'use strict';
  const CK = globalThis.CK;
  const $ = (id) => document.getElementById(id);
  const STORE = 'cipherknock.profiles.v1';

  // The Fetch standard's bad ports (fetch.spec.whatwg.org#port-blocking),
  // which Chromium and Firefox also refuse: no request is ever made.
  const BAD_PORTS = new Set([0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79,
    87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389,
    427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993,
    995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669,
    6679, 6697, 10080]);
  const MAX_BAD_PORT = 10080;

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // ---- storage ------------------------------------------------------------

  function loadURIs() {
    try {
      const v = JSON.parse(localStorage.getItem(STORE) || '[]');
      return Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [];
    } catch (e) { return []; }
  }
  function saveURIs(list) { localStorage.setItem(STORE, JSON.stringify(list)); }

  let profiles = []; // {uri, p}

  async function refresh() {
    profiles = [];
    for (const uri of loadURIs()) {
      try { profiles.push({ uri, p: await CK.parseProfileURI(uri) }); } catch (e) { /* dropped below */ }
    }
    saveURIs(profiles.map((x) => x.uri));
    render();
  }

  function hostURL(host, port) {
    return 'https://' + (host.includes(':') ? '[' + host + ']' : host) + ':' + port + '/';
  }

  // knockable says why a profile cannot be knocked from a page, or ''.
  function knockable(p) {
    if (p.address === 'auto') return 'this profile uses address "auto": a page can knock in mode source only; use cipherknock knock, which asks STUN for the public address and binds it under the tag (mode bound)';
    if (p.address !== 'source') return 'this profile uses address "' + p.address + '": a page can knock in mode source only; use cipherknock knock';
    if (p.base <= MAX_BAD_PORT) {
      for (let port = p.base; port < p.base + 10240; port++) {
        if (BAD_PORTS.has(port)) return 'the span ' + p.base + '-' + (p.base + 10239) + ' holds port ' + port + ', which browsers refuse; use cipherknock knock, or a span base above ' + MAX_BAD_PORT;
      }
    }
    return '';
  }

  function render() {
    const ul = $('profile-list');
    ul.textContent = '';
    $('no-profiles').hidden = profiles.length > 0;
    profiles.forEach(({ p }, i) => {
      const li = document.createElement('li');
      li.dataset.profile = p.name || p.host;
      const name = document.createElement('span');
      name.className = 'pname';
      name.textContent = p.name || p.host;
      const small = document.createElement('small');
      small.textContent = p.host + ' · ' + p.proto + '/' + p.port + ' · ' + p.duration + ' s · realm ' + p.realm + ', user ' + p.user;
      name.appendChild(small);
      const kb = document.createElement('button');
      kb.type = 'button'; kb.textContent = 'Knock'; kb.className = 'knock';
      const why = knockable(p);
      if (why) { kb.disabled = true; kb.title = why; }
      kb.onclick = () => knock(p, kb);
      const cb = document.createElement('button');
      cb.type = 'button'; cb.textContent = 'Check'; cb.className = 'secondary check';
      cb.onclick = () => check(p, cb);
      const rb = document.createElement('button');
      rb.type = 'button'; rb.textContent = 'Remove'; rb.className = 'secondary remove';
      rb.onclick = () => {
        if (!confirm('Remove profile ' + (p.name || p.host) + ' and its key from this browser?')) return;
        saveURIs(loadURIs().filter((_, j) => j !== i));
        refresh();
      };
      li.append(name, kb, cb, rb);
      if (why) {
        const w = document.createElement('small');
        w.className = 'muted'; w.style.flexBasis = '100%'; w.textContent = why;
        li.appendChild(w);
      }
      ul.appendChild(li);
    });
  }

  // ---- import -------------------------------------------------------------

  async function importURI(text, from) {
    const msg = $('import-msg');
    msg.className = '';
    try {
      const s = text.trim();
      const p = await CK.parseProfileURI(s);
      const canon = await CK.profileURI(p);
      const name = p.name || p.host;
      const list = loadURIs();
      let replaced = false;
      const kept = [];
      for (const u of list) {
        let n = null;
        try { const q = await CK.parseProfileURI(u); n = q.name || q.host; } catch (e) { /* drop */ }
        if (n === name) { replaced = true; continue; }
        kept.push(u);
      }
      kept.push(canon);
      saveURIs(kept);
      msg.className = 'ok';
      msg.textContent = (replaced ? 'Replaced' : 'Imported') + ' profile ' + name + ' (' + p.host + ', ' + p.proto + '/' + p.port + ')' + (from ? ' from ' + from : '') + '.';
      await refresh();
      return true;
    } catch (e) {
      msg.className = 'bad';
      msg.textContent = e.message; // never holds key material (ck.js)
      return false;
    }
  }

  // fromFragment imports a profile carried by the link's # fragment, then
  // removes it from the address bar and the history entry.
  async function fromFragment() {
    let h = location.hash.slice(1);
    if (!h) return;
    h = h.replace(/%5b/gi, '[').replace(/%5d/gi, ']');
    if (!/^cipherknock:\/\//i.test(h)) return;
    history.replaceState(null, '', location.pathname + location.search);
    await importURI(h, 'the link');
  }

  async function scan() {
    const video = $('scan-video');
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    } catch (e) {
      $('import-msg').textContent = 'The camera is not available: ' + e.name;
      return;
    }
    const det = new BarcodeDetector({ formats: ['qr_code'] });
    video.srcObject = stream; video.hidden = false;
    await video.play();
    const stop = () => { stream.getTracks().forEach((t) => t.stop()); video.hidden = true; video.srcObject = null; };
    const until = Date.now() + 60000;
    while (Date.now() < until) {
      try {
        const codes = await det.detect(video);
        for (const c of codes) {
          let v = c.rawValue || '';
          const i = v.indexOf('#cipherknock://');
          if (i >= 0) v = v.slice(i + 1);
          if (/^cipherknock:\/\//i.test(v)) { stop(); await importURI(v, 'the QR code'); return; }
        }
      } catch (e) { /* frame not ready */ }
      await sleep(250);
    }
    stop();
    $('import-msg').textContent = 'No cipherknock QR code seen within a minute.';
  }

  // ---- knocking -----------------------------------------------------------

  const status = (text, cls, result) => {
    const s = $('status');
    s.textContent = text;
    s.className = cls || '';
    s.dataset.result = result || '';
  };

  // sendSYNs makes the browser send one TCP SYN to each port: a fetch that
  // the server's firewall drops silently. The fetch is aborted once the
  // SYN has left (the system retransmits it meanwhile: duplicates are
  // harmless, SPEC.md §10.2).
  async function sendSYNs(host, ports, rounds) {
    for (let r = 0; r < rounds; r++) {
      const ctrls = ports.map((port) => {
        const c = new AbortController();
        fetch(hostURL(host, port), { mode: 'no-cors', cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer', signal: c.signal }).catch(() => {});
        return c;
      });
      await sleep(600);
      ctrls.forEach((c) => c.abort());
    }
  }

  // probe tries the service's port from the page.
  async function probe(p, ms) {
    if (p.proto !== 'tcp') return { kind: 'udp', text: 'The service is UDP: a page cannot try it. Try it with its own client.' };
    if (BAD_PORTS.has(p.port)) return { kind: 'blocked', text: 'Browsers refuse port ' + p.port + ': the page cannot try it. Connect with the service\'s own client (for ssh: ssh ' + p.host + ').' };
    const c = new AbortController();
    const t0 = performance.now();
    const timer = setTimeout(() => c.abort(), ms);
    try {
      await fetch(hostURL(p.host, p.port), { mode: 'no-cors', cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer', signal: c.signal });
      return { kind: 'https', text: 'Open: an HTTPS service answered on port ' + p.port + '.' };
    } catch (e) {
      if (c.signal.aborted) return { kind: 'silent', text: 'No answer from port ' + p.port + ' within ' + (ms / 1000) + ' s: the port is still closed to this address (or the network drops it).' };
      const t = Math.round(performance.now() - t0);
      return { kind: 'answered', text: 'Something answered on port ' + p.port + ' after ' + t + ' ms, but not with HTTPS the page can check: the door is most likely open (a closed door does not answer). Connect with the service\'s own client.' };
    } finally { clearTimeout(timer); }
  }

  let busy = false;
  async function knock(p, btn) {
    if (busy) return;
    const why = knockable(p);
    if (why) { status(why, 'bad', 'refused'); return; }
    busy = true; btn.disabled = true;
    try {
      const now = Math.floor(Date.now() / 1000);
      const k = await CK.sealForProfile(p, now);
      const ports = k.ports.slice();
      for (let i = ports.length - 1; i > 0; i--) { // shuffle (SPEC.md §10.2)
        const j = crypto.getRandomValues(new Uint32Array(1))[0] % (i + 1);
        [ports[i], ports[j]] = [ports[j], ports[i]];
      }
      const rounds = Math.max(1, Math.min(p.repeat, 2));
      status('Knocking ' + p.host + ': ' + ports.length + ' TCP SYNs to ports ' + p.base + '–' + (p.base + 256 * ports.length - 1) + '…', '', 'sending');
      await sendSYNs(p.host, ports, rounds);
      status('Knock sent (' + ports.length + ' ports). Trying ' + p.proto + '/' + p.port + '…', '', 'sent');
      await sleep(1000);
      const r = await probe(p, 4000);
      status('Knock sent (' + ports.length + ' ports, ' + p.duration + ' s).\n' + r.text, r.kind === 'https' || r.kind === 'answered' ? 'ok' : (r.kind === 'silent' ? 'bad' : ''), r.kind);
    } catch (e) {
      status('Knock failed: ' + e.message, 'bad', 'error');
    } finally { busy = false; btn.disabled = false; }
  }

  async function check(p, btn) {
    if (busy) return;
    busy = true; btn.disabled = true;
    try {
      status('Trying ' + p.proto + '/' + p.port + ' on ' + p.host + '…', '', 'checking');
      const r = await probe(p, 4000);
      status(r.text, r.kind === 'https' || r.kind === 'answered' ? 'ok' : (r.kind === 'silent' ? 'bad' : ''), r.kind);
    } finally { busy = false; btn.disabled = false; }
  }

  // ---- start --------------------------------------------------------------

  $('import-btn').onclick = async () => {
    if (await importURI($('uri').value, '')) $('uri').value = '';
  };
  if ('BarcodeDetector' in globalThis && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    $('scan-btn').hidden = false;
    $('scan-btn').onclick = scan;
  }
  if (!globalThis.isSecureContext) {
    status('This page is not in a secure context (https or localhost): the browser hides WebCrypto, so it cannot knock.', 'bad', 'insecure');
  }
  window.addEventListener('hashchange', fromFragment);
  refresh().then(fromFragment).then(() => { document.body.dataset.ready = '1'; });
  if ('serviceWorker' in navigator) {
    // The policy requires Trusted Types: one policy, for this one URL.
    const url = globalThis.trustedTypes
      ? globalThis.trustedTypes.createPolicy('ck-sw', { createScriptURL: (u) => { if (u !== 'sw.js') throw new Error('refused'); return u; } }).createScriptURL('sw.js')
      : 'sw.js';
    navigator.serviceWorker.register(url).catch(() => {});
  }
})();
