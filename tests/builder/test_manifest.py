"""Published manifests: shape, schema validation, and the link between manifest media and GLB ``src`` values."""
from __future__ import annotations

import hashlib
import json
import posixpath
from datetime import datetime, timedelta, timezone

import jsonschema
import numpy as np
import pytest
from PIL import Image

from builder.bundle import BundleOptions, OverlaySpec, PageSpec, build_page_bundle, overlay_nodes
from builder.glb import read_glb
from builder.manifest import (SCHEMA_PATH, SCHEMA_VERSION, ManifestError, content_url, edition_manifest,
                              page_manifest, page_manifest_for_bundle, validate_manifest)

SHA_A = "a" * 64
SHA_B = "b" * 64
WHEN = datetime(2026, 11, 26, 5, 30, tzinfo=timezone(timedelta(hours=7)))  # 05:30 in Hanoi


def page_kwargs(**over):
    kw = dict(
        page_id=12, edition_id=3, number=1, title="Trang nhất", code="K7M2Q",
        width_mm=330, height_mm=480,
        bundle_full={"url": f"/pub/a/{SHA_A}.glb", "sha256": SHA_A, "bytes": 123456},
        bundle_lite={"url": f"/pub/a/{SHA_B}.glb", "sha256": SHA_B, "bytes": 45678},
        media=[{"name": f"{SHA_A}.mp4", "url": f"/pub/a/{SHA_A}.mp4", "sha256": SHA_A, "bytes": 999,
                "mime": "video/mp4", "overlay_id": 5}],
        marker_url=f"/pub/a/{SHA_B}.json", preview_url=f"/pub/a/{SHA_A}.jpg", published_at=WHEN,
        overlays=[{"id": 5, "kind": "video", "name": "Clip"}],
        warnings=[{"code": "over_budget", "message": "too big", "variant": "lite"}],
    )
    kw.update(over)
    return kw


def test_schema_file_is_valid_json_schema_with_a_version():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_page_manifest_has_sizes_bundles_media_marker_and_utc_time():
    m = page_manifest(**page_kwargs())
    assert m["schema_version"] == SCHEMA_VERSION and m["type"] == "page"
    assert (m["page_id"], m["edition_id"], m["width_mm"], m["height_mm"]) == ("12", "3", 330.0, 480.0)
    assert m["bundles"]["full"] == {"url": f"/pub/a/{SHA_A}.glb", "sha256": SHA_A, "bytes": 123456,
                                    "mime": "model/gltf-binary"}
    assert m["media"][0]["streamed"] is True and m["media"][0]["overlay_id"] == "5"
    assert m["marker_url"].endswith(".json")
    assert m["published_at"] == "2026-11-25T22:30:00Z"
    assert m["overlays"] == [{"id": "5", "kind": "video", "name": "Clip", "access": "free"}]
    assert m["premium"] is None


def test_page_manifest_accepts_an_iso_string_time():
    assert page_manifest(**page_kwargs(published_at="2026-11-26T08:00:00.123456Z"))["published_at"] \
        == "2026-11-26T08:00:00Z"


@pytest.mark.parametrize("change,needle", [
    ({"bundle_full": {"url": "/pub/a/x.glb", "sha256": "not-a-sha", "bytes": 1}}, "bundles/full/sha256"),
    ({"number": -1}, "number"),
    ({"marker_url": "javascript:alert(1)"}, "marker_url"),
    ({"overlays": [{"id": 1, "kind": "hologram"}]}, "overlays/0/kind"),
    ({"published_at": "yesterday"}, "published_at"),
    ({"overlays": [{"id": 1, "kind": "video", "access": "paid"}]}, "overlays/0/access"),
    ({"overlays": [{"id": 1, "kind": "video", "access": "premium", "teaser": "trailer"}]}, "overlays/0/teaser"),
    ({"premium": {"overlays": [], "url": "/api/v1/reader/pages/12/premium"}}, "premium"),
    ({"premium": {"overlays": ["5"], "url": "https://elsewhere.example/part"}}, "premium"),
])
def test_invalid_page_manifest_is_refused_naming_the_field(change, needle):
    with pytest.raises(ManifestError) as info:
        page_manifest(**page_kwargs(**change))
    assert any(e.startswith(needle) for e in info.value.errors), info.value.errors


def test_manifest_without_schema_version_is_refused():
    m = page_manifest(**page_kwargs())
    del m["schema_version"]
    with pytest.raises(ManifestError):
        validate_manifest(m)


def test_edition_manifest_lists_pages_in_number_order_with_their_manifest_urls():
    p2 = page_manifest(**page_kwargs(page_id=13, number=2))
    p1 = page_manifest(**page_kwargs())
    ed = {"id": 3, "title": "Báo Yên Bái số 42", "publication": "bao-yen-bai", "publication_name": "Báo Yên Bái",
          "date": "2026-11-26", "number": 42, "code": "ED42X"}
    m = edition_manifest(edition=ed, pages=[p2, p1], published_at=WHEN)
    assert m["type"] == "edition" and m["edition_id"] == "3" and m["schema_version"] == SCHEMA_VERSION
    assert [p["page_id"] for p in m["pages"]] == ["12", "13"]
    assert m["pages"][0]["manifest_url"] == "/pub/pages/12/manifest.json"
    assert m["pages"][0]["bundles"] == p1["bundles"] and m["pages"][0]["marker_url"] == p1["marker_url"]


