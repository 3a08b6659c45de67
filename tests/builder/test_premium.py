"""Premium overlays (issue 27), builder side: teasers (clip, poster, blurred model still), splitting a page into its
free and premium parts, the free bundle holding no premium bytes, signed URLs, the catalog's premium sections and
garbage collection keeping them."""
from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from builder import premium
from builder.bundle import BundleOptions, OverlaySpec, PageSpec, build_page_bundle, overlay_nodes
from builder.glb import read_glb

REPO = Path(__file__).resolve().parents[2]
PAGE_W, PAGE_H = 280.0, 400.0
OPTIONS = BundleOptions(compress=False)  # the Khronos validator still checks every GLB
pytestmark = pytest.mark.xdist_group("bundle")


def make_page_image(path: Path, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (400, 280, 3), dtype=np.uint8)).save(path)
    return path


def make_video(path: Path, seconds: float, audio: bool = True) -> Path:
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=25:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    cmd += ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-shortest", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def make_audio(path: Path, seconds: float) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:a", "libmp3lame", str(path)], check=True, capture_output=True)
    return path


def duration_of(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
                         check=True, capture_output=True).stdout
    return float(json.loads(out)["format"]["duration"])


def sharpness(image: Image.Image) -> float:
    """Variance of the edge response of the grey image laid on white paper (blur drives it toward 0)."""
    paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
    paper.alpha_composite(image.convert("RGBA"))
    grey = paper.convert("L")
    edges = np.asarray(grey.filter(ImageFilter.FIND_EDGES), dtype=np.float64)[2:-2, 2:-2]
    return float(edges.var())


def spec(id_, kind, **kw) -> OverlaySpec:
    base = dict(x_mm=20, y_mm=30, width_mm=90, height_mm=60)
    base.update(kw)
    return OverlaySpec(id=str(id_), kind=kind, **base)


# ----------------------------------------------------------------------------------------------- rules
@pytest.mark.parametrize("kind,asked,has_poster,expected", [
    ("video", None, False, "clip"), ("video", "poster", False, "poster"), ("video", "blur", False, "clip"),
    ("audio", None, False, "clip"), ("model3d", None, False, "blur"), ("model3d", "poster", False, "blur"),
    ("model3d", "poster", True, "poster"), ("panorama360", None, False, "blur"),
    ("animated_image", None, False, "poster"), ("animated_image", "blur", False, "blur"),
    ("image", "poster", False, "blur"), ("image", "poster", True, "poster"), ("link", "poster", True, None),
])
def test_each_kind_gets_its_default_teaser_or_the_one_it_may_have(kind, asked, has_poster, expected):
    assert premium.effective_teaser(kind, asked, has_poster) == expected


def test_teaser_seconds_keep_to_their_range():
    assert [premium.teaser_seconds(v) for v in (None, 0, 1, 7, 30, 99)] == [5, 1, 1, 7, 30, 30]


def test_rules_come_from_premium_overlays_of_the_snapshot_only():
    page = {"overlays": [
        {"id": 1, "kind": "video", "access": "premium", "teaser": "poster", "teaser_seconds": 8},
        {"id": 2, "kind": "video", "access": "free", "teaser": "clip", "teaser_seconds": 5},
        {"id": 3, "kind": "model3d", "access": "premium", "teaser": None, "teaser_seconds": 5},
        {"id": 4, "kind": "image"},  # a snapshot written before issue 27: free
    ]}
    assert premium.rules_of(page) == {"1": premium.PremiumRule("poster", 8), "3": premium.PremiumRule("blur", 5)}


