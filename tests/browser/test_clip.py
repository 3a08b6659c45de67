"""The fake-camera clips are made faster than by the plain formulas (issue 29), bit for bit the same frames: the page
composited over the table only where its edge is partly over it, a still pose or a blank stretch rendered once and
noised per frame. Checked here against the plain formulas on a moving frame, a still clip and a blank lead-in."""
from __future__ import annotations

import cv2
import numpy as np

from tests.browser import clip as clipmod


def plain_frame(page, width_mm, height_mm, cam, H, table, rng):
    """render_frame as first written: the full float32 blend over every pixel, then noise."""
    ss = clipmod.SUPERSAMPLE
    big = table.copy()
    if H is not None:
        ph, pw = page.shape[:2]
        lo_to_hi = np.array([[ss, 0, (ss - 1) / 2], [0, ss, (ss - 1) / 2], [0, 0, 1]], np.float64)
        M = lo_to_hi @ H @ np.diag([width_mm / pw, height_mm / ph, 1.0])
        M = M @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], np.float64)
        bgra = cv2.warpPerspective(cv2.cvtColor(page, cv2.COLOR_BGR2BGRA), M, (big.shape[1], big.shape[0]),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        a = bgra[..., 3:].astype(np.float32) * (1 / 255.0)
        big = bgra[..., :3].astype(np.float32) * a + big.astype(np.float32) * (1 - a)
    frame = cv2.resize(np.asarray(big, np.float32), (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    frame = frame * clipmod._falloff(cam.width, cam.height)[..., None]
    frame += rng.normal(0, clipmod.NOISE_SIGMA, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def test_a_moving_frame_is_the_plain_formulas_bit_for_bit():
    page, cam, table = clipmod.make_page(seed=1), clipmod.Pinhole(), clipmod.make_table(11)
    for R, t in list(clipmod.moving_poses(5, 210.0, 297.0))[::2]:
        H = clipmod.page_homography(cam, R, t)
        fast = clipmod.render_frame(page, 210.0, 297.0, cam, H, table, np.random.default_rng(4))
        assert np.array_equal(fast, plain_frame(page, 210.0, 297.0, cam, H, table, np.random.default_rng(4)))


def test_a_still_clip_with_a_blank_lead_in_is_the_plain_formulas_bit_for_bit():
    page = clipmod.make_page(width_px=620, height_px=877, seed=2)
    clip = clipmod.make_clip(page, seconds_page=0.2, seconds_blank=0.1, still=True, lead_blank_s=0.1)
    rng, table = np.random.default_rng(11), clipmod.make_table(11)
    for i, (frame, H) in enumerate(zip(clip.frames, clip.homographies)):
        plain = plain_frame(page, 210.0, 297.0, clip.cam, H, table, rng)
        clipmod.draw_probe(plain, i)
        assert np.array_equal(frame, plain), i
    assert len({f.tobytes() for f in clip.frames}) == len(clip.frames)  # each frame has its own noise
