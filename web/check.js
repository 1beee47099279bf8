/*
 * check.js: runs every test vector the server lists through ck.js in this
 * browser and publishes the outcome in the page (document.body.dataset.
 * result holds a JSON summary for automated runs): knock vectors of
 * testdata/vectors (SPEC.md §12) and stream vectors of testdata/streams
 * (§12.1).
 */
(async function () {
  'use strict';
  const CK = globalThis.CK;
  const out = document.getElementById('results');
  const res = { passed: [], failed: [], skipped: [] };
  // Both kinds of vector file are part of SPEC.md (§12, §12.1): a server
  // that offers none of one kind leaves this check incomplete, a failure.
  const list = async (kind) => {
    const r = await fetch(kind + '/', { cache: 'no-store' });
    const names = r.ok ? (await r.text()).split('\n').filter((n) => /^[a-z0-9][a-z0-9_]*$/.test(n)) : [];
    if (!names.length) res.failed.push(kind + '/: the server lists no files (cipherknock lab --testdata DIR serves DIR/' + kind + ')');
    return names;
  };
  try {
    for (const kind of ['vectors', 'streams']) {
      for (const name of await list(kind)) {
        const id = kind + '/' + name;
        const text = await (await fetch(id, { cache: 'no-store' })).text();
        try {
          if (kind === 'streams') await CK.checkStream(CK.parseStream(name, text));
          else await CK.checkVector(CK.parseVector(name, text));
          res.passed.push(id);
        } catch (e) {
          if (e instanceof CK.Skip) res.skipped.push(id + ': ' + e.message);
          else res.failed.push(id + ': ' + e.message);
        }
        out.textContent = res.passed.length + ' passed, ' + res.failed.length + ' failed, ' + res.skipped.length + ' skipped: ' + id;
      }
    }
  } catch (e) { res.failed.push('run: ' + e.message); }
  document.getElementById('summary').textContent = res.passed.length + ' passed, ' + res.failed.length + ' failed, ' + res.skipped.length + ' skipped by design';
  out.textContent = res.failed.concat(res.skipped).join('\n');
  document.body.dataset.result = JSON.stringify(res);
})();
