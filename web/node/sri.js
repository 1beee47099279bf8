#!/usr/bin/env node
// sri.js rewrites the subresource integrity hashes of web/*.html and the
// service worker's cache name from the files they name. Run it after
// editing any file of web/: node web/node/sri.js. With --check it changes
// nothing and exits 1 when a hash is stale (the tests run it so).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');

const web = path.join(__dirname, '..');
const sri = (file) => 'sha384-' + crypto.createHash('sha384').update(fs.readFileSync(path.join(web, file))).digest('base64');

function update() {
  const out = {};
  for (const html of fs.readdirSync(web).filter((f) => f.endsWith('.html')).sort()) {
    const text = fs.readFileSync(path.join(web, html), 'utf8');
    out[html] = text.replace(/((?:src|href)="([^"]+)"[^>]*?integrity=")[^"]*(")/g, (m, a, file, b) => a + sri(file) + b);
  }
  const sw = fs.readFileSync(path.join(web, 'sw.js'), 'utf8');
  const list = (name) => JSON.parse(new RegExp('const ' + name + ' = (\\[[^\\]]*\\])').exec(sw)[1].replace(/'/g, '"').replace(/\s+/g, ' '));
  const files = list('FILES').concat(list('LATER'));
  const h = crypto.createHash('sha256');
  for (const f of files) {
    const name = f === './' ? 'index.html' : f;
    h.update(name + '\0' + (out[name] !== undefined ? out[name] : fs.readFileSync(path.join(web, name))) + '\0');
  }
  out['sw.js'] = sw.replace(/const CACHE = 'cipherknock-[^']*'/, "const CACHE = 'cipherknock-" + h.digest('hex').slice(0, 16) + "'");
  return out;
}

function main() {
  const check = process.argv.includes('--check');
  let stale = [];
  for (const [file, text] of Object.entries(update())) {
    if (fs.readFileSync(path.join(web, file), 'utf8') === text) continue;
    stale.push(file);
    if (!check) fs.writeFileSync(path.join(web, file), text);
  }
  if (check && stale.length) {
    console.error('stale integrity hashes in ' + stale.join(', ') + ': run node web/node/sri.js');
    process.exit(1);
  }
  if (!check && stale.length) console.log('updated ' + stale.join(', '));
}

if (require.main === module) main();
module.exports = { update };
