#!/usr/bin/env node
// streamdiff.js reads a JSON array of {name, text} stream vector files
// (file argument) and prints, for each, one JSON line: {"opens":[...]}, the
// opens ck.js's receiver makes, each "PACKET:KNOCK:OUTCOME" (PACKET counted
// from 0, OUTCOME with "_" for spaces), or {"error":"parse"} or
// {"error":"run"} when ck.js refuses the file. web/streams_test.go compares
// that with internal/vectors.
'use strict';
const fs = require('node:fs');
// Node 18 has WebCrypto but not as a global.
if (!globalThis.crypto) globalThis.crypto = require('node:crypto').webcrypto;
const CK = require('../ck.js');

(async () => {
  const inputs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const out = [];
  for (const f of inputs) {
    let s;
    try { s = CK.parseStream(f.name, f.text); } catch (e) { out.push(JSON.stringify({ error: 'parse' })); continue; }
    try {
      const opens = [];
      (await CK.runStream(s)).forEach((p, i) => p.opens.forEach((o) => opens.push(i + ':' + o.knock + ':' + o.outcome.replace(/ /g, '_'))));
      out.push(JSON.stringify({ opens }));
    } catch (e) {
      if (!(e instanceof CK.VectorError)) throw e;
      out.push(JSON.stringify({ error: 'run' }));
    }
  }
  process.stdout.write(out.join('\n') + '\n');
})();
