// UI stage: texts (Vietnamese by default, English on toggle), status and progress, the start panel, the
// no-camera fallback (pick a page / upload a photo) and the layout that keeps video, photo and canvas aligned.

const TEXTS = {
  vi: {
    "status.loading": "Đang tải…",
    "status.ready": "Sẵn sàng",
    "status.starting": "Đang mở camera…",
    "status.scanning": "Hướng camera vào trang báo",
    "status.page": "Đã nhận ra trang báo — đang tải nội dung…",
    "status.tracking": "Đang hiển thị",
    "status.lost": "Giữ trang báo trong khung hình",
    "status.offline": "Ngoại tuyến — chỉ nhận ra các trang đã mở trước đó",
    "status.view3d": "Xem 3D — kéo để xoay",
    "status.photo": "Nội dung trên ảnh của bạn",
    "status.photo.working": "Đang tìm trang báo trong ảnh…",
    "status.photo.nomatch": "Không nhận ra trang báo trong ảnh. Hãy chụp rõ cả trang, đủ sáng.",
    "status.error": "Có lỗi khi tải nội dung",
    "start.title": "Trang báo sống động",
    "start.body": "Hướng camera vào trang báo có biểu tượng AR để xem video, âm thanh và mô hình 3D ngay trên trang giấy.",
    "start.button": "Bật camera",
    "start.nocamera": "Không dùng camera",
    "fallback.title": "Không mở được camera",
    "fallback.title.nocamera": "Xem không cần camera",
    "fallback.denied": "Bạn đã từ chối quyền dùng camera. Bạn có thể cho phép lại trong cài đặt trình duyệt, hoặc xem nội dung theo hai cách:",
    "fallback.unavailable": "Thiết bị này không có camera dùng được. Bạn vẫn có thể xem nội dung theo hai cách:",
    "fallback.insecure": "Camera chỉ hoạt động qua kết nối an toàn (https). Bạn vẫn có thể xem nội dung theo hai cách:",
    "fallback.body": "Bạn vẫn có thể xem nội dung của trang báo theo hai cách:",
    "fallback.pick": "Chọn một trang của số báo",
    "fallback.nopages": "Mở từ mã QR trên trang báo để thấy danh sách trang.",
    "fallback.upload": "Tải lên ảnh chụp trang báo",
    "fallback.retry": "Thử lại camera",
    "fallback.page": "Trang",
    "media.unmute": "♪ Chạm để bật tiếng",
    "media.close": "Đóng ✕",
    "ui.back": "← Quay lại",
    "privacy.link": "Thống kê ẩn danh",
    "privacy.title": "Thống kê ẩn danh",
    "privacy.what": "Để tòa soạn biết trang nào được đọc, trình xem đếm: lúc mở, camera có bật được không, trang nào được nhận ra và sau bao lâu, thời gian xem trên trang giấy, nội dung nào hiện, được chạm, phát đến 25/50/75/100 %, chỗ giữa khung hình trên trang, và nút “Hữu ích?” nếu bạn bấm.",
    "privacy.anon": "Không ai bị nhận diện: không lưu địa chỉ IP hay thông tin trình duyệt, việc đếm không dùng cookie (không bao giờ đọc cookie đăng nhập của bạn đọc đăng ký); mã phiên ngẫu nhiên chỉ nằm trong bộ nhớ và mất khi đóng trang. Số đếm chưa gửi được (khi mất mạng) chờ trên máy này, không kèm mã nào, tối đa 500, rồi được gửi sau.",
    "privacy.off": "Muốn tắt: bật “Không theo dõi” (Do Not Track) hoặc Global Privacy Control trong trình duyệt — khi đó không gửi gì.",
    "privacy.state.on": "Hiện tại: đang đếm ẩn danh.",
    "privacy.state.off": "Hiện tại: đã tắt — trình duyệt của bạn yêu cầu không theo dõi, không gửi gì.",
    "privacy.close": "Đóng",
    "reaction.ask": "Hữu ích?",
    "reaction.useful": "Có",
    "reaction.notuseful": "Không",
    "reaction.thanks": "Cảm ơn bạn!",
    // premium overlays and the reader sheet (issue 27: premium.js, reader_sheet.js)
    "premium.lock": "Dành cho bạn đọc đăng ký",
    "premium.redeemed": "Đã kích hoạt mã — nội dung đang tải…",
    "premium.signed_out": "Bạn đã đăng xuất.",
    "reader.open": "Tài khoản",
    "reader.title": "Dành cho bạn đọc đăng ký",
    "reader.lead": "Đăng nhập hoặc đăng ký để xem toàn bộ nội dung trên trang này. Camera vẫn chạy, bạn không mất chỗ đang xem.",
    "reader.signin": "Đăng nhập",
    "reader.signup": "Đăng ký",
    "reader.email": "Email",
    "reader.password": "Mật khẩu",
    "reader.forgot": "Quên mật khẩu?",
    "reader.forgot.lead": "Nhập email của bạn, chúng tôi sẽ gửi liên kết đặt lại mật khẩu.",
    "reader.forgot.send": "Gửi liên kết",
    "reader.forgot.sent": "Nếu email này có tài khoản, liên kết đặt lại mật khẩu đã được gửi (dùng được trong 1 giờ).",
    "reader.back": "← Quay lại",
    "reader.signed_in": "Đã đăng nhập:",
    "reader.need_code": "Tài khoản chưa có gói đăng ký cho báo này. Nhập mã in trên báo để mở khóa.",
    "reader.code": "Mã đăng ký",
    "reader.redeem": "Dùng mã",
    "reader.entitled": "Bạn đã có quyền xem toàn bộ nội dung dành cho bạn đọc đăng ký.",
    "reader.signout": "Đăng xuất",
    "reader.close": "Đóng",
    "reader.error.network": "Không kết nối được máy chủ. Hãy thử lại.",
    "reader.error.failed": "Không thực hiện được. Hãy thử lại.",
  },
  en: {
    "status.loading": "Loading…",
    "status.ready": "Ready",
    "status.starting": "Opening the camera…",
    "status.scanning": "Point the camera at the page",
    "status.page": "Page recognized — loading its content…",
    "status.tracking": "Showing",
    "status.lost": "Keep the page in view",
    "status.offline": "Offline — only pages opened before are recognized",
    "status.view3d": "3D view — drag to turn",
    "status.photo": "The content on your photo",
    "status.photo.working": "Looking for the page in your photo…",
    "status.photo.nomatch": "No page recognized in the photo. Take the whole page, in good light.",
    "status.error": "The content could not be loaded",
    "start.title": "The page comes alive",
    "start.body": "Point your camera at a newspaper page with the AR mark to see video, sound and 3D models right on the paper.",
    "start.button": "Start the camera",
    "start.nocamera": "Continue without a camera",
    "fallback.title": "The camera could not be opened",
    "fallback.title.nocamera": "Without a camera",
    "fallback.denied": "Camera permission was refused. You can allow it again in the browser settings, or see the content in two other ways:",
    "fallback.unavailable": "This device has no usable camera. You can still see the content in two ways:",
    "fallback.insecure": "The camera only works over a secure (https) connection. You can still see the content in two ways:",
    "fallback.body": "You can still see the content of the page in two ways:",
    "fallback.pick": "Pick a page of the edition",
    "fallback.nopages": "Open the viewer from the QR code on a page to see its pages here.",
    "fallback.upload": "Upload a photo of the page",
    "fallback.retry": "Try the camera again",
    "fallback.page": "Page",
    "media.unmute": "♪ Tap for sound",
    "media.close": "Close ✕",
    "ui.back": "← Back",
    "privacy.link": "Anonymous statistics",
    "privacy.title": "Anonymous statistics",
    "privacy.what": "So the newsroom knows which pages are read, the viewer counts: when it opens, whether the camera starts, which page is recognized and how fast, time spent on the paper, which content shows, is tapped or plays to 25/50/75/100 %, where the frame centre falls on the page, and the “Useful?” button if you tap it.",
    "privacy.anon": "No one is identified: no IP address or browser details are stored, counting uses no cookies (it never reads a subscriber's sign-in cookie); a random session id lives only in memory and is gone when the page closes. Counts that could not be sent (offline) wait on this phone, with no id, at most 500, and are sent later.",
    "privacy.off": "To switch it off: turn on Do Not Track or Global Privacy Control in your browser — then nothing is sent.",
    "privacy.state.on": "Now: counting anonymously.",
    "privacy.state.off": "Now: off — your browser asks not to be tracked, nothing is sent.",
    "privacy.close": "Close",
    "reaction.ask": "Useful?",
    "reaction.useful": "Yes",
    "reaction.notuseful": "No",
    "reaction.thanks": "Thank you!",
    "premium.lock": "For subscribers",
    "premium.redeemed": "Code redeemed — the content is loading…",
    "premium.signed_out": "You are signed out.",
    "reader.open": "Account",
    "reader.title": "For subscribers",
    "reader.lead": "Sign in or sign up to see everything on this page. The camera keeps running: you keep your place.",
    "reader.signin": "Sign in",
    "reader.signup": "Sign up",
    "reader.email": "Email",
    "reader.password": "Password",
    "reader.forgot": "Forgot your password?",
    "reader.forgot.lead": "Enter your email and we will send you a link to reset your password.",
    "reader.forgot.send": "Send the link",
    "reader.forgot.sent": "If this email has an account, a link to reset the password is on its way (valid for 1 hour).",
    "reader.back": "← Back",
    "reader.signed_in": "Signed in as",
    "reader.need_code": "Your account has no subscription to this paper yet. Enter the code printed in your copy to unlock it.",
    "reader.code": "Subscription code",
    "reader.redeem": "Redeem",
    "reader.entitled": "You can see everything for subscribers.",
    "reader.signout": "Sign out",
    "reader.close": "Close",
    "reader.error.network": "The server could not be reached. Please try again.",
    "reader.error.failed": "That did not work. Please try again.",
  },
};

