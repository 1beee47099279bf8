// Node's test runner checks web/ck.js, the browser's implementation of
// SPEC.md, against every test vector of testdata/ and against Appendix B.
// Run: node --test web/test/
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
// Node 18 has WebCrypto but not as a global.
if (!globalThis.crypto) globalThis.crypto = require('node:crypto').webcrypto;
const CK = require('../ck.js');
const Argon2 = require('../argon2.js');
const { loadVectors, runVector } = require('./vectorfiles.js');

CK.setArgon2id(Argon2.argon2id);
const root = path.join(__dirname, '..', '..');

test('every test vector', async (t) => {
  const files = loadVectors(root);
  assert.ok(files.filter((f) => f.kind === 'vectors').length >= 100, 'testdata/vectors is missing or nearly empty');
  const skipped = [];
  for (const f of files) {
    await t.test(f.kind + '/' + f.name, async (st) => {
      const r = await runVector(CK, f);
      if (r.skip) { skipped.push(f.kind + '/' + f.name + ': ' + r.skip); st.skip(r.skip); return; }
      assert.equal(r.error, undefined, r.error);
    });
  }
  t.diagnostic('skipped by design: ' + (skipped.length ? skipped.join('; ') : 'none'));
  // Every mode of SPEC.md and the stream format of §12.1 are implemented:
  // no file of testdata/vectors or testdata/streams may be skipped (only a
  // genuinely unknown mode is, see below).
  assert.deepEqual(skipped, [], 'vector files skipped');
  // The cases §12.1 names are all there (as internal/vectors requires).
  const streams = files.filter((f) => f.kind === 'streams').map((f) => f.name);
  for (const name of ['inject_before', 'inject_after', 'resent_headers_bounded', 'junk_prefill_header_first',
    'junk_prefill_shuffled', 'header_shorter_mode_before', 'header_longer_mode_before', 'duplicates', 'timeout',
    'small_flood', 'own_failed_knock', 'replay_bytes_before_knock', 'longer_complete_at_once']) {
    assert.ok(streams.includes(name), 'no stream vector ' + name);
  }
});

const streamFiles = () => loadVectors(root).filter((f) => f.kind === 'streams');

// A stream checker that agrees with anything proves nothing: every stream
// vector must fail once one of its opens is changed, dropped, or one is
// added, and a file that breaks §12.1's syntax is refused, not run.
test('stream vectors (§12.1): every changed, dropped or added open is caught', async () => {
  for (const f of streamFiles()) {
    const lines = f.text.split('\n');
    let opens = 0;
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i].startsWith('> open ')) continue;
      opens++;
      const w = lines[i].split(' ');
      const changedOutcome = w.slice(0, 3).concat(w[3] === 'success' ? 'bad_tag' : 'success').join(' ');
      const k = w[2];
      const changedKnock = w.slice(0, 2).concat((k[k.length - 1] === '0' ? k.slice(0, -1) + '1' : k.slice(0, -1) + '0'), w[3]).join(' ');
      for (const [what, m] of [['changed outcome', lines.slice(0, i).concat(changedOutcome, lines.slice(i + 1))],
        ['changed knock', lines.slice(0, i).concat(changedKnock, lines.slice(i + 1))],
        ['dropped', lines.slice(0, i).concat(lines.slice(i + 1))],
        ['added', lines.slice(0, i + 1).concat(lines[i], lines.slice(i + 1))]]) {
        await assert.rejects(CK.checkStream(CK.parseStream(f.name, m.join('\n'))), CK.VectorError, f.name + ' line ' + (i + 1) + ': ' + what);
      }
    }
    // An open after a packet that causes none.
    const pkt = lines.findIndex((l) => /^[0-9]+ /.test(l));
    if (!lines[pkt + 1].startsWith('> ')) {
      const m = lines.slice(0, pkt + 1).concat('> open 10 bad_tag', lines.slice(pkt + 1));
      await assert.rejects(CK.checkStream(CK.parseStream(f.name, m.join('\n'))), CK.VectorError, f.name + ': open added after packet 1');
    }
    assert.equal((await CK.checkStream(CK.parseStream(f.name, f.text))).opens, opens, f.name);
  }
});

