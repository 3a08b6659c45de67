"""The tilted look (RecognitionIndex.recognize(..., tilted=True); markers.recognition.looks.untilted): a page photographed
so steeply that its ORB features no longer meet the catalog's is searched again in copies of the photo un-tilted in
four directions; the copies' features are placed back in the photo's working px, and a non-catalog look-alike is
still refused."""
import dataclasses
from functools import partial

import cv2
import numpy as np
import pytest

from markers import RecognitionIndex, train_page
from markers.recognition import DEFAULT_PARAMS as P
from markers.recognition import geometry, looks, photo
from markers.synth import (
    N_TEMPLATES,
    PAGE_H_MM,
    PAGE_W_MM,
    generate_masthead_sharing_page,
    generate_page,
    synth_photo,
)

# The stages with the default parameters (RecognitionParams), as RecognitionIndex() runs them.
query_features = partial(photo.query_features, p=P)
untilt_map = partial(looks.untilt_map, p=P)
untilted = partial(looks.untilted, p=P)
project, page_corners_mm = geometry.project, geometry.page_corners_mm

CATALOG = (0, 1, 2, 3, N_TEMPLATES)  # pages 0 and N_TEMPLATES share template 0's masthead


@pytest.fixture(scope="module")
def pages():
    return {s: generate_page(s) for s in CATALOG}


@pytest.fixture(scope="module")
def index(pages):
    idx = RecognitionIndex()
    for s in CATALOG:
        idx.add(train_page(pages[s], PAGE_W_MM, PAGE_H_MM, f"p{s}"))
    return idx


def _steep(page: np.ndarray, seed: int):
    return synth_photo(page, PAGE_W_MM, PAGE_H_MM, seed, frame=(1280, 720), page_px_tall=600, max_tilt_deg=66)


def _corner_error(match, photo) -> float:
    corners = page_corners_mm(PAGE_W_MM, PAGE_H_MM)
    return float(np.linalg.norm(match.corners - project(photo.homography, corners), axis=1).max())


@pytest.mark.parametrize("seed", [41, 82])
def test_a_steeply_tilted_page_is_found_only_by_the_tilted_look(index, pages, seed):
    photo = _steep(pages[1], seed)
    assert photo.tilt_deg > 60
    assert index.recognize(photo.image) is None  # every other pass misses it
    match = index.recognize(photo.image, tilted=True)
    assert match is not None and match.page_id == "p1" and match.stage == "tilted"
    assert match.inliers >= P.tilt_min_inliers
    assert _corner_error(match, photo) < 4.0  # the copies' features are placed back in the photo's px


def test_the_tilted_look_needs_its_own_inlier_bar(index, pages, monkeypatch):
    monkeypatch.setattr(index, "params", dataclasses.replace(P, tilt_min_inliers=10_000))
    assert index.recognize(_steep(pages[1], 41).image, tilted=True) is None


def test_untilted_features_are_placed_in_the_photos_working_px(pages):
    # Matched against the page's marker, the features of every un-tilted copy land where the true homography puts
    # their page points (as the photo's own features do, ~1 px): a missing offset of the copy's bounding box or a
    # wrong inverse map moves them by tens of px.
    photo = synth_photo(pages[1], PAGE_W_MM, PAGE_H_MM, 5, frame=(640, 480), page_px_tall=380, max_tilt_deg=25,
                        degrade=False)
    q = query_features(photo.image)
    marker = train_page(pages[1], PAGE_W_MM, PAGE_H_MM, "p1")
    for direction in P.tilt_directions:
        copy = untilted(q, direction)
        assert len(copy.xy) > 500 and copy.size == q.size
        matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(copy.descriptors, marker.descriptors)
        matches = [m for m in matches if m.distance <= 50]
        truth = project(photo.homography, np.float64([marker.keypoints_mm[m.trainIdx] for m in matches]))
        off = np.float64([copy.xy[m.queryIdx] for m in matches]) - truth
        agree = off[np.linalg.norm(off, axis=1) < 3.0]
        assert len(agree) >= 20, direction
        assert np.linalg.norm(agree.mean(axis=0)) < 1.0, (direction, agree.mean(axis=0))


@pytest.mark.parametrize("size", [(640, 480), (1280, 720), (480, 640)])
def test_each_untilted_copy_is_the_whole_photo_stretched_along_its_direction(size):
    w, h = size
    edges = np.float64([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])  # pixel-index coords
    for direction in P.tilt_directions:
        to_copy, (cw, ch) = untilt_map(size, direction)
        corners = edges @ to_copy[:, :2].T + to_copy[:, 2]
        # the photo's bounding box in the copy: from its origin to its far side (not cropped, no empty margin)
        assert np.allclose(corners.min(axis=0), -0.5)
        assert np.all(corners.max(axis=0) <= np.array([cw, ch]) - 0.5 + 1e-9)
        assert np.all(corners.max(axis=0) > np.array([cw, ch]) - 1.5)
        # the area is kept; lengths along the direction grow TILT ** (1 - TILT_SQUEEZE) times
        assert abs(np.linalg.det(to_copy[:, :2]) - 1.0) < 1e-9
        u = np.array([np.cos(np.radians(direction)), np.sin(np.radians(direction))])
        assert np.isclose(np.linalg.norm(to_copy[:, :2] @ u), P.tilt ** (1 - P.tilt_squeeze))

def test_a_steep_look_alike_sharing_a_masthead_is_still_refused(index):
    # A non-catalog page with template 0's masthead (pages 0 and N_TEMPLATES print it), photographed steeply.
    other = generate_masthead_sharing_page(9001, template=0)
    for seed in (41, 82, 9):
        assert index.recognize(_steep(other, seed).image, tilted=True) is None
