"""Generated newspaper-like pages and synthetic phone photos of them (tests and benchmark data).

Pages look like a Vietnamese broadsheet: a masthead shared by every page of a publication template, headlines and
body text in Vietnamese with diacritics (DejaVu fonts, Debian ``fonts-dejavu-core``), procedural "photos", and
advertisements that repeat across pages. Everything is a pure function of integer seeds, so a benchmark can cache
trained markers and regenerate only the pages it queries.

Coordinates: a page image of W x H px for a page of w x h mm has ``px = mm * W / w`` (see docs/ARCHITECTURE.md).
``synth_photo`` returns the ground-truth homography page **mm** -> photo px.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
# Page geometry: A3-like broadsheet section, rendered at ~106 dpi (1240 x 1754 px, the prototype's size).
PAGE_W_MM, PAGE_H_MM = 297.0, 420.0
PAGE_W_PX, PAGE_H_PX = 1240, 1754
N_TEMPLATES = 40  # distinct mastheads / layouts shared by many pages (as in a real archive)
N_ADS = 30  # advertisements repeated across pages

WORDS = (
    "Việt Nam Hà Nội thành phố Hồ Chí Minh người dân kinh tế phát triển năm nay tỉnh Yên Bái huyện xã "
    "nông nghiệp lúa gạo cà phê xuất khẩu giáo dục học sinh trường đại học bệnh viện sức khỏe bác sĩ "
    "giao thông đường cao tốc cầu mới khánh thành du lịch biển đảo mùa hè khách quốc tế văn hóa lễ hội "
    "truyền thống thể thao bóng đá đội tuyển chiến thắng huy chương vàng khoa học công nghệ số hóa "
    "chính phủ quốc hội thông qua luật đất đai ngân hàng lãi suất đầu tư doanh nghiệp nhỏ vừa thị trường "
    "chứng khoán tăng giảm điểm môi trường rừng mưa lũ bão số cảnh báo thời tiết nắng nóng đồng bằng "
    "sông Cửu Long miền Trung Tây Nguyên phóng viên bài viết ảnh tin tức hôm qua sáng chiều tối ngày tháng "
    "được những của cho với trong khi đã sẽ đang rất nhiều hơn cũng như này đó các một hai ba bốn năm "
    "triệu tỷ đồng phần trăm kế hoạch dự án công trình hoàn thành nghiệm thu chất lượng an toàn bền vững "
    "ủy ban nhân dân hội đồng bầu cử cử tri đại biểu ý kiến kiến nghị giải quyết khiếu nại tố cáo"
).split()
MASTHEADS = (
    "BÁO YÊN BÁI", "NHÂN DÂN", "TUỔI TRẺ", "THANH NIÊN", "LAO ĐỘNG", "NGƯỜI LAO ĐỘNG", "TIỀN PHONG",
    "SÀI GÒN GIẢI PHÓNG", "HÀ NỘI MỚI", "QUÂN ĐỘI NHÂN DÂN", "ĐẠI ĐOÀN KẾT", "PHÁP LUẬT", "NÔNG THÔN NGÀY NAY",
    "KINH TẾ ĐÔ THỊ", "ĐỜI SỐNG", "BÁO LÀO CAI", "BÁO HÀ GIANG", "BÁO ĐIỆN BIÊN", "BÁO SƠN LA", "BÁO HUẾ",
)
AD_SLOGANS = (
    "Giảm giá 50% mọi mặt hàng", "Sữa tươi sạch mỗi ngày", "Điện thoại mới – trả góp 0%", "Căn hộ view sông",
    "Khai trương chi nhánh mới", "Học tiếng Anh cùng chuyên gia", "Bảo hiểm nhân thọ an tâm", "Xe máy tiết kiệm xăng",
    "Nước mắm truyền thống Phú Quốc", "Du lịch Sa Pa trọn gói", "Phân bón hữu cơ năng suất cao", "Tuyển dụng kỹ sư",
)


@lru_cache(maxsize=64)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_DIR + name, size)


def _words(rng: np.random.Generator, n: int) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), n))


def synth_photo_patch(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A procedural 'photograph' (h, w, 3) uint8 RGB: smooth colour fields, shapes, texture and fine grain."""
    small = rng.random((max(2, h // 40), max(2, w // 40), 3)).astype(np.float32)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img * 200 + 20, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(6, 18))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            axes = (int(rng.integers(5, max(6, w // 3))), int(rng.integers(5, max(6, h // 3))))
            cv2.ellipse(img, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA)
        else:
            pts = rng.integers(0, [w, h], (int(rng.integers(3, 6)), 2)).astype(np.int32)
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
    grain = rng.normal(0, 1, (max(2, h // 3), max(2, w // 3), 1)).astype(np.float32)
    grain = cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)[..., None] * 14
    return np.clip(img.astype(np.float32) + grain, 0, 255).astype(np.uint8)


def _paste(canvas: Image.Image, arr: np.ndarray, x: int, y: int) -> None:
    canvas.paste(Image.fromarray(arr), (x, y))


@lru_cache(maxsize=N_ADS)
def ad_image(ad_id: int, w: int = 360, h: int = 240) -> np.ndarray:
    """Advertisement ``ad_id`` as an RGB array: identical wherever it is printed (repeated ads)."""
    rng = np.random.default_rng(10_000 + ad_id)
    im = Image.fromarray(synth_photo_patch(rng, w, h))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, w - 1, h - 1], outline=(0, 0, 0), width=4)
    slogan = AD_SLOGANS[ad_id % len(AD_SLOGANS)]
    d.rectangle([8, h - 70, w - 8, h - 8], fill=(255, 255, 255))
    d.text((16, h - 64), slogan, font=_font("DejaVuSans-Bold.ttf", 20), fill=(200, 0, 0))
    d.text((16, h - 36), f"Hotline 0{ad_id:02d}9 {ad_id * 7919 % 1000:03d} {ad_id * 104729 % 1000:03d}",
           font=_font("DejaVuSans.ttf", 18), fill=(0, 0, 0))
    return np.asarray(im)


def _masthead(d: ImageDraw.ImageDraw, canvas: Image.Image, template: int, page_no: int, issue_no: int) -> int:
    """Draw template ``template``'s masthead band; returns its bottom y. Identical on every page of a template
    except the small issue/page line (as on real newspapers)."""
    rng = np.random.default_rng(20_000 + template)
    name = MASTHEADS[template % len(MASTHEADS)]
    band_h = 170
    color = tuple(int(c) for c in rng.integers(0, 160, 3))
    d.rectangle([40, 30, PAGE_W_PX - 40, 30 + band_h], fill=color)
    logo = synth_photo_patch(rng, 150, band_h - 30)
    _paste(canvas, logo, 55, 45)
    d.text((230, 55), name, font=_font("DejaVuSerif-Bold.ttf", 72 if len(name) < 14 else 54), fill=(255, 255, 255))
    d.text((232, 150), f"Cơ quan ngôn luận — mẫu {template}", font=_font("DejaVuSans-Oblique.ttf", 22),
           fill=(255, 255, 230))
    y = 30 + band_h + 8
    d.line([40, y, PAGE_W_PX - 40, y], fill=(0, 0, 0), width=3)
    d.text((40, y + 6), f"Số {issue_no} · Trang {page_no} · Thứ {2 + issue_no % 6}, ngày {1 + issue_no % 28} "
                        f"tháng {1 + issue_no % 12} năm 2026", font=_font("DejaVuSans.ttf", 20), fill=(0, 0, 0))
    return y + 40


@lru_cache(maxsize=4096)
def _word_mask(word: str, font_name: str, size: int) -> np.ndarray:
    """Coverage mask (h, w) uint8 of one rendered word; cached, since body text reuses a small vocabulary
    (FreeType rendering dominated page generation time)."""
    font = _font(font_name, size)
    left, top, right, bottom = font.getbbox(word)
    im = Image.new("L", (max(1, right), size + size // 2), 0)
    ImageDraw.Draw(im).text((0, 0), word, font=font, fill=255)
    return np.asarray(im)


def _text_line(canvas: Image.Image, words: list[str], x: int, y: int, width: int, size: int,
               font_name: str = "DejaVuSerif.ttf", color: tuple[int, int, int] = (20, 20, 20)) -> None:
    """Draw words left to right from (x, y), cut at ``width`` px."""
    space = max(3, size // 3)
    masks = [_word_mask(w, font_name, size) for w in words]
    h = masks[0].shape[0]
    line = np.zeros((h, width), np.uint8)
    cx = 0
    for m in masks:
        if cx >= width:
            break
        w = min(m.shape[1], width - cx)
        line[:, cx:cx + w] = m[:, :w]
        cx += m.shape[1] + space
    canvas.paste(color, (x, y, x + width, y + h), Image.fromarray(line))


def _text_block(d: ImageDraw.ImageDraw, rng: np.random.Generator, x: int, y: int, w: int, y_max: int,
                canvas: Image.Image | None = None) -> int:
    size = int(rng.integers(15, 19))
    line_h = size + 5
    while y + line_h < y_max:
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), 14)]
        _text_line(canvas, words, x, y, max(8, w), size)
        y += line_h
        if rng.random() < 0.08:
            y += line_h // 2  # paragraph break
    return y


def _blank_canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("RGB", (PAGE_W_PX, PAGE_H_PX), (248, 246, 240))
    return im, ImageDraw.Draw(im)


def generate_page(seed: int, template: int | None = None, masthead_only: bool = False) -> np.ndarray:
    """Newspaper-like page ``seed`` as a (1754, 1240, 3) uint8 **BGR** image (page of 297 x 420 mm).

    ``template`` (default ``seed % 40``) selects the shared masthead; ``masthead_only`` keeps the masthead and
    fills the rest with fresh content from ``seed`` — used to build non-catalog pages that share a masthead.
    Ads are chosen from a small pool so the same ad appears on many pages.
    """
    rng = np.random.default_rng(seed)
    template = seed % N_TEMPLATES if template is None else template
    im, d = _blank_canvas()
    y = _masthead(d, im, template, page_no=1 + seed % 24, issue_no=1000 + seed // 24)
    n_cols = int(rng.integers(3, 6))
    margin, gutter = 40, 18
    col_w = (PAGE_W_PX - 2 * margin - (n_cols - 1) * gutter) // n_cols
    # Lead story: headline over the full width, big photo.
    hl_font = _font("DejaVuSerif-Bold.ttf", int(rng.integers(40, 58)))
    d.text((margin, y + 10), _words(rng, 6).capitalize(), font=hl_font, fill=(0, 0, 0))
    y += 80
    photo_h = int(rng.integers(260, 420))
    photo_w = int(rng.integers(int(PAGE_W_PX * 0.45), PAGE_W_PX - 2 * margin))
    _paste(im, synth_photo_patch(rng, photo_w, photo_h), margin, y)
    _text_block(d, rng, margin + photo_w + gutter, y, PAGE_W_PX - photo_w - 2 * margin - gutter, y + photo_h, im)
    y += photo_h + 20
    # Columns of stories; some hold ads or photos.
    use_ad = not masthead_only or True
    for c in range(n_cols):
        x = margin + c * (col_w + gutter)
        cy = y
        while cy < PAGE_H_PX - 120:
            r = rng.random()
            if r < 0.18 and cy + 260 < PAGE_H_PX - 80:
                ph = int(rng.integers(120, 260))
                _paste(im, synth_photo_patch(rng, col_w, ph), x, cy)
                cy += ph + 10
            elif r < 0.26 and use_ad and cy + 250 < PAGE_H_PX - 80 and col_w >= 200:
                ad = ad_image(int(rng.integers(0, N_ADS)))
                ad = cv2.resize(ad, (col_w, int(col_w * ad.shape[0] / ad.shape[1])), interpolation=cv2.INTER_AREA)
                _paste(im, ad, x, cy)
                cy += ad.shape[0] + 10
            else:
                d.text((x, cy), _words(rng, 3).capitalize(), font=_font("DejaVuSans-Bold.ttf", 24), fill=(0, 0, 0))
                cy += 34
                cy = _text_block(d, rng, x, cy, col_w, min(PAGE_H_PX - 80, cy + int(rng.integers(150, 500))), im)
                cy += 14
    d.line([margin, PAGE_H_PX - 60, PAGE_W_PX - margin, PAGE_H_PX - 60], fill=(0, 0, 0), width=2)
    d.text((margin, PAGE_H_PX - 50), f"{MASTHEADS[template % len(MASTHEADS)]} · baonhung.vn · trang {1 + seed % 24}",
           font=_font("DejaVuSans.ttf", 18), fill=(0, 0, 0))
    return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)


def generate_masthead_sharing_page(seed: int, template: int) -> np.ndarray:
    """A page that is *not* page ``template``'s catalog page but shares its masthead (and possibly ads)."""
    return generate_page(seed, template=template, masthead_only=True)


def blank_page() -> np.ndarray:
    """A blank sheet of newsprint (BGR) — the worst possible marker."""
    return np.full((PAGE_H_PX, PAGE_W_PX, 3), (240, 246, 248), np.uint8)


def photo_rich_page(seed: int) -> np.ndarray:
    """A page covered by photographs (BGR) — the best possible marker."""
    rng = np.random.default_rng(seed)
    im = np.full((PAGE_H_PX, PAGE_W_PX, 3), 245, np.uint8)
    for r in range(4):
        for c in range(3):
            x0, y0 = 30 + c * 400, 30 + r * 430
            im[y0:y0 + 400, x0:x0 + 380] = synth_photo_patch(rng, 380, 400)
    return cv2.cvtColor(im, cv2.COLOR_RGB2BGR)


# ----------------------------------------------------------------------------------------------- phone photos
@dataclass(frozen=True)
class SynthPhoto:
    """A synthetic phone photo of a page.

    image : (h, w, 3) uint8 BGR frame.  homography : (3, 3) float64, page mm -> frame px (ground truth).
    page_px_tall : projected page height in px.  tilt_deg : angle between page normal and optical axis.
    """
    image: np.ndarray
    homography: np.ndarray
    page_px_tall: float
    tilt_deg: float


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Desk-like clutter behind the page (BGR)."""
    bg = synth_photo_patch(rng, w, h)
    bg = cv2.GaussianBlur(bg, (0, 0), 2.0)
    return cv2.cvtColor(bg, cv2.COLOR_RGB2BGR)


def _project_page(width_mm: float, height_mm: float, tilt_deg: float, tilt_axis_deg: float, roll_deg: float,
                  f_px: float) -> np.ndarray:
    """Corners (tl,tr,br,bl) of the page rotated in 3-D and seen by a pinhole camera at unit distance scale,
    before scaling/translation: (4, 2) float64 image-plane coordinates centred on the principal point."""
    corners = np.array([[-width_mm / 2, -height_mm / 2, 0], [width_mm / 2, -height_mm / 2, 0],
                        [width_mm / 2, height_mm / 2, 0], [-width_mm / 2, height_mm / 2, 0]], np.float64)
    a = math.radians(tilt_axis_deg)
    axis = np.array([math.cos(a), math.sin(a), 0.0])
    r_tilt, _ = cv2.Rodrigues(axis * math.radians(tilt_deg))
    r_roll, _ = cv2.Rodrigues(np.array([0, 0, math.radians(roll_deg)]))
    pts = corners @ (r_tilt @ r_roll).T
    z = pts[:, 2] + 1.2 * height_mm * f_px / 500.0 + 1.0  # far enough in front of the camera
    return np.stack([f_px * pts[:, 0] / z, f_px * pts[:, 1] / z], axis=1)


def synth_photo(page_bgr: np.ndarray, width_mm: float, height_mm: float, seed: int,
                frame: tuple[int, int] | None = None, page_px_tall: float | None = None,
                max_tilt_deg: float = 55.0, min_visible: float = 0.5, degrade: bool = True) -> SynthPhoto:
    """Render a phone photo of ``page_bgr`` (issue 3 query set (a)): tilt up to ``max_tilt_deg``, page 150-1000 px
    tall in a 640x480 or 1280x720 frame, >= ``min_visible`` of the page inside the frame, then blur, motion blur,
    uneven light, noise and JPEG 40-80 when ``degrade``."""
    rng = np.random.default_rng(seed)
    fw, fh = frame if frame is not None else ((640, 480) if rng.random() < 0.5 else (1280, 720))
    target_h = page_px_tall if page_px_tall is not None else float(np.exp(rng.uniform(np.log(150), np.log(1000))))
    tilt = float(rng.uniform(0, max_tilt_deg))
    axis = float(rng.uniform(0, 360))
    roll = float(rng.normal(0, 12))
    f_px = fw * float(rng.uniform(0.8, 1.1))
    quad = _project_page(width_mm, height_mm, tilt, axis, roll, f_px)
    frame_poly = np.array([[0, 0], [fw, 0], [fw, fh], [0, fh]], np.float32)
    vis = 0.0
    for attempt in range(60):
        extent = quad[:, 1].max() - quad[:, 1].min()
        q = quad * (target_h / extent)
        area = abs(cv2.contourArea(q.astype(np.float32)))
        # Centre placement: jitter around the frame centre, wider when the page is small.
        span = np.array([fw, fh]) * 0.5
        c = np.array([fw / 2, fh / 2]) + rng.uniform(-1, 1, 2) * span * 0.8
        q = q - q.mean(axis=0) + c
        inter, _ = cv2.intersectConvexConvex(q.astype(np.float32), frame_poly)
        vis = float(inter / area) if area > 0 else 0.0
        if vis >= min_visible:
            break
        if attempt % 6 == 5:
            target_h *= 0.9  # a page this big cannot be half-visible in this frame: shrink it
    mm = np.array([[0, 0], [width_mm, 0], [width_mm, height_mm], [0, height_mm]], np.float64)
    H = cv2.getPerspectiveTransform(mm.astype(np.float32), q.astype(np.float32)).astype(np.float64)
    ph, pw = page_bgr.shape[:2]
    px_to_mm = np.diag([width_mm / pw, height_mm / ph, 1.0])
    # Render from a page image pre-shrunk near the target resolution (avoids aliasing on small pages).
    shrink = min(1.0, 1.5 * target_h / ph)
    src = cv2.resize(page_bgr, (max(8, int(pw * shrink)), max(8, int(ph * shrink))), interpolation=cv2.INTER_AREA) \
        if shrink < 1.0 else page_bgr
    sh, sw = src.shape[:2]
    src_to_mm = np.diag([width_mm / sw, height_mm / sh, 1.0])
    img = _background(rng, fw, fh)
    cv2.warpPerspective(src, H @ src_to_mm, (fw, fh), dst=img, flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_TRANSPARENT)
    if degrade:
        img = _degrade(img, rng)
    del px_to_mm
    return SynthPhoto(img, H, float(target_h), tilt)


def _degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    fh, fw = img.shape[:2]
    f = img.astype(np.float32)
    # Uneven light: a smooth multiplicative gradient and a soft spot.
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    g = 1.0 + rng.uniform(-0.35, 0.35) * (xx / fw - 0.5) + rng.uniform(-0.35, 0.35) * (yy / fh - 0.5)
    cx, cy, r = rng.uniform(0, fw), rng.uniform(0, fh), rng.uniform(0.3, 0.8) * fw
    g += rng.uniform(-0.25, 0.25) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    f *= g[..., None]
    sigma = rng.uniform(0, 1.3)
    if sigma > 0.3:
        f = cv2.GaussianBlur(f, (0, 0), sigma)
    length = int(rng.integers(0, 8))
    if length >= 2:
        k = np.zeros((length * 2 + 1, length * 2 + 1), np.float32)
        ang = rng.uniform(0, math.pi)
        c = length
        cv2.line(k, (int(c - length * math.cos(ang)), int(c - length * math.sin(ang))),
                 (int(c + length * math.cos(ang)), int(c + length * math.sin(ang))), 1.0, 1)
        f = cv2.filter2D(f, -1, k / k.sum())
    f += rng.normal(0, rng.uniform(1, 6), f.shape).astype(np.float32)
    img = np.clip(f, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 81))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)
