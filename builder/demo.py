"""Demo content so a newcomer sees a working AR page at once: accounts, a publication, an edition with a
newspaper page drawn by code and a few overlays (stock 3D pin, video, sound, animated image, link), published.

Idempotent: a second run keeps what exists and prints the same login.
"""
from __future__ import annotations

import datetime as dt
import functools
import io
import math
import secrets
import shutil
import struct
import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import services as svc
from .config import Settings
from .importers import UploadLimits
from .models import Publication, User
from .publish import publish_edition
from .storage import store_from_settings

DEMO_SLUG = "bao-yen-bai"
DEMO_ACCOUNTS = (("admin@baonhung.local", "admin"), ("editor@baonhung.local", "editor"),
                 ("designer@baonhung.local", "designer"), ("print@baonhung.local", "print_desk"))
DEMO_PAGE_SEED = 7  # a page of markers.synth with a photo-rich layout (rates well)
DEMO_PAGE_MM = (297.0, 420.0)


@dataclass
class DemoResult:
    password: str
    edition_id: int | None = None
    page_id: int | None = None
    edition_code: str | None = None
    lines: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=1)
def demo_page_png() -> bytes:
    """A generated broadsheet page (markers.synth) under our own demo masthead. Deterministic: made once per process
    (a second or two; the tests and benches that seed the demo decode it again for their camera clips)."""
    from PIL import ImageDraw, ImageFont

    from markers.synth import generate_page

    page = Image.fromarray(cv2.cvtColor(generate_page(DEMO_PAGE_SEED), cv2.COLOR_BGR2RGB))
    d = ImageDraw.Draw(page)
    paper = page.getpixel((8, 8))  # the generator's paper tone
    bold = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf", 76)
    small = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 26)
    # replace the generator's masthead band, dateline and footer with the demo publication's own
    d.rectangle((34, 24, 1206, 242), fill=paper)
    d.rectangle((40, 30, 1200, 200), fill=(150, 20, 30))
    d.text((620, 100), "BÁO YÊN BÁI", font=bold, fill=(255, 255, 255), anchor="mm")
    d.text((620, 170), "Trang trình diễn Báo Nhúng — quét để xem AR", font=small, fill=(255, 225, 200), anchor="mm")
    d.text((40, 225), "Số 1 · Trang 1", font=small, fill=(20, 20, 20), anchor="lm")
    d.rectangle((34, 1688, 1206, 1740), fill=paper)
    d.text((40, 1712), "BÁO YÊN BÁI · Báo Nhúng · trang 1", font=small, fill=(20, 20, 20), anchor="lm")
    buf = io.BytesIO()
    page.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@functools.lru_cache(maxsize=4)
def demo_video_mp4(seconds: int = 6) -> bytes:
    """A short H.264 clip (colour bars with a moving ball and a timer) made by ffmpeg's test sources; made once per
    process and length."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise RuntimeError("ffmpeg is needed for the demo video (Debian package ffmpeg; `make run` installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo.mp4"
        subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=480x270:rate=25:duration={seconds}",
                        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", "-profile:v", "baseline", "-c:a", "aac", "-b:a", "64k", "-shortest",
                        "-movflags", "+faststart", str(out)], check=True)
        return out.read_bytes()


def demo_audio_wav(seconds: float = 2.0, rate: int = 22050) -> bytes:
    """A soft two-note chime (pure Python, no codec needed)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(int(seconds * rate)):
            t = i / rate
            f = 660.0 if t < seconds / 2 else 880.0
            env = math.exp(-3.0 * (t % (seconds / 2)))
            frames += struct.pack("<h", int(12000 * env * math.sin(2 * math.pi * f * t)))
        w.writeframes(bytes(frames))
    return buf.getvalue()


