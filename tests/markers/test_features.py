"""Page markers: multi-scale training, a versioned binary format that refuses bad input, browser tracker JSON."""
import base64
import json
from functools import partial

import cv2
import numpy as np
import pytest

from markers import InvalidImageError, MarkerFormatError, PageMarker, browser_marker, synth, train_page
from markers.features import CATALOG_SCALES, as_gray, detect_orb
from markers.recognition import DEFAULT_PARAMS as P
from markers.recognition import geometry, photo
from markers.synth import PAGE_H_MM, PAGE_W_MM, generate_page

# The stages with the default parameters (RecognitionParams), as RecognitionIndex() runs them.
query_features = partial(photo.query_features, p=P)
page_corners_mm = geometry.page_corners_mm
project = geometry.project


@pytest.fixture(scope="module")
def marker():
    return train_page(generate_page(21), PAGE_W_MM, PAGE_H_MM, "page-21")


def test_marker_holds_features_from_every_catalog_scale_inside_the_page(marker):
    assert set(np.unique(marker.scale_index)) == set(range(len(CATALOG_SCALES)))
    assert marker.descriptors.shape == (len(marker), 32) and marker.descriptors.dtype == np.uint8
    kp = marker.keypoints_mm
    assert (kp >= 0).all() and (kp[:, 0] <= PAGE_W_MM).all() and (kp[:, 1] <= PAGE_H_MM).all()
    # features spread over the page, not piled on one photo: every quarter of the page has some
    quarters = (kp[:, 0] > PAGE_W_MM / 2).astype(int) + 2 * (kp[:, 1] > PAGE_H_MM / 2)
    assert np.bincount(quarters, minlength=4).min() > 0.1 * len(kp)


def test_marker_round_trips_through_bytes(marker):
    back = PageMarker.from_bytes(marker.to_bytes())
    assert back.page_id == "page-21" and (back.width_mm, back.height_mm) == (PAGE_W_MM, PAGE_H_MM)
    assert np.array_equal(back.descriptors, marker.descriptors)
    assert np.array_equal(back.keypoints_mm, marker.keypoints_mm)
    assert np.array_equal(back.browser_descriptors, marker.browser_descriptors)


def test_marker_of_another_version_is_refused_with_clear_error(marker):
    data = bytearray(marker.to_bytes())
    data[4:6] = (7).to_bytes(2, "little")
    with pytest.raises(MarkerFormatError, match="version 7"):
        PageMarker.from_bytes(bytes(data))
    assert PageMarker.stored_version(bytes(data)) == 7  # so a caller can retrain the page
    with pytest.raises(MarkerFormatError, match="not a page marker"):
        PageMarker.stored_version(b"GIF89a")


def test_truncated_or_corrupted_marker_is_refused(marker):
    data = marker.to_bytes()
    with pytest.raises(MarkerFormatError, match="truncated"):
        PageMarker.from_bytes(data[:-100])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    with pytest.raises(MarkerFormatError, match="checksum"):
        PageMarker.from_bytes(bytes(flipped))
    with pytest.raises(MarkerFormatError, match="not a page marker"):
        PageMarker.from_bytes(b"GIF89a....")


def test_browser_marker_is_json_with_about_500_orb_features(marker):
    data = json.loads(json.dumps(browser_marker(marker)))
    assert data["version"] == 1 and data["width_mm"] == PAGE_W_MM and len(data["image_px"]) == 2
    n = len(data["keypoints_mm"])
    assert 300 <= n <= 500
    assert len(base64.b64decode(data["descriptors_b64"])) == n * 32
    w, h = data["image_px"]
    assert max(w, h) == 640 and abs(w / h - PAGE_W_MM / PAGE_H_MM) < 0.01


def test_training_rejects_what_is_not_a_page_image():
    with pytest.raises(InvalidImageError):
        train_page(np.zeros((10, 10), np.uint8), 100, 100, "tiny")
    with pytest.raises(InvalidImageError):
        train_page(np.zeros((100, 100), np.float32), 100, 100, "float")
    with pytest.raises(InvalidImageError):
        train_page(np.zeros((100, 100), np.uint8), 0, 100, "no-size")


def test_training_is_deterministic(marker):
    again = train_page(generate_page(21), PAGE_W_MM, PAGE_H_MM, "page-21")
    assert again.to_bytes() == marker.to_bytes()