const $ = (id) => document.getElementById(id);

// The reader asked not to be tracked (Do Not Track or Global Privacy Control): the viewer sends no readership events.
export function readerOptedOut() {
  return navigator.doNotTrack === "1" || window.doNotTrack === "1" || navigator.globalPrivacyControl === true;
}

export class ViewerUI {
  constructor() {
    // One rule (as the newsroom's): an explicit choice (?lang=, the EN/VI toggle) wins and is remembered, then the
    // remembered choice, then Vietnamese.
    const asked = new URLSearchParams(location.search).get("lang");
    if (asked && TEXTS[asked]) localStorage.setItem("baonhung.lang", asked);
    this.lang = TEXTS[localStorage.getItem("baonhung.lang")] ? localStorage.getItem("baonhung.lang") : "vi";
    this.statusKey = "status.loading";
    this.fallbackReasonKey = "fallback.body";
    $("lang").addEventListener("click", () => this.setLanguage(this.lang === "vi" ? "en" : "vi"));
    // the reader notice of the readership analytics (issue 26): a small link opening a short panel
    $("privacy-state").dataset.i18n = readerOptedOut() ? "privacy.state.off" : "privacy.state.on";
    $("privacy-link").addEventListener("click", () => { $("privacy-panel").hidden = !$("privacy-panel").hidden; });
    $("privacy-close").addEventListener("click", () => { $("privacy-panel").hidden = true; });
    this.applyLanguage();
  }

