// The reader's account in the viewer (issue 27): a client of the reader API (viewer_api/readers_api.py,
// docs/PREMIUM.md) and the reader sheet, a bottom sheet over the running camera view (sign in, sign up, forgot
// password, redeem a code, sign out). The camera, the tracker and the overlays keep running under it: the reader
// keeps their place on the page. Errors are the API's own message (in the viewer's language: the request says it).

const API = "/api/v1/reader";
const CSRF_COOKIE = "baonhung_reader_csrf";
const CSRF_HEADER = "X-CSRF-Token";

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return null;
}

// An answer of the reader API: {status, ok, data (parsed JSON or null), message (the API's, or null)}.
export class ReaderApi {
  constructor(lang) {
    this.lang = lang;  // () -> "vi" | "en": the language the API answers in
  }

  async request(method, path, body) {
    const headers = { Accept: "application/json", "Accept-Language": this.lang() };
    if (method !== "GET") {
      // the CSRF cookie is set by GET /me; a reader who has not asked yet asks now
      if (!cookie(CSRF_COOKIE)) await this.request("GET", `${API}/me`);
      headers[CSRF_HEADER] = cookie(CSRF_COOKIE) || "";
      if (body !== undefined) headers["Content-Type"] = "application/json";
    }
    const sep = path.includes("?") ? "&" : "?";
    const res = await fetch(`${path}${sep}lang=${this.lang()}`, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch (err) { data = null; }
    }
    return { status: res.status, ok: res.ok, data, message: (data && !res.ok && data.message) || null,
             error: (data && !res.ok && data.error) || null };
  }

  me() { return this.request("GET", `${API}/me`); }
  signin(email, password) { return this.request("POST", `${API}/signin`, { email, password }); }
  signup(email, password) { return this.request("POST", `${API}/signup`, { email, password }); }
  signout() { return this.request("POST", `${API}/signout`, {}); }
  redeem(code) { return this.request("POST", `${API}/redeem`, { code }); }
  resetPassword(email) { return this.request("POST", `${API}/password-reset`, { email }); }
  // the page's premium part (viewer_api/premium.py): 200 the part, 401 signed out, 403 not entitled, 404 none
  part(url) { return this.request("GET", url); }
}

const $ = (id) => document.getElementById(id);

// The sheet's views: "auth" (sign in / sign up), "forgot", "account" (signed in: redeem, sign out).
export class ReaderSheet {
  // handlers: {signIn(email, password, mode) -> answer, forgot(email) -> answer, redeem(code) -> answer,
  //            signOut() -> Promise}; every answer as ReaderApi's (message shown when not ok)
  constructor(ui, handlers) {
    this.ui = ui;
    this.handlers = handlers;
    this.mode = "signin";
    this.reader = { signed_in: false };
    this.entitled = false;
    this.root = $("reader-sheet");
    $("reader-close").addEventListener("click", () => this.close());
    $("reader-tab-signin").addEventListener("click", () => this.setMode("signin"));
    $("reader-tab-signup").addEventListener("click", () => this.setMode("signup"));
    $("reader-forgot").addEventListener("click", () => this.show("forgot"));
    $("reader-forgot-back").addEventListener("click", () => this.show("auth"));
    $("reader-auth-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.busy($("reader-auth-form"), () => this.handlers.signIn($("reader-email").value.trim(),
                                                                  $("reader-password").value, this.mode));
    });
    $("reader-forgot-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.busy($("reader-forgot-form"), async () => {
        const answer = await this.handlers.forgot($("reader-forgot-email").value.trim());
        if (answer.ok) this.notice("reader.forgot.sent");
        return answer;
      });
    });
    $("reader-redeem-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.busy($("reader-redeem-form"), () => this.handlers.redeem($("reader-code").value.trim()));
    });
    $("reader-signout").addEventListener("click", () => {
      this.busy($("reader-signout"), () => this.handlers.signOut());
    });
  }

  get isOpen() { return !this.root.hidden; }

  open() {
    this.error(null);
    this.notice(null);
    this.show(this.reader.signed_in ? "account" : "auth");
    this.root.hidden = false;
    document.body.dataset.readerSheet = "open";
  }

  close() {
    this.root.hidden = true;
    delete document.body.dataset.readerSheet;
  }

  // reader: the API's /me answer; entitled: the page's premium part is loaded
  update(reader, entitled) {
    this.reader = reader || { signed_in: false };
    this.entitled = entitled;
    $("reader-who-email").textContent = this.reader.email || "";
    $("reader-redeem-form").hidden = entitled;
    $("reader-entitled").hidden = !entitled;
    $("reader-need-code").hidden = entitled;
    if (this.isOpen) this.show(this.reader.signed_in ? "account" : ($("reader-forgot-form").hidden ? "auth" : "forgot"));
  }

  show(view) {
    if (this.root.dataset.view !== view) { this.error(null); this.notice(null); }  // they spoke of the other view
    $("reader-auth").hidden = view !== "auth";
    $("reader-forgot-form").hidden = view !== "forgot";
    $("reader-account").hidden = view !== "account";
    this.root.dataset.view = view;
    if (view === "auth") this.setMode(this.mode);
  }

  setMode(mode) {
    this.mode = mode;
    $("reader-tab-signin").setAttribute("aria-selected", String(mode === "signin"));
    $("reader-tab-signup").setAttribute("aria-selected", String(mode === "signup"));
    const submit = $("reader-auth-submit");
    submit.dataset.i18n = mode === "signup" ? "reader.signup" : "reader.signin";
    submit.textContent = this.ui.t(submit.dataset.i18n);
    $("reader-password").autocomplete = mode === "signup" ? "new-password" : "current-password";
    this.error(null);
  }

  // Run an action with its control disabled; show the API's message when it failed.
  async busy(control, action) {
    const controls = control.tagName === "FORM" ? [...control.querySelectorAll("button, input")] : [control];
    controls.forEach((c) => { c.disabled = true; });
    this.error(null);
    try {
      const answer = await action();
      if (answer && !answer.ok) this.error(answer.message || this.ui.t("reader.error.failed"));
    } catch (err) {
      this.error(this.ui.t("reader.error.network"));
    } finally {
      controls.forEach((c) => { c.disabled = false; });
    }
  }

  error(text) {
    const el = $("reader-error");
    el.hidden = !text;
    el.textContent = text || "";
  }

  // key: a text of ui.js (kept in the viewer's language when it changes), or null to hide
  notice(key) {
    const el = $("reader-notice");
    el.hidden = !key;
    if (key) { el.dataset.i18n = key; el.textContent = this.ui.t(key); } else { delete el.dataset.i18n; el.textContent = ""; }
  }
}
