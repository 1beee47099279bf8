/*
 * argon2.js: Argon2id version 0x13 (RFC 9106) and BLAKE2b (RFC 7693) in
 * plain JavaScript, for passphrase keys (SPEC.md §3.2), which WebCrypto
 * cannot derive. 64-bit words are pairs of 32-bit halves (low, high).
 *
 * Loaded by the knock lab and the vector checks, not by the knock page: a
 * profile carries the derived key, never the passphrase. It registers
 * itself with ck.js (CK.setArgon2id) when ck.js is loaded first.
 */
(function (root, factory) {
  const A = factory();
  if (typeof module === 'object' && module.exports) module.exports = A;
  else {
    root.Argon2 = A;
    if (root.CK) root.CK.setArgon2id(A.argon2id);
  }
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  // ---- BLAKE2b ------------------------------------------------------------

  const IV = new Uint32Array([
    0xf3bcc908, 0x6a09e667, 0x84caa73b, 0xbb67ae85, 0xfe94f82b, 0x3c6ef372, 0x5f1d36f1, 0xa54ff53a,
    0xade682d1, 0x510e527f, 0x2b3e6c1f, 0x9b05688c, 0xfb41bd6b, 0x1f83d9ab, 0x137e2179, 0x5be0cd19]);
  const SIGMA = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0]];

  const v = new Uint32Array(32), m = new Uint32Array(32);

  function add64(a, b) { // v[a] += v[b]
    const lo = v[a] + v[b];
    v[a + 1] = v[a + 1] + v[b + 1] + (lo >= 0x100000000 ? 1 : 0);
    v[a] = lo;
  }
  function add64m(a, i) { // v[a] += m[i]
    const lo = v[a] + m[i];
    v[a + 1] = v[a + 1] + m[i + 1] + (lo >= 0x100000000 ? 1 : 0);
    v[a] = lo;
  }
  function bG(a, b, c, d, x, y) {
    add64(a, b); add64m(a, x);
    let lo = v[d] ^ v[a], hi = v[d + 1] ^ v[a + 1]; v[d] = hi; v[d + 1] = lo; // rotr 32
    add64(c, d);
    lo = v[b] ^ v[c]; hi = v[b + 1] ^ v[c + 1];
    v[b] = (lo >>> 24) | (hi << 8); v[b + 1] = (hi >>> 24) | (lo << 8);
    add64(a, b); add64m(a, y);
    lo = v[d] ^ v[a]; hi = v[d + 1] ^ v[a + 1];
    v[d] = (lo >>> 16) | (hi << 16); v[d + 1] = (hi >>> 16) | (lo << 16);
    add64(c, d);
    lo = v[b] ^ v[c]; hi = v[b + 1] ^ v[c + 1];
    v[b] = (hi >>> 31) | (lo << 1); v[b + 1] = (lo >>> 31) | (hi << 1);
  }
  function compress(h, block, t, last) {
    for (let i = 0; i < 16; i++) { v[i] = h[i]; v[i + 16] = IV[i]; }
    v[24] ^= t >>> 0; v[25] ^= Math.floor(t / 0x100000000);
    if (last) { v[28] = ~v[28]; v[29] = ~v[29]; }
    for (let i = 0; i < 32; i++) m[i] = block[4 * i] | (block[4 * i + 1] << 8) | (block[4 * i + 2] << 16) | (block[4 * i + 3] << 24);
    for (let r = 0; r < 12; r++) {
      const s = SIGMA[r % 10];
      bG(0, 8, 16, 24, 2 * s[0], 2 * s[1]);
      bG(2, 10, 18, 26, 2 * s[2], 2 * s[3]);
      bG(4, 12, 20, 28, 2 * s[4], 2 * s[5]);
      bG(6, 14, 22, 30, 2 * s[6], 2 * s[7]);
      bG(0, 10, 20, 30, 2 * s[8], 2 * s[9]);
      bG(2, 12, 22, 24, 2 * s[10], 2 * s[11]);
      bG(4, 14, 16, 26, 2 * s[12], 2 * s[13]);
      bG(6, 8, 18, 28, 2 * s[14], 2 * s[15]);
    }
    for (let i = 0; i < 16; i++) h[i] ^= v[i] ^ v[i + 16];
  }
  // blake2b hashes data (one Uint8Array, or an array of them) to outlen bytes.
  function blake2b(data, outlen) {
    const parts = Array.isArray(data) ? data : [data];
    let n = 0;
    for (const p of parts) n += p.length;
    const all = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { all.set(p, o); o += p.length; }
    const h = new Uint32Array(IV);
    h[0] ^= 0x01010000 ^ outlen;
    const block = new Uint8Array(128);
    let off = 0;
    while (all.length - off > 128) {
      compress(h, all.subarray(off, off + 128), off + 128, false);
      off += 128;
    }
    block.fill(0);
    block.set(all.subarray(off));
    compress(h, block, all.length, true);
    const out = new Uint8Array(outlen);
    for (let i = 0; i < outlen; i++) out[i] = h[i >> 2] >>> (8 * (i & 3));
    return out;
  }

  // ---- Argon2 -------------------------------------------------------------

  const le32 = (x) => Uint8Array.of(x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, (x >>> 24) & 0xff);

  // hPrime is H' of RFC 9106 §3.3.
  function hPrime(parts, T) {
    const X = [le32(T)].concat(parts);
    if (T <= 64) return blake2b(X, T);
    const out = new Uint8Array(T);
    const r = Math.ceil(T / 32) - 2;
    let V = blake2b(X, 64);
    out.set(V.subarray(0, 32), 0);
    for (let i = 1; i < r; i++) { V = blake2b(V, 64); out.set(V.subarray(0, 32), 32 * i); }
    V = blake2b(V, T - 32 * r);
    out.set(V, 32 * r);
    return out;
  }

  // The compression function's state: R and a scratch copy, 128 words each.
  const R = new Uint32Array(256), Z = new Uint32Array(256);

  // fBlaMka: x += y + 2 * lo32(x) * lo32(y), on words at w[a], w[b].
  function fBlaMka(w, a, b) {
    const x = w[a], y = w[b];
    const xl = x & 0xffff, xh = x >>> 16, yl = y & 0xffff, yh = y >>> 16;
    const ll = xl * yl, lh = xl * yh, hl = xh * yl;
    const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
    const hi = xh * yh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16);
    const lo = Math.imul(x, y) >>> 0;
    const lo2 = (lo << 1) >>> 0, hi2 = ((hi << 1) | (lo >>> 31)) >>> 0;
    let s = x + y, c = 0;
    if (s > 0xffffffff) { s -= 0x100000000; c = 1; }
    s += lo2;
    if (s > 0xffffffff) { s -= 0x100000000; c++; }
    w[a] = s;
    w[a + 1] = w[a + 1] + w[b + 1] + hi2 + c;
  }
  function gb(w, a, b, c, d) {
    fBlaMka(w, a, b);
    let lo = w[d] ^ w[a], hi = w[d + 1] ^ w[a + 1]; w[d] = hi; w[d + 1] = lo;
    fBlaMka(w, c, d);
    lo = w[b] ^ w[c]; hi = w[b + 1] ^ w[c + 1];
    w[b] = (lo >>> 24) | (hi << 8); w[b + 1] = (hi >>> 24) | (lo << 8);
    fBlaMka(w, a, b);
    lo = w[d] ^ w[a]; hi = w[d + 1] ^ w[a + 1];
    w[d] = (lo >>> 16) | (hi << 16); w[d + 1] = (hi >>> 16) | (lo << 16);
    fBlaMka(w, c, d);
    lo = w[b] ^ w[c]; hi = w[b + 1] ^ w[c + 1];
    w[b] = (hi >>> 31) | (lo << 1); w[b + 1] = (lo >>> 31) | (hi << 1);
  }
  // p applies the permutation P to the 16 words whose indexes (in 32-bit
  // units) are given by idx.
  function p(w, i) {
    gb(w, i[0], i[4], i[8], i[12]); gb(w, i[1], i[5], i[9], i[13]);
    gb(w, i[2], i[6], i[10], i[14]); gb(w, i[3], i[7], i[11], i[15]);
    gb(w, i[0], i[5], i[10], i[15]); gb(w, i[1], i[6], i[11], i[12]);
    gb(w, i[2], i[7], i[8], i[13]); gb(w, i[3], i[4], i[9], i[14]);
  }
  const ROWS = [], COLS = [];
  for (let r = 0; r < 8; r++) {
    const row = [];
    for (let k = 0; k < 16; k++) row.push(2 * (16 * r + k));
    ROWS.push(row);
  }
  for (let c = 0; c < 8; c++) {
    const col = [];
    for (let r = 0; r < 8; r++) col.push(2 * (16 * r + 2 * c), 2 * (16 * r + 2 * c + 1));
    COLS.push(col);
  }

  // compressG computes out (^)= G(X, Y) on 256-entry views; xor keeps out's
  // old value XORed in (passes after the first, version 0x13).
  function compressG(mem, out, x, y, xor) {
    for (let i = 0; i < 256; i++) { R[i] = mem[x + i] ^ mem[y + i]; Z[i] = R[i]; }
    for (let r = 0; r < 8; r++) p(Z, ROWS[r]);
    for (let c = 0; c < 8; c++) p(Z, COLS[c]);
    if (xor) for (let i = 0; i < 256; i++) mem[out + i] ^= Z[i] ^ R[i];
    else for (let i = 0; i < 256; i++) mem[out + i] = Z[i] ^ R[i];
  }

  // mulHi32 is (a * b) >> 32 for 32-bit a and b.
  function mulHi32(a, b) {
    const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
    const mid = al * bh + ah * bl;
    const lo = al * bl + (mid % 65536) * 65536;
    return (ah * bh + Math.floor(mid / 65536) + Math.floor(lo / 0x100000000)) >>> 0;
  }

  // argon2id derives tagLen bytes (RFC 9106, type 2, version 0x13) from
  // password and salt with t passes over mKiB KiB in par lanes.
  function argon2idSync(password, salt, t, mKiB, par, tagLen) {
    const TYPE = 2, VERSION = 0x13;
    const H0 = blake2b([le32(par), le32(tagLen), le32(mKiB), le32(t), le32(VERSION), le32(TYPE),
      le32(password.length), password, le32(salt.length), salt, le32(0), le32(0)], 64);
    const mBlocks = 4 * par * Math.floor(mKiB / (4 * par));
    const q = mBlocks / par, seg = q / 4;
    const mem = new Uint32Array(mBlocks * 256);
    const at = (lane, col) => (lane * q + col) * 256;
    const put = (off, bytes) => { for (let i = 0; i < 256; i++) mem[off + i] = bytes[4 * i] | (bytes[4 * i + 1] << 8) | (bytes[4 * i + 2] << 16) | (bytes[4 * i + 3] << 24); };
    for (let l = 0; l < par; l++) {
      put(at(l, 0), hPrime([H0, le32(0), le32(l)], 1024));
      put(at(l, 1), hPrime([H0, le32(1), le32(l)], 1024));
    }
    // Scratch blocks for data-independent addressing, after the memory.
    const aux = new Uint32Array(256 * 3); // zero, input, address
    const addrMem = aux;
    const ZERO = 0, INPUT = 256, ADDR = 512;
    const nextAddresses = () => {
      addrMem[INPUT + 12] = (addrMem[INPUT + 12] + 1) >>> 0; // counter, word 6 low half
      compressG(addrMem, ADDR, ZERO, INPUT, false);
      compressG(addrMem, ADDR, ZERO, ADDR, false);
    };
    for (let pass = 0; pass < t; pass++) {
      for (let slice = 0; slice < 4; slice++) {
        for (let lane = 0; lane < par; lane++) {
          const indep = pass === 0 && slice < 2;
          if (indep) {
            addrMem.fill(0, INPUT, INPUT + 256);
            addrMem[INPUT + 0] = pass; addrMem[INPUT + 2] = lane; addrMem[INPUT + 4] = slice;
            addrMem[INPUT + 6] = mBlocks; addrMem[INPUT + 8] = t; addrMem[INPUT + 10] = TYPE;
          }
          let start = 0;
          if (pass === 0 && slice === 0) { start = 2; if (indep) nextAddresses(); }
          for (let i = start; i < seg; i++) {
            const col = slice * seg + i;
            const prev = col === 0 ? at(lane, q - 1) : at(lane, col - 1);
            let j1, j2;
            if (indep) {
              if (i % 128 === 0) nextAddresses();
              j1 = addrMem[ADDR + 2 * (i % 128)]; j2 = addrMem[ADDR + 2 * (i % 128) + 1];
            } else { j1 = mem[prev]; j2 = mem[prev + 1]; }
            const refLane = pass === 0 && slice === 0 ? lane : j2 % par;
            const same = refLane === lane;
            let area;
            if (pass === 0) {
              if (slice === 0) area = i - 1;
              else if (same) area = slice * seg + i - 1;
              else area = slice * seg + (i === 0 ? -1 : 0);
            } else if (same) area = q - seg + i - 1;
            else area = q - seg + (i === 0 ? -1 : 0);
            const x = mulHi32(j1, j1);
            const rel = area - 1 - mulHi32(area, x);
            const startPos = pass === 0 ? 0 : (slice === 3 ? 0 : (slice + 1) * seg);
            const refCol = (startPos + rel) % q;
            compressG(mem, at(lane, col), prev, at(refLane, refCol), pass > 0);
          }
        }
      }
    }
    const C = new Uint32Array(256);
    for (let l = 0; l < par; l++) { const o = at(l, q - 1); for (let i = 0; i < 256; i++) C[i] ^= mem[o + i]; }
    const cb = new Uint8Array(1024);
    for (let i = 0; i < 256; i++) { cb[4 * i] = C[i]; cb[4 * i + 1] = C[i] >>> 8; cb[4 * i + 2] = C[i] >>> 16; cb[4 * i + 3] = C[i] >>> 24; }
    return hPrime([cb], tagLen);
  }

  async function argon2id(password, salt, t, mKiB, par, tagLen) {
    return argon2idSync(password, salt, t, mKiB, par, tagLen);
  }

  return { blake2b, argon2id, argon2idSync };
});
