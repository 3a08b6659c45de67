"""Photos a reader takes in poor conditions (issue 30): blurred and dim."""
import cv2
import numpy as np
import pytest

from markers import RecognitionIndex, train_page
from markers.synth import PAGE_H_MM, PAGE_W_MM, generate_page, synth_photo

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def index():
    idx = RecognitionIndex()
    for s in SEEDS:
        idx.add(train_page(generate_page(s), PAGE_W_MM, PAGE_H_MM, f"page-{s}"))
    return idx


def _blurred_dim(image: np.ndarray, seed: int) -> np.ndarray:
    """Out of focus (Gaussian, sigma 1.8 px), a third of the light, sensor noise, JPEG quality 60."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(image, (0, 0), 1.8).astype(np.float32) * 0.33 + 6
    img = np.clip(img + rng.normal(0, 3.0, img.shape), 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)


@pytest.mark.parametrize("seed", [3, 8])
def test_a_blurred_dim_photo_of_a_page_is_found(index, seed):
    page = seed % len(SEEDS)
    shot = synth_photo(generate_page(page), PAGE_W_MM, PAGE_H_MM, 7000 + seed, frame=(1280, 720),
                       page_px_tall=560, max_tilt_deg=25, min_visible=1.0, degrade=False)
    photo = _blurred_dim(shot.image, seed)
    assert photo.mean() < 0.4 * shot.image.mean()  # it is dim
    match = index.recognize(photo)
    assert match is not None and match.page_id == f"page-{page}"
