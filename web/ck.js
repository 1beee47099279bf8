/*
 * ck.js: the cipherknock protocol, version 1, in JavaScript with WebCrypto.
 *
 * A second, independent implementation of SPEC.md: key texts (§3.1), key
 * derivation (§4), plaintext (§5) in every mode (source, bound, ipv4,
 * ipv6), sealing (§6), freshness (§7.1), opening
 * with its validation order and failure classes (§8), the port span (§9),
 * strict decoding (§10.1), the receiver's assembler (§10.2), the test vector
 * format and checker (§12), stream vectors (§12.1), and profile URIs
 * (package profile). Passphrase keys (§3.2) need Argon2id, which WebCrypto
 * lacks: argon2.js provides it when loaded (CK.setArgon2id).
 *
 * It runs unchanged in a browser (a classic script defining globalThis.CK)
 * and in Node (require). Every function that uses WebCrypto is async. It
 * needs a secure context (https, or http://localhost) in browsers.
 *
 * No error message contains key material.
 */
(function (root, factory) {
  const CK = factory();
  if (typeof module === 'object' && module.exports) module.exports = CK;
  else root.CK = CK;
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  const te = new TextEncoder();
  function subtle() {
    const c = globalThis.crypto;
    if (!c || !c.subtle) throw new Error('WebCrypto is not available: the page must be served over https (or from localhost)');
    return c.subtle;
  }

  // ---- constants ----------------------------------------------------------

  const SALT = te.encode('cipherknock/v1');
  // Modes (§5.1) by number; mode bound's address is under the tag, not in P.
  const MODES = { source: 0, ipv4: 1, ipv6: 2, bound: 3 };
  const MODE_NAMES = ['source', 'ipv4', 'ipv6', 'bound'];
  const PLAIN_LEN = [13, 17, 29, 13];
  const KNOCK_LEN = [24, 28, 40, 24];
  const ADDR_LEN = [0, 4, 16, 0];
  // The order in which the assembler tries complete candidates (§10.2), as
  // crypto.Modes: by length, then by number.
  const MODE_ORDER = [0, 3, 1, 2];
  const isMode = (m) => Number.isInteger(m) && m >= 0 && m < KNOCK_LEN.length;
  const POSITIONS = 40;
  const SPAN_PORTS = POSITIONS * 256;
  const DEFAULT_BASE = 20480, MIN_BASE = 1024, MAX_BASE = 55296;
  const DEFAULT_WINDOW = 60, MIN_WINDOW = 5, MAX_WINDOW = 600;
  const OPEN = 1, CLOSE = 2, TCP = 0, UDP = 1;
  const KEY_PREFIX = 'ck-key-', REALM_KEY_PREFIX = 'ck-realm-';
  const NO_REALM_OUTER_KEY = '3a99f59afbbe92018cad35fbe32b2b5e98a6ac3d8ef13d518ab8720996204a54';

  // Failure classes (§8), in validation order, as the vectors name them.
  const CLASSES = ['port outside span', 'conflicting duplicate', 'truncated', 'unknown version',
    'malformed knock', 'extra packets', 'unknown user', 'bad tag', 'field out of range',
    'stale', 'future', 'replay'];

  class KnockError extends Error {
    constructor(cls) { super(cls); this.name = 'KnockError'; this.cls = cls; }
  }
  const fail = (cls) => { throw new KnockError(cls); };

  // ---- bytes --------------------------------------------------------------

  function hex(b) {
    let s = '';
    for (const x of b) s += (x < 16 ? '0' : '') + x.toString(16);
    return s;
  }
  function unhex(s) {
    if (typeof s !== 'string' || s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) throw new Error('not lowercase hex');
    const b = new Uint8Array(s.length / 2);
    for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(2 * i, 2), 16);
    return b;
  }
  function concat(...parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  const u8 = (n) => Uint8Array.of(n & 0xff);
  const u16be = (n) => Uint8Array.of((n >>> 8) & 0xff, n & 0xff);
  const u32be = (n) => Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  function equal(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }
  function randomBytes(n) {
    const b = new Uint8Array(n);
    globalThis.crypto.getRandomValues(b);
    return b;
  }

  // ---- primitives (§1) ----------------------------------------------------

  async function sha256(data) {
    return new Uint8Array(await subtle().digest('SHA-256', data));
  }
  async function hmacSHA256(key, data) {
    const k = await subtle().importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return new Uint8Array(await subtle().sign('HMAC', k, data));
  }
  // HKDF-SHA-256 with L = 32 (one Expand block), RFC 5869. Written over
  // HMAC rather than WebCrypto's HKDF because the realm outer key without a
  // realm key has an empty input key, which not every WebCrypto accepts.
  async function hkdf32(ikm, salt, info) {
    const prk = await hmacSHA256(salt, ikm);
    return hmacSHA256(prk, concat(info, u8(1)));
  }
  // aesCTR returns n bytes of AES-256-CTR keystream from counter block ctr,
  // the counter being its low 64 bits (§6.3); n = 16 gives AES-256(k, ctr).
  async function aesCTR(key, ctr, n) {
    const k = await subtle().importKey('raw', key, { name: 'AES-CTR' }, false, ['encrypt']);
    return new Uint8Array(await subtle().encrypt({ name: 'AES-CTR', counter: ctr, length: 64 }, k, new Uint8Array(n)));
  }

  // ---- keys (§3, §4) ------------------------------------------------------

  const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
  function base32(b) {
    let out = '', bits = 0, acc = 0;
    for (const x of b) {
      acc = (acc << 8) | x; bits += 8;
      while (bits >= 5) { out += B32[(acc >>> (bits - 5)) & 31]; bits -= 5; }
      acc &= (1 << bits) - 1;
    }
    if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
    return out;
  }

  async function encodeKeyText(prefix, key) {
    const sum = (await sha256(concat(te.encode(prefix), key))).subarray(0, 4);
    return prefix + base32(concat(key, sum));
  }

  // parseKeyText parses a user key (prefix ck-key-) or realm key (ck-realm-)
  // text as §3.1 says; errors never quote the text.
  async function parseKeyText(text, prefix) {
    const what = prefix === KEY_PREFIX ? 'key' : 'realm key';
    if (typeof text !== 'string') throw new Error(what + ': not text');
    const s = text.trim();
    if (s.length < prefix.length || s.slice(0, prefix.length).toLowerCase() !== prefix) throw new Error(what + ': wrong or missing prefix');
    const body = s.slice(prefix.length);
    if (body.length !== 58) throw new Error(what + ': wrong length');
    if (!/^[a-zA-Z2-7]*$/.test(body)) throw new Error(what + ': characters outside base32');
    const lower = body.toLowerCase();
    const raw = new Uint8Array(36);
    let acc = 0, bits = 0, o = 0;
    for (const c of lower) {
      acc = (acc << 5) | B32.indexOf(c); bits += 5;
      if (bits >= 8) { raw[o++] = (acc >>> (bits - 8)) & 0xff; bits -= 8; acc &= (1 << bits) - 1; }
    }
    const key = raw.slice(0, 32);
    const sum = (await sha256(concat(te.encode(prefix), key))).subarray(0, 4);
    if (!equal(sum, raw.subarray(32))) throw new Error(what + ': checksum mismatch');
    if (base32(raw) !== lower) throw new Error(what + ': checksum mismatch (last character)');
    return key;
  }
  const parseKey = (t) => parseKeyText(t, KEY_PREFIX);
  const parseRealmKey = (t) => parseKeyText(t, REALM_KEY_PREFIX);

  function checkRealm(realm) {
    if (typeof realm !== 'string' || realm.length < 1 || realm.length > 64 || !/^[A-Za-z0-9._-]+$/.test(realm)) {
      throw new Error('realm name must be 1 to 64 letters, digits, ".", "-" or "_"');
    }
  }

  // userSubkeys derives macKey and encKey (§4.1).
  async function userSubkeys(userKey) {
    return {
      macKey: await hkdf32(userKey, SALT, te.encode('cipherknock/v1 mac')),
      encKey: await hkdf32(userKey, SALT, te.encode('cipherknock/v1 enc')),
    };
  }
  // outerKey derives the realm outer key (§4.2); realmKey null: no realm key.
  function outerKey(realmKey) {
    return hkdf32(realmKey || new Uint8Array(0), SALT, te.encode('cipherknock/v1 outer'));
  }

  let argon2id = null; // (pass, salt, t, mKiB, p, len) => Promise<Uint8Array>
  function setArgon2id(f) { argon2id = f; }
  function hasArgon2id() { return argon2id !== null; }

  // passphraseSalt and passphraseKey are §3.2.
  async function passphraseSalt(realm, index) {
    checkRealm(realm);
    const r = te.encode(realm);
    return (await sha256(concat(te.encode('cipherknock/v1 passphrase'), u8(r.length), r, u16be(index)))).slice(0, 16);
  }
  async function passphraseKey(pass, realm, index) {
    const p = typeof pass === 'string' ? te.encode(pass) : pass;
    if (p.length === 0) throw new Error('empty passphrase');
    if (!argon2id) throw new Error('passphrase keys need Argon2id (argon2.js is not loaded)');
    return argon2id(p, await passphraseSalt(realm, index), 3, 65536, 4, 32);
  }

  // ---- addresses ----------------------------------------------------------

  function parseIPv4(s) {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
    if (!m) return null;
    const b = m.slice(1).map((x) => (x.length > 1 && x[0] === '0') ? 256 : Number(x));
    return b.every((x) => x <= 255) ? Uint8Array.from(b) : null;
  }
  function parseIPv6(s) {
    if (typeof s !== 'string' || s.length < 2 || s.length > 45) return null;
    const lc = s.lastIndexOf(':');
    if (lc < 0) return null;
    let v4 = null;
    if (s.indexOf('.', lc) >= 0) {
      v4 = parseIPv4(s.slice(lc + 1));
      if (!v4) return null;
      s = s.slice(0, lc + 1);
      if (!s.endsWith('::')) s = s.slice(0, -1);
    }
    const halves = s.split('::');
    if (halves.length > 2) return null;
    const groups = (h) => (h === '' ? [] : h.split(':'));
    const head = groups(halves[0]), tail = halves.length === 2 ? groups(halves[1]) : [];
    if (![...head, ...tail].every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return null;
    const n = head.length + tail.length + (v4 ? 2 : 0);
    if (halves.length === 1 ? n !== 8 : n > 7) return null;
    const w = head.map((g) => parseInt(g, 16));
    if (halves.length === 2) for (let i = n; i < 8; i++) w.push(0);
    for (const g of tail) w.push(parseInt(g, 16));
    if (v4) w.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    const b = new Uint8Array(16);
    w.forEach((x, i) => { b[2 * i] = x >> 8; b[2 * i + 1] = x & 0xff; });
    return b;
  }
  function formatIPv4(b) { return Array.from(b).join('.'); }
  // formatIPv6 writes RFC 5952 text (IPv4-mapped addresses with a dotted tail).
  function formatIPv6(b) {
    const w = [];
    for (let i = 0; i < 16; i += 2) w.push((b[i] << 8) | b[i + 1]);
    if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) return '::ffff:' + formatIPv4(b.subarray(12));
    let best = -1, bestLen = 1;
    for (let i = 0; i < 8;) {
      if (w[i] !== 0) { i++; continue; }
      let j = i;
      while (j < 8 && w[j] === 0) j++;
      if (j - i > bestLen) { best = i; bestLen = j - i; }
      i = j;
    }
    const h = w.map((x) => x.toString(16));
    if (best < 0) return h.join(':');
    return h.slice(0, best).join(':') + '::' + h.slice(best + bestLen).join(':');
  }

  // ---- plaintext (§5) -----------------------------------------------------

  // encodePlaintext builds P from fields {action, proto, port, duration,
  // time, nonce (4 bytes), address (bytes, explicit modes)} (§5.2).
  function encodePlaintext(mode, f) {
    const addr = f.address || new Uint8Array(0);
    if (addr.length !== ADDR_LEN[mode]) throw new Error('address does not fit the mode');
    if (!f.nonce || f.nonce.length !== 4) throw new Error('nonce must be 4 bytes');
    return concat(u8((f.action << 4) | (f.proto & 1)), u16be(f.port), u16be(f.duration), u32be(f.time >>> 0), f.nonce, addr);
  }
  function decodePlaintext(mode, P) {
    const v = new DataView(P.buffer, P.byteOffset, P.byteLength);
    return {
      flags: P[0], action: P[0] >> 4, proto: P[0] & 1, reserved: P[0] & 0x0e,
      port: v.getUint16(1), duration: v.getUint16(3), time: v.getUint32(5),
      nonce: P.slice(9, 13), address: P.slice(13, 13 + ADDR_LEN[mode]),
    };
  }
  // inRange is §5.3. bound is mode bound's address (4 or 16 bytes): the
  // sender's, or the receiver's observed source.
  function inRange(mode, P, bound) {
    if (!isMode(mode) || P.length !== PLAIN_LEN[mode]) return false;
    const f = decodePlaintext(mode, P);
    if (f.reserved !== 0) return false;
    if (f.action !== OPEN && f.action !== CLOSE) return false;
    if (f.port === 0) return false;
    if (f.action === OPEN && f.duration === 0) return false;
    if (f.action === CLOSE && f.duration !== 0) return false;
    const a = f.address;
    if (mode === 1) {
      if (a.every((x) => x === 0)) return false;
      if ((a[0] & 0xf0) === 0xe0) return false;
      if (a.every((x) => x === 255)) return false;
    }
    if (mode === 2) {
      if (a.every((x) => x === 0)) return false;
      if (a[0] === 0xff) return false;
      if (isMapped(a)) return false;
    }
    if (mode === 3 && !boundAddrOK(bound)) return false;
    return true;
  }
  const isMapped = (a) => a.length === 16 && a.subarray(0, 10).every((x) => x === 0) && a[10] === 0xff && a[11] === 0xff;
  // unmap gives an IPv4-mapped IPv6 address as its 4 IPv4 bytes.
  const unmap = (a) => (isMapped(a) ? a.slice(12) : a);
  // boundAddrOK is §5.3's rule for mode bound: the address, taken as IPv4
  // if it is IPv4-mapped, obeys the rule of mode ipv4 or ipv6.
  function boundAddrOK(a) {
    if (!(a instanceof Uint8Array) || (a.length !== 4 && a.length !== 16)) return false;
    const u = unmap(a);
    if (u.every((x) => x === 0)) return false;
    if (u.length === 4) return (u[0] & 0xf0) !== 0xe0 && !u.every((x) => x === 255);
    return u[0] !== 0xff;
  }
  // boundAddr16 is the 16 bytes of A under a bound tag (§6.2): IPv4
  // a.b.c.d as ::ffff:a.b.c.d.
  function boundAddr16(a) {
    if (!(a instanceof Uint8Array) || (a.length !== 4 && a.length !== 16)) throw new Error('mode bound needs an IPv4 or IPv6 address');
    return a.length === 16 ? a.slice() : concat(new Uint8Array(10), Uint8Array.of(0xff, 0xff), a);
  }
  // parseAddr parses IPv4 or IPv6 text into 4 or 16 bytes, or null; an
  // IPv4-mapped IPv6 address stays 16 bytes.
  function parseAddr(s) {
    if (typeof s !== 'string') return null;
    return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
  }
  function formatAddr(b) { return b.length === 4 ? formatIPv4(b) : formatIPv6(b); }

  // ---- sealing (§6) -------------------------------------------------------

  // seal returns the knock and every intermediate of Appendix B. s holds
  // realm, outerKey, index, macKey, encKey, mode and P, and for mode bound
  // bound, the address the sender believes the receiver sees (4 or 16
  // bytes; under the tag, not sent, §6.2). With check, an out-of-range P or
  // bound address is refused (§5.3); the vectors seal hand-made P without.
  async function seal(s, check = true) {
    checkRealm(s.realm);
    const mode = s.mode, P = s.P;
    if (!isMode(mode) || P.length !== PLAIN_LEN[mode]) throw new Error('plaintext length does not fit the mode');
    if (mode !== 3 && s.bound !== undefined && s.bound !== null) throw new Error('only mode bound binds an address');
    const A = mode === 3 ? boundAddr16(s.bound) : new Uint8Array(0);
    if (check && !inRange(mode, P, s.bound)) throw new Error('fields out of range (SPEC.md §5.3): not sealed');
    const H = u8(0x10 | mode);
    const r = te.encode(s.realm);
    const macInput = concat(u8(r.length), r, H, u16be(s.index), P, A);
    const hmac = await hmacSHA256(s.macKey, macInput);
    const T = hmac.slice(0, 8);
    const KS = await aesCTR(s.encKey, concat(T, new Uint8Array(8)), P.length);
    const C = P.map((x, i) => x ^ KS[i]);
    const padBlock = await aesCTR(s.outerKey, concat(T, new Uint8Array(8)), 16);
    const pad = padBlock.slice(0, 2);
    const E = Uint8Array.of(((s.index >> 8) & 0xff) ^ pad[0], (s.index & 0xff) ^ pad[1]);
    const K = concat(H, E, C, T);
    return { H, macInput, A, hmac, T, KS, C, padBlock, pad, E, K };
  }

  // ---- port span (§9) -----------------------------------------------------

  function checkBase(base) {
    if (!Number.isInteger(base) || base < MIN_BASE || base > MAX_BASE) throw new Error('span base must be ' + MIN_BASE + '..' + MAX_BASE);
  }
  function knockPorts(K, base = DEFAULT_BASE) {
    checkBase(base);
    return Array.from(K, (b, i) => base + 256 * i + b);
  }
  function knockLength(header) {
    if (header >> 4 !== 1) return 0;
    const m = header & 0x0f;
    return isMode(m) ? KNOCK_LEN[m] : 0;
  }

  // decodePorts is strict decoding (§10.1); it throws a KnockError.
  function decodePorts(ports, base = DEFAULT_BASE) {
    const have = new Array(POSITIONS).fill(false);
    const val = new Uint8Array(POSITIONS);
    let conflict = false;
    for (const p of ports) {
      if (p < base || p > base + SPAN_PORTS - 1) fail('port outside span');
      const i = Math.floor((p - base) / 256), b = (p - base) % 256;
      if (have[i] && val[i] !== b) conflict = true;
      have[i] = true; val[i] = b;
    }
    if (conflict) fail('conflicting duplicate');
    if (!have[0]) fail('truncated');
    if (val[0] >> 4 !== 1) fail('unknown version');
    const m = val[0] & 0x0f;
    if (!isMode(m)) fail('malformed knock');
    const n = KNOCK_LEN[m];
    for (let i = n; i < POSITIONS; i++) if (have[i]) fail('extra packets');
    for (let i = 0; i < n; i++) if (!have[i]) fail('truncated');
    return val.slice(0, n);
  }

  // ---- opening (§8) -------------------------------------------------------

  const INT64_MIN = -(2n ** 63n), INT64_MAX = 2n ** 63n - 1n;
  // toTime takes the receiver's clock as a safe-integer Number or a BigInt
  // in the signed 64-bit range.
  function toTime(now) {
    if (typeof now === 'number' && Number.isSafeInteger(now)) return BigInt(now);
    if (typeof now === 'bigint' && now >= INT64_MIN && now <= INT64_MAX) return now;
    throw new Error('the receiver time must be an integer in the signed 64-bit range');
  }

  // Receiver holds a realm's configuration: realm name, outer key, users by
  // index ({macKey, encKey}), window and an optional replay cache.
  class Receiver {
    constructor({ realm, outerKey, window = DEFAULT_WINDOW, base = DEFAULT_BASE }) {
      checkRealm(realm);
      if (!Number.isInteger(window) || window < MIN_WINDOW || window > MAX_WINDOW) throw new Error('window must be 5..600 seconds');
      checkBase(base);
      this.realm = realm; this.outerKey = outerKey; this.window = window; this.base = base;
      this.users = new Map();
      this.replay = new Set();
    }
    addUser(index, sub) { this.users.set(index, sub); }

    // open is Open(K, now, src) of §8, steps 4, 5 and 8–12. now is the
    // receiver's clock in Unix seconds, a Number or a BigInt (any signed
    // 64-bit value: the window check cannot overflow, §7.1); src is the
    // packets' source address (4 or 16 bytes), which only mode bound uses:
    // without it a bound knock fails as bad tag. It returns {mode, index,
    // fields, P, T, id} or throws a KnockError; for mode bound
    // fields.address is src, unmapped. It records nothing: accept() adds
    // the replay step.
    async open(K, now, src) {
      const nowB = toTime(now);
      if (K.length === 0) fail('malformed knock');
      if (K[0] >> 4 !== 1) fail('unknown version');
      const mode = K[0] & 0x0f;
      if (!isMode(mode)) fail('malformed knock');
      const n = KNOCK_LEN[mode];
      if (K.length !== n) fail('malformed knock');
      const T = K.slice(n - 8, n);
      const pad = (await aesCTR(this.outerKey, concat(T, new Uint8Array(8)), 16)).subarray(0, 2);
      const index = ((K[1] ^ pad[0]) << 8) | (K[2] ^ pad[1]);
      const u = this.users.get(index);
      if (!u) fail('unknown user');
      const KS = await aesCTR(u.encKey, concat(T, new Uint8Array(8)), n - 11);
      const P = K.slice(3, n - 8).map((x, i) => x ^ KS[i]);
      let A = new Uint8Array(0);
      if (mode === 3) {
        // No observed address can match the tag (§8 step 9).
        if (!(src instanceof Uint8Array) || (src.length !== 4 && src.length !== 16)) { P.fill(0); fail('bad tag'); }
        A = boundAddr16(src);
      }
      const r = te.encode(this.realm);
      const T2 = (await hmacSHA256(u.macKey, concat(u8(r.length), r, K.subarray(0, 1), u16be(index), P, A))).subarray(0, 8);
      if (!equal(T, T2)) { P.fill(0); fail('bad tag'); }
      if (!inRange(mode, P, src)) fail('field out of range');
      const f = decodePlaintext(mode, P);
      if (mode === 3) f.address = unmap(src).slice();
      // §7.1 without overflow, exactly, whatever now is: time is
      // 0..2^32-1 and the window at most 600.
      const t = BigInt(f.time), w = BigInt(this.window);
      if (nowB > t + w) fail('stale');
      if (nowB < t - w) fail('future');
      return { mode, index, fields: f, P, T, id: concat(u16be(index), T) };
    }
    // accept opens K and applies the replay cache (§7.2).
    async accept(K, now, src) {
      const r = await this.open(K, now, src);
      const id = hex(r.id);
      if (this.replay.has(id)) fail('replay');
      this.replay.add(id);
      return r;
    }
  }

  // ---- the assembler (§10.2) ----------------------------------------------

  // RECENT_MS is R of §10.2, its RECOMMENDED value: a byte that arrived
  // more than R before a failed open is taken for one sprayed ahead of the
  // knock, and a retry waits for its position to be seen again.
  const RECENT_MS = 200;
  // RETRIES is how often a failed candidate is retried with its last
  // reading before its mode is spent (§10.2 step 3). With the two readings
  // of its first open, a mode is opened at most RETRIES + 2 times.
  const RETRIES = 2;

  // splitPort gives port p's (position, byte) in the span at base (§9.1),
  // or null outside it.
  function splitPort(base, p) {
    if (!Number.isInteger(p) || p < base || p > base + SPAN_PORTS - 1) return null;
    return [Math.floor((p - base) / 256), (p - base) % 256];
  }

  // Assembler is one source address's assembler (§10.2): per position the
  // first and last byte, the arrival of the last and whether it was seen;
  // the candidate modes, each with its retry count and the positions it
  // waits for; and the spent modes. Times are milliseconds of the caller's
  // clock. feed(p, now) records a packet; settle(now, open) runs the
  // opening steps while the assembler is complete.
  class Assembler {
    constructor(base = DEFAULT_BASE, recent = RECENT_MS) {
      checkBase(base);
      if (!Number.isSafeInteger(recent) || recent <= 0) throw new Error('R must be a positive number of milliseconds');
      this.base = base; this.recent = recent;
      this.seen = new Array(POSITIONS).fill(false);
      this.first = new Uint8Array(POSITIONS);
      this.last = new Uint8Array(POSITIONS);
      this.at = new Array(POSITIONS).fill(0);
      this.conflicted = new Array(POSITIONS).fill(false);
      this.candidates = new Set();
      this.retry = new Map(); // mode -> 0, 1 or 2
      this.wait = new Map(); // mode -> Set of positions it waits for
      this.spent = new Set();
    }
    // feed records one packet to port p arriving at now (steps 1 to 6); it
    // reports whether the assembler used it: a port outside the span, a
    // position-0 byte that is no version-1 header of a known mode, or the
    // header of a spent mode is ignored.
    feed(p, now = 0) {
      const ib = splitPort(this.base, p);
      if (!ib) return false;
      const [i, b] = ib;
      if (i === 0) {
        if (knockLength(b) === 0 || this.spent.has(b & 0x0f)) return false;
        const m = b & 0x0f;
        if (!this.candidates.has(m)) { this.candidates.add(m); this.retry.set(m, 0); this.wait.set(m, new Set()); }
        this.seen[0] = true; this.first[0] = this.last[0] = b;
        return true;
      }
      if (!this.seen[i]) { this.first[i] = this.last[i] = b; this.seen[i] = true; } else {
        this.last[i] = b;
        if (b !== this.first[i]) this.conflicted[i] = true;
      }
      this.at[i] = now;
      for (const w of this.wait.values()) w.delete(i);
      return true;
    }
    // complete returns the mode of the complete knock, or -1: the first
    // candidate, in MODE_ORDER (by length), whose positions are all seen
    // and that waits for none (step 7).
    complete() {
      for (const m of MODE_ORDER) {
        if (!this.candidates.has(m) || this.wait.get(m).size > 0) continue;
        let all = true;
        for (let i = 0; i < KNOCK_LEN[m]; i++) if (!this.seen[i]) { all = false; break; }
        if (all) return m;
      }
      return -1;
    }
    reading(m, which) {
      const n = KNOCK_LEN[m];
      const src = which === 'last' ? this.last : this.first;
      const K = src.slice(0, n);
      K[0] = 0x10 | m;
      return K;
    }
    anyConflict(m) {
      for (let i = 1; i < KNOCK_LEN[m]; i++) if (this.conflicted[i]) return true;
      return false;
    }
    // settle runs the opening steps of §10.2 at time now while the
    // assembler is complete. open(K, mode, reading, retry) resolves to
    // 'accepted' (the reading led to a grant), 'refused' (it opened but was
    // refused: a replay, or policy) or 'failed'. settle resolves to whether
    // the caller keeps the assembler; it discards it after a grant or once
    // no candidate remains.
    async settle(now, open) {
      let m;
      while ((m = this.complete()) >= 0) {
        const r = this.retry.get(m), n = KNOCK_LEN[m];
        const tries = [r === 0 ? 'first' : 'last'];
        if (r === 0 && this.anyConflict(m) && !equal(this.reading(m, 'first'), this.reading(m, 'last'))) tries.push('last');
        for (const which of tries) if (await open(this.reading(m, which), m, which, r) === 'accepted') return false;
        if (r === RETRIES) {
          this.candidates.delete(m); this.wait.delete(m); this.retry.delete(m); this.spent.add(m);
        } else {
          const old = new Set();
          for (let i = 1; i < n; i++) if (now - this.at[i] > this.recent) old.add(i);
          if (old.size === 0) for (let i = 1; i < n; i++) old.add(i);
          this.retry.set(m, r + 1); this.wait.set(m, old);
        }
        if (this.candidates.size === 0) return false;
      }
      return true;
    }
  }

  // assemble runs the receiver's assembler over a packet stream from one
  // source address src (4 or 16 bytes; mode bound checks its tag against
  // it), every packet arriving at the same time, opening (with the replay
  // cache) each complete knock as §10.2 says: at most RETRIES + 2 opens per
  // mode and assembly. It returns the list of events: {type: 'open', at,
  // mode, reading, retry, K, snapshot, result | cls} and {type: 'discard'},
  // and the assembler's state at each completion (its first and last
  // readings).
  async function assemble(ports, receiver, now, src) {
    const events = [];
    let a = new Assembler(receiver.base);
    for (let at = 0; at < ports.length; at++) {
      if (!a.feed(ports[at], 0)) continue;
      let granted = false;
      const keep = await a.settle(0, async (K, mode, reading, retry) => {
        const n = KNOCK_LEN[mode];
        const snapshot = { first: a.first.slice(0, n), last: a.last.slice(0, n), conflicted: a.conflicted.slice(0, n) };
        const ev = { type: 'open', at, mode, reading, retry, K, snapshot };
        events.push(ev);
        try { ev.result = await receiver.accept(K, now, src); granted = true; return 'accepted'; } catch (e) {
          if (!(e instanceof KnockError)) throw e;
          ev.cls = e.cls;
          return e.cls === 'replay' ? 'refused' : 'failed';
        }
      });
      if (!keep) {
        events.push({ type: 'discard', at, why: granted ? 'success' : 'every candidate failed or was spent' });
        a = new Assembler(receiver.base);
      }
    }
    return { events, pending: a };
  }

  // ---- stream vectors (§12.1) ---------------------------------------------

  const STREAM_KEYS = ['comment', 'key', 'user-index', 'realm', 'span-base', 'receiver-time',
    'receiver-window', 'assembler-timeout', 'recent'];
  const DEFAULT_ASSEMBLER_TIMEOUT = 10000;

  // parseStream reads a stream vector's text (§12.1) into {name, header,
  // packets: [{ms, src, addr, port, opens: [{knock, outcome}]}]}, as
  // strictly as internal/vectors: an unknown or repeated header key, a
  // malformed line, an open before any packet, an unknown outcome or
  // arrival times that go back make the file invalid (VectorError).
  function parseStream(name, text) {
    const bad = (line, m) => { throw new VectorError(name + ':' + line + ': ' + m); };
    if (!/^[a-z0-9][a-z0-9_]*$/.test(name) || name.length > 100) bad(0, 'bad vector name');
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const header = {}, packets = [];
    let i = 0;
    for (; i < lines.length; i++) {
      const l = lines[i];
      if (l === '') break;
      const c = l.indexOf(': ');
      if (c < 0) bad(i + 1, 'not a header line');
      const k = l.slice(0, c), v = l.slice(c + 2);
      if (v === '' || v !== v.trim() || /[\x00-\x1f\x7f]/.test(v)) bad(i + 1, 'not a header line');
      if (!STREAM_KEYS.includes(k)) bad(i + 1, 'unknown header key "' + k.slice(0, 32).replace(/[^\x20-\x7e]/g, '?') + '"');
      if (k in header) bad(i + 1, 'key "' + k + '" twice');
      header[k] = v;
    }
    if (i >= lines.length) bad(i, 'no empty line after the header');
    for (i++; i < lines.length; i++) {
      const f = lines[i].split(/[ \t\r\v\f]+/).filter((x) => x !== '');
      if (f.length === 4 && f[0] === '>' && f[1] === 'open') {
        if (!packets.length) bad(i + 1, 'an open before any packet');
        if (f[2] === '' || !/^([0-9a-f]{2})+$/.test(f[2])) bad(i + 1, 'bad knock hex');
        const outcome = f[3].replace(/_/g, ' ');
        if (outcome !== 'success' && !CLASSES.includes(outcome)) bad(i + 1, 'unknown outcome "' + f[3].slice(0, 32).replace(/[^\x20-\x7e]/g, '?') + '"');
        packets[packets.length - 1].opens.push({ knock: f[2], outcome });
      } else if (f.length === 3) {
        if (!/^(0|[1-9][0-9]*)$/.test(f[0]) || !Number.isSafeInteger(Number(f[0]))) bad(i + 1, 'bad arrival time');
        const ms = Number(f[0]);
        if (packets.length && ms < packets[packets.length - 1].ms) bad(i + 1, 'arrival times go back');
        const addr = parseAddr(f[1]);
        if (!addr || formatAddr(addr) !== f[1]) bad(i + 1, 'bad source address');
        if (!/^(0|[1-9][0-9]{0,4})$/.test(f[2]) || Number(f[2]) > 65535) bad(i + 1, 'bad port');
        packets.push({ ms, src: f[1], addr, port: Number(f[2]), opens: [] });
      } else bad(i + 1, 'not a packet or open line');
    }
    for (const k of ['key', 'user-index', 'realm', 'receiver-time']) if (!(k in header)) bad(0, 'missing ' + k);
    return { name, header, packets };
  }

  // runStream plays a parsed stream's packets through the receiver of
  // §12.1: one assembler per source address (§10.2, with the file's
  // timeout and R; an assembler older than the timeout when a packet comes
  // for it is discarded first), the replay cache of §7.2 and no policy.
  // It resolves to the packets with the opens each caused.
  async function runStream(s) {
    const v = { name: s.name, header: s.header };
    const H = s.header;
    let key;
    try { key = await parseKey(H.key); } catch (e) { throw new VectorError(s.name + ': key: ' + e.message); }
    const index = intField(v, 'user-index', 0, 65535);
    try { checkRealm(H.realm); } catch (e) { throw new VectorError(s.name + ': realm: ' + e.message); }
    const base = intField(v, 'span-base', MIN_BASE, MAX_BASE, DEFAULT_BASE);
    const start = timeField(v, 'receiver-time');
    const window = intField(v, 'receiver-window', MIN_WINDOW, MAX_WINDOW, DEFAULT_WINDOW);
    const timeout = intField(v, 'assembler-timeout', 1, 600000, DEFAULT_ASSEMBLER_TIMEOUT);
    const recent = intField(v, 'recent', 1, 600000, RECENT_MS);
    const rcv = new Receiver({ realm: H.realm, outerKey: await outerKey(null), window, base });
    rcv.addUser(index, await userSubkeys(key));
    const asm = new Map(); // source text -> {a, born}
    const out = [];
    for (const p of s.packets) {
      const o = { ms: p.ms, src: p.src, port: p.port, opens: [] };
      out.push(o);
      const probe = splitPort(base, p.port);
      // Not a knock packet, or garbage at position 0: it takes no assembler.
      if (!probe || (probe[0] === 0 && knockLength(probe[1]) === 0)) continue;
      let e = asm.get(p.src);
      if (!e || p.ms - e.born > timeout) { e = { a: new Assembler(base, recent), born: p.ms }; asm.set(p.src, e); }
      if (!e.a.feed(p.port, p.ms) || e.a.complete() < 0) continue;
      const now = start + BigInt(Math.floor(p.ms / 1000));
      const keep = await e.a.settle(p.ms, async (K) => {
        const op = { knock: hex(K), outcome: 'success' };
        o.opens.push(op);
        try { await rcv.accept(K, now, p.addr); return 'accepted'; } catch (err) {
          if (!(err instanceof KnockError)) throw err;
          op.outcome = err.cls;
          return err.cls === 'replay' ? 'refused' : 'failed';
        }
      });
      if (!keep) asm.delete(p.src);
    }
    return out;
  }

  // checkStream runs a parsed stream vector and finds exactly the opens it
  // lists, in order, after the packets it lists; it resolves to the
  // number of packets and of opens, or rejects with a VectorError.
  async function checkStream(s) {
    const got = await runStream(s);
    let opens = 0;
    for (let i = 0; i < got.length; i++) {
      const p = got[i], want = s.packets[i].opens;
      const at = 'packet ' + (i + 1) + ' (' + p.ms + ' ms, ' + p.src + ', port ' + p.port + ')';
      if (p.opens.length !== want.length) throw new VectorError(s.name + ': ' + at + ': ' + p.opens.length + ' opens, the vector lists ' + want.length);
      for (let j = 0; j < want.length; j++) {
        const g = p.opens[j], w = want[j];
        if (g.knock !== w.knock || g.outcome !== w.outcome) {
          throw new VectorError(s.name + ': ' + at + ', open ' + (j + 1) + ': ' + g.knock + ' ' + g.outcome + ', the vector says ' + w.knock + ' ' + w.outcome);
        }
      }
      opens += want.length;
    }
    return { packets: got.length, opens };
  }

  // ---- test vectors (§12) -------------------------------------------------

  const VECTOR_KEYS = ['comment', 'expect', 'key', 'passphrase', 'user-index', 'realm', 'realm-key',
    'mode', 'action', 'protocol', 'port', 'duration', 'timestamp', 'nonce', 'address', 'span-base',
    'receiver-key', 'receiver-passphrase', 'receiver-user-index', 'receiver-realm', 'receiver-realm-key',
    'receiver-time', 'receiver-window', 'receiver-source', 'mac-key', 'enc-key', 'outer-key', 'plaintext', 'tag',
    'user-field', 'ciphertext', 'knock', 'ports'];
  const FIELD_KEYS = ['action', 'protocol', 'port', 'duration', 'timestamp', 'nonce'];

  class VectorError extends Error { constructor(m) { super(m); this.name = 'VectorError'; } }
  class Skip extends Error { constructor(m) { super(m); this.name = 'Skip'; } }

  // parseVector reads a vector file's text into {name, header, body}. It
  // checks the syntax of §12; the values are checked by checkVector.
  function parseVector(name, text) {
    const bad = (line, m) => { throw new VectorError(name + ':' + line + ': ' + m); };
    if (!/^[a-z0-9][a-z0-9_]*$/.test(name) || name.length > 100) bad(0, 'bad vector name');
    const lines = text.split('\n');
    const header = {};
    let i = 0;
    for (; i < lines.length; i++) {
      const l = lines[i];
      if (l === '') break;
      const m = /^([a-z0-9-]+): (.*)$/.exec(l);
      if (!m) bad(i + 1, 'not a "key: value" line');
      const v = m[2];
      if (v === '' || v !== v.trim() || /[\x00-\x1f\x7f]/.test(v)) bad(i + 1, 'bad value for ' + m[1]);
      if (m[1] in header) bad(i + 1, 'duplicate key ' + m[1]);
      header[m[1]] = v;
    }
    if (i >= lines.length) bad(i, 'missing empty line after the header');
    const rest = lines.slice(i + 1).join('\n');
    if (rest !== '' && !rest.endsWith('\n')) bad(lines.length, 'body does not end with a newline');
    const body = [];
    for (const tok of rest.split(/\s+/)) {
      if (tok === '') continue;
      if (!/^(0|[1-9][0-9]{0,4})$/.test(tok) || Number(tok) > 65535) bad(i + 2, 'bad port in body');
      body.push(Number(tok));
    }
    return { name, header, body };
  }

  function need(v, k) {
    if (!(k in v.header)) throw new VectorError(v.name + ': missing ' + k);
    return v.header[k];
  }
  function intField(v, k, lo, hi, dflt) {
    if (!(k in v.header)) {
      if (dflt === undefined) throw new VectorError(v.name + ': missing ' + k);
      return dflt;
    }
    const s = v.header[k];
    if (!/^(0|-?[1-9][0-9]*)$/.test(s) || Number(s) < lo || Number(s) > hi) throw new VectorError(v.name + ': bad ' + k);
    return Number(s);
  }

  async function vectorKey(v, keyName, passName, realm, index) {
    const k = v.header[keyName], p = v.header[passName];
    if (k !== undefined && p !== undefined) throw new VectorError(v.name + ': both ' + keyName + ' and ' + passName);
    if (k !== undefined) {
      try { return await parseKey(k); } catch (e) { throw new VectorError(v.name + ': ' + keyName + ': ' + e.message); }
    }
    if (p !== undefined) {
      if (!hasArgon2id()) throw new Skip('passphrase keys need Argon2id (load argon2.js)');
      return passphraseKey(p, realm, index);
    }
    return null;
  }

  // checkVector checks one parsed vector as §12's checker must. It resolves
  // to {class, knock, ports} when the vector holds; it rejects with a
  // VectorError (the vector is invalid or its values disagree with this
  // implementation) or a Skip (the vector is for a mode or feature this
  // implementation does not have; the message names it).
  async function checkVector(v) {
    const H = v.header;
    const modeName = need(v, 'mode');
    if (!(modeName in MODES)) throw new Skip('mode "' + modeName + '" is not implemented here (modes: ' + MODE_NAMES.join(', ') + ')');
    for (const k of Object.keys(H)) if (!VECTOR_KEYS.includes(k)) throw new VectorError(v.name + ': unknown header key ' + k);
    const mode = MODES[modeName];
    const mismatch = (what, got, want) => { throw new VectorError(v.name + ': ' + what + ' is ' + got + ', the vector says ' + want); };
    const expect = need(v, 'expect');
    if (expect !== 'success' && (!CLASSES.includes(expect) || expect === 'replay')) throw new VectorError(v.name + ': bad expect');

    const realm = need(v, 'realm');
    try { checkRealm(realm); } catch (e) { throw new VectorError(v.name + ': realm: ' + e.message); }
    const index = intField(v, 'user-index', 0, 65535);
    const base = intField(v, 'span-base', MIN_BASE, MAX_BASE, DEFAULT_BASE);
    const key = await vectorKey(v, 'key', 'passphrase', realm, index);
    if (!key) throw new VectorError(v.name + ': needs key or passphrase');
    let rk = null;
    if ('realm-key' in H) {
      try { rk = await parseRealmKey(H['realm-key']); } catch (e) { throw new VectorError(v.name + ': realm-key: ' + e.message); }
    }
    const sub = await userSubkeys(key);
    const ok = await outerKey(rk);
    if (hex(sub.macKey) !== need(v, 'mac-key')) mismatch('mac-key', hex(sub.macKey), H['mac-key']);
    if (hex(sub.encKey) !== need(v, 'enc-key')) mismatch('enc-key', hex(sub.encKey), H['enc-key']);
    if (hex(ok) !== need(v, 'outer-key')) mismatch('outer-key', hex(ok), H['outer-key']);

    // Mode bound's address is under the tag, not in P: a bound vector
    // always has it, with or without the other fields (§12).
    let bound = null;
    if (mode === 3) {
      if (!('address' in H)) throw new VectorError(v.name + ': mode bound needs an address header');
      bound = addrField(v, 'address');
    }
    const hasFields = FIELD_KEYS.filter((k) => k in H);
    let P, fields = null;
    if (hasFields.length === FIELD_KEYS.length) {
      fields = fieldsFromVector(v, mode);
      P = encodePlaintext(mode, fields);
      // A sender never seals fields out of range (§5.3, §12): such a
      // vector is invalid; out-of-range cases are hand-made plaintexts.
      if (!inRange(mode, P, bound)) throw new VectorError(v.name + ': the fields are out of range (SPEC.md §5.3): a vector gives such a knock as a hand-made plaintext');
      if (hex(P) !== need(v, 'plaintext')) mismatch('plaintext', hex(P), H.plaintext);
    } else if (hasFields.length === 0 && (!('address' in H) || mode === 3)) {
      P = unhexField(v, 'plaintext');
      if (P.length !== PLAIN_LEN[mode]) throw new VectorError(v.name + ': plaintext length ' + P.length + ', mode ' + modeName + ' needs ' + PLAIN_LEN[mode]);
    } else throw new VectorError(v.name + ': needs all of ' + FIELD_KEYS.join(', ') + ' or none (and no address outside mode bound)');
    const s = await seal({ realm, outerKey: ok, index, macKey: sub.macKey, encKey: sub.encKey, mode, P, bound }, false);
    for (const [k, got] of [['tag', s.T], ['user-field', s.E], ['ciphertext', s.C], ['knock', s.K]]) {
      if (hex(got) !== need(v, k)) mismatch(k, hex(got), H[k]);
    }
    const ports = knockPorts(s.K, base).join(' ');
    if (ports !== need(v, 'ports')) mismatch('ports', ports, H.ports);

    // The receiver (§12 checker step 2).
    const rRealm = H['receiver-realm'] !== undefined ? H['receiver-realm'] : realm;
    try { checkRealm(rRealm); } catch (e) { throw new VectorError(v.name + ': receiver-realm: ' + e.message); }
    const rIndex = intField(v, 'receiver-user-index', 0, 65535, index);
    let rKey = await vectorKey(v, 'receiver-key', 'receiver-passphrase', rRealm, rIndex);
    if (!rKey) rKey = key;
    let rRK = rk;
    if ('receiver-realm-key' in H) {
      if (H['receiver-realm-key'] === 'none') rRK = null;
      else {
        try { rRK = await parseRealmKey(H['receiver-realm-key']); } catch (e) { throw new VectorError(v.name + ': receiver-realm-key: ' + e.message); }
      }
    }
    const now = timeField(v, 'receiver-time');
    const window = intField(v, 'receiver-window', MIN_WINDOW, MAX_WINDOW, DEFAULT_WINDOW);
    // The packets' source: receiver-source, or else the bound address
    // (mode bound) or none.
    const src = 'receiver-source' in H ? addrField(v, 'receiver-source') : bound;
    const rcv = new Receiver({ realm: rRealm, outerKey: await outerKey(rRK), window, base });
    rcv.addUser(rIndex, await userSubkeys(rKey));

    // Decode strictly and open (step 3).
    let cls = 'success', opened = null, decoded = null;
    try {
      decoded = decodePorts(v.body, base);
      opened = await rcv.open(decoded, now, src);
    } catch (e) {
      if (!(e instanceof KnockError)) throw e;
      cls = e.cls;
    }
    if (cls !== expect) mismatch('the class', '"' + cls + '"', '"' + expect + '"');
    if (cls === 'success') {
      if (hex(decoded) !== H.knock) mismatch('the decoded body', hex(decoded), H.knock);
      if (opened.index !== index) mismatch('the opened user index', opened.index, index);
      if (hex(opened.id) !== hex(u16be(index)) + H.tag) mismatch('the replay ID', hex(opened.id), hex(u16be(index)) + H.tag);
      if (hex(opened.P) !== H.plaintext) mismatch('the opened fields', hex(opened.P), H.plaintext);
      if (opened.mode !== mode) mismatch('the opened mode', MODE_NAMES[opened.mode], modeName);
      // In mode bound the opened address is the observed source, unmapped,
      // and it is the address the sender bound.
      if (mode === 3 && formatAddr(opened.fields.address) !== formatAddr(unmap(bound))) mismatch('the opened address', formatAddr(opened.fields.address), formatAddr(unmap(bound)));
      if (fields) {
        const f = opened.fields;
        const back = encodePlaintext(mode, { action: f.action, proto: f.proto, port: f.port, duration: f.duration, time: f.time, nonce: f.nonce, address: mode === 3 ? null : f.address });
        if (hex(back) !== H.plaintext) mismatch('the re-encoded fields', hex(back), H.plaintext);
      }
    }
    return { class: cls, knock: hex(s.K), ports };
  }

  // addrField reads an address header in canonical text form (dotted quad,
  // RFC 5952) into 4 or 16 bytes.
  function addrField(v, k) {
    const a = need(v, k);
    const b = parseAddr(a);
    if (!b || formatAddr(b) !== a) throw new VectorError(v.name + ': ' + k + ': not an IP address in canonical form');
    return b;
  }
  // timeField reads a signed 64-bit decimal integer, exactly, as a BigInt.
  function timeField(v, k) {
    const s = need(v, k);
    if (!/^(0|-?[1-9][0-9]{0,18})$/.test(s)) throw new VectorError(v.name + ': bad ' + k);
    const n = BigInt(s);
    if (n < INT64_MIN || n > INT64_MAX) throw new VectorError(v.name + ': bad ' + k + ' (outside the signed 64-bit range)');
    return n;
  }

  function unhexField(v, k) {
    try { return unhex(need(v, k)); } catch (e) { throw new VectorError(v.name + ': ' + k + ': ' + e.message); }
  }
  function fieldsFromVector(v, mode) {
    const H = v.header;
    const action = { open: OPEN, close: CLOSE }[H.action];
    const proto = { tcp: TCP, udp: UDP }[H.protocol];
    if (action === undefined) throw new VectorError(v.name + ': bad action');
    if (proto === undefined) throw new VectorError(v.name + ': bad protocol');
    const nonce = unhexField(v, 'nonce');
    if (nonce.length !== 4) throw new VectorError(v.name + ': nonce must be 4 bytes');
    let address = new Uint8Array(0);
    if (mode === 1 || mode === 2) {
      address = addrField(v, 'address');
      if ((address.length === 4) !== (mode === 1)) throw new VectorError(v.name + ': address family does not match mode ' + MODE_NAMES[mode]);
    } else if (mode === 0 && 'address' in H) throw new VectorError(v.name + ': address in mode source');
    return {
      action, proto, nonce, address,
      port: intField(v, 'port', 0, 65535), duration: intField(v, 'duration', 0, 65535),
      time: intField(v, 'timestamp', 0, 4294967295),
    };
  }

  // ---- profile URIs (package profile) --------------------------------------

  const URI_PARAMS = ['realm', 'user', 'key', 'rk', 'port', 'proto', 'dur', 'base', 'addr', 'via', 'rep', 'stun', 'name'];

  // checkHost, checkHostPort and checkAddress are package profile's
  // CheckHost, CheckHostPort and CheckAddress.
  function checkHost(h) {
    if (h === '') throw new Error('host is missing');
    if (parseIPv4(h) || parseIPv6(h)) return;
    if (h.length > 253) throw new Error('host name is too long');
    for (const label of h.replace(/\.$/, '').split('.')) {
      if (!/^[A-Za-z0-9_-]{1,63}$/.test(label) || label[0] === '-' || label[label.length - 1] === '-') {
        throw new Error('host is not a valid DNS name or IP address');
      }
    }
  }
  function checkHostPort(s) {
    const i = s.lastIndexOf(':');
    if (i < 0) throw new Error('want host:port');
    let host = s.slice(0, i);
    const port = s.slice(i + 1);
    if (host.startsWith('[') && host.endsWith(']')) {
      host = host.slice(1, -1);
      if (!parseIPv6(host)) throw new Error('bad IPv6 address in brackets');
    } else if (host.includes(':')) throw new Error('IPv6 addresses need brackets: [addr]:port');
    checkHost(host);
    if (!/^[1-9][0-9]{0,4}$/.test(port) || Number(port) > 65535) throw new Error('port must be 1..65535');
  }
  function checkAddress(a) {
    if (a === 'source' || a === 'auto') return;
    let mode = 1, b = parseIPv4(a);
    if (!b) {
      b = parseIPv6(a);
      if (!b) throw new Error('address must be "source", "auto" or an IP address');
      mode = 2;
      if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) { mode = 1; b = b.slice(12); }
    }
    const P = concat(Uint8Array.of(0x10, 0, 1, 0, 1), new Uint8Array(8), b);
    if (!inRange(mode, P)) throw new Error('address cannot be opened by a knock (unspecified, multicast or broadcast)');
  }
  const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

  // parseProfileURI parses a cipherknock:// profile URI as package profile
  // does: unknown or repeated parameters are refused. It resolves to a
  // profile object whose keys are decoded bytes.
  async function parseProfileURI(text) {
    const s = String(text).trim();
    const bad = (m) => { throw new Error('malformed profile URI: ' + m); };
    if (te.encode(s).length > 2048) bad('too long');
    if (s.slice(0, 14).toLowerCase() !== 'cipherknock://') bad('must start with cipherknock://');
    const rest = s.slice(14);
    if (rest.includes('#')) bad("unexpected '#' fragment");
    const q = rest.indexOf('?');
    if (q < 0) bad('missing parameters (realm, user, key)');
    let hostPart = rest.slice(0, q).replace(/\/$/, '');
    let host;
    if (hostPart.startsWith('[')) {
      if (!hostPart.endsWith(']')) bad('bad IPv6 host in brackets');
      const a = parseIPv6(hostPart.slice(1, -1));
      if (!a) bad('bad IPv6 host in brackets');
      host = formatIPv6(a);
    } else if (/[@:/]/.test(hostPart)) bad('host must be a bare name or address (the port is a parameter)');
    else host = hostPart;
    try { checkHost(host); } catch (e) { bad(e.message); }
    const p = { host, realm: null, user: null, key: null, realmKey: null, port: 22, proto: 'tcp', duration: 3600, base: DEFAULT_BASE, address: 'source', via: 'udp', repeat: 1, stun: [], name: null };
    const seen = new Set();
    const num = (v, lo, hi, m) => { if (!/^(0|[1-9][0-9]*)$/.test(v) || Number(v) < lo || Number(v) > hi) bad(m); return Number(v); };
    for (const kv of rest.slice(q + 1).split('&')) {
      if (kv === '') continue;
      const eq = kv.indexOf('=');
      const k = eq < 0 ? kv : kv.slice(0, eq);
      const shown = k.slice(0, 16).replace(/[^\x20-\x7e]/g, '?');
      if (eq < 0) bad('parameter "' + shown + '" has no value');
      if (!URI_PARAMS.includes(k)) bad('unknown parameter "' + shown + '"');
      if (seen.has(k)) bad('parameter "' + k + '" given twice');
      seen.add(k);
      let v;
      try { v = decodeURIComponent(kv.slice(eq + 1).replace(/\+/g, ' ')); } catch (e) { bad('parameter "' + k + '": bad %-escape'); }
      switch (k) {
        case 'realm': try { checkRealm(v); } catch (e) { bad('realm: ' + e.message); } p.realm = v; break;
        case 'user': p.user = num(v, 0, 65535, 'user index must be 0..65535'); break;
        case 'key': try { p.key = await parseKey(v); } catch (e) { bad('bad key: ' + e.message); } break;
        case 'rk': try { p.realmKey = await parseRealmKey(v); } catch (e) { bad('bad realm key: ' + e.message); } break;
        case 'port': p.port = num(v, 1, 65535, 'port must be 1..65535'); break;
        case 'proto': if (v !== 'tcp' && v !== 'udp') bad('proto must be tcp or udp'); p.proto = v; break;
        case 'dur': p.duration = num(v, 1, 65535, 'duration must be 1..65535 seconds'); break;
        case 'base': p.base = num(v, MIN_BASE, MAX_BASE, 'span base must be ' + MIN_BASE + '..' + MAX_BASE); break;
        case 'addr': try { checkAddress(v); } catch (e) { bad('addr: ' + e.message); } p.address = v; break;
        case 'via': if (v !== 'udp' && v !== 'tcp') bad('transport must be udp or tcp'); p.via = v; break;
        case 'rep': p.repeat = num(v, 1, 8, 'repeat must be 1..8'); break;
        case 'stun':
          p.stun = v === '' ? [] : v.split(',');
          if (p.stun.length > 4) bad('at most 4 STUN servers');
          for (const x of p.stun) { try { checkHostPort(x); } catch (e) { bad('stun: STUN server: ' + e.message); } }
          break;
        case 'name': if (!NAME_RE.test(v)) bad('name: bad profile name'); p.name = v; break;
      }
    }
    for (const k of ['realm', 'user', 'key']) if (!seen.has(k)) bad('missing parameter "' + k + '"');
    if (!p.name && NAME_RE.test(host)) p.name = host;
    return p;
  }

  // profileURI writes a profile back as its URI, in package profile's order.
  async function profileURI(p) {
    let s = 'cipherknock://' + (parseIPv6(p.host) ? '[' + p.host + ']' : p.host) + '/?realm=' + p.realm + '&user=' + p.user;
    s += '&key=' + await encodeKeyText(KEY_PREFIX, p.key);
    if (p.realmKey) s += '&rk=' + await encodeKeyText(REALM_KEY_PREFIX, p.realmKey);
    s += '&port=' + p.port + '&proto=' + p.proto + '&dur=' + p.duration + '&base=' + p.base;
    if (p.address && p.address !== 'source') s += '&addr=' + p.address;
    if (p.via && p.via !== 'udp') s += '&via=' + p.via;
    if (p.repeat > 1) s += '&rep=' + p.repeat;
    if (p.stun && p.stun.length) s += '&stun=' + p.stun.join(',');
    if (p.name && p.name !== p.host) s += '&name=' + p.name;
    return s;
  }

  // sealForProfile seals a fresh open knock (mode source) for profile p at
  // Unix time now, with a random nonce; it resolves to {K, ports, ...}.
  async function sealForProfile(p, now, opts = {}) {
    const mode = 0;
    const sub = await userSubkeys(p.key);
    const fields = {
      action: opts.action === 'close' ? CLOSE : OPEN,
      proto: p.proto === 'udp' ? UDP : TCP,
      port: p.port,
      duration: opts.action === 'close' ? 0 : (opts.duration || p.duration),
      time: now >>> 0,
      nonce: opts.nonce || randomBytes(4),
    };
    const P = encodePlaintext(mode, fields);
    const s = await seal({ realm: p.realm, outerKey: await outerKey(p.realmKey), index: p.user, macKey: sub.macKey, encKey: sub.encKey, mode, P });
    return Object.assign(s, { P, fields, ports: knockPorts(s.K, p.base) });
  }

  return {
    MODES, MODE_NAMES, MODE_ORDER, PLAIN_LEN, KNOCK_LEN, POSITIONS, DEFAULT_BASE, MIN_BASE, MAX_BASE,
    DEFAULT_WINDOW, OPEN, CLOSE, TCP, UDP, KEY_PREFIX, REALM_KEY_PREFIX, NO_REALM_OUTER_KEY, CLASSES,
    KnockError, VectorError, Skip,
    hex, unhex, concat, equal, randomBytes, sha256, hmacSHA256, hkdf32, aesCTR,
    base32, encodeKeyText, parseKey, parseRealmKey, checkRealm, userSubkeys, outerKey,
    setArgon2id, hasArgon2id, passphraseSalt, passphraseKey,
    parseIPv4, parseIPv6, formatIPv4, formatIPv6, parseAddr, formatAddr, boundAddrOK, boundAddr16,
    encodePlaintext, decodePlaintext, inRange, seal, knockPorts, knockLength, decodePorts,
    Receiver, Assembler, assemble, RECENT_MS, RETRIES, parseVector, checkVector, parseStream, runStream, checkStream, parseProfileURI, profileURI, sealForProfile,
  };
});