def demo_animated_gif() -> bytes:
    """A pulsing 'MỚI' (new) badge, 12 frames, looping."""
    from PIL import ImageDraw, ImageFont

    frames = []
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 40)
    for i in range(12):
        img = Image.new("RGB", (200, 120), (200, 20, 40))
        d = ImageDraw.Draw(img)
        r = 30 + 20 * math.sin(2 * math.pi * i / 12)
        d.ellipse((100 - r - 40, 60 - r, 100 + r + 40, 60 + r), fill=(255, 210, 0))
        d.text((100, 60), "MỚI", font=font, fill=(120, 0, 0), anchor="mm")
        frames.append(img)
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    return buf.getvalue()


def _credentials(settings: Settings, password: str | None) -> str:
    path = settings.data_dir / "demo-login.txt"
    if password:
        return password
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(9)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def seed_demo(db: Session, settings: Settings, password: str | None = None) -> DemoResult:
    password = _credentials(settings, password)
    result = DemoResult(password=password)
    for email, role in DEMO_ACCOUNTS:
        if db.scalar(select(User).where(User.email == email)) is None:
            svc.create_user(db, svc.SYSTEM, email, role, password, name=f"Demo {role}")
    store = store_from_settings(settings)
    limits = UploadLimits.from_env(settings.extra)
    pub = db.scalar(select(Publication).where(Publication.slug == DEMO_SLUG))
    if pub is None:
        actor = svc.SYSTEM
        pub = svc.create_publication(db, actor, {"name": "Báo Yên Bái", "slug": DEMO_SLUG})
        edition = svc.create_edition(db, actor, pub, {"date": dt.date.today().isoformat(), "number": 1,
                                                      "title": "Số trình diễn Báo Nhúng"})
        page = svc.add_page(db, store, limits, actor, edition, demo_page_png(), "trang-1.png",
                            {"number": 1, "width_mm": DEMO_PAGE_MM[0], "height_mm": DEMO_PAGE_MM[1],
                             "title": "Trang nhất"})
        W, H = DEMO_PAGE_MM
        svc.add_overlay(db, store, limits, actor, page, {"kind": "video", "name": "Phóng sự video",
                                                         "x_mm": 30, "y_mm": 150, "width_mm": 160, "height_mm": 90,
                                                         "autoplay": True, "loop": True, "muted": True},
                        demo_video_mp4(), "phong-su.mp4")
        svc.add_overlay(db, store, limits, actor, page, {"kind": "model3d", "name": "Ghim địa điểm", "stock": "pin",
                                                         "x_mm": 215, "y_mm": 160, "width_mm": 40, "height_mm": 40,
                                                         "elevation_mm": 0})
        svc.add_overlay(db, store, limits, actor, page, {"kind": "audio", "name": "Lời chào",
                                                         "x_mm": 215, "y_mm": 220, "width_mm": 40, "height_mm": 20},
                        demo_audio_wav(), "loi-chao.wav")
        svc.add_overlay(db, store, limits, actor, page, {"kind": "animated_image", "name": "Tin mới",
                                                         "x_mm": 30, "y_mm": 260, "width_mm": 60, "height_mm": 36},
                        demo_animated_gif(), "moi.gif")
        svc.add_overlay(db, store, limits, actor, page, {"kind": "link", "name": "Đọc thêm",
                                                         "url": "https://baoyenbai.com.vn/", "label": "Đọc thêm",
                                                         "x_mm": W - 110, "y_mm": H - 60, "width_mm": 80,
                                                         "height_mm": 20})
        svc.submit_for_review(db, actor, edition)
        publish_edition(db, store, settings, actor, edition)
    edition = pub.editions[0] if pub.editions else None
    if edition is not None:
        result.edition_id = edition.id
        result.edition_code = edition.code
        result.page_id = edition.pages[0].id if edition.pages else None
    result.lines = [
        "Báo Nhúng demo is ready.",
        f"  log in at /login as admin@baonhung.local (or editor@, designer@, print@) — password: {password}",
        f"  (the password is kept in {settings.data_dir / 'demo-login.txt'})",
    ]
    if result.edition_code:
        result.lines.append(f"  phone viewer for the demo edition: /v/{result.edition_code}")
    return result