  t(key) {
    return (TEXTS[this.lang] && TEXTS[this.lang][key]) || TEXTS.vi[key] || key;
  }

  setLanguage(lang) {
    this.lang = lang;
    localStorage.setItem("baonhung.lang", lang);
    this.applyLanguage();
  }

  applyLanguage() {
    document.documentElement.lang = this.lang;
    $("lang").textContent = this.lang === "vi" ? "EN" : "VI";
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = this.t(el.dataset.i18n); });
    $("status").textContent = this.t(this.statusKey);
    $("fallback-reason").textContent = this.t(this.fallbackReasonKey);
    document.querySelectorAll("[data-page-label]").forEach((el) => {
      el.textContent = `${this.t("fallback.page")} ${el.dataset.pageLabel}`;
    });
  }

  setStatus(key) {
    if (this.statusKey === key) return;
    this.statusKey = key;
    $("status").dataset.i18n = key;
    $("status").textContent = this.t(key);
    document.body.dataset.status = key;
  }

  // fraction in [0, 1], or null to hide
  progress(fraction) {
    const bar = $("progress");
    if (fraction === null || fraction === undefined) { bar.hidden = true; return; }
    bar.hidden = false;
    $("progress-bar").style.width = `${Math.round(Math.max(0.03, Math.min(1, fraction)) * 100)}%`;
  }

  onStart(handler) { $("start").addEventListener("click", handler); }
  onNoCamera(handler) { $("no-camera").addEventListener("click", handler); }
  onRetry(handler) { $("retry-camera").addEventListener("click", handler); }
  onBack(handler) { $("back").addEventListener("click", handler); }

  hideStart() { $("start-panel").hidden = true; }
  showStart() { $("start-panel").hidden = false; }

  // reason: "denied" | "unavailable" | "insecure" | "nocamera"
  showFallback(reason, pages, onPick, onUpload) {
    $("start-panel").hidden = true;
    $("back").hidden = true;
    const panel = $("fallback-panel");
    panel.hidden = false;
    panel.dataset.reason = reason;
    const titleKey = reason === "nocamera" ? "fallback.title.nocamera" : "fallback.title";
    $("fallback-title").dataset.i18n = titleKey;
    this.fallbackReasonKey = reason === "nocamera" ? "fallback.body" : `fallback.${reason}`;
    const list = $("page-list");
    list.innerHTML = "";
    if (!pages.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.dataset.i18n = "fallback.nopages";
      list.appendChild(li);
    }
    for (const p of pages) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "page-choice";
      b.dataset.pageId = p.pageId;
      if (p.thumbnailUrl) {
        const img = document.createElement("img");
        img.src = p.thumbnailUrl;
        img.alt = "";
        img.loading = "lazy";
        b.appendChild(img);
      }
      const label = document.createElement("span");
      label.dataset.pageLabel = p.title ? `${p.number} · ${p.title}` : `${p.number}`;
      b.appendChild(label);
      b.addEventListener("click", () => onPick(p));
      li.appendChild(b);
      list.appendChild(li);
    }
    const input = $("upload");
    input.value = "";
    input.onchange = () => { if (input.files && input.files[0]) onUpload(input.files[0]); };
    this.applyLanguage();
  }

  hideFallback() {
    $("fallback-panel").hidden = true;
    $("back").hidden = false;
  }

  showUnmute(handler) {
    const b = $("unmute");
    b.hidden = false;
    b.onclick = () => { b.hidden = true; handler(); };
  }

  hint(text) {
    const h = $("hint");
    h.hidden = !text;
    h.textContent = text || "";
  }

  // Lay the camera video (or the uploaded photo) and the GL canvas over each other with the same CSS box:
  // "cover" the screen, centred, preserving the frame's aspect ratio. Pixels of canvas and frame then agree.
  layout(frameWidth, frameHeight, { contain = false } = {}) {
    const stage = $("stage");
    const W = stage.clientWidth || window.innerWidth, H = stage.clientHeight || window.innerHeight;
    const s = contain ? Math.min(W / frameWidth, H / frameHeight) : Math.max(W / frameWidth, H / frameHeight);
    const w = frameWidth * s, h = frameHeight * s;
    for (const id of ["camera", "photo", "gl"]) {
      const el = $(id);
      Object.assign(el.style, { width: `${w}px`, height: `${h}px`, left: `${(W - w) / 2}px`, top: `${(H - h) / 2}px` });
    }
  }

  fullCanvas() {
    for (const id of ["gl"]) Object.assign($(id).style, { width: "100%", height: "100%", left: "0px", top: "0px" });
  }
}
