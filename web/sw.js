/*
 * sw.js: keeps the pages working offline after the first load. It answers
 * requests for the page's own files from its cache and never touches any
 * other request: knocks and port checks go to the network untouched.
 * CACHE changes whenever a file changes (node web/node/sri.js rewrites it),
 * so an updated page replaces the old copy.
 */
'use strict';
const CACHE = 'cipherknock-21fd3db83bde4f59';
// The knock page, fetched at install; the lab's own files are kept when
// first visited, so that the knock page's first load stays small.
const FILES = ['./', 'index.html', 'app.js', 'ck.js', 'style.css', 'icon.svg', 'manifest.webmanifest'];
const LATER = ['lab.html', 'lab.js', 'argon2.js'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== self.location.origin) return;
  e.respondWith(caches.open(CACHE).then((c) => c.match(e.request, { ignoreSearch: true }).then((hit) => {
    if (hit) return hit;
    return fetch(e.request).then((r) => {
      const name = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
      if (r.ok && LATER.includes(name)) c.put(e.request, r.clone());
      return r;
    });
  })));
});
