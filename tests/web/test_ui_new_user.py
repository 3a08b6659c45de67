"""Issue 24, what a new user hit in the newsroom: page sizes from the file and remembered, media boxes in their
file's shape, the sent-back edition on the designer's dashboard, confirmations before destructive posts."""
from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest
from PIL import Image, ImageDraw
from sqlalchemy import select

from builder import services as svc
from builder.models import Edition, Overlay, Page
from tests.web.test_ui import client_as, content, csrf_of, db, ui_app  # noqa: F401  (fixtures)


def page_image(size=(1240, 1754), dpi: float | None = 150.0, fmt="PNG") -> bytes:
    """A page with some detail (the rating needs features), saved with ``dpi`` in its header (or none)."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for i in range(60):
        x, y = 30 + (i * 97) % (size[0] - 100), 40 + (i * 211) % (size[1] - 100)
        draw.rectangle([x, y, x + 60, y + 60], fill=((i * 50) % 255, (i * 80) % 255, (i * 30) % 255))
    buf = io.BytesIO()
    img.save(buf, fmt, **({"dpi": (dpi, dpi)} if dpi else {}))
    return buf.getvalue()


def upload_page(client, edition_id: int, data: bytes, **form):
    token = csrf_of(client, f"/editions/{edition_id}")
    return client.post(f"/editions/{edition_id}/pages", content_type="multipart/form-data",
                       data={"csrf_token": token, **form, "image": (io.BytesIO(data), "trang.png")})


# ------------------------------------------------------------------------------------------- page size

@pytest.mark.parametrize("meta, expected", [
    ({"source": "pdf", "width_mm": 209.97, "height_mm": 297.01, "width_px": 1240, "height_px": 1754}, (210, 297)),
    ({"source": "png", "width_px": 1240, "height_px": 1754, "dpi": 150}, (210, 297)),  # 209.97 x 296.99 mm
    ({"source": "png", "width_px": 1754, "height_px": 1240, "dpi": 150}, (297, 210)),  # landscape A4
    ({"source": "jpeg", "width_px": 3508, "height_px": 4961, "dpi": 300}, (297, 420)),  # A3 at 300 dpi
    ({"source": "png", "width_px": 1500, "height_px": 2000, "dpi": 150}, (254.0, 338.7)),  # no standard size
    ({"source": "png", "width_px": 1240, "height_px": 1754, "dpi": 72}, None),  # a screen's dpi, not a print size
    ({"source": "png", "width_px": 1240, "height_px": 1754}, None),
])
def test_a_page_file_states_its_size_snapped_to_a_standard_one(meta, expected):
    assert svc.page_size_from_file(meta) == expected


def test_an_image_page_takes_its_size_from_its_dpi_and_shows_it_round(ui_app, db, content):
    """Issue 24: an A4 image at 150 dpi became an A3 page (the form's default)."""
    client = client_as(ui_app, db, "designer")
    edition = content["edition"]
    assert upload_page(client, edition.id, page_image(), preset="", number="2").status_code == 302
    page = db.scalar(select(Page).where(Page.edition_id == edition.id, Page.number == 2))
    assert (page.width_mm, page.height_mm) == (210.0, 297.0)
    html = client.get(f"/editions/{edition.id}").get_data(as_text=True)
    assert "210 × 297 mm (A4)" in html and "209.97" not in html
    assert "Tờ in thử (PDF, khổ A3, tỉ lệ 100 %)" in html  # an A4 page's test sheet prints at 1:1 on A3


def test_an_image_without_a_print_size_asks_for_one_in_both_languages(ui_app, db, content):
    client = client_as(ui_app, db, "designer")
    edition = content["edition"]
    for lang, words in (("vi", "không cho biết khổ in"), ("en", "does not say its print size")):
        response = client.post(f"/editions/{edition.id}/pages?lang={lang}", content_type="multipart/form-data",
                               headers={"Accept": "application/json"},
                               data={"csrf_token": csrf_of(client, f"/editions/{edition.id}"), "preset": "",
                                     "image": (io.BytesIO(page_image(dpi=None)), "trang.png")})
        assert response.status_code == 400
        assert words in response.get_json()["message"]
    assert db.scalar(select(Page).where(Page.edition_id == edition.id, Page.number == 2)) is None


def test_the_upload_form_remembers_the_designers_last_page_size(ui_app, db, content):
    """Issue 24: the size went back to A3 after every upload."""
    client = client_as(ui_app, db, "designer")
    edition = content["edition"]
    form = client.get(f"/editions/{edition.id}").get_data(as_text=True)
    assert re.search(r'<option value=""[^>]*selected', form)  # from the file, by default (not A3)
    assert upload_page(client, edition.id, page_image(dpi=None), preset="tabloid", number="3").status_code == 302
    form = client.get(f"/editions/{edition.id}").get_data(as_text=True)
    assert re.search(r'<option value="tabloid" selected', form)
    assert upload_page(client, edition.id, page_image(dpi=None), preset="custom", width_mm="250", height_mm="350",
                       number="4").status_code == 302
    form = client.get(f"/editions/{edition.id}").get_data(as_text=True)
    assert re.search(r'<option value="custom" selected', form)
    assert 'name="width_mm" min="20" max="2000" step="any" value="250"' in form


# ------------------------------------------------------------------------------------ media box shape

def _clip(tmp_path, size: str) -> bytes:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    out = tmp_path / f"clip-{size}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:duration=1",
                    "-pix_fmt", "yuv420p", str(out)], check=True, timeout=60)
    return out.read_bytes()


