// Visual overlay editor and page preview (plain ES module, no build step).
//
// Coordinates (docs/ARCHITECTURE.md): the database stores page millimetres, origin at the page's top-left,
// x right, y down; (x_mm, y_mm) is the top-left corner of the *unrotated* box and rotation_deg turns it clockwise
// about its centre. The stage shows the page image scaled to the stage width, so with
//   s = stage.clientWidth / page.width_mm            (CSS px per mm)
// a box is drawn at left = x_mm·s, top = y_mm·s, size width_mm·s × height_mm·s, with CSS `rotate(rotation_deg)`
// about its centre (CSS angles are clockwise on screen, like the page). That is the only mm <-> px conversion.

const root = document.getElementById('editor');
const page = JSON.parse(root.dataset.page);
const T = JSON.parse(root.dataset.strings);
const readonly = root.dataset.readonly === 'yes';
const stage = document.getElementById('stage');
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

const PLACEMENT = ['x_mm', 'y_mm', 'width_mm', 'height_mm', 'rotation_deg', 'elevation_mm', 'scale'];
const MIN_SIZE_MM = 1; // the service refuses smaller boxes
const SNAP_DEG = 15; // rotation step with Shift held
// A box within this relative difference of its file's height/width has the file's shape (0.1 mm rounding of a
// small box); such a box starts with its proportions locked.
const ASPECT_TOLERANCE = 0.02;
// Kinds drawn as their file on the paper (builder/services.py MEDIA_SHAPED_KINDS): their box keeps the file's shape.
const MEDIA_SHAPED = ['video', 'animated_image', 'image'];
const SAVE_DELAY_MS = 400; // typing in a field saves once the designer pauses
// Plain glyphs that every system font has (no emoji font needed on the newsroom's PCs).
const ICONS = {model3d: '⬢', video: '▶', audio: '♪', animated_image: '✦', image: '▣', panorama360: '360°', link: '↗'};
// Issue 27: access levels and teasers, with the service's rules (builder/premium.py TEASERS_BY_KIND, default first).
const P = T.premium;
const TEASER_SECONDS = [1, 30]; // builder/premium.py TEASER_SECONDS_MIN, TEASER_SECONDS_MAX

const overlays = new Map(page.overlays.map((o) => [o.id, o]));
const boxes = new Map();
const aspectChoice = new Map(); // overlay id -> the designer's lock choice (true: keep the file's shape)
let selectedId = null;
let mode = root.dataset.mode;

const round1 = (v) => Math.round(v * 10) / 10; // placement precision: 0.1 mm, 0.1°
const roundField = (key, v) => (key === 'scale' ? Math.round(v * 100) / 100 : round1(v));
const pxPerMm = () => stage.clientWidth / page.width_mm;
const fmt = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? '');

// height / width of the file an overlay shows (pixel size from the server's upload checks), or null.
function fileAspect(o) {
  const meta = o && o.asset && o.asset.meta;
  if (!MEDIA_SHAPED.includes(o && o.kind) || !meta || !(meta.width > 0 && meta.height > 0)) return null;
  return meta.height / meta.width;
}

// Locked unless the designer unlocked it; a box already stretched away from its file's shape starts unlocked.
function aspectLocked(o) {
  const a = fileAspect(o);
  if (a === null) return false;
  if (aspectChoice.has(o.id)) return aspectChoice.get(o.id);
  return Math.abs(o.height_mm / o.width_mm - a) <= ASPECT_TOLERANCE * a;
}

function ratioText(o) {
  const m = o.asset.meta;
  const gcd = (a, b) => (b ? gcd(b, a % b) : a);
  const g = gcd(m.width, m.height);
  const [w, h] = [m.width / g, m.height / g];
  return w <= 32 && h <= 32 ? `${w}:${h}` : `${(m.width / m.height).toFixed(2)}:1`;
}

// ------------------------------------------------------------------------------------------ drawing

function badgeText(o) {
  if (o.kind === 'link') return `${ICONS.link} ${o.options.label || T.open_link}`;
  if (o.kind === 'audio') return `${ICONS.audio} ${T.play}`;
  if (o.kind === 'panorama360') return `${ICONS.panorama360} · ${T.panorama}`;
  if (o.kind === 'model3d') return `${ICONS.model3d} ${o.name || o.stock || T.kinds.model3d}`;
  return ICONS[o.kind] || '';
}

function labelText(o) {
  return `${T.kinds[o.kind] || o.kind}${o.name ? ' · ' + o.name : ''}`;
}