test('stream vectors (§12.1): malformed files are refused', async () => {
  const f = streamFiles().find((x) => x.name === 'inject_before');
  const [head, body] = f.text.split('\n\n');
  const cases = [
    ['unknown key', head + '\nexpect: success\n\n' + body, /unknown header key "expect"/],
    ['receiver-source is a knock vector key', 'receiver-source: 198.51.100.7\n' + head + '\n\n' + body, /unknown header key/],
    ['duplicate key', head + '\nrecent: 200\nrecent: 200\n\n' + body, /twice/],
    ['no empty line', head + '\n', /no empty line/],
    ['missing key', head.split('\n').filter((l) => !l.startsWith('key: ')).join('\n') + '\n\n' + body, /missing key/],
    ['value with trailing space', head + '\nrecent: 200 \n\n' + body, /not a header line/],
    ['open first', head + '\n\n> open 10 bad_tag\n' + body, /an open before any packet/],
    ['time goes back', head + '\n\n' + body + '5 198.51.100.7 20480\n', /arrival times go back/],
    ['leading zero', head + '\n\n01 198.51.100.7 20480\n', /bad arrival time/],
    ['non-canonical address', head + '\n\n0 2001:DB8::1 20480\n', /bad source address/],
    ['zone', head + '\n\n0 fe80::1%eth0 20480\n', /bad source address/],
    ['port', head + '\n\n0 198.51.100.7 65536\n', /bad port/],
    ['uppercase hex', head + '\n\n0 198.51.100.7 20480\n> open 1A bad_tag\n', /bad knock hex/],
    ['odd hex', head + '\n\n0 198.51.100.7 20480\n> open 101 bad_tag\n', /bad knock hex/],
    ['unknown outcome', head + '\n\n0 198.51.100.7 20480\n> open 10 nope\n', /unknown outcome/],
    ['stray line', head + '\n\n0 198.51.100.7\n', /not a packet or open line/],
  ];
  for (const [what, text, re] of cases) assert.throws(() => CK.parseStream('inject_before', text), re, what);
  // Integers with a leading zero or a sign (§12), in every integer key.
  const noncanonical = [['user-index', '03'], ['user-index', '+3'], ['span-base', '020480'], ['span-base', '+20480'],
    ['receiver-window', '060'], ['receiver-window', '+60'], ['assembler-timeout', '010000'], ['assembler-timeout', '+10000'],
    ['recent', '0200'], ['recent', '+200'], ['receiver-time', '01767225600'], ['receiver-time', '+1767225600'], ['receiver-time', '-0']];
  for (const [k, v] of [['recent', '0'], ['assembler-timeout', '600001'], ['span-base', '1023'], ['receiver-window', '4'], ['user-index', '65536'], ['receiver-time', '9223372036854775808'], ...noncanonical]) {
    const s = CK.parseStream('inject_before', head.split('\n').filter((l) => !l.startsWith(k + ': ')).concat(k + ': ' + v).join('\n') + '\n\n' + body);
    await assert.rejects(CK.runStream(s), CK.VectorError, k + ': ' + v);
  }
});

// §10.2's bound, derived rather than assumed: each mode ck.js knows is
// opened at most twice with retry count 0 and once with each retry count
// after it, whatever a forger sends from one source (here, passes of two
// conflicting bytes at every position, slow and fast, each followed by
// every header), until the assembly ends; the forger's next packet starts a new
// one.
test('assembler (§10.2): one assembly opens each mode at most RETRIES + 2 times', async () => {
  const a = new CK.Assembler();
  const opens = [];
  let ms = 0, ended = false;
  for (let pass = 0; pass < 40 && !ended; pass++) {
    const ports = [];
    for (let i = 1; i < CK.POSITIONS; i++) ports.push(20480 + 256 * i + ((pass * 37 + i) & 0xff), 20480 + 256 * i + ((pass * 37 + i + 1) & 0xff));
    for (const m of CK.MODE_ORDER) ports.push(20480 + (0x10 | m));
    for (const p of ports) {
      if (!a.feed(p, ms) || a.complete() < 0) continue;
      if (!(await a.settle(ms, async (K, mode, reading, retry) => { opens.push({ mode, reading, retry }); return 'failed'; }))) { ended = true; break; }
    }
    ms += pass % 2 ? 300 : 2;
  }
  assert.ok(ended, 'the assembly never ended');
  const bound = CK.MODE_ORDER.length * (CK.RETRIES + 2);
  assert.equal(opens.length, bound, 'the flood reaches the bound exactly');
  for (const m of CK.MODE_ORDER) {
    assert.deepEqual(opens.filter((o) => o.mode === m).map((o) => o.reading + o.retry), ['first0', 'last0', 'last1', 'last2'], CK.MODE_NAMES[m]);
  }
  // Its headers, re-sent, no longer make a candidate: the modes are spent.
  for (const m of CK.MODE_ORDER) assert.equal(a.feed(20480 + (0x10 | m), ms), false);
});

