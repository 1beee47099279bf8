// Shared by the Node tests and the Go browser test's fixture: reads every
// file under testdata/vectors and testdata/streams, and runs one.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

// loadVectors lists the vector files, {kind, name, text}; kind is the
// directory (vectors or streams).
function loadVectors(root) {
  const out = [];
  for (const kind of ['vectors', 'streams']) {
    const dir = path.join(root, 'testdata', kind);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      if (!fs.statSync(p).isFile()) continue;
      out.push({ kind, name, text: fs.readFileSync(p, 'utf8') });
    }
  }
  return out;
}

// runVector resolves to {} (the vector holds), {skip: reason} (a mode
// this implementation does not have) or {error: message}. Files of
// testdata/vectors are knock vectors (SPEC.md §12), files of
// testdata/streams stream vectors (§12.1).
async function runVector(CK, f) {
  try {
    if (f.kind === 'streams') await CK.checkStream(CK.parseStream(f.name, f.text));
    else if (f.kind === 'vectors') await CK.checkVector(CK.parseVector(f.name, f.text));
    else return { error: 'unknown kind of vector file: ' + f.kind };
    return {};
  } catch (e) {
    if (e instanceof CK.Skip) return { skip: e.message };
    return { error: e.message };
  }
}

module.exports = { loadVectors, runVector };