// A padlock drawn as SVG (no emoji font needed): the mark of a premium overlay on the canvas and in the list.
function lockIcon(size = 12) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  for (const [k, v] of Object.entries({viewBox: '0 0 16 16', width: size, height: size, 'aria-hidden': 'true'})) {
    svg.setAttribute(k, String(v));
  }
  const shackle = document.createElementNS(NS, 'path');
  for (const [k, v] of Object.entries({d: 'M5 7.5V5a3 3 0 0 1 6 0v2.5', fill: 'none', stroke: 'currentColor',
    'stroke-width': '2'})) shackle.setAttribute(k, v);
  const body = document.createElementNS(NS, 'rect');
  for (const [k, v] of Object.entries({x: '2.5', y: '7', width: '11', height: '8', rx: '1.5', fill: 'currentColor'})) {
    body.setAttribute(k, v);
  }
  svg.append(shackle, body);
  return svg;
}

// The lock badge of a premium overlay ("Dành cho bạn đọc đăng ký"), added or removed as its access changes.
function markAccess(o) {
  const box = boxes.get(o.id);
  if (!box) return;
  const premium = o.access === 'premium';
  box.classList.toggle('premium', premium);
  let lock = box.querySelector('.ovl-lock');
  if (premium && !lock) {
    lock = document.createElement('span');
    lock.className = 'ovl-lock';
    lock.title = P.badge;
    lock.append(lockIcon(), Object.assign(document.createElement('span'), {textContent: P.badge}));
    box.append(lock);
  } else if (!premium && lock) {
    lock.remove();
  }
  box.setAttribute('aria-label', `${T.kinds[o.kind] || o.kind} ${o.name || ''}${premium ? ' · ' + P.badge : ''}`.trim());
}

function boxContent(o) {
  const frag = document.createDocumentFragment();
  const posterUrl = o.poster_url || (['image', 'animated_image', 'panorama360'].includes(o.kind)
    && o.asset && o.asset.mime && o.asset.mime.startsWith('image/') ? o.asset.url : null);
  if (posterUrl) {
    const img = document.createElement('img');
    img.src = posterUrl;
    img.alt = '';
    img.draggable = false;
    img.className = 'ovl-media';
    frag.append(img);
  }
  const badge = document.createElement('span');
  badge.className = 'ovl-badge';
  badge.textContent = badgeText(o);
  frag.append(badge);
  const label = document.createElement('span');
  label.className = 'ovl-label';
  label.textContent = labelText(o);
  frag.append(label);
  if (!readonly) {
    for (const [cls, title] of [['h-resize', '↘'], ['h-rotate', '⟳']]) {
      const h = document.createElement('span');
      h.className = `handle ${cls}`;
      h.dataset.handle = cls;
      h.setAttribute('aria-hidden', 'true');
      h.title = title;
      frag.append(h);
    }
  }
  return frag;
}

function makeBox(o) {
  const box = document.createElement('div');
  box.className = `ovl kind-${o.kind}`;
  box.dataset.id = o.id;
  box.tabIndex = 0;
  box.setAttribute('role', 'button');
  box.setAttribute('aria-label', `${T.kinds[o.kind] || o.kind} ${o.name || ''}`.trim());
  box.append(boxContent(o));
  stage.append(box);
  boxes.set(o.id, box);
  box.addEventListener('pointerdown', (e) => onPointerDown(e, o.id));
  box.addEventListener('keydown', (e) => onKey(e, o.id));
  box.addEventListener('click', (e) => onPreviewClick(e, o.id));
  placeBox(o);
  markAccess(o);
  return box;
}

function placeBox(o) {
  const box = boxes.get(o.id);
  if (!box) return;
  const s = pxPerMm();
  box.style.left = `${o.x_mm * s}px`;
  box.style.top = `${o.y_mm * s}px`;
  box.style.width = `${o.width_mm * s}px`;
  box.style.height = `${o.height_mm * s}px`;
  box.style.transform = `rotate(${o.rotation_deg || 0}deg)`;
}

function placeAll() {
  for (const o of overlays.values()) placeBox(o);
  placeConfusable();
}

// ------------------------------------------------------------------------------------- side panel

const form = document.getElementById('placement');
const list = document.getElementById('overlay-list');
const state = document.getElementById('save-state');

function field(name) {
  return document.getElementById(`f-${name}`);
}

function renderList() {
  if (!list) return;
  list.replaceChildren();
  for (const o of overlays.values()) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'link' + (o.id === selectedId ? ' on' : '');
    b.textContent = `${ICONS[o.kind] || ''} ${labelText(o)}`;
    if (o.access === 'premium') {
      const mark = Object.assign(document.createElement('span'), {className: 'lock-mark', title: P.badge});
      mark.append(lockIcon(11));
      b.append(' ', mark);
    }
    b.addEventListener('click', () => select(o.id, true));
    li.append(b);
    const warnings = assetWarnings(o);
    if (warnings.length) {
      b.prepend(Object.assign(document.createElement('span'), {className: 'warn-mark', textContent: '⚠ '}));
      const ul = document.createElement('ul');
      ul.className = 'ovl-warnings';
      for (const w of warnings) {
        const item = document.createElement('li');
        item.dataset.code = (w && w.code) || '';
        item.textContent = warningText(w);
        ul.append(item);
      }
      li.append(ul);
    }
    list.append(li);
  }
}

