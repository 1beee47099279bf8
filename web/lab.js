/*
 * lab.js: the knock lab. Seals a knock from the visitor's inputs (or a
 * test vector) showing every intermediate of SPEC.md Appendix B, lets the
 * visitor tamper with the packets and the clock, and shows the receiver's
 * verdict two ways: strict decoding and opening (§10.1, §8), and the
 * receiver's assembler with its first and last readings (§10.2).
 */
(function () {
  'use strict';
  const CK = globalThis.CK;
  const $ = (id) => document.getElementById(id);
  const val = (id) => $(id).value.trim();
  const num = (id) => Number(val(id));
  let sealed = null; // {K, ports, base, sender...}

  const EXAMPLES = {
    'Appendix B.1 (source, no realm key)': {
      key: 'ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm', realm: 'example.org', 'user-index': '0',
      mode: 'source', action: 'open', protocol: 'tcp', port: '22', duration: '3600', timestamp: '1767225600', nonce: '01020304',
    },
    'Appendix B.2 (ipv4, realm key, close)': {
      key: 'ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm', realm: 'example.org', 'user-index': '513',
      'realm-key': 'ck-realm-eaqseizeeutcokbjfivsyljof4ydcmrtgq2tmnzyhe5dwpb5hy7qitvip4',
      mode: 'ipv4', address: '192.0.2.1', action: 'close', protocol: 'udp', port: '51820', duration: '0', timestamp: '1767225600', nonce: 'deadbeef',
    },
    'Mode bound (the address under the tag, not sent)': {
      key: 'ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm', realm: 'example.org', 'user-index': '0',
      mode: 'bound', address: '198.51.100.23', action: 'open', protocol: 'tcp', port: '22', duration: '3600', timestamp: '1767225600', nonce: '01020304',
    },
  };
  // BigInt of an integer text, or null: the receiver's clock spans the
  // signed 64-bit range (§7.1, §12), beyond a Number's exact integers.
  const big = (t) => (/^-?[0-9]+$/.test(t) ? BigInt(t) : null);

  function setInputs(h, body) {
    const map = { key: 'key', passphrase: 'passphrase', realm: 'realm', 'realm-key': 'realm-key', 'user-index': 'index', mode: 'mode',
      address: 'address', action: 'action', protocol: 'proto', port: 'port', duration: 'duration', timestamp: 'time', nonce: 'nonce', 'span-base': 'base',
      'receiver-realm': 'r-realm', 'receiver-key': 'r-key', 'receiver-user-index': 'r-index', 'receiver-window': 'r-window', 'receiver-source': 'r-src' };
    for (const id of ['key', 'passphrase', 'realm-key', 'address', 'rawp', 'r-realm', 'r-key', 'r-realm-key', 'r-index', 'r-src']) $(id).value = '';
    $('base').value = '20480'; $('r-window').value = '60'; $('t-clock').value = '0';
    for (const [k, id] of Object.entries(map)) if (h[k] !== undefined) $(id).value = h[k];
    if (h['receiver-realm-key'] !== undefined) $('r-realm-key').value = h['receiver-realm-key'] === 'none' ? 'none' : h['receiver-realm-key'];
    if (h.action === undefined && h.plaintext) $('rawp').value = h.plaintext;
    const rt = big(h['receiver-time'] || '');
    if (rt !== null && h.timestamp !== undefined) $('t-clock').value = String(rt - BigInt(h.timestamp));
    else if (rt !== null && h.plaintext) $('t-clock').value = String(rt - BigInt(parseInt(h.plaintext.slice(10, 18), 16)));
    return body;
  }

  const line = (label, value) => label.padEnd(30) + value + '\n';

  async function doSeal(body) {
    $('seal-err').textContent = '';
    try {
      let key;
      if (val('passphrase')) {
        $('steps').textContent = 'Deriving the key with Argon2id (64 MiB, 3 passes)…';
        key = await CK.passphraseKey(val('passphrase'), val('realm'), num('index'));
      } else key = await CK.parseKey(val('key'));
      const realm = val('realm');
      CK.checkRealm(realm);
      const rk = val('realm-key') ? await CK.parseRealmKey(val('realm-key')) : null;
      const index = num('index');
      if (!Number.isInteger(index) || index < 0 || index > 65535) throw new Error('user index must be 0..65535');
      const mode = CK.MODES[val('mode')];
      const base = num('base');
      const sub = await CK.userSubkeys(key);
      const ok = await CK.outerKey(rk);
      let P, check = true, bound = null;
      if (mode === 3) {
        bound = CK.parseAddr(val('address'));
        if (!bound) throw new Error('mode bound needs the address the receiver will see (IPv4 or IPv6)');
      }
      if (val('rawp')) { P = CK.unhex(val('rawp').toLowerCase()); check = false; } else {
        let address = new Uint8Array(0);
        if (mode === 1) address = CK.parseIPv4(val('address'));
        if (mode === 2) address = CK.parseIPv6(val('address'));
        if (!address) throw new Error('bad address for mode ' + val('mode'));
        if (!/^[0-9a-fA-F]{8}$/.test(val('nonce'))) throw new Error('nonce must be 4 bytes of hex');
        P = CK.encodePlaintext(mode, { action: val('action') === 'close' ? CK.CLOSE : CK.OPEN, proto: val('proto') === 'udp' ? CK.UDP : CK.TCP,
          port: num('port') & 0xffff, duration: num('duration') & 0xffff, time: num('time') >>> 0, nonce: CK.unhex(val('nonce').toLowerCase()), address });
      }
      const s = await CK.seal({ realm, outerKey: ok, index, macKey: sub.macKey, encKey: sub.encKey, mode, P, bound }, check);
      const ports = CK.knockPorts(s.K, base);
      const f = CK.decodePlaintext(mode, P);
      const h = CK.hex;
      let out = 'Derived keys (§4)\n' + line('  macKey', h(sub.macKey)) + line('  encKey', h(sub.encKey)) + line('  outerKey', h(ok));
      out += '\nPlaintext (§5.2), ' + P.length + ' bytes\n' + line('  flags', h(P.subarray(0, 1)) + '  action ' + f.action + ', proto ' + f.proto);
      out += line('  port', h(P.subarray(1, 3)) + '  ' + f.port) + line('  duration', h(P.subarray(3, 5)) + '  ' + f.duration);
      out += line('  time', h(P.subarray(5, 9)) + '  ' + f.time + ' (' + new Date(f.time * 1000).toISOString() + ')') + line('  nonce', h(P.subarray(9, 13)));
      if (mode === 1 || mode === 2) out += line('  address', h(P.subarray(13)) + '  ' + CK.formatAddr(P.subarray(13)));
      out += line('  P', h(P)) + '\nTag (§6.2)\n' + line('  H', h(s.H));
      if (mode === 3) out += line('  A (bound, not sent)', h(s.A) + '  ' + CK.formatAddr(bound));
      out += line('  MAC input', h(s.macInput)) + line('  HMAC', h(s.hmac)) + line('  T', h(s.T));
      out += '\nEncryption (§6.3)\n' + line('  counter block 0', h(s.T) + '0000000000000000');
      if (P.length > 16) out += line('  counter block 1', h(s.T) + '0000000000000001');
      out += line('  keystream', h(s.KS)) + line('  C = P XOR keystream', h(s.C));
      out += '\nUser field (§6.4)\n' + line('  AES-256(outerKey, T||0^8)', h(s.padBlock)) + line('  pad', h(s.pad)) + line('  E = u16be(index) XOR pad', h(s.E));
      out += '\nKnock (§6.5), ' + s.K.length + ' bytes\n' + line('  K = H || E || C || T', h(s.K));
      out += '\nPorts (§9.1), base + 256·i + K[i], in position order\n';
      for (let i = 0; i < ports.length; i += 8) out += '  ' + ports.slice(i, i + 8).join(' ') + '\n';
      $('steps').textContent = out;
      sealed = { K: s.K, ports, base, realm, rk, key, index, time: f.time, bound };
      $('stream').value = body && body.length !== undefined ? body.join(' ') : ports.join(' ');
      await doReceive();
    } catch (e) {
      $('seal-err').textContent = e.message;
    }
  }

  const streamPorts = () => val('stream').split(/[\s,]+/).filter(Boolean).map(Number);
  const setStream = (ps) => { $('stream').value = ps.join(' '); doReceive(); };
  function positionOf(port) { return Math.floor((port - sealed.base) / 256); }
  function tamper(op) {
    if (!sealed) return;
    const ps = streamPorts();
    const pos = num('t-pos'), bit = num('t-bit') & 7, b = num('t-byte') & 255;
    const at = ps.findIndex((p) => positionOf(p) === pos);
    const inject = sealed.base + 256 * pos + b;
    switch (op) {
      case 'flip': setStream(ps.map((p) => (positionOf(p) === pos ? sealed.base + 256 * pos + (((p - sealed.base) % 256) ^ (1 << bit)) : p))); break;
      case 'drop': setStream(ps.filter((p) => positionOf(p) !== pos)); break;
      case 'dup': if (at >= 0) { ps.splice(at + 1, 0, ps[at]); setStream(ps); } break;
      case 'before': ps.splice(at >= 0 ? at : 0, 0, inject); setStream(ps); break;
      case 'after': ps.splice(at >= 0 ? at + 1 : ps.length, 0, inject); setStream(ps); break;
      case 'reverse': setStream(ps.reverse()); break;
      case 'shuffle':
        for (let i = ps.length - 1; i > 0; i--) { const j = crypto.getRandomValues(new Uint32Array(1))[0] % (i + 1); [ps[i], ps[j]] = [ps[j], ps[i]]; }
        setStream(ps); break;
      case 'reset': setStream(sealed.ports); break;
    }
  }

  async function receiver() {
    const realm = val('r-realm') || sealed.realm;
    const rkText = val('r-realm-key');
    const rk = rkText === 'none' ? null : (rkText ? await CK.parseRealmKey(rkText) : sealed.rk);
    const key = val('r-key') ? await CK.parseKey(val('r-key')) : sealed.key;
    const index = val('r-index') !== '' ? num('r-index') : sealed.index;
    const r = new CK.Receiver({ realm, outerKey: await CK.outerKey(rk), window: num('r-window'), base: sealed.base });
    r.addUser(index, await CK.userSubkeys(key));
    return r;
  }

  async function doReceive() {
    if (!sealed) return;
    const ps = streamPorts();
    let out = 'Strict decoding (§10.1) and opening (§8) of the ' + ps.length + ' observed ports:\n';
    let verdict;
    try {
      const off = big(val('t-clock'));
      if (off === null) throw new Error('the clock offset must be an integer');
      const now = BigInt(sealed.time) + off;
      $('r-now').value = String(now);
      // The packets' source: as typed, or else the address the sender bound.
      const src = val('r-src') ? CK.parseAddr(val('r-src')) : sealed.bound;
      if (val('r-src') && !src) throw new Error('the source address must be an IPv4 or IPv6 address');
      if (src) out = 'Packets from ' + CK.formatAddr(src) + '.\n' + out;
      const r = await receiver();
      try {
        const K = CK.decodePorts(ps, sealed.base);
        out += '  decoded K  ' + CK.hex(K) + '\n';
        const o = await r.open(K, now, src);
        verdict = 'success';
        out += '  opened: user ' + o.index + ', ' + (o.fields.action === 1 ? 'open' : 'close') + ' ' + (o.fields.proto ? 'udp' : 'tcp') + '/' + o.fields.port +
          ' for ' + o.fields.duration + ' s' + (o.mode === 3 ? ' for ' + CK.formatAddr(o.fields.address) : '') + ', replay ID ' + CK.hex(o.id) + '\n';
      } catch (e) {
        if (!(e instanceof CK.KnockError)) throw e;
        verdict = e.cls;
        out += '  failure class: ' + e.cls + ' (step ' + (CK.CLASSES.indexOf(e.cls) + 1) + ' of §8)\n';
      }
      const res = await CK.assemble(ps, await receiver(), now, src);
      out += '\nThe receiver\'s assembler (§10.2), with a replay cache:\n';
      if (!res.events.length) out += '  never complete: it waits, then discards the assembler after its timeout\n';
      for (const ev of res.events) {
        if (ev.type === 'open') out += '  after packet ' + (ev.at + 1) + ': complete as ' + CK.MODE_NAMES[ev.mode] + ', opens the ' + ev.reading + ' reading' + (ev.retry ? ' (retry ' + ev.retry + ')' : '') + ' ' + CK.hex(ev.K) + ': ' + (ev.result ? 'success' : ev.cls) + '\n';
        else out += '  after packet ' + (ev.at + 1) + ': assembler discarded (' + ev.why + ')\n';
      }
      $('verdict').textContent = 'Verdict: ' + verdict;
      $('verdict').className = 'verdict ' + (verdict === 'success' ? 'ok' : 'bad');
      $('verdict').dataset.cls = verdict;
      $('rcv-steps').textContent = out;
      drawReadings(res);
    } catch (e) {
      $('verdict').textContent = 'Receiver: ' + e.message;
      $('verdict').className = 'verdict bad';
    }
  }

  function drawReadings(res) {
    const last = res.events.filter((e) => e.type === 'open').pop();
    const a = res.pending;
    const n = last ? last.snapshot.first.length : CK.POSITIONS;
    const first = last ? last.snapshot.first : a.first, lastR = last ? last.snapshot.last : a.last;
    const conf = last ? last.snapshot.conflicted : a.conflicted;
    const t = document.createElement('table');
    t.className = 'readings';
    const rows = [['position'], ['first'], ['last']];
    for (let i = 0; i < n; i++) {
      rows[0].push(String(i));
      const seen = last || a.seen[i];
      rows[1].push(seen ? CK.hex([first[i]]) : '·');
      rows[2].push(seen ? CK.hex([lastR[i]]) : '·');
    }
    rows.forEach((r, ri) => {
      const tr = document.createElement('tr');
      r.forEach((c, ci) => {
        const td = document.createElement(ci === 0 || ri === 0 ? 'th' : 'td');
        td.textContent = c;
        if (ci > 0 && ri > 0 && conf[ci - 1]) td.className = 'conf';
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    const box = $('readings');
    box.textContent = '';
    const cap = document.createElement('p');
    cap.className = 'muted';
    cap.textContent = last ? 'Readings per position when the assembler completed (conflicted positions shaded):' : 'Readings per position so far (the assembler is not complete):';
    box.append(cap, t);
  }

  async function loadVectorText(name, text) {
    try {
      const v = CK.parseVector(name, text);
      setInputs(v.header);
      $('steps').textContent = 'Vector ' + name + ': expects ' + v.header.expect;
      await doSeal(v.body);
      $('verdict').textContent += ' (the vector expects ' + v.header.expect + ')';
    } catch (e) { $('seal-err').textContent = e.message; }
  }

  async function listVectors() {
    try {
      const r = await fetch('vectors/', { cache: 'no-store' });
      if (!r.ok) return;
      const names = (await r.text()).split('\n').filter((n) => /^[a-z0-9_]+$/.test(n));
      const og = document.createElement('optgroup');
      og.label = 'testdata/vectors';
      for (const n of names) { const o = document.createElement('option'); o.value = 'v:' + n; o.textContent = n; og.appendChild(o); }
      $('example').appendChild(og);
    } catch (e) { /* served without vectors */ }
  }

  for (const name of Object.keys(EXAMPLES)) {
    const o = document.createElement('option'); o.value = 'e:' + name; o.textContent = name; $('example').appendChild(o);
  }
  $('example').onchange = async () => {
    const v = $('example').value;
    if (v.startsWith('e:')) { setInputs(EXAMPLES[v.slice(2)]); await doSeal(); }
    if (v.startsWith('v:')) {
      const r = await fetch('vectors/' + v.slice(2), { cache: 'no-store' });
      await loadVectorText(v.slice(2), await r.text());
    }
  };
  $('vector-load').onclick = () => loadVectorText('pasted', $('vector-text').value);
  $('seal').onclick = () => doSeal();
  $('receive').onclick = doReceive;
  $('newkey').onclick = async () => { $('key').value = await CK.encodeKeyText(CK.KEY_PREFIX, CK.randomBytes(32)); $('passphrase').value = ''; };
  $('newnonce').onclick = () => { $('nonce').value = CK.hex(CK.randomBytes(4)); };
  for (const op of ['flip', 'drop', 'dup', 'before', 'after', 'reverse', 'shuffle', 'reset']) $('t-' + op).onclick = () => tamper(op);
  $('t-clock').onchange = doReceive;
  $('r-src').onchange = doReceive;
  $('stream').onchange = doReceive;
  $('time').value = String(Math.floor(Date.now() / 1000));
  $('key').value = EXAMPLES['Appendix B.1 (source, no realm key)'].key;
  listVectors().then(() => doSeal()).then(() => { document.body.dataset.ready = '1'; });
  if ('serviceWorker' in navigator) {
    // The policy requires Trusted Types: one policy, for this one URL.
    const url = globalThis.trustedTypes
      ? globalThis.trustedTypes.createPolicy('ck-sw', { createScriptURL: (u) => { if (u !== 'sw.js') throw new Error('refused'); return u; } }).createScriptURL('sw.js')
      : 'sw.js';
    navigator.serviceWorker.register(url).catch(() => {});
  }
})();