def test_training_on_threads_gives_the_marker_of_one_thread(marker, monkeypatch):
    import threading
    from concurrent.futures import Future

    from markers import features

    class OneThread:  # every job run at once, in order, on the calling thread
        def submit(self, fn, *args):
            done = Future()
            done.set_result(fn(*args))
            return done

        def map(self, fn, items):
            return [fn(x) for x in items]

    together = []
    threads = [threading.Thread(target=lambda: together.append(
        train_page(generate_page(21), PAGE_W_MM, PAGE_H_MM, "page-21").to_bytes())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.setattr(features, "_TRAIN_POOL", OneThread())
    alone = train_page(generate_page(21), PAGE_W_MM, PAGE_H_MM, "page-21")
    assert alone.to_bytes() == marker.to_bytes()
    assert together == [marker.to_bytes()] * 3


def test_features_are_ordered_most_repeatable_first(marker):
    """The index searches a prefix of each marker: the first third must be re-found in phone photos of the page
    (an independent generator, markers.synth) more often than the last third."""
    import faiss

    from markers.synth import synth_photo

    third = len(marker) // 3
    found = np.zeros(2)
    for seed in range(18):
        shot = synth_photo(generate_page(21), PAGE_W_MM, PAGE_H_MM, 700_000 + seed)
        q = query_features(shot.image)
        for part, sl in enumerate((slice(0, third), slice(len(marker) - third, len(marker)))):
            flat = faiss.IndexBinaryFlat(256)
            flat.add(np.ascontiguousarray(marker.descriptors[sl]))
            dist, nn = flat.search(q.descriptors, 1)
            mm = marker.keypoints_mm[sl][nn[:, 0]].astype(np.float64)
            h = np.diag([q.scale, q.scale, 1.0]) @ shot.homography
            pred = cv2.perspectiveTransform(mm.reshape(-1, 1, 2), h).reshape(-1, 2)
            found[part] += ((np.linalg.norm(pred - q.xy, axis=1) < 4) & (dist[:, 0] <= 64)).sum()
    # 1678 vs 1498 when written; 1.12x also with the catalog's even spread of photo features
    assert found[0] > 1.08 * found[1], found


def test_photo_features_favour_a_small_page_over_a_textured_background():
    """A page 170 px tall in a 640 x 480 frame of textured clutter: the query extractor gives it more of the
    photo's features than the catalog's even 8 x 8 spread would."""
    page = synth.generate_page(3)
    shot = synth.synth_photo(page, synth.PAGE_W_MM, synth.PAGE_H_MM, 4242, frame=(640, 480), page_px_tall=170,
                             max_tilt_deg=10, min_visible=1.0)
    quad = project(shot.homography, page_corners_mm(synth.PAGE_W_MM, synth.PAGE_H_MM)).astype(np.float32)

    def on_page(xy):
        return sum(cv2.pointPolygonTest(quad.reshape(-1, 1, 2), (float(x), float(y)), False) >= 0 for x, y in xy)

    q = query_features(shot.image)
    even, _, _ = detect_orb(as_gray(shot.image), P.query_features, oversample=2,
                            fast_threshold=P.query_fast_threshold)  # the catalog's spread
    assert len(q.xy) == len(even) == P.query_features
    assert on_page(q.xy) >= 1.25 * on_page(even)  # 644 vs 467 when written


def test_orb_pyramid_on_two_threads_gives_the_features_of_one_thread():
    """orb_levels detects each pyramid level on its own, the lower levels here and the upper ones on a worker:
    keypoint positions, levels, responses and descriptors equal ORB's own, element for element, for frames and
    odd-sized crops and enlargements (level sizes and per-level counts follow OpenCV's rounding)."""
    from markers.features import _orb, orb_levels
    from markers.workers import Workers

    workers = Workers(1, "test-orb")
    rng = np.random.default_rng(4)
    photos = [synth.synth_photo(generate_page(s), PAGE_W_MM, PAGE_H_MM, 40 + s).image for s in range(3)]
    cases = 0
    for i in range(24):
        gray = as_gray(photos[i % 3])
        h, w = int(rng.integers(80, gray.shape[0])), int(rng.integers(80, gray.shape[1]))
        y, x = int(rng.integers(0, gray.shape[0] - h + 1)), int(rng.integers(0, gray.shape[1] - w + 1))
        crop = np.ascontiguousarray(gray[y:y + h, x:x + w])
        if i % 3 == 0:
            crop = cv2.resize(crop, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
        n = int(rng.integers(500, 4000))
        one, two = _orb(crop, n, P.query_fast_threshold, 8), orb_levels(crop, n, P.query_fast_threshold, 8, workers)
        assert len(one[0]) > 0
        for a, b in zip(one, two):
            assert a.dtype == b.dtype and np.array_equal(a, b), (crop.shape, n)
        cases += 1
    assert cases == 24


def test_orb_pyramid_job_queued_behind_others_is_done_here():
    """With the worker busy, the upper levels are taken back and detected on the calling thread: same features,
    no wait."""
    import threading

    from markers.features import _orb, orb_levels
    from markers.workers import Workers

    workers = Workers(1, "test-orb-busy")
    release = threading.Event()
    blocker = workers.submit(release.wait, 60)
    try:
        gray = as_gray(synth.synth_photo(generate_page(7), PAGE_W_MM, PAGE_H_MM, 47).image)
        two = orb_levels(gray, 3000, P.query_fast_threshold, 8, workers)
        assert not blocker.done()
    finally:
        release.set()
    one = _orb(gray, 3000, P.query_fast_threshold, 8)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