// Upload facts worth a designer's attention (builder/importers/): [{code, values: {...}}]; older rows may hold
// plain strings. Known codes get a translated text with their values, unknown ones show their code.
function assetWarnings(o) {
  const list = o.asset && o.asset.meta && o.asset.meta.warnings;
  return Array.isArray(list) ? list : [];
}

// Sizes in decimal MB with one decimal (the budgets are decimal MB); a few kB reads "< 0.1", not a misleading 0.0.
const mb = (bytes) => {
  const n = Number(bytes || 0);
  return n > 0 && n < 50_000 ? '< 0.1' : (n / 1e6).toFixed(1);
};
// A contributor is often much smaller than a megabyte: kB below 0.1 MB.
const sizeText = (bytes) => (bytes < 100_000 ? `${Math.max(1, Math.round(bytes / 1000))} kB` : `${mb(bytes)} MB`);

function warningText(w) {
  if (typeof w === 'string') return w;
  const v = {...w, ...(w.values || {})};
  let key = v.code;
  if (v.code === 'model_very_large' && Array.isArray(v.size_m)) v.size = Math.max(...v.size_m).toFixed(1);
  if (v.code === 'gltf_validator_warnings' && Array.isArray(v.count)) v.count = v.count.length;
  if (v.code === 'over_budget') {
    key = `over_budget_${v.variant}`;
    v.size = mb(v.bytes);
    v.budget = mb(v.budget);
  }
  const template = T.warnings[key];
  return template ? fmt(template, v) : (v.code || v.message || '');
}

function fillFields(o) {
  if (!form) return;
  for (const key of PLACEMENT) field(key).value = roundField(key, o[key] ?? (key === 'scale' ? 1 : 0));
  field('name').value = o.name || '';
  const opt = o.options || {};
  for (const key of ['autoplay', 'loop', 'muted']) field(key).checked = !!opt[key];
  field('use_chroma').checked = !!opt.chroma_key;
  field('chroma_key').value = opt.chroma_key || '#00ff00';
  field('url').value = o.url || '';
  field('label').value = opt.label || '';
  showKinds(form, o.kind);
  fillAccess(o);
  showAspectLock(o);
  const meta = (o.asset && o.asset.meta) || {};
  const bits = [];
  if (meta.duration_s) bits.push(`${Number(meta.duration_s).toFixed(1)} s`);
  if (meta.width && meta.height) bits.push(`${meta.width}×${meta.height} px`);
  if (meta.triangles) bits.push(`${meta.triangles} △`);
  if (o.stock) bits.push(o.stock);
  document.getElementById('asset-info').textContent = bits.join(' · ');
  document.getElementById('placement-title').textContent = `${T.kinds[o.kind] || o.kind} #${o.id}`;
}

// Fields of other kinds are hidden and disabled: a hidden field is neither validated nor sent (a hidden invalid
// one made every save log "An invalid form control is not focusable").
function showKinds(container, kind) {
  for (const el of container.querySelectorAll('[data-kinds]')) el.hidden = !el.dataset.kinds.split(' ').includes(kind);
  for (const c of container.querySelectorAll('input, select, textarea')) {
    c.disabled = readonly || c.parentElement.closest('[hidden]') !== container.closest('[hidden]');
  }
}

// Access and teaser (issue 27): "Free" / "For subscribers"; when premium, the kind's teasers (its default first and
// marked so; a poster the overlay lacks is offered disabled), the clip's seconds, and one line saying what readers
// without a subscription will see.
function teaserOptions(o) {
  const allowed = P.kind_teasers[o.kind] || [];
  const select = field('teaser');
  select.replaceChildren();
  allowed.forEach((t, i) => {
    const needsPoster = t === 'poster' && P.poster_upload_kinds.includes(o.kind) && !o.poster_url;
    const name = P.names[t] || t;
    const text = i === 0 ? fmt(P.default, {teaser: name}) : needsPoster ? fmt(P.needs_poster, {teaser: name}) : name;
    select.append(Object.assign(document.createElement('option'), {value: t, textContent: text, disabled: needsPoster}));
  });
  select.value = allowed.includes(o.teaser) ? o.teaser : (allowed[0] || '');
}

function showAccess(o) {
  const fieldset = document.getElementById('access-fields');
  if (!fieldset || fieldset.hidden) return;
  const premium = o.access === 'premium';
  const teaser = field('teaser').value;
  for (const el of fieldset.querySelectorAll('[data-premium]')) {
    el.hidden = !premium || (el.dataset.teaser !== undefined && el.dataset.teaser !== teaser);
    for (const c of el.querySelectorAll('input, select')) c.disabled = readonly || el.hidden;
  }
  const explain = P.explain[`${o.kind}.${teaser}`];
  document.getElementById('teaser-hint').textContent = explain ? fmt(explain, {seconds: o.teaser_seconds}) : '';
}