const hexOf = (b) => CK.hex(b);

test('Appendix B.1 step by step', async () => {
  const key = await CK.parseKey('ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm');
  assert.equal(hexOf(key), '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  const sub = await CK.userSubkeys(key);
  assert.equal(hexOf(sub.macKey), 'd4832624f6614e2412fd960c7933f310d2042602a12ad67f818a7052e64d5802');
  assert.equal(hexOf(sub.encKey), '3acbac2badca8c103e26eaecf3deb2a8e5617464bc80b03e563794792afddee2');
  const ok = await CK.outerKey(null);
  assert.equal(hexOf(ok), CK.NO_REALM_OUTER_KEY);
  const P = CK.encodePlaintext(0, { action: 1, proto: 0, port: 22, duration: 3600, time: 1767225600, nonce: CK.unhex('01020304') });
  assert.equal(hexOf(P), '1000160e106955b90001020304');
  const s = await CK.seal({ realm: 'example.org', outerKey: ok, index: 0, macKey: sub.macKey, encKey: sub.encKey, mode: 0, P });
  assert.equal(hexOf(s.macInput), '0b6578616d706c652e6f726710' + '0000' + '1000160e106955b90001020304');
  assert.equal(hexOf(s.hmac), '80fc032c8057c8e13da3d8415f35d79e34b40cdc05f44af6945ea2ec642a7b9d');
  assert.equal(hexOf(s.KS), '401f019920b555e87831a26232');
  assert.equal(hexOf(s.C), '501f179730dc00517830a06136');
  assert.equal(hexOf(s.padBlock), '61d96c5ad972ba6df5d67cb47fca74ff');
  assert.equal(hexOf(s.K), '1061d9501f179730dc00517830a0613680fc032c8057c8e1');
  assert.deepEqual(CK.knockPorts(s.K), [20496, 20833, 21209, 21328, 21535, 21783, 22167, 22320,
    22748, 22784, 23121, 23416, 23600, 23968, 24161, 24374, 24704, 25084, 25091, 25388, 25728, 25943, 26312, 26593]);
  const r = new CK.Receiver({ realm: 'example.org', outerKey: ok });
  r.addUser(0, sub);
  for (const now of [1767225540, 1767225600, 1767225660]) {
    const o = await r.open(s.K, now);
    assert.equal(hexOf(o.id), '000080fc032c8057c8e1');
  }
  await assert.rejects(r.open(s.K, 1767225661), { cls: 'stale' });
  await assert.rejects(r.open(s.K, 1767225539), { cls: 'future' });
  await r.accept(s.K, 1767225600);
  await assert.rejects(r.accept(s.K, 1767225600), { cls: 'replay' });
});

test('seal refuses fields out of range', async () => {
  const key = new Uint8Array(32);
  const sub = await CK.userSubkeys(key);
  const P = CK.encodePlaintext(0, { action: 1, proto: 0, port: 0, duration: 3600, time: 1, nonce: new Uint8Array(4) });
  await assert.rejects(CK.seal({ realm: 'r', outerKey: await CK.outerKey(null), index: 0, macKey: sub.macKey, encKey: sub.encKey, mode: 0, P }), /out of range/);
});

test('key texts: errors and no key material in them', async () => {
  const good = 'ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm';
  assert.equal(await CK.encodeKeyText(CK.KEY_PREFIX, await CK.parseKey(good)), good);
  assert.ok(await CK.parseKey('  ' + good.toUpperCase() + '\n'));
  const cases = [
    ['ck-realm-' + good.slice(7), /wrong or missing prefix/],
    [good.slice(0, -1), /wrong length/],
    [good.slice(0, -1) + '1', /outside base32/],
    [good.slice(0, 20) + (good[20] === 'a' ? 'b' : 'a') + good.slice(21), /checksum mismatch/],
    [good.slice(0, -1) + 'n', /checksum mismatch/], // unused low bits set
    [good.slice(0, 30) + ' ' + good.slice(31), /outside base32/],
  ];
  for (const [text, re] of cases) {
    await assert.rejects(CK.parseKey(text), (e) => re.test(e.message) && !e.message.includes(good.slice(7, 20)));
  }
  const rk = 'ck-realm-eaqseizeeutcokbjfivsyljof4ydcmrtgq2tmnzyhe5dwpb5hy7qitvip4';
  assert.equal(hexOf(await CK.parseRealmKey(rk)), '202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f');
  await assert.rejects(CK.parseKey(rk), /prefix/);
});

// One reference knock whose ports the assembler tests tamper with.
async function refKnock() {
  const key = await CK.parseKey('ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm');
  const sub = await CK.userSubkeys(key);
  const ok = await CK.outerKey(null);
  const P = CK.encodePlaintext(0, { action: 1, proto: 0, port: 22, duration: 3600, time: 1767225600, nonce: CK.unhex('01020304') });
  const s = await CK.seal({ realm: 'example.org', outerKey: ok, index: 0, macKey: sub.macKey, encKey: sub.encKey, mode: 0, P });
  const mk = () => { const r = new CK.Receiver({ realm: 'example.org', outerKey: ok }); r.addUser(0, sub); return r; };
  return { ports: CK.knockPorts(s.K), K: s.K, mk };
}
const successes = (res) => res.events.filter((e) => e.type === 'open' && e.result);

test('assembler (§10.2): order, duplicates, one injected byte before or after', async () => {
  const { ports, mk } = await refKnock();
  const now = 1767225600;
  const rev = ports.slice().reverse();
  assert.equal(successes(await CK.assemble(rev, mk(), now)).length, 1);
  // Each port twice: one success, then the copies make a replay.
  const twice = ports.concat(ports);
  const r2 = await CK.assemble(twice, mk(), now);
  assert.equal(successes(r2).length, 1);
  assert.ok(r2.events.some((e) => e.cls === 'replay'));
  // A foreign byte at position 5 before the real packet: the last reading opens.
  const before = ports.slice(0, 5).concat([ports[5] ^ 1], ports.slice(5));
  const rb = await CK.assemble(before, mk(), now);
  assert.equal(successes(rb).length, 1);
  assert.equal(successes(rb)[0].reading, 'last');
  // After: the first reading opens.
  const after = ports.slice(0, 6).concat([ports[5] ^ 1], ports.slice(6));
  const ra = await CK.assemble(after, mk(), now);
  assert.equal(successes(ra)[0].reading, 'first');
  // Before and after: the knock is lost (SPEC §13.7's residual risk).
  const both = ports.slice(0, 5).concat([ports[5] ^ 1, ports[5], ports[5] ^ 2], ports.slice(6));
  assert.equal(successes(await CK.assemble(both, mk(), now)).length, 0);
  // A spoofed ipv6 header cannot stall a source knock; a garbage header is ignored.
  const hdr = [20480 + 0x12, 20480 + 0x42].concat(ports);
  assert.equal(successes(await CK.assemble(hdr, mk(), now)).length, 1);
  // Every mode fails with both readings, then waits for its positions to
  // be seen again, which they are not: two opens per mode, and the modes
  // are tried in the order source, bound, ipv4, ipv6 (§10.2).
  const noisy = [20480 + 0x12, 20480 + 0x11, 20480 + 0x13, 20480 + 0x10];
  for (let i = 1; i < 40; i++) noisy.push(20480 + 256 * i + 7, 20480 + 256 * i + 9);
  const rn = await CK.assemble(noisy, mk(), now, CK.parseAddr('198.51.100.23'));
  const opens = rn.events.filter((e) => e.type === 'open');
  assert.equal(opens.length, 8);
  assert.deepEqual(opens.map((e) => CK.MODE_NAMES[e.mode] + '/' + e.reading), ['source/first', 'source/last', 'bound/first', 'bound/last',
    'ipv4/first', 'ipv4/last', 'ipv6/first', 'ipv6/last']);
  assert.ok(opens.every((e) => !e.result));
});

test('strict decoding classes (§10.1)', async () => {
  const { ports } = await refKnock();
  assert.throws(() => CK.decodePorts([]), { cls: 'truncated' });
  assert.throws(() => CK.decodePorts(ports.concat([20479])), { cls: 'port outside span' });
  assert.throws(() => CK.decodePorts(ports.concat([ports[3] + 1])), { cls: 'conflicting duplicate' });
  assert.throws(() => CK.decodePorts(ports.concat([20480 + 256 * 30])), { cls: 'extra packets' });
  assert.throws(() => CK.decodePorts(ports.slice(0, 23)), { cls: 'truncated' });
  assert.throws(() => CK.decodePorts([20480 + 0x20].concat(ports.slice(1))), { cls: 'unknown version' });
  assert.throws(() => CK.decodePorts([20480 + 0x14].concat(ports.slice(1))), { cls: 'malformed knock' });
  assert.throws(() => CK.decodePorts([20480 + 0x1f].concat(ports.slice(1))), { cls: 'malformed knock' });
  // 0x13 (mode bound, 24 packets) was malformed before and decodes now.
  assert.equal(CK.decodePorts([20480 + 0x13].concat(ports.slice(1)))[0], 0x13);
});

test('profile URIs as package profile writes them', async () => {
  const key = 'ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm';
  const rk = 'ck-realm-eaqseizeeutcokbjfivsyljof4ydcmrtgq2tmnzyhe5dwpb5hy7qitvip4';
  const uri = 'cipherknock://[2001:db8::1]/?realm=example.org&user=513&key=' + key + '&rk=' + rk + '&port=443&proto=tcp&dur=600&base=30000&via=tcp&rep=2&name=home';
  const p = await CK.parseProfileURI(uri);
  assert.equal(p.host, '2001:db8::1');
  assert.equal(p.user, 513); assert.equal(p.port, 443); assert.equal(p.base, 30000); assert.equal(p.name, 'home');
  assert.equal(await CK.profileURI(p), uri);
  const bad = [
    ['cipherknock://h/?realm=a&user=0', /missing parameter "key"/],
    ['cipherknock://h/?realm=a&user=0&key=' + key + '&user=1', /given twice/],
    ['cipherknock://h/?realm=a&user=0&key=' + key + '&colour=red', /unknown parameter/],
    ['cipherknock://h:22/?realm=a&user=0&key=' + key, /bare name/],
    ['cipherknock://h/?realm=a&user=0&key=' + key + '#x', /fragment/],
    ['cipherknock://h/?realm=a&user=0&key=' + key.slice(0, -2) + 'aa', /bad key/],
    ['https://h/?realm=a', /must start with/],
  ];
  for (const [u, re] of bad) await assert.rejects(CK.parseProfileURI(u), (e) => re.test(e.message) && !e.message.includes(key.slice(7)));
});

test('a vector for a mode this implementation lacks is skipped by name, never passed', async () => {
  const text = 'expect: success\nkey: ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm\nuser-index: 0\nrealm: r\nmode: quantum\nnew-key: 1\n\n';
  const r = await runVector(CK, { kind: 'vectors', name: 'future_mode', text });
  assert.match(r.skip, /mode "quantum" is not implemented/);
  // A known mode with an unknown key is an invalid vector, not a skip.
  const r2 = await runVector(CK, { kind: 'vectors', name: 'bad', text: text.replace('quantum', 'source') });
  assert.match(r2.error, /unknown header key new-key/);
  const r3 = await runVector(CK, { kind: 'vectors', name: 'bad', text: 'expect: success' });
  assert.match(r3.error, /missing empty line/);
});

test('the pages carry the integrity hashes of their files (run node web/node/sri.js)', () => {
  const fs2 = require('node:fs');
  const { update } = require('./sri.js');
  for (const [file, text] of Object.entries(update())) {
    assert.equal(fs2.readFileSync(path.join(__dirname, '..', file), 'utf8'), text, file + ' has stale hashes');
  }
  for (const html of ['index.html', 'lab.html']) {
    const t = fs2.readFileSync(path.join(__dirname, '..', html), 'utf8');
    assert.match(t, /Content-Security-Policy" content="default-src 'none'; script-src 'self'/, html + ' lacks its CSP');
    assert.doesNotMatch(t, /<script>|<script [^>]*>[^<]|\son[a-z]+="|style="/, html + ' has inline script or style');
    for (const m of t.matchAll(/<script [^>]*>/g)) assert.match(m[0], /integrity="sha384-/, html + ': script without integrity');
    assert.doesNotMatch(t, /(src|href)="(https?:)?\/\//, html + ' loads from another origin');
  }
});

// Untrusted input (profile URIs, vector files, packet streams) mutated at
// random: every outcome is a value or a clean error, never a crash, and no
// error quotes key material.
test('random mutations of untrusted input', async () => {
  let seed = 0x9e3779b9;
  const rnd = (n) => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n; };
  const key = 'ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm';
  const uri = 'cipherknock://knock.example.org/?realm=example.org&user=0&key=' + key + '&port=443&proto=tcp&dur=600&base=20480';
  const alphabet = 'abcz027:/?&=#[]%.-_ \n\u00e9';
  const mutate = (s) => {
    const a = s.split('');
    for (let k = 1 + rnd(3); k > 0; k--) {
      const i = rnd(a.length + 1);
      switch (rnd(3)) {
        case 0: a.splice(i, 1); break;
        case 1: a.splice(i, 0, alphabet[rnd(alphabet.length)]); break;
        default: a[i] = alphabet[rnd(alphabet.length)];
      }
    }
    return a.join('');
  };
  for (let n = 0; n < 1500; n++) {
    try { await CK.parseProfileURI(mutate(uri)); } catch (e) {
      assert.ok(e instanceof Error && !(e instanceof TypeError) && !(e instanceof RangeError), e.stack);
      assert.ok(!e.message.includes(key.slice(7, 27)), 'error quotes the key: ' + e.message);
    }
  }
  for (const name of ['spec_example_b1', 'bound_ipv4', 'receiver_time_min']) {
    const vec = fs.readFileSync(path.join(root, 'testdata', 'vectors', name), 'utf8');
    for (let n = 0; n < 300; n++) {
      const r = await runVector(CK, { kind: 'vectors', name: 'mutated', text: mutate(vec) });
      assert.ok(r.error === undefined || typeof r.error === 'string');
    }
  }
  for (const name of ['inject_before', 'junk_prefill_shuffled']) {
    const st = fs.readFileSync(path.join(root, 'testdata', 'streams', name), 'utf8');
    for (let n = 0; n < 200; n++) {
      const r = await runVector(CK, { kind: 'streams', name: 'mutated', text: mutate(st) });
      assert.ok(r.error === undefined || typeof r.error === 'string');
      assert.ok(!r.error || !r.error.includes('ibaueq2eivdeoscjjjfuytkoj5'), 'error quotes the key: ' + r.error);
    }
  }
  const { mk } = await refKnock();
  for (let n = 0; n < 300; n++) {
    const ps = Array.from({ length: rnd(60) }, () => (rnd(4) ? 20480 + rnd(10240) : rnd(65536)));
    try { CK.decodePorts(ps); } catch (e) { assert.ok(e instanceof CK.KnockError, e.stack); }
    await CK.assemble(ps, mk(), 1767225600);
  }
});

// A bound knock (§5.1, §6.2) of the key of Appendix B, sealed for addr.
async function boundKnock(addr, fields = {}) {
  const key = await CK.parseKey('ck-key-aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dyprjzyibm');
  const sub = await CK.userSubkeys(key);
  const ok = await CK.outerKey(null);
  const P = CK.encodePlaintext(3, Object.assign({ action: 1, proto: 0, port: 22, duration: 3600, time: 1767225600, nonce: CK.unhex('0a0b0c0d') }, fields));
  const s = await CK.seal({ realm: 'example.org', outerKey: ok, index: 5, macKey: sub.macKey, encKey: sub.encKey, mode: 3, P, bound: addr && CK.parseAddr(addr) });
  const mk = () => { const r = new CK.Receiver({ realm: 'example.org', outerKey: ok }); r.addUser(5, sub); return r; };
  return { s, P, sub, ok, mk, ports: CK.knockPorts(s.K) };
}

test('mode bound: the address is under the tag, not sent, and checked against the source', async () => {
  const now = 1767225600;
  const { s, P, mk } = await boundKnock('198.51.100.23');
  assert.equal(s.K.length, 24);
  assert.equal(s.K[0], 0x13);
  // The MAC input ends with the address as ::ffff:a.b.c.d (§6.2).
  assert.equal(CK.hex(s.macInput), '0b6578616d706c652e6f726713' + '0005' + CK.hex(P) + '00000000000000000000ffffc6336417');
  // Nothing of the address is in the knock.
  assert.ok(!CK.hex(s.K).includes('c6336417'));
  const r = mk();
  const o = await r.open(s.K, now, CK.parseAddr('198.51.100.23'));
  assert.equal(CK.formatAddr(o.fields.address), '198.51.100.23');
  assert.equal(CK.MODE_NAMES[o.mode], 'bound');
  // The same 16 bytes seen as IPv4-mapped IPv6: the address opened is unmapped.
  assert.equal(CK.formatAddr((await r.open(s.K, now, CK.parseAddr('::ffff:198.51.100.23'))).fields.address), '198.51.100.23');
  for (const src of ['198.51.100.24', '2001:db8::1', '::198.51.100.23', '64:ff9b::c633:6417']) {
    await assert.rejects(r.open(s.K, now, CK.parseAddr(src)), { cls: 'bad tag' }, src);
  }
  await assert.rejects(r.open(s.K, now), { cls: 'bad tag' });
  await assert.rejects(r.open(s.K, now, new Uint8Array(5)), { cls: 'bad tag' });
  // An IPv6 binding.
  const b6 = await boundKnock('2001:db8:85a3::8a2e:370:7334');
  assert.equal(CK.formatAddr((await b6.mk().open(b6.s.K, now, CK.parseAddr('2001:db8:85a3::8a2e:370:7334'))).fields.address), '2001:db8:85a3::8a2e:370:7334');
  // The same fields in mode source do not open under header 0x13, nor the reverse.
  const src = await CK.seal({ realm: 'example.org', outerKey: await CK.outerKey(null), index: 5, macKey: (await boundKnock('198.51.100.23')).sub.macKey,
    encKey: (await boundKnock('198.51.100.23')).sub.encKey, mode: 0, P });
  const swapped = src.K.slice(); swapped[0] = 0x13;
  await assert.rejects(r.open(swapped, now, CK.parseAddr('198.51.100.23')), { cls: 'bad tag' });
  const swapped2 = s.K.slice(); swapped2[0] = 0x10;
  await assert.rejects(r.open(swapped2, now, CK.parseAddr('198.51.100.23')), { cls: 'bad tag' });
});

test('mode bound: a copy raced from another address neither opens nor burns the knock (§7.2, §13.5)', async () => {
  const now = 1767225600;
  const { ports, mk } = await boundKnock('198.51.100.23');
  const r = mk(); // one receiver, one replay cache, two assemblers
  const racer = await CK.assemble(ports, r, now, CK.parseAddr('203.0.113.66'));
  assert.equal(successes(racer).length, 0);
  assert.equal(r.replay.size, 0, 'a bad tag recorded a replay ID');
  const real = await CK.assemble(ports.slice().reverse(), r, now, CK.parseAddr('198.51.100.23'));
  assert.equal(successes(real).length, 1);
  assert.equal(CK.formatAddr(successes(real)[0].result.fields.address), '198.51.100.23');
  // A spoofed source-mode header (tried first, §10.2) cannot stall it.
  const r2 = mk();
  const spoofed = await CK.assemble([20480 + 0x10].concat(ports), r2, now, CK.parseAddr('198.51.100.23'));
  assert.deepEqual(spoofed.events.filter((e) => e.type === 'open').map((e) => CK.MODE_NAMES[e.mode] + ':' + (e.cls || 'success')), ['source:bad tag', 'bound:success']);
});

test('mode bound: sealing checks the bound address (§5.3), opening checks the source', async () => {
  for (const a of ['0.0.0.0', '224.0.0.1', '255.255.255.255', '::', 'ff02::1', '::ffff:0.0.0.0', '::ffff:239.1.2.3', '::ffff:255.255.255.255']) {
    await assert.rejects(boundKnock(a), /out of range/, a);
  }
  await assert.rejects(boundKnock(null), /needs an IPv4 or IPv6 address/);
  for (const a of ['10.0.0.1', '127.0.0.1', '::1', 'fe80::1', '::ffff:192.0.2.1']) assert.ok(CK.boundAddrOK(CK.parseAddr(a)), a);
  // Only mode bound binds an address.
  const key = await CK.userSubkeys(new Uint8Array(32));
  const P = CK.encodePlaintext(0, { action: 1, proto: 0, port: 22, duration: 1, time: 1, nonce: new Uint8Array(4) });
  await assert.rejects(CK.seal({ realm: 'r', outerKey: await CK.outerKey(null), index: 0, macKey: key.macKey, encKey: key.encKey, mode: 0, P, bound: CK.parseAddr('192.0.2.1') }), /only mode bound/);
  // A hand-made knock bound to an out-of-range address that the receiver
  // observes as its source: the tag verifies, the range check fails.
  const ok = await CK.outerKey(null);
  const Pb = CK.encodePlaintext(3, { action: 1, proto: 0, port: 22, duration: 1, time: 1767225600, nonce: new Uint8Array(4) });
  const s = await CK.seal({ realm: 'r', outerKey: ok, index: 0, macKey: key.macKey, encKey: key.encKey, mode: 3, P: Pb, bound: CK.parseAddr('224.0.0.1') }, false);
  const r = new CK.Receiver({ realm: 'r', outerKey: ok }); r.addUser(0, key);
  await assert.rejects(r.open(s.K, 1767225600, CK.parseAddr('224.0.0.1')), { cls: 'field out of range' });
});

test('the window check (§7.1) over the whole signed 64-bit range, without overflow', async () => {
  const { K, mk } = await refKnock();
  const r = mk();
  const t = 1767225600;
  const cases = [
    [-(2n ** 63n), 'future'], [-1n, 'future'], [0, 'future'], [BigInt(t - 61), 'future'], [t - 60, 'success'], [BigInt(t), 'success'],
    [t + 60, 'success'], [t + 61, 'stale'], [Number.MAX_SAFE_INTEGER, 'stale'], [2n ** 63n - 1n, 'stale'], [Number.MIN_SAFE_INTEGER, 'future'],
  ];
  for (const [now, want] of cases) {
    let got = 'success';
    try { await r.open(K, now); } catch (e) { got = e.cls; }
    assert.equal(got, want, String(now));
  }
  // Numbers that are not exact integers, and BigInts outside int64, are refused.
  for (const now of [2 ** 63, 1.5, NaN, 2n ** 63n, -(2n ** 63n) - 1n, '1767225600']) {
    await assert.rejects(r.open(K, now), /signed 64-bit range/, String(now));
  }
});

test('vector rules of §12: key text in any case, fields in range, receiver-source', async () => {
  const read = (n) => fs.readFileSync(path.join(root, 'testdata', 'vectors', n), 'utf8');
  const run = (name, text) => runVector(CK, { kind: 'vectors', name, text });
  const b = read('bound_ipv4');
  assert.deepEqual(await run('x', b), {});
  // Key text in upper and mixed case is the same key.
  const keyLine = /^key: (.*)$/m.exec(b)[1];
  assert.deepEqual(await run('x', b.replace(keyLine, keyLine.toUpperCase())), {});
  const mixed = keyLine.split('').map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
  assert.deepEqual(await run('x', b.replace(keyLine, mixed)), {});
  // A last character with a non-zero unused bit is not the encoder's
  // output, whatever the case: invalid.
  const last = keyLine[keyLine.length - 1];
  const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
  const bumped = keyLine.slice(0, -1) + B32[B32.indexOf(last) ^ 1].toUpperCase();
  assert.match((await run('x', b.replace(keyLine, bumped))).error, /checksum mismatch/);
  // Fields given as fields must be in range: such a vector is invalid, not a class.
  for (const [from, to] of [['port: 22\n', 'port: 0\n'], ['duration: 3600\n', 'duration: 0\n'], ['address: 198.51.100.23\n', 'address: 224.0.0.1\n'],
    ['address: 198.51.100.23\n', 'address: 0.0.0.0\n']]) {
    const r = await run('x', b.replace(from, to));
    assert.match(r.error || '', /fields are out of range/, to);
  }
  const ipv4 = read('ipv4_reordered');
  assert.match((await run('x', ipv4.replace(/^address: .*$/m, 'address: 255.255.255.255'))).error, /fields are out of range/);
  // receiver-source decides a bound knock; it must be canonical.
  assert.match((await run('x', b.replace('receiver-source: 198.51.100.23', 'receiver-source: 198.51.100.24'))).error, /the class is "bad tag", the vector says "success"/);
  assert.match((await run('x', b.replace('receiver-source: 198.51.100.23', 'receiver-source: 198.051.100.23'))).error, /receiver-source: not an IP address in canonical form/);
  assert.match((await run('x', b.replace('receiver-source: 198.51.100.23', 'receiver-source: 2001:DB8::1'))).error, /canonical/);
  // Without receiver-source the packets come from the bound address.
  assert.deepEqual(await run('x', b.replace('receiver-source: 198.51.100.23\n', '')), {});
  // Mode bound needs its address, even with a hand-made plaintext.
  assert.match((await run('x', read('bound_handmade_port_zero').replace(/^address: .*\n/m, ''))).error, /mode bound needs an address/);
  // receiver-time is any signed 64-bit integer, exactly, and nothing else.
  const tmax = read('receiver_time_max');
  assert.deepEqual(await run('x', tmax), {});
  for (const t of ['9223372036854775808', '-9223372036854775809', '-0', '01', '1e3', '99999999999999999999']) {
    assert.match((await run('x', tmax.replace('receiver-time: 9223372036854775807', 'receiver-time: ' + t))).error || '', /bad receiver-time/, t);
  }
  // 9223372036854775806 would round to 2^63 as a Number: it must stay exact.
  assert.deepEqual(await run('x', tmax.replace('receiver-time: 9223372036854775807', 'receiver-time: 9223372036854775806')), {});
});
