// Service worker of the phone viewer (scope /v/). Served by viewer_api/viewer.py at /v/sw.js with the
// placeholders filled in: __CACHE_VERSION__ (hash of the viewer's files) and __SHELL_URLS__ (JSON list).
//   shell (viewer page, modules, vendor libs): precached at install, cache first, refreshed in the background
//   /pub/a/<sha256>.<ext> (immutable bundles, media, markers): cache first, stored when first loaded;
//     media requested by byte ranges (<video>, <audio>) stream from the network the first time while the whole
//     file is stored in the background, then are answered from the cache by slicing the requested range
//   manifests (/pub/pages/…, /pub/editions/…) and viewer pages: network first, cache when offline
//   POST /api/v1/recognize: network only (the viewer falls back to markers it already has)
//   /pub/p/… (premium media and parts behind signed URLs) and /api/v1/reader/… (the reader's account and the premium
//     part documents): never cached, never answered from a cache — passed through to the network untouched. The
//     message {type: "purge-private"} (premium.js, at sign-out) deletes any such entry from every cache all the same
//     (one left by an older worker) and answers {type: "purged", removed} on the port it came with.

const VERSION = "__CACHE_VERSION__";
const SHELL = __SHELL_URLS__;
const SHELL_CACHE = `baonhung-shell-${VERSION}`;
const PUB_CACHE = "baonhung-pub-v1";  // content-addressed: never needs a new name
const PRIVATE_PATHS = ["/pub/p/", "/api/v1/reader/"];  // issue 27: a reader's own bytes, never kept here

function isPrivate(url) {
  const path = new URL(url).pathname;
  return PRIVATE_PATHS.some((p) => path.startsWith(p));
}

async function purgePrivate() {
  let removed = 0;
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const req of await cache.keys()) if (isPrivate(req.url) && await cache.delete(req)) removed++;
  }
  return removed;
}

self.addEventListener("message", (event) => {
  if (!event.data || event.data.type !== "purge-private") return;
  const reply = event.ports && event.ports[0];
  event.waitUntil(purgePrivate().then((removed) => { if (reply) reply.postMessage({ type: "purged", removed }); }));
});

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

// Answer a Range request from a whole cached response (206 with the requested slice).
async function rangeResponse(full, range) {
  const buf = await full.arrayBuffer();
  const size = buf.byteLength;
  const m = /bytes=(\d*)-(\d*)/.exec(range || "");
  let start = 0, end = size - 1;
  if (m && m[1]) { start = Number(m[1]); if (m[2]) end = Math.min(Number(m[2]), size - 1); }
  else if (m && m[2]) { start = Math.max(0, size - Number(m[2])); }
  if (start >= size) return new Response(null, { status: 416, headers: { "Content-Range": `bytes */${size}` } });
  return new Response(buf.slice(start, end + 1), {
    status: 206,
    headers: {
      "Content-Type": full.headers.get("Content-Type") || "application/octet-stream",
      "Content-Range": `bytes ${start}-${end}/${size}`,
      "Content-Length": String(end - start + 1),
      "Accept-Ranges": "bytes",
    },
  });
}

async function rangedMedia(event) {
  const req = event.request;
  const cache = await caches.open(PUB_CACHE);
  const full = await cache.match(req.url, { ignoreVary: true });
  if (full) return rangeResponse(full, req.headers.get("range"));
  event.waitUntil(fetch(req.url).then((res) => (res.ok && res.status === 200 ? cache.put(req.url, res) : null))
    .catch(() => {}));
  return fetch(req);
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
  if (isPrivate(req.url)) return;  // network only: the browser fetches it as if there were no worker
  if (url.pathname.startsWith("/pub/a/") && req.headers.has("range")) { event.respondWith(rangedMedia(event)); return; }
  if (url.pathname.startsWith("/pub/a/")) { event.respondWith(cacheFirst(req, PUB_CACHE)); return; }
  if (url.pathname.startsWith("/pub/")) { event.respondWith(networkFirst(req, PUB_CACHE)); return; }
  if (url.pathname.startsWith("/v/vendor/")) { event.respondWith(cacheFirst(req, SHELL_CACHE)); return; }
  if (url.pathname.startsWith("/v/")) { event.respondWith(networkFirst(req, SHELL_CACHE)); return; }
});