function fillAccess(o) {
  if (!field('access-free')) return;
  field('access-free').checked = o.access !== 'premium';
  field('access-premium').checked = o.access === 'premium';
  teaserOptions(o);
  field('teaser_seconds').value = o.teaser_seconds ?? 5;
  showAccess(o);
}

const lockButton = document.getElementById('aspect-lock');

function showAspectLock(o) {
  if (!lockButton) return;
  const a = fileAspect(o);
  lockButton.hidden = a === null;
  if (a === null) return;
  const on = aspectLocked(o);
  lockButton.setAttribute('aria-pressed', String(on));
  lockButton.classList.toggle('on', on);
  lockButton.textContent = fmt(on ? T.aspect_locked : T.aspect_unlocked, {ratio: ratioText(o)}); // on: dark, like a pressed toggle
}

// The URL names the overlay shown in the side panel (?selected=), so a reload keeps it; never one that is gone.
function rememberSelection(id) {
  const url = new URL(location.href);
  if (id) url.searchParams.set('selected', id); else url.searchParams.delete('selected');
  if (url.href !== location.href) history.replaceState(history.state, '', url);
}

function select(id, focus = false) {
  selectedId = id;
  if (root.dataset.ready === 'yes') rememberSelection(overlays.has(id) ? id : null);
  for (const [bid, box] of boxes) box.classList.toggle('selected', bid === id);
  renderList();
  const o = overlays.get(id);
  if (form) {
    form.hidden = !o;
    document.getElementById('no-selection').hidden = !!o;
    if (o) fillFields(o);
    else document.getElementById('placement-title').textContent = '';
  }
  if (o && focus) boxes.get(id)?.focus();
  update3d(o);
}

function syncFieldsFromModel(o) {
  if (form && o.id === selectedId) {
    for (const key of ['x_mm', 'y_mm', 'width_mm', 'height_mm', 'rotation_deg']) field(key).value = round1(o[key]);
  }
}

// ---------------------------------------------------------------------------------------- saving

let saveTimer = null;

function setState(text, cls = '') {
  if (!state) return;
  state.textContent = text;
  state.className = `save-state ${cls}`;
}

function payload(o) {
  const body = {};
  for (const key of PLACEMENT) body[key] = roundField(key, Number(o[key] ?? (key === 'scale' ? 1 : 0)));
  body.name = o.name || '';
  const opt = o.options || {};
  if (['video', 'audio'].includes(o.kind)) body.autoplay = !!opt.autoplay;
  if (['video', 'audio', 'animated_image'].includes(o.kind)) body.loop = !!opt.loop;
  if (o.kind === 'video') {
    body.muted = !!opt.muted;
    body.chroma_key = opt.chroma_key || '';
  }
  if (o.kind === 'link') {
    body.url = o.url || '';
    body.label = opt.label || '';
  } else {
    body.access = o.access === 'premium' ? 'premium' : 'free';
    // only a teaser the designer picked: the serialized one is the effective teaser, and sending it back would pin
    // the kind's default as a choice (and log a change on every move)
    if (o.teaserPicked && (P.kind_teasers[o.kind] || []).includes(o.teaser)) body.teaser = o.teaser;
    const seconds = Math.round(Number(o.teaser_seconds));
    if (seconds >= TEASER_SECONDS[0] && seconds <= TEASER_SECONDS[1]) body.teaser_seconds = seconds;
  }
  return body;
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: 'same-origin',
    headers: {'X-CSRFToken': csrfToken, 'Content-Type': 'application/json', 'Accept': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).message || message; } catch { /* not JSON */ }
    throw new Error(message);
  }
  return response.status === 204 ? null : response.json();
}

async function save(id) {
  clearTimeout(saveTimer);
  const o = overlays.get(id);
  if (!o || readonly) return;
  setState(T.saving, 'busy');
  try {
    const fresh = await api('PATCH', `/api/v1/overlays/${id}`, payload(o));
    overlays.set(id, fresh);
    placeBox(fresh);
    const box = boxes.get(id);
    box.querySelector('.ovl-badge').textContent = badgeText(fresh);
    box.querySelector('.ovl-label').textContent = labelText(fresh);
    markAccess(fresh);
    renderList();
    if (id === selectedId) {
      fillFields(fresh);
      if (fresh.kind === 'model3d') update3d(fresh); // a turn by the handle shows in 3D too
    }
    setState(T.saved, 'ok');
    root.dataset.saved = String(Date.now()); // lets tests wait for a completed save
  } catch (err) {
    // The server refused (e.g. the centre left the page): show why and put the box back where it is saved.
    setState(fmt(T.save_failed, {reason: err.message}), 'error');
    try {
      const saved = await api('GET', `/api/v1/overlays/${id}`);
      overlays.set(id, saved);
      placeBox(saved);
      markAccess(saved);
      renderList();
      if (id === selectedId) fillFields(saved);
    } catch { /* keep the local state; the message above says it is not saved */ }
    root.dataset.refused = String(Date.now()); // lets tests wait for a refused save
  }
}

