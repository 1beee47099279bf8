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
  // At most six opens per assembly whatever is injected.
  const noisy = [20480 + 0x10, 20480 + 0x11, 20480 + 0x12];
  for (let i = 1; i < 40; i++) noisy.push(20480 + 256 * i + 7, 20480 + 256 * i + 9);
  const rn = await CK.assemble(noisy, mk(), now);
  assert.ok(rn.events.filter((e) => e.type === 'open').length <= 6);
});

test('strict decoding classes (§10.1)', async () => {
  const { ports } = await refKnock();
  assert.throws(() => CK.decodePorts([]), { cls: 'truncated' });
  assert.throws(() => CK.decodePorts(ports.concat([20479])), { cls: 'port outside span' });
  assert.throws(() => CK.decodePorts(ports.concat([ports[3] + 1])), { cls: 'conflicting duplicate' });
  assert.throws(() => CK.decodePorts(ports.concat([20480 + 256 * 30])), { cls: 'extra packets' });
  assert.throws(() => CK.decodePorts(ports.slice(0, 23)), { cls: 'truncated' });
  assert.throws(() => CK.decodePorts([20480 + 0x20].concat(ports.slice(1))), { cls: 'unknown version' });
  assert.throws(() => CK.decodePorts([20480 + 0x13].concat(ports.slice(1))), { cls: 'malformed knock' });
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
  const vec = fs.readFileSync(path.join(root, 'testdata', 'vectors', 'spec_example_b1'), 'utf8');
  for (let n = 0; n < 300; n++) {
    const r = await runVector(CK, { kind: 'vectors', name: 'mutated', text: mutate(vec) });
    assert.ok(r.error === undefined || typeof r.error === 'string');
  }
  const { mk } = await refKnock();
  for (let n = 0; n < 300; n++) {
    const ps = Array.from({ length: rnd(60) }, () => (rnd(4) ? 20480 + rnd(10240) : rnd(65536)));
    try { CK.decodePorts(ps); } catch (e) { assert.ok(e instanceof CK.KnockError, e.stack); }
    await CK.assemble(ps, mk(), 1767225600);
  }
});
