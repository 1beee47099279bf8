#!/usr/bin/env node
// vectordiff.js reads a JSON array of {name, text} vector files (file
// argument) and prints, for each, one JSON line: {"ok":true} when ck.js
// finds that the vector holds, {"skip":MESSAGE} when it skips it, else
// {"ok":false,"class":C} where C is the receiver's class when the vector
// failed only on its expect value, or "" otherwise.
// web/differential_test.go compares that with internal/vectors.
'use strict';
const fs = require('node:fs');
// Node 18 has WebCrypto but not as a global.
if (!globalThis.crypto) globalThis.crypto = require('node:crypto').webcrypto;
const CK = require('../ck.js');
const { runVector } = require('./vectorfiles.js');

(async () => {
  const inputs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const out = [];
  for (const f of inputs) {
    const r = await runVector(CK, { kind: 'vectors', name: f.name, text: f.text });
    if (r.skip) out.push(JSON.stringify({ skip: r.skip }));
    else if (r.error === undefined) out.push(JSON.stringify({ ok: true }));
    else {
      const m = /: the class is "([^"]*)", the vector says "[^"]*"$/.exec(r.error);
      out.push(JSON.stringify({ ok: false, class: m ? m[1] : '' }));
    }
  }
  process.stdout.write(out.join('\n') + '\n');
})();