function saveSoon(id) {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => save(id), SAVE_DELAY_MS);
}

// -------------------------------------------------------------------------------- pointer editing

function onPointerDown(event, id) {
  if (mode !== 'edit' || event.button !== 0) return;
  select(id);
  if (readonly) return;
  event.preventDefault();
  const o = overlays.get(id);
  const box = boxes.get(id);
  const handle = event.target.dataset.handle || 'move';
  const s = pxPerMm();
  const start = {px: event.clientX, py: event.clientY, ...o};
  const keepShape = aspectLocked(o); // decided once per drag (the box's ratio changes under the pointer)
  const rect = stage.getBoundingClientRect();
  box.setPointerCapture(event.pointerId);
  box.classList.add('dragging');
  let moved = false;

  const onMove = (e) => {
    const dx = (e.clientX - start.px) / s; // mm
    const dy = (e.clientY - start.py) / s;
    if (Math.abs(dx) + Math.abs(dy) > 0) moved = true;
    if (handle === 'move') {
      o.x_mm = round1(start.x_mm + dx);
      o.y_mm = round1(start.y_mm + dy);
    } else if (handle === 'h-resize') {
      // Pointer delta in the box's own (rotated) axes.
      const r = (start.rotation_deg || 0) * Math.PI / 180;
      const c = Math.cos(r), sn = Math.sin(r);
      let w = Math.max(MIN_SIZE_MM, start.width_mm + (dx * c + dy * sn));
      let h = Math.max(MIN_SIZE_MM, start.height_mm + (-dx * sn + dy * c));
      if (keepShape) h = Math.max(MIN_SIZE_MM, w * fileAspect(o)); // the file's shape (the lock toggle frees it)
      else if (e.shiftKey) h = w * start.height_mm / start.width_mm; // keep the proportions
      // Keep the rotated top-left corner where it was: the centre moves by R·(dw/2, dh/2).
      const hw = (w - start.width_mm) / 2, hh = (h - start.height_mm) / 2;
      const cx = start.x_mm + start.width_mm / 2 + hw * c - hh * sn;
      const cy = start.y_mm + start.height_mm / 2 + hw * sn + hh * c;
      o.width_mm = round1(w);
      o.height_mm = round1(h);
      o.x_mm = round1(cx - w / 2);
      o.y_mm = round1(cy - h / 2);
    } else if (handle === 'h-rotate') {
      const cx = rect.left + (start.x_mm + start.width_mm / 2) * s;
      const cy = rect.top + (start.y_mm + start.height_mm / 2) * s;
      // The handle sits above the centre: pointing straight up is 0°, clockwise positive (screen y is down).
      let deg = Math.atan2(e.clientY - cy, e.clientX - cx) * 180 / Math.PI + 90;
      if (deg > 180) deg -= 360;
      if (e.shiftKey) deg = Math.round(deg / SNAP_DEG) * SNAP_DEG;
      o.rotation_deg = round1(deg);
    }
    placeBox(o);
    syncFieldsFromModel(o);
  };
  const onUp = (e) => {
    box.releasePointerCapture(e.pointerId);
    box.classList.remove('dragging');
    box.removeEventListener('pointermove', onMove);
    box.removeEventListener('pointerup', onUp);
    box.removeEventListener('pointercancel', onUp);
    if (moved) save(id);
  };
  box.addEventListener('pointermove', onMove);
  box.addEventListener('pointerup', onUp);
  box.addEventListener('pointercancel', onUp);
}

function onKey(event, id) {
  if (mode !== 'edit' || readonly) return;
  const step = event.shiftKey ? 10 : 1; // mm
  const d = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step]}[event.key];
  if (!d) {
    if (event.key === 'Enter' || event.key === ' ') select(id);
    return;
  }
  event.preventDefault();
  const o = overlays.get(id);
  select(id);
  o.x_mm = round1(o.x_mm + d[0]);
  o.y_mm = round1(o.y_mm + d[1]);
  placeBox(o);
  syncFieldsFromModel(o);
  saveSoon(id);
}

// ------------------------------------------------------------------------------- preview playback

