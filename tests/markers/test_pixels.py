"""markers.pixels: the pixel-index <-> pixel-edge shift, checked against what cv2.resize and cv2.warpPerspective do."""
import cv2
import numpy as np

from markers.pixels import EDGE_TO_INDEX, INDEX_TO_EDGE, to_edge, to_index


def _spot(w: int, h: int, x: int, y: int) -> np.ndarray:
    img = np.zeros((h, w), np.float32)
    img[y, x] = 1.0
    return img


def _centroid(img: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return np.array([(xs * img).sum(), (ys * img).sum()]) / img.sum()


def test_a_point_resized_moves_as_its_edge_coordinates_scale():
    for s in (2.0, 3.0, 4.0):
        big = cv2.resize(_spot(16, 12, 5, 7), None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        expected = to_index(to_edge(np.array([5.0, 7.0])) * s)
        np.testing.assert_allclose(_centroid(big), expected, atol=1e-6)
        assert np.abs(_centroid(big) - np.array([5.0, 7.0]) * s).max() >= 0.5  # without the shift: half a px off


def test_the_homography_shifts_are_the_point_shifts_and_undo_each_other():
    xy = np.array([[3.0, 4.0], [0.0, 0.0], [-2.5, 7.25]])
    homog = np.c_[xy, np.ones(len(xy))]
    np.testing.assert_array_equal((homog @ INDEX_TO_EDGE.T)[:, :2], to_edge(xy))
    np.testing.assert_array_equal((homog @ EDGE_TO_INDEX.T)[:, :2], to_index(xy))
    np.testing.assert_array_equal(EDGE_TO_INDEX @ INDEX_TO_EDGE, np.eye(3))
    np.testing.assert_array_equal(np.linalg.inv(INDEX_TO_EDGE), EDGE_TO_INDEX)


def test_a_scaling_homography_in_index_coordinates_matches_warp_perspective():
    s = 3.0
    h = EDGE_TO_INDEX @ np.diag([s, s, 1.0]) @ INDEX_TO_EDGE
    warped = cv2.warpPerspective(_spot(10, 10, 4, 2), h, (30, 30), flags=cv2.INTER_LINEAR)
    np.testing.assert_allclose(_centroid(warped), (h @ [4.0, 2.0, 1.0])[:2], atol=1e-3)


def test_dtype_is_kept():
    assert to_edge(np.zeros(2, np.float32)).dtype == np.float32
    assert to_index(np.zeros(2, np.float32)).dtype == np.float32