# ----------------------------------------------------------------------------------------------- teasers
def test_a_clip_teaser_is_the_first_n_seconds_of_the_video_with_its_sound(tmp_path):
    video = make_video(tmp_path / "v.mp4", 10)
    teaser = premium.make_teaser(spec(7, "video", asset_path=video, asset_mime="video/mp4",
                                      options={"loop": True}), premium.PremiumRule("clip", 3), tmp_path / "t", OPTIONS)
    assert teaser.kind == "video" and teaser.id == "7" and teaser.asset_path != video
    assert (teaser.x_mm, teaser.y_mm, teaser.width_mm, teaser.height_mm) == (20, 30, 90, 60)
    assert teaser.options == {"loop": True, "access": "premium", "teaser": "clip", "premium_kind": "video"}
    assert duration_of(teaser.asset_path) == pytest.approx(3.0, abs=0.15)
    streams = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
                              str(teaser.asset_path)], check=True, capture_output=True, text=True).stdout.split()
    assert sorted(streams) == ["audio", "video"]


def test_a_clip_never_shows_more_than_half_of_a_short_video(tmp_path):
    video = make_video(tmp_path / "v.mp4", 4, audio=False)
    teaser = premium.make_teaser(spec(7, "video", asset_path=video, asset_mime="video/mp4"),
                                 premium.PremiumRule("clip", 5), tmp_path / "t", OPTIONS)
    assert duration_of(teaser.asset_path) == pytest.approx(2.0, abs=0.15)


def test_an_audio_clip_is_audio_only(tmp_path):
    audio = make_audio(tmp_path / "a.mp3", 12)
    teaser = premium.make_teaser(spec(8, "audio", asset_path=audio, asset_mime="audio/mpeg"),
                                 premium.PremiumRule("clip", 4), tmp_path / "t", OPTIONS)
    assert teaser.kind == "audio" and teaser.asset_mime == "audio/mp4"
    assert duration_of(teaser.asset_path) == pytest.approx(4.0, abs=0.15)


def test_a_poster_teaser_of_a_video_without_poster_is_its_first_frame(tmp_path):
    video = make_video(tmp_path / "v.mp4", 2, audio=False)
    teaser = premium.make_teaser(spec(9, "video", asset_path=video, asset_mime="video/mp4"),
                                 premium.PremiumRule("poster"), tmp_path / "t", OPTIONS)
    assert teaser.kind == "image" and teaser.options["teaser"] == "poster"
    with Image.open(teaser.asset_path) as im:
        assert im.size == (160, 90)


def test_a_model_teaser_is_a_blurred_still_in_the_models_colours(tmp_path):
    teaser = premium.make_teaser(spec(11, "model3d", stock="pin", scale=2.0), premium.PremiumRule("blur"),
                                 tmp_path / "t", OPTIONS)
    assert teaser.kind == "image" and teaser.stock is None and teaser.scale == 1.0
    assert teaser.options == {"access": "premium", "teaser": "blur", "premium_kind": "model3d"}
    with Image.open(teaser.asset_path) as im:
        still = im.convert("RGBA")
    assert still.size == (512, 341)  # the box's 90 x 60 mm aspect
    alpha = np.asarray(still)[..., 3]
    assert 0.05 < (alpha > 128).mean() < 0.8  # a soft silhouette on a transparent ground
    opaque = np.asarray(still)[..., :3][alpha > 200].astype(float)
    r, g, b = opaque.mean(axis=0)
    assert r > 1.5 * g and r > 1.5 * b  # the pin's head is red
    triangles, colours = premium._model_triangles(REPO / "assets" / "3d" / "pin.glb", None)
    sharp = premium.render_model_still(triangles, colours, still.size)
    assert sharpness(still) < sharpness(sharp) / 10


def test_the_software_render_looks_down_from_the_readers_side():
    """A red cube above a green floor tile: seen from above the floor is below the cube on the image, and the
    cube's top face (toward the light) is brighter than its front."""
    import trimesh

    cube = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    cube.apply_translation((0, 0.1, 0))
    floor = trimesh.creation.box(extents=(0.4, 0.001, 0.4))
    floor.apply_translation((0, 0, 0.3))  # toward the reader (+Z)
    tris = np.concatenate([cube.vertices[cube.faces], floor.vertices[floor.faces]])
    colours = np.concatenate([np.tile([1.0, 0, 0], (len(cube.faces), 1)), np.tile([0, 1.0, 0], (len(floor.faces), 1))])
    image = np.asarray(premium.render_model_still(tris, colours, (200, 200)))
    red = np.argwhere((image[..., 0] > 60) & (image[..., 1] < 30) & (image[..., 3] == 255))
    green = np.argwhere((image[..., 1] > 60) & (image[..., 0] < 30) & (image[..., 3] == 255))
    assert red[:, 0].mean() < green[:, 0].mean()  # the floor nearer the reader is lower on the image