function onPreviewClick(event, id) {
  if (mode !== 'preview') return;
  const o = overlays.get(id);
  const box = boxes.get(id);
  if (o.kind === 'link' && o.url) {
    window.open(o.url, '_blank', 'noopener');
  } else if (o.kind === 'video' && o.asset && !box.querySelector('video')) {
    const v = document.createElement('video');
    v.src = o.asset.url;
    v.className = 'ovl-media';
    v.muted = !!o.options.muted;
    v.loop = !!o.options.loop;
    v.playsInline = true;
    v.controls = !o.options.chroma_key;
    box.querySelector('.ovl-media')?.remove();
    box.prepend(v);
    if (o.options.chroma_key) chromaKey(v, box, o.options.chroma_key);
    v.play().catch(() => {});
  } else if (o.kind === 'audio' && o.asset) {
    let a = box.querySelector('audio');
    if (!a) {
      a = document.createElement('audio');
      a.src = o.asset.url;
      box.append(a);
    }
    if (a.paused) a.play().catch(() => {}); else a.pause();
  }
}

// Green-screen video as readers see it: pixels near the key colour become transparent (soft edge).
const CHROMA_TOLERANCE = 90; // RGB distance fully keyed out …
const CHROMA_SOFTNESS = 60; // … then fading back to opaque over this distance (no hard fringe)

function chromaKey(video, box, hex) {
  const key = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const canvas = document.createElement('canvas');
  canvas.className = 'ovl-media';
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  video.hidden = true;
  box.prepend(canvas);
  const draw = () => {
    if (!video.isConnected) return;
    if (video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      ctx.drawImage(video, 0, 0);
      const frame = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const px = frame.data;
      for (let i = 0; i < px.length; i += 4) {
        const d = Math.hypot(px[i] - key[0], px[i + 1] - key[1], px[i + 2] - key[2]);
        if (d < CHROMA_TOLERANCE + CHROMA_SOFTNESS) {
          px[i + 3] = Math.max(0, Math.min(255, (d - CHROMA_TOLERANCE) / CHROMA_SOFTNESS * 255));
        }
      }
      ctx.putImageData(frame, 0, 0);
    }
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
  canvas.addEventListener('click', () => (video.paused ? video.play() : video.pause()));
}

function setMode(next) {
  mode = next;
  root.classList.toggle('preview', mode === 'preview');
  for (const b of document.querySelectorAll('[data-mode]')) {
    if (b === root) continue;
    const on = b.dataset.mode === mode;
    b.classList.toggle('on', on);
    b.setAttribute('aria-pressed', String(on));
  }
  if (mode === 'preview') select(null);
}

for (const b of document.querySelectorAll('button[data-mode]')) b.addEventListener('click', () => setMode(b.dataset.mode));

// ------------------------------------------------------------------------------------ side fields

if (form) {
  form.addEventListener('input', (event) => {
    const o = overlays.get(selectedId);
    if (!o) return;
    const name = event.target.name;
    if (PLACEMENT.includes(name)) {
      const v = parseFloat(event.target.value);
      if (!Number.isFinite(v)) return;
      const keepShape = (name === 'width_mm' || name === 'height_mm') && aspectLocked(o);
      o[name] = v;
      if (keepShape) { // the other side follows, in the file's shape
        const a = fileAspect(o);
        const other = name === 'width_mm' ? 'height_mm' : 'width_mm';
        o[other] = round1(name === 'width_mm' ? v * a : v / a);
        field(other).value = o[other];
      }
      placeBox(o);
      if (o.kind === 'model3d') update3d(o);
    } else if (['autoplay', 'loop', 'muted'].includes(name)) {
      o.options = {...o.options, [name]: event.target.checked};
    } else if (name === 'use_chroma' || name === 'chroma_key') {
      o.options = {...o.options, chroma_key: field('use_chroma').checked ? field('chroma_key').value : null};
    } else if (name === 'label') {
      o.options = {...o.options, label: event.target.value};
    } else if (name === 'name' || name === 'url') {
      o[name] = event.target.value;
    } else if (name === 'access') {
      o.access = field('access-premium').checked ? 'premium' : 'free';
      showAccess(o);
      markAccess(o); // the lock shows at once; the save follows on 'change'
      if (o.kind === 'model3d') update3d(o);
    } else if (name === 'teaser') {
      o.teaser = event.target.value;
      o.teaserPicked = true;
      showAccess(o);
    } else if (name === 'teaser_seconds') {
      const v = parseInt(event.target.value, 10);
      if (Number.isFinite(v)) o.teaser_seconds = v;
      showAccess(o);
    }
  });
  form.addEventListener('change', () => selectedId && saveSoon(selectedId));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (selectedId) save(selectedId);
  });
  lockButton?.addEventListener('click', () => {
    const o = overlays.get(selectedId);
    if (!o || readonly || fileAspect(o) === null) return;
    const on = !aspectLocked(o);
    aspectChoice.set(o.id, on);
    if (on) { // locking puts the box back in the file's shape, keeping its width
      o.height_mm = round1(o.width_mm * fileAspect(o));
      placeBox(o);
      syncFieldsFromModel(o);
      save(o.id);
    }
    showAspectLock(o);
  });
  document.getElementById('delete-overlay').addEventListener('click', async () => {
    const id = selectedId;
    const o = overlays.get(id);
    if (!o || !window.confirm(fmt(T.confirm_delete, {name: labelText(o)}))) return;
    try {
      await api('DELETE', `/api/v1/overlays/${id}`);
      overlays.delete(id);
      boxes.get(id)?.remove();
      boxes.delete(id);
      select(null);
      setState(fmt(T.deleted, {name: labelText(o)}), 'ok'); // shown outside the (now hidden) placement form
      root.dataset.deleted = String(id); // lets tests wait for a completed delete
    } catch (err) {
      setState(fmt(T.save_failed, {reason: err.message}), 'error');
    }
  });
  if (readonly) for (const el of form.querySelectorAll('input, button')) el.disabled = true;
}

