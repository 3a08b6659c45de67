// The ONE place that reads published manifests (page / edition) and browser marker files.
// The manifest schema (builder/schemas/manifest.schema.json, written by builder/manifest.py) is owned by the bundle
// packaging; this module reads only the fields it defines, and when it changes, only this module adapts. Everything
// else sees the normalized shapes below.
//
//   PageInfo    {pageId, editionId, widthMm, heightMm, bundleUrl, bundleBytes, markerUrl, media: [{src,url,mime}],
//                manifestUrl, title, number, overlays: [{id, kind, access, teaser}],
//                premium: {overlays: [ids], url} | null (issue 27: the page's premium part, for entitled readers), raw}
//   EditionInfo {editionId, title, pages: [{pageId, number, title, manifestUrl, thumbnailUrl}], raw}
//   Marker      {widthMm, heightMm, imagePx: [w, h], keypointsMm: Float32Array(2N), descriptors: Uint8Array(32N), count}

const PREFER_LITE_BELOW_MBPS = 2; // on slow links the lite bundle (smaller textures) first

function abs(url, base) {
  return url ? new URL(url, base || location.href).href : null;
}

// {url, bytes} of the bundle this device should load from bundles {full, lite}: lite on a slow link, else full (the
// page's bundles, and a premium part's, issue 27)
export function pickBundle(bundles, base) {
  if (!bundles) return { url: null, bytes: 0 };
  const conn = navigator.connection;
  const slow = conn && ((conn.downlink && conn.downlink < PREFER_LITE_BELOW_MBPS) || conn.saveData);
  const chosen = (slow && bundles.lite) || bundles.full || bundles.lite;
  if (!chosen) return { url: null, bytes: 0 }; // a premium part of media only has no bundle ({})
  return { url: abs(chosen.url, base), bytes: chosen.bytes || 0 };
}

export function normalizePage(raw, manifestUrl) {
  const base = abs(manifestUrl);
  const bundle = pickBundle(raw.bundles, base);
  const media = (raw.media || []).map((m) => ({
    src: m.name, // what an overlay in the GLB names (extras.overlay.src)
    url: abs(m.url, base),
    mime: m.mime,
    sha256: m.sha256,
  }));
  return {
    pageId: String(raw.page_id),
    editionId: raw.edition_id != null ? String(raw.edition_id) : null,
    widthMm: Number(raw.width_mm),
    heightMm: Number(raw.height_mm),
    bundleUrl: bundle.url,
    bundleBytes: bundle.bytes,
    markerUrl: abs(raw.marker_url, base),
    media,
    manifestUrl: base,
    title: raw.title || null,
    number: raw.number,
    overlays: (raw.overlays || []).map((o) => ({ id: String(o.id), kind: o.kind, access: o.access || "free",
                                                 teaser: o.teaser || null })),
    premium: raw.premium && raw.premium.url
      ? { overlays: (raw.premium.overlays || []).map(String), url: abs(raw.premium.url, base) } : null,
    raw,
  };
}

export function normalizeEdition(raw, manifestUrl) {
  const base = abs(manifestUrl);
  const pages = raw.pages.map((p) => ({
    pageId: String(p.page_id),
    number: p.number,
    title: p.title || null,
    manifestUrl: abs(p.manifest_url, base),
    thumbnailUrl: abs(p.thumbnail_url || p.preview_url, base),
  }));
  return { editionId: String(raw.edition_id), title: raw.title || null, pages, raw };
}

async function getJson(url) {
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

export async function loadPageManifest(url) {
  return normalizePage(await getJson(url), url);
}

export async function loadEditionManifest(url) {
  return normalizeEdition(await getJson(url), url);
}

function base64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function normalizeMarker(raw) {
  if (raw.version !== 1) throw new Error(`browser marker version ${raw.version} not supported (expected 1)`);
  const n = raw.keypoints_mm.length;
  const kp = new Float32Array(2 * n);
  raw.keypoints_mm.forEach(([x, y], i) => { kp[2 * i] = x; kp[2 * i + 1] = y; });
  const desc = base64ToBytes(raw.descriptors_b64);
  if (desc.length !== 32 * n) throw new Error(`browser marker: ${desc.length} descriptor bytes for ${n} keypoints`);
  return { widthMm: raw.width_mm, heightMm: raw.height_mm, imagePx: raw.image_px, keypointsMm: kp, descriptors: desc, count: n };
}

export async function loadMarker(url) {
  return normalizeMarker(await getJson(url));
}

// Resolve a media reference found in a GLB overlay (extras.overlay.src) against the page manifest.
export function resolveMedia(page, src) {
  if (!src) return null;
  const hit = page.media.find((m) => m.src === src || m.url === src || (m.sha256 && src.includes(m.sha256)));
  if (hit && hit.url) return hit.url;
  return abs(src, page.bundleUrl || page.manifestUrl);
}
