#!/usr/bin/env node
// uridiff.js reads a JSON array of strings (file argument) and prints, for
// each, one JSON line: {"ok":true,"uri":CANONICAL} when ck.js parses it as
// a profile URI, else {"ok":false}. web/differential_test.go compares that
// with package profile.
'use strict';
const fs = require('node:fs');
// Node 18 has WebCrypto but not as a global.
if (!globalThis.crypto) globalThis.crypto = require('node:crypto').webcrypto;
const CK = require('../ck.js');

(async () => {
  const inputs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const out = [];
  for (const s of inputs) {
    try {
      const p = await CK.parseProfileURI(s);
      out.push(JSON.stringify({ ok: true, uri: await CK.profileURI(p) }));
    } catch (e) {
      out.push(JSON.stringify({ ok: false }));
    }
  }
  process.stdout.write(out.join('\n') + '\n');
})();