// ------------------------------------------------------------------------------------ 3D preview

let viewer3d = null; // {show(overlay)} once three.js has loaded

async function update3d(o) {
  const card = document.getElementById('preview3d-card');
  if (!card) return;
  const show = o && o.kind === 'model3d' && o.asset;
  card.hidden = !show;
  if (!show) return;
  try {
    if (!viewer3d) {
      const {createPreview} = await import('./preview3d.js');
      viewer3d = await createPreview(document.getElementById('preview3d'), {lockLabel: P.badge});
    }
    await viewer3d.show(o);
  } catch (err) {
    document.getElementById('preview3d').textContent = fmt(T.preview3d_failed, {reason: err.message});
  }
}

// The marker engine's feature heat map over the page: where phones find detail to recognise and track.
const heatToggle = document.getElementById('heatmap-toggle');
heatToggle?.addEventListener('click', () => {
  let heat = stage.querySelector('img.heatmap');
  if (!heat) {
    heat = document.createElement('img');
    heat.className = 'heatmap';
    heat.alt = '';
    heat.src = page.heatmap_url;
    stage.querySelector('#page-image').after(heat);
  }
  const on = heatToggle.getAttribute('aria-pressed') !== 'true';
  heat.hidden = !on;
  heatToggle.setAttribute('aria-pressed', String(on));
  heatToggle.classList.toggle('on', on);
});

// The area this page shares with the most similar published page (marker rating, "confusable"): an outlined
// box over the page image, toggled like the heat map.
const confusable = ((page.rating && page.rating.confusable) || []).slice().sort((a, b) => b.score - a.score)[0];
const confToggle = document.getElementById('confusable-toggle');
let confBox = null;

function placeConfusable() {
  if (!confBox) return;
  const s = pxPerMm();
  const [x, y, w, h] = confusable.region_mm;
  confBox.style.left = `${x * s}px`;
  confBox.style.top = `${y * s}px`;
  confBox.style.width = `${w * s}px`;
  confBox.style.height = `${h * s}px`;
}

confToggle?.addEventListener('click', () => {
  if (!confusable) return;
  if (!confBox) {
    confBox = document.createElement('div');
    confBox.className = 'confusable-region';
    const label = document.createElement('span');
    const twin = confusable.edition_number && confusable.page_number
      ? fmt(T.published_page, {edition: confusable.edition_number, page: confusable.page_number})
      : fmt(T.published_page_id, {page: confusable.page_id}); // ratings made before pages were named
    label.textContent = fmt(T.confusable_label, {page: twin, score: Math.round(confusable.score * 100)});
    confBox.append(label);
    stage.querySelector('#page-image').after(confBox);
    placeConfusable();
  }
  const on = confToggle.getAttribute('aria-pressed') !== 'true';
  confBox.hidden = !on;
  confToggle.setAttribute('aria-pressed', String(on));
  confToggle.classList.toggle('on', on);
});

// ------------------------------------------------------------------------------------ size check

const sizeButton = document.getElementById('size-check');
const sizeReport = document.getElementById('size-report');

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function contributorLabel(label) {
  const m = /^overlay (\d+)/.exec(label);
  const o = m && overlays.get(Number(m[1]));
  if (o) return labelText(o);
  return label === 'page preview' ? T.size.page_preview : label;
}

const NEAR_BUDGET = 0.8; // share of a budget from which the bar turns amber

