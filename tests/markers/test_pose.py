"""Camera pose from a page homography: solvePnP on the corners recovers a known camera, focal included."""
import cv2
import numpy as np
import pytest

from markers.pose import estimate_pose

W_MM, H_MM = 297.0, 420.0


def _camera(rvec, tvec, f=900.0, size=(1280, 720)):
    K = np.array([[f, 0, size[0] / 2], [0, f, size[1] / 2], [0, 0, 1]])
    obj = np.array([[0, 0, 0], [W_MM, 0, 0], [W_MM, H_MM, 0], [0, H_MM, 0]], np.float64)
    corners, _ = cv2.projectPoints(obj, np.array(rvec, float), np.array(tvec, float), K, None)
    return corners.reshape(4, 2), K


def test_pose_recovers_known_camera_with_given_focal():
    corners, K = _camera([0.5, -0.2, 0.1], [-150, -200, 900])
    pose = estimate_pose(corners, W_MM, H_MM, (1280, 720), focal_px=900.0)
    assert np.allclose(pose.K, K)
    assert np.allclose(pose.tvec, [-150, -200, 900], atol=1.0)
    assert np.allclose(pose.rvec, [0.5, -0.2, 0.1], atol=1e-3)


def test_pose_estimates_focal_from_a_tilted_view_and_accepts_a_homography():
    corners, _ = _camera([0.6, 0.3, 0.05], [-150, -200, 800], f=1000.0)
    src = np.float32([[0, 0], [W_MM, 0], [W_MM, H_MM], [0, H_MM]])
    h = cv2.getPerspectiveTransform(src, corners.astype(np.float32)).astype(np.float64)
    pose = estimate_pose(h, W_MM, H_MM, (1280, 720))
    assert pose.K[0, 0] == pytest.approx(1000.0, rel=0.05)
    assert np.allclose(pose.tvec, [-150, -200, 800], rtol=0.06)


def test_pose_rejects_points_of_the_wrong_shape():
    with pytest.raises(ValueError):
        estimate_pose(np.zeros((3, 2)), W_MM, H_MM, (640, 480))
