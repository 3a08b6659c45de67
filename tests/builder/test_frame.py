"""The page frame: editor millimetres (origin top-left, y down, clockwise rotation) ↔ glTF metres (Y up)."""
import math

import numpy as np
import pytest

from builder import frame

W, H = 330.0, 480.0  # a Berliner-ish page, mm


def rotate(q, v):
    """Rotate vector v by unit quaternion q = (x, y, z, w)."""
    x, y, z, w = q
    u = np.array([x, y, z])
    v = np.asarray(v, dtype=float)
    return 2 * np.dot(u, v) * u + (w * w - np.dot(u, u)) * v + 2 * w * np.cross(u, v)


def test_page_centre_maps_to_origin():
    assert frame.page_point_to_gltf(W / 2, H / 2, W, H) == pytest.approx((0.0, 0.0, 0.0))


def test_page_top_left_corner_is_left_and_toward_minus_z():
    x, y, z = frame.page_point_to_gltf(0.0, 0.0, W, H)
    assert (x, y, z) == pytest.approx((-W / 2000, 0.0, -H / 2000))
    assert frame.PAGE_TOP_AXIS == (0.0, 0.0, -1.0)


def test_moving_right_on_page_is_plus_x_and_moving_down_is_plus_z():
    x0, _, z0 = frame.page_point_to_gltf(100, 100, W, H)
    x1, _, z1 = frame.page_point_to_gltf(110, 100, W, H)
    x2, _, z2 = frame.page_point_to_gltf(100, 110, W, H)
    assert (x1 - x0, z1 - z0) == pytest.approx((0.010, 0.0))
    assert (x2 - x0, z2 - z0) == pytest.approx((0.0, 0.010))


def test_elevation_goes_up_plus_y_in_metres():
    assert frame.page_point_to_gltf(W / 2, H / 2, W, H, elevation_mm=25)[1] == pytest.approx(0.025)


def test_page_points_round_trip_through_gltf():
    rng = np.random.default_rng(7)
    for x, y, e in rng.uniform([0, 0, 0], [W, H, 100], size=(50, 3)):
        back = frame.gltf_point_to_page(frame.page_point_to_gltf(x, y, W, H, e), W, H)
        assert back == pytest.approx((x, y, e), abs=1e-9)


def test_mm_metre_conversions_are_inverse():
    assert frame.mm_to_m(1234.5) == pytest.approx(1.2345)
    assert frame.m_to_mm(frame.mm_to_m(17.25)) == pytest.approx(17.25)


def test_clockwise_quarter_turn_turns_page_right_toward_page_bottom():
    q = frame.rotation_to_quaternion(90)
    # page "right" (+X) must turn toward the page bottom (+Z) for a clockwise turn seen by the reader
    assert rotate(q, [1, 0, 0]) == pytest.approx([0, 0, 1], abs=1e-12)
    # and page "down" (+Z) toward page left (−X)
    assert rotate(q, [0, 0, 1]) == pytest.approx([-1, 0, 0], abs=1e-12)


def test_rotation_keeps_the_page_normal():
    q = frame.rotation_to_quaternion(33)
    assert rotate(q, [0, 1, 0]) == pytest.approx([0, 1, 0], abs=1e-12)
    assert math.isclose(sum(c * c for c in q), 1.0)


@pytest.mark.parametrize("deg", [0, 15, -30, 90, 135, 179.5, -179.5])
def test_rotation_round_trips_through_quaternion(deg):
    assert frame.quaternion_to_rotation(frame.rotation_to_quaternion(deg)) == pytest.approx(deg, abs=1e-9)


def test_quaternion_of_a_tilted_node_is_refused():
    with pytest.raises(ValueError):
        frame.quaternion_to_rotation((0.3, 0.0, 0.0, math.sqrt(1 - 0.09)))


def test_box_centre_is_top_left_plus_half_size():
    assert frame.box_center_mm(10, 20, 60, 40) == (40, 40)


def test_placement_round_trips_through_node_transform():
    rng = np.random.default_rng(11)
    for _ in range(50):
        x, y = rng.uniform(0, 250, 2)
        w, h = rng.uniform(5, 80, 2)
        p = frame.Placement(x, y, w, h, float(rng.uniform(-180, 180)), float(rng.uniform(0, 50)))
        t, r = frame.placement_to_node_transform(p, W, H)
        back = frame.node_transform_to_placement(t, r, w, h, W, H)
        for name in ("x_mm", "y_mm", "elevation_mm", "rotation_deg"):
            assert getattr(back, name) == pytest.approx(getattr(p, name), abs=1e-6), name


def test_quad_faces_the_reader_and_shows_the_image_upright():
    corners = np.array(frame.quad_corners_m(60, 40))
    a, b, c = (corners[i] for i in frame.QUAD_INDICES[:3])
    normal = np.cross(b - a, c - a)
    assert normal[1] > 0 and abs(normal[0]) < 1e-12 and abs(normal[2]) < 1e-12
    # image top-left (uv 0,0) sits at the box's top-left: −X, −Z
    tl = corners[frame.QUAD_UVS.index((0.0, 0.0))]
    assert tl[0] < 0 and tl[2] < 0
    # u grows along +X, v grows toward the page bottom (+Z)
    br = corners[frame.QUAD_UVS.index((1.0, 1.0))]
    assert br[0] == pytest.approx(0.030) and br[2] == pytest.approx(0.020)