def test_a_panorama_blur_teaser_is_a_blurred_downscale(tmp_path):
    rng = np.random.default_rng(4)
    pano = tmp_path / "pano.jpg"
    Image.fromarray(rng.integers(0, 255, (256, 512, 3), dtype=np.uint8)).save(pano)
    teaser = premium.make_teaser(spec(12, "panorama360", asset_path=pano, asset_mime="image/jpeg"),
                                 premium.PremiumRule("blur"), tmp_path / "t", OPTIONS)
    with Image.open(teaser.asset_path) as im, Image.open(pano) as original:
        assert sharpness(im) < sharpness(original) / 50


def test_a_link_cannot_be_premium(tmp_path):
    with pytest.raises(premium.BundleBuildError) as info:
        premium.make_teaser(spec(13, "link", url="https://example.org"), premium.PremiumRule("poster"), tmp_path,
                            OPTIONS)
    assert info.value.code == "access_not_for_links"


# ----------------------------------------------------------------------------------------------- split + bundles
@pytest.fixture(scope="module")
def split_page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("split")
    video = make_video(tmp / "v.mp4", 10)
    page = PageSpec(id="40", number=1, width_mm=PAGE_W, height_mm=PAGE_H, image_path=make_page_image(tmp / "p.png"),
                    overlays=(spec(1, "link", url="https://example.org"),
                              spec(2, "video", asset_path=video, asset_mime="video/mp4", y_mm=120),
                              spec(3, "model3d", stock="pin", y_mm=220)))
    rules = {"2": premium.PremiumRule("clip", 3), "3": premium.PremiumRule("blur")}
    split = premium.split_page(page, rules, tmp / "teasers", OPTIONS)
    free = build_page_bundle(split.free, OPTIONS, tmp / "free")
    part = build_page_bundle(split.premium, OPTIONS, tmp / "premium")
    return {"split": split, "free": free, "part": part, "video": video}


def test_the_free_spec_keeps_page_order_ids_and_boxes_with_teasers_in_place(split_page):
    split = split_page["split"]
    assert [(o.id, o.kind) for o in split.free.overlays] == [("1", "link"), ("2", "video"), ("3", "image")]
    assert [(o.id, o.kind) for o in split.premium.overlays] == [("2", "video"), ("3", "model3d")]
    assert split.premium_ids == ("2", "3")
    assert all(o.options["access"] == "premium" for o in split.premium.overlays)


def test_the_free_bundle_holds_teasers_and_no_premium_geometry_texture_or_media(split_page):
    doc = read_glb(split_page["free"].glb_full.read_bytes())
    nodes = overlay_nodes(doc.json)
    assert nodes["2"]["extras"]["overlay"]["kind"] == "video"
    assert nodes["2"]["extras"]["overlay"]["access"] == "premium"
    assert {k: nodes["3"]["extras"]["overlay"][k] for k in ("kind", "access", "teaser", "premium_kind")} == \
        {"kind": "image", "access": "premium", "teaser": "blur", "premium_kind": "model3d"}
    assert "access" not in nodes["1"]["extras"]["overlay"]
    names = [n.get("name") for n in doc.json["nodes"]]
    assert not any(str(n).startswith("fit/") for n in names)  # no grafted model
    vertex_counts = [doc.json["accessors"][p["attributes"]["POSITION"]]["count"]
                     for m in doc.json["meshes"] for p in m["primitives"]]
    assert vertex_counts == [4] * len(vertex_counts)  # quads only: the page and one per overlay
    pin = read_glb((REPO / "assets" / "3d" / "pin.glb").read_bytes())
    assert pin.bin[:4096] not in doc.bin
    free_media = {m.sha256 for m in split_page["free"].media}
    premium_media = {m.sha256 for m in split_page["part"].media}
    assert premium_media == {hashlib.sha256(split_page["video"].read_bytes()).hexdigest()}
    assert not free_media & premium_media
    clip = next(m for m in split_page["free"].media if m.overlay_id == "2")
    assert duration_of(clip.path) == pytest.approx(3.0, abs=0.15)