def test_media_src_in_the_glb_resolves_to_the_manifest_media_url(tmp_path):
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)).save(tmp_path / "page.png")
    audio = tmp_path / "a.mp3"
    audio.write_bytes(b"ID3" + bytes(rng.integers(0, 255, 500, dtype=np.uint8)))
    page = PageSpec("p1", 1, 210, 297, tmp_path / "page.png",
                    (OverlaySpec("a", "audio", 10, 10, 20, 20, asset_path=audio, asset_mime="audio/mpeg"),))
    bundle = build_page_bundle(page, BundleOptions(compress=False, validate=False), tmp_path / "out")
    m = page_manifest_for_bundle(page, bundle, marker_url=f"/pub/a/{SHA_A}.json", published_at=WHEN)
    src = overlay_nodes(read_glb(bundle.glb_full.read_bytes()).json)["a"]["extras"]["overlay"]["src"]
    (media,) = m["media"]
    assert media["name"] == src
    # the viewer resolves src relative to the GLB URL: same directory, content-addressed
    glb_url = m["bundles"]["full"]["url"]
    assert posixpath.join(posixpath.dirname(glb_url), src) == media["url"]
    assert media["sha256"] == hashlib.sha256(audio.read_bytes()).hexdigest()
    assert media["url"] == content_url(media["sha256"], "mp3") and media["streamed"] is True
    assert m["bundles"]["full"]["sha256"] == hashlib.sha256(bundle.glb_full.read_bytes()).hexdigest()


def test_page_lists_read_a_small_thumbnail_from_the_edition_manifest():
    """Issue 24: the viewer's no-camera page list showed the full page images (1.1-1.4 MB each)."""
    page = page_manifest(**page_kwargs(thumbnail_url=f"/pub/a/{SHA_B}.jpg"))
    edition = edition_manifest(edition={"id": 3, "title": "Số 1"}, pages=[page], published_at=WHEN)
    entry = edition["pages"][0]
    assert entry["thumbnail_url"] == f"/pub/a/{SHA_B}.jpg" and entry["preview_url"] == f"/pub/a/{SHA_A}.jpg"
    with pytest.raises(ManifestError):
        validate_manifest({**page, "thumbnail_url": 7})


def test_a_page_thumbnail_is_a_small_jpeg_of_the_page_flattened_on_white():
    import io

    from builder.publish import THUMBNAIL_WIDTH_PX, page_thumbnail

    rng = np.random.default_rng(24)
    noisy = rng.integers(0, 255, (1754, 1240, 3), dtype=np.uint8)  # A4 at 150 dpi, as hard to compress as it gets
    for fmt, image in (("JPEG", Image.fromarray(noisy)), ("PNG", Image.fromarray(noisy).convert("RGBA"))):
        buf = io.BytesIO()
        image.save(buf, fmt)
        thumb = page_thumbnail(buf.getvalue())
        with Image.open(io.BytesIO(thumb)) as im:
            assert im.format == "JPEG" and im.size == (THUMBNAIL_WIDTH_PX, round(1754 * THUMBNAIL_WIDTH_PX / 1240))
        assert len(thumb) < 120_000 < len(buf.getvalue()) // 10
    clear = io.BytesIO()
    Image.new("RGBA", (100, 50), (0, 0, 0, 0)).save(clear, "PNG")
    with Image.open(io.BytesIO(page_thumbnail(clear.getvalue()))) as im:
        assert im.size == (100, 50) and np.asarray(im.convert("L")).min() > 240  # never enlarged; transparent is white


def test_a_premium_overlay_is_listed_with_its_teaser_and_the_premium_part_is_named():
    m = page_manifest(**page_kwargs(
        overlays=[{"id": 5, "kind": "video", "name": "Clip", "access": "premium", "teaser": "clip"},
                  {"id": 6, "kind": "link", "name": "Web"}],
        premium={"overlays": [5], "url": "/api/v1/reader/pages/12/premium"}))
    assert m["overlays"] == [{"id": "5", "kind": "video", "name": "Clip", "access": "premium", "teaser": "clip"},
                             {"id": "6", "kind": "link", "name": "Web", "access": "free"}]
    assert m["premium"] == {"overlays": ["5"], "url": "/api/v1/reader/pages/12/premium"}


def test_a_premium_overlay_without_a_teaser_and_a_free_one_with_one_are_refused():
    m = page_manifest(**page_kwargs(overlays=[{"id": 5, "kind": "video", "access": "premium", "teaser": "clip"}]))
    m["overlays"][0].pop("teaser")
    with pytest.raises(ManifestError):
        validate_manifest(m)
    m["overlays"][0].update(access="free", teaser="clip")
    with pytest.raises(ManifestError):
        validate_manifest(m)