def _gif(size=(100, 200)) -> bytes:
    frames = [Image.new("RGB", size, c) for c in ((200, 30, 30), (30, 200, 30))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def test_a_new_video_box_takes_the_shape_of_its_file(ui_app, db, content, tmp_path):
    """Issue 24: every video box was 16:9, so a 4:3 video was stretched on the paper."""
    client = client_as(ui_app, db, "designer")
    page = content["page"]
    for size, kind, data, name in (("160x120", "video", None, "v.mp4"), ("100x200", "animated_image", _gif(), "a.gif")):
        data = data or _clip(tmp_path, size)
        response = client.post(f"/pages/{page.id}/overlays", content_type="multipart/form-data", data={
            "csrf_token": csrf_of(client, f"/pages/{page.id}/editor"), "kind": kind,
            "file": (io.BytesIO(data), name)})
        assert response.status_code == 302, response.get_data(as_text=True)
        overlay = db.scalar(select(Overlay).where(Overlay.page_id == page.id, Overlay.kind == kind))
        w, h = (int(v) for v in size.split("x"))
        assert overlay.height_mm / overlay.width_mm == pytest.approx(h / w, rel=0.01)
        assert overlay.x_mm + overlay.width_mm / 2 == pytest.approx(page.width_mm / 2, abs=0.1)  # still centred
        assert overlay.y_mm + overlay.height_mm / 2 == pytest.approx(page.height_mm / 2, abs=0.1)


def test_the_api_given_only_a_width_takes_the_height_from_the_file(ui_app, db, content, tmp_path):
    state = ui_app.extensions["baonhung"]
    page = db.get(Page, content["page"].id)
    overlay = svc.add_overlay(db, state.store, state.limits, svc.SYSTEM, page,
                              {"kind": "video", "x_mm": 10, "y_mm": 20, "width_mm": 80}, _clip(tmp_path, "160x120"),
                              "v.mp4")
    assert (overlay.x_mm, overlay.y_mm, overlay.width_mm, overlay.height_mm) == (10, 20, 80, 60)
    overlay = svc.add_overlay(db, state.store, state.limits, svc.SYSTEM, page,
                              {"kind": "animated_image", "x_mm": 10, "y_mm": 20, "height_mm": 50}, _gif(), "a.gif")
    assert overlay.width_mm == 25
    with pytest.raises(svc.MissingField):  # a link has no file shape: both sides still needed
        svc.add_overlay(db, state.store, state.limits, svc.SYSTEM, page,
                        {"kind": "link", "url": "https://example.org", "x_mm": 10, "y_mm": 20, "width_mm": 50})


# ------------------------------------------------------------------------------------ review round trip

def test_the_designers_dashboard_shows_an_edition_sent_back_with_its_comment(ui_app, db, content):
    """Issue 24: a designer had no way to see, from the overview, that the editor sent an edition back."""
    edition = db.get(Edition, content["edition"].id)
    svc.submit_for_review(db, svc.SYSTEM, edition)
    svc.send_back(db, svc.SYSTEM, edition, "Ảnh trang 1 bị mờ, thay ảnh khác")
    html = client_as(ui_app, db, "designer").get("/").get_data(as_text=True)
    section = html[html.index('id="sent-back"'):]
    assert "Bị trả lại kèm nhận xét" in html and "Ảnh trang 1 bị mờ, thay ảnh khác" in section
    assert f'href="/editions/{edition.id}"' in section and "Bị trả lại</span>" in section
    english = client_as(ui_app, db, "designer").get("/?lang=en").get_data(as_text=True)
    assert "Sent back with a comment" in english
    svc.submit_for_review(db, svc.SYSTEM, edition)  # submitted again: no longer waiting for the designer
    assert "Ảnh trang 1 bị mờ" not in client_as(ui_app, db, "designer").get("/").get_data(as_text=True)


def test_deactivating_a_user_asks_first(ui_app, db):
    html = client_as(ui_app, db, "admin").get("/admin/users").get_data(as_text=True)
    forms = re.findall(r'<form method="post" action="/admin/users/\d+/active"[^>]*>', html)
    assert forms and all("data-confirm=" in f for f in forms if "Khóa" in f or "data-confirm" in f)
    assert any("data-confirm=\"Khóa tài khoản" in f for f in forms)