def test_the_premium_part_holds_only_the_premium_overlays_real(split_page):
    doc = read_glb(split_page["part"].glb_full.read_bytes())
    nodes = overlay_nodes(doc.json)
    assert set(nodes) == {"2", "3"}
    assert nodes["3"]["extras"]["overlay"]["kind"] == "model3d" and nodes["3"]["extras"]["overlay"]["access"] == "premium"
    assert any(n.get("name") == "fit/3" for n in doc.json["nodes"])
    assert nodes["2"]["extras"]["overlay"]["src"] == f"{hashlib.sha256(split_page['video'].read_bytes()).hexdigest()}.mp4"


def test_a_page_without_premium_overlays_is_not_split(tmp_path):
    page = PageSpec(id="41", number=1, width_mm=PAGE_W, height_mm=PAGE_H, image_path=tmp_path / "p.png",
                    overlays=(spec(1, "link", url="https://example.org"),))
    split = premium.split_page(page, {}, tmp_path, OPTIONS)
    assert split.free is page and split.premium is None and split.premium_ids == ()


# ----------------------------------------------------------------------------------------------- signed URLs
KEY = b"k" * 32
SHA = "ab" * 32
BINDING = hashlib.sha256(b"cookie-token").hexdigest()


def test_a_signed_url_checks_for_its_session_until_it_expires():
    now = 1_800_000_000
    url = premium.sign_url(KEY, SHA, "mp4", now + 300, BINDING)
    assert url.startswith(f"/pub/p/{SHA}.mp4?exp={now + 300}&sig=")
    sig = url.rsplit("sig=", 1)[1]
    ok = dict(key=KEY, name=f"{SHA}.mp4", exp=str(now + 300), sig=sig, binding=BINDING, now=now, ttl_s=300)
    assert premium.check_signature(**ok)
    assert premium.check_signature(**{**ok, "now": now + 299})
    for change in ({"now": now + 300}, {"now": now + 1000}, {"binding": hashlib.sha256(b"other").hexdigest()},
                   {"binding": None}, {"name": f"{SHA}.glb"}, {"name": f"{'cd' * 32}.mp4"}, {"exp": str(now + 301)},
                   {"sig": sig[:-1] + ("A" if sig[-1] != "A" else "B")}, {"sig": ""}, {"sig": None},
                   {"exp": "-5"}, {"exp": "1e9"}, {"exp": None}, {"key": b"x" * 32}, {"sig": "é" * 43}):
        assert not premium.check_signature(**{**ok, **change}), change


def test_a_url_signed_beyond_the_ttl_is_refused_even_with_a_valid_signature():
    """A forged far expiry cannot be signed without the key; one signed with it (a key leak, a bug) is still
    refused past now + ttl + skew."""
    now = 1_800_000_000
    far = now + 3600
    sig = premium.url_signature(KEY, f"{SHA}.mp4", far, BINDING)
    assert not premium.check_signature(KEY, f"{SHA}.mp4", str(far), sig, BINDING, now, 300)
    near = now + 300 + premium.SIGNATURE_SKEW_S
    sig = premium.url_signature(KEY, f"{SHA}.mp4", near, BINDING)
    assert premium.check_signature(KEY, f"{SHA}.mp4", str(near), sig, BINDING, now, 300)