function renderSize(r) {
  const S = T.size;
  const still = Number(r.other_media_bytes || 0); // non-streamed media count against the budgets too
  const rows = [['full', r.full_bytes + still, r.budget_full_bytes], ['lite', r.lite_bytes + still, r.budget_lite_bytes]];
  const parts = [];
  let anyOver = false;
  const meters = el('div', 'size-meters');
  for (const [key, bytes, budget] of rows) {
    const over = bytes > budget;
    anyOver ||= over;
    const near = !over && bytes > NEAR_BUDGET * budget; // amber: little room left
    const row = el('div', `size-meter${over ? ' over' : near ? ' near' : ''}`);
    row.dataset.variant = key;
    const head = el('div', 'size-head');
    head.append(el('span', 'size-name', S[key]));
    const value = el('span', 'size-value', fmt(S.of_budget, {size: mb(bytes), budget: mb(budget)}));
    head.append(value);
    if (over) head.append(el('span', 'badge over', S.over));
    const bar = el('div', 'size-bar');
    const fill = el('span');
    fill.style.width = `${Math.min(100, budget ? (bytes / budget) * 100 : 100)}%`;
    bar.append(fill);
    row.append(head, bar);
    meters.append(row);
  }
  parts.push(meters);
  parts.push(el('p', `size-verdict ${anyOver ? 'over' : 'ok'}`, anyOver ? S.over_any : S.within));
  const notes = el('p', 'hint');
  notes.textContent = fmt(S.streamed, {size: mb(r.streamed_media_bytes)});
  if (still) notes.textContent += ` · ${fmt(S.other_media, {size: mb(still)})}`;
  parts.push(notes);
  if (r.contributors && r.contributors.length) {
    parts.push(el('h3', '', S.contributors));
    const ol = el('ol', 'size-contributors');
    for (const c of r.contributors) {
      const li = el('li');
      li.append(el('span', 'c-label', contributorLabel(c.label)), el('span', 'c-size', sizeText(c.bytes)));
      ol.append(li);
    }
    parts.push(ol);
  }
  if (r.warnings && r.warnings.length) {
    parts.push(el('h3', '', S.warnings));
    const ul = el('ul', 'size-warnings');
    for (const w of r.warnings) {
      const li = el('li', w.code === 'over_budget' ? 'over' : '', warningText(w));
      li.dataset.code = w.code || '';
      ul.append(li);
    }
    parts.push(ul);
  }
  sizeReport.replaceChildren(...parts);
  sizeReport.dataset.over = anyOver ? 'yes' : 'no';
}

async function checkSize() {
  const state = document.getElementById('size-state');
  const progress = document.getElementById('size-progress');
  sizeButton.disabled = true;
  progress.hidden = false;
  sizeReport.dataset.state = 'busy';
  state.textContent = T.size.checking;
  state.className = 'save-state busy';
  try {
    const report = await api('POST', `/api/v1/pages/${page.id}/bundle-check`);
    renderSize(report);
    sizeReport.hidden = false;
    const time = new Date().toLocaleTimeString(document.documentElement.lang, {hour: '2-digit', minute: '2-digit'});
    state.textContent = fmt(T.size.done, {time});
    state.className = 'save-state';
    sizeReport.dataset.state = 'done';
  } catch (err) {
    state.textContent = fmt(T.size.failed, {reason: err.message});
    state.className = 'save-state error';
    sizeReport.dataset.state = 'failed';
  } finally {
    sizeButton.disabled = false;
    progress.hidden = true;
  }
}

sizeButton?.addEventListener('click', checkSize);

// A GLB chosen in the add form is previewed before it is uploaded (other 3D formats are converted on the server).
const addFile = document.getElementById('add-file');
addFile?.addEventListener('change', () => {
  const file = addFile.files[0];
  if (document.getElementById('add-kind').value !== 'model3d' || !file || !/\.glb$/i.test(file.name)) return;
  const side = page.width_mm * 0.3; // the default box of a new overlay (builder/web/ui.py NEW_OVERLAY_WIDTH_SHARE)
  select(null);
  update3d({id: 'new', kind: 'model3d', asset: {url: URL.createObjectURL(file)}, width_mm: side, height_mm: side,
    rotation_deg: 0, elevation_mm: 0, scale: 1});
});

// ------------------------------------------------------------------------------------------ start

function start() {
  // The whole page fits the window height (CSS uses --aspect); the stage then scales the boxes (pxPerMm).
  stage.style.setProperty('--aspect', String(page.width_mm / page.height_mm));
  for (const o of overlays.values()) makeBox(o);
  renderList();
  const wanted = Number(root.dataset.selected);
  select(overlays.has(wanted) ? wanted : null);
  rememberSelection(overlays.has(wanted) ? wanted : null); // a stale ?selected= (a deleted overlay) leaves the URL
  if (mode === 'preview') setMode('preview');
  new ResizeObserver(placeAll).observe(stage);
  if (new URLSearchParams(location.search).has('shared')) confToggle?.click(); // linked from the edition page
  root.dataset.ready = 'yes';
}

const img = document.getElementById('page-image');
if (img.complete) start(); else { img.addEventListener('load', start, {once: true}); img.addEventListener('error', start, {once: true}); }
