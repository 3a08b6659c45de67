// Service worker of the phone viewer (scope /v/). Served by viewer_api/viewer.py at /v/sw.js with the
// placeholders filled in: __CACHE_VERSION__ (hash of the viewer's files) and __SHELL_URLS__ (JSON list).
//   shell (viewer page, modules, vendor libs): precached at install, cache first, refreshed in the background
//   /pub/a/<sha256>.<ext> (immutable bundles, media, markers): cache first, stored when first loaded
//   manifests (/pub/pages/…, /pub/editions/…) and viewer pages: network first, cache when offline
//   POST /api/v1/recognize: network only (the viewer falls back to markers it already has)

const VERSION = "__CACHE_VERSION__";
const SHELL = __SHELL_URLS__;
const SHELL_CACHE = `baonhung-shell-${VERSION}`;
const PUB_CACHE = "baonhung-pub-v1";  // content-addressed: never needs a new name

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("baonhung-shell-") && name !== SHELL_CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

async function cacheFirst(request, cacheName) {
  const cache = await caches.open(cacheName);
  const hit = await cache.match(request, { ignoreVary: true });
  if (hit) return hit;
  const res = await fetch(request);
  if (res.ok && res.status === 200) cache.put(request, res.clone());
  return res;
}

async function networkFirst(request, cacheName) {
  const cache = await caches.open(cacheName);
  try {
    const res = await fetch(request);
    if (res.ok) cache.put(request, res.clone());
    return res;
  } catch (err) {
    const hit = await cache.match(request, { ignoreVary: true, ignoreSearch: request.mode === "navigate" });
    if (hit) return hit;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/pub/a/")) { event.respondWith(cacheFirst(req, PUB_CACHE)); return; }
  if (url.pathname.startsWith("/pub/")) { event.respondWith(networkFirst(req, PUB_CACHE)); return; }
  if (url.pathname.startsWith("/v/vendor/")) { event.respondWith(cacheFirst(req, SHELL_CACHE)); return; }
  if (url.pathname.startsWith("/v/")) { event.respondWith(networkFirst(req, SHELL_CACHE)); return; }
});