# ----------------------------------------------------------------------------------------------- catalog + gc
def _entries(edition_id, pid, part, blobs):
    return {"edition": "e" * 64, "pages": {pid: {"manifest": "m" * 64, "marker": "k" * 64, "edition_id": edition_id,
                                                 "code": f"C{pid}"}},
            "premium_pages": {pid: {"part": part, "publication_id": 1, "edition_id": edition_id}},
            "premium_artifacts": blobs}


def test_the_catalog_replaces_the_premium_part_on_republish_and_drops_it_on_unpublish(tmp_path):
    from builder.publish import _Artifacts, _next_catalog
    from builder.storage import LocalDiskStore
    from viewer_api.published import EMPTY_CATALOG

    artifacts = _Artifacts(LocalDiskStore(tmp_path))
    cat = _next_catalog(EMPTY_CATALOG, 5, "pub", "E5", 1, _entries(5, "40", "1" * 64, ["2" * 64]), artifacts, None)
    cat = _next_catalog(cat, 6, "pub", "E6", 1, _entries(6, "50", "3" * 64, ["4" * 64]), artifacts, None)
    assert cat["premium_pages"]["40"] == {"part": "1" * 64, "publication_id": 1, "edition_id": 5}
    assert cat["premium_artifacts"] == {"5": ["2" * 64], "6": ["4" * 64]}
    republished = _entries(5, "41", "5" * 64, ["6" * 64])
    cat = _next_catalog(cat, 5, "pub", "E5", 2, republished, artifacts, None)
    assert set(cat["premium_pages"]) == {"41", "50"} and cat["premium_artifacts"]["5"] == ["6" * 64]
    cat = _next_catalog(cat, 5, "pub", "E5", None, None, None, None)
    assert set(cat["premium_pages"]) == {"50"} and set(cat["premium_artifacts"]) == {"6"}
    without = {**_entries(6, "50", "3" * 64, []), "premium_pages": {}}
    cat = _next_catalog(cat, 6, "pub", "E6", 2, without, artifacts, None)
    assert cat["premium_pages"] == {} and cat["premium_artifacts"] == {}


def test_garbage_collection_keeps_the_premium_blobs_the_catalog_names(tmp_path):
    import os

    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from builder.gc import collect_garbage
    from builder.models import Base
    from builder.storage import LocalDiskStore

    store = LocalDiskStore(tmp_path / "store")
    part = store.put_bytes(b'{"page_id": "40"}')
    blob = store.put_bytes(b"premium video bytes")
    orphan = store.put_bytes(b"nobody's")
    old = time.time() - 3 * 24 * 3600
    for key in (part, blob, orphan):
        os.utime(store._path(key), (old, old))
    catalog = {"editions": {}, "pages": {}, "premium_pages": {"40": {"part": part, "publication_id": 1,
                                                                     "edition_id": 5}},
               "premium_artifacts": {"5": [blob]}}
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as db:
        assert collect_garbage(db, store, catalog) == [orphan]
    assert store.exists(part) and store.exists(blob) and not store.exists(orphan)


def test_compressed_free_and_premium_bundles_pass_the_validator_and_keep_the_split(split_page, tmp_path):
    """Production options: gltf-transform compression, then every output decoded and validated (Khronos) by the
    bundle builder itself — a failure raises here."""
    from builder.compress import decode_glb

    split = split_page["split"]
    free = build_page_bundle(split.free, BundleOptions(), tmp_path / "free")
    part = build_page_bundle(split.premium, BundleOptions(), tmp_path / "premium")
    for path in (free.glb_full, free.glb_lite):
        doc = read_glb(decode_glb(path.read_bytes()))
        assert overlay_nodes(doc.json)["3"]["extras"]["overlay"]["kind"] == "image"
        assert not any(str(n.get("name", "")).startswith("fit/") for n in doc.json["nodes"])
    for path in (part.glb_full, part.glb_lite):
        doc = read_glb(decode_glb(path.read_bytes()))
        assert overlay_nodes(doc.json)["3"]["extras"]["overlay"]["kind"] == "model3d"
