"""The page frame: every conversion between editor millimetres and the glTF bundle, written once.

Editor / database (see docs/ARCHITECTURE.md)
    Page millimetres, origin at the page's **top-left** corner, ``x`` to the right, ``y`` **down**.
    An overlay box is ``x_mm, y_mm`` (top-left corner of the *unrotated* box), ``width_mm, height_mm``,
    ``rotation_deg`` clockwise on the page as seen by a reader, about the box centre, and
    ``elevation_mm`` above the paper.

glTF bundle
    Metres, right-handed, +Y up. The page centre sits at the origin and the paper lies in the XZ plane
    (``Y = 0``); +X runs along the page width to the right, the page's **top edge points toward −Z**
    and +Y comes out of the paper toward the reader (the reader looks at the paper from +Y).

Derivation
    Position. A page point (x_mm, y_mm) is (x_mm − w/2, y_mm − h/2) mm from the page centre, with the
    second component growing toward the bottom edge. The bottom edge is +Z (the top edge is −Z), so
    the offsets map one-to-one, with no sign flip, onto X and Z; dividing by 1000 converts to metres::

        X = (x_mm − w/2) / 1000          Z = (y_mm − h/2) / 1000          Y = elevation_mm / 1000

    and back: ``x_mm = 1000·X + w/2``, ``y_mm = 1000·Z + h/2``, ``elevation_mm = 1000·Y``.

    Rotation. Seen from the reader's side (+Y looking toward −Y) with +X pointing right, +Z points
    *down* on the reader's view (right-handed: X × Y = Z, and right × toward-the-viewer = down). That is
    the same orientation as the editor's (x right, y down), so a clockwise rotation by θ in the editor is a
    clockwise rotation as seen from +Y. By the right-hand rule, a *positive* rotation about +Y is
    counter-clockwise when seen from +Y; hence clockwise θ is a rotation about +Y by **−θ**::

        q = (x, y, z, w) = (0, sin(−θ/2), 0, cos(−θ/2))          (glTF quaternion order)

    Check: R_y(−θ) maps +X = (1, 0, 0) to (cos θ, 0, sin θ) — "right" turns toward +Z, i.e. toward the
    bottom of the page, which is clockwise for the reader. Back: θ = −2·atan2(q_y, q_w).

    Box centre. The box is rotated about its centre, so the centre is the rotation-invariant anchor:
    ``cx = x_mm + width_mm/2``, ``cy = y_mm + height_mm/2``; an overlay node's translation is the centre's
    page point with Y = elevation. Back: ``x_mm = cx − width_mm/2``, ``y_mm = cy − height_mm/2``.

    Texture coordinates. glTF UV (0, 0) is the top-left of the image, u right, v down — the same
    orientation as the editor — so a quad's corner at page offset (dx, dy) from its top-left gets
    ``uv = (dx/width, dy/height)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MM_PER_M = 1000.0
# The page's top edge points toward −Z; +X runs along the page width, +Y out of the paper toward the reader.
PAGE_TOP_AXIS = (0.0, 0.0, -1.0)


@dataclass(frozen=True)
class Placement:
    """An editor placement recovered from (or destined for) a glTF node; all lengths in mm."""

    x_mm: float
    y_mm: float
    width_mm: float
    height_mm: float
    rotation_deg: float
    elevation_mm: float


def mm_to_m(value_mm: float) -> float:
    """Length in millimetres → metres."""
    return float(value_mm) / MM_PER_M


def m_to_mm(value_m: float) -> float:
    """Length in metres → millimetres."""
    return float(value_m) * MM_PER_M


def page_point_to_gltf(x_mm: float, y_mm: float, page_width_mm: float, page_height_mm: float,
                       elevation_mm: float = 0.0) -> tuple[float, float, float]:
    """Page point (mm, origin top-left, y down) → glTF (X, Y, Z) metres, page centre at origin."""
    return (
        mm_to_m(x_mm - page_width_mm / 2.0),
        mm_to_m(elevation_mm),
        mm_to_m(y_mm - page_height_mm / 2.0),
    )


def gltf_point_to_page(point: tuple[float, float, float], page_width_mm: float,
                       page_height_mm: float) -> tuple[float, float, float]:
    """glTF (X, Y, Z) metres → page (x_mm, y_mm, elevation_mm)."""
    x, y, z = (float(v) for v in point)
    return (m_to_mm(x) + page_width_mm / 2.0, m_to_mm(z) + page_height_mm / 2.0, m_to_mm(y))


def rotation_to_quaternion(rotation_deg: float) -> tuple[float, float, float, float]:
    """Clockwise-on-the-page rotation (degrees) → glTF quaternion (x, y, z, w) about +Y by −θ."""
    half = -math.radians(float(rotation_deg)) / 2.0
    return (0.0, math.sin(half), 0.0, math.cos(half))


def quaternion_to_rotation(quaternion: tuple[float, float, float, float]) -> float:
    """glTF quaternion (x, y, z, w), assumed a pure rotation about Y → clockwise page degrees in (−180, 180]."""
    qx, qy, qz, qw = (float(v) for v in quaternion)
    if abs(qx) > 1e-6 or abs(qz) > 1e-6:
        raise ValueError(f"not a rotation about the page normal: {quaternion!r}")
    deg = -math.degrees(2.0 * math.atan2(qy, qw))
    deg = (deg + 180.0) % 360.0 - 180.0
    return 180.0 if deg == -180.0 else deg


def box_center_mm(x_mm: float, y_mm: float, width_mm: float, height_mm: float) -> tuple[float, float]:
    """Top-left corner of the unrotated box + size → box centre (the rotation pivot), page mm."""
    return (x_mm + width_mm / 2.0, y_mm + height_mm / 2.0)


def placement_to_node_transform(placement: Placement, page_width_mm: float, page_height_mm: float
                                ) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """Editor placement → (translation, rotation) of the overlay's glTF node (box centre, elevation)."""
    cx, cy = box_center_mm(placement.x_mm, placement.y_mm, placement.width_mm, placement.height_mm)
    translation = page_point_to_gltf(cx, cy, page_width_mm, page_height_mm, placement.elevation_mm)
    return translation, rotation_to_quaternion(placement.rotation_deg)


def node_transform_to_placement(translation, rotation, width_mm: float, height_mm: float,
                                page_width_mm: float, page_height_mm: float) -> Placement:
    """Inverse of :func:`placement_to_node_transform`; the box size comes from the overlay's extras."""
    cx, cy, elevation = gltf_point_to_page(translation, page_width_mm, page_height_mm)
    return Placement(
        x_mm=cx - width_mm / 2.0,
        y_mm=cy - height_mm / 2.0,
        width_mm=float(width_mm),
        height_mm=float(height_mm),
        rotation_deg=quaternion_to_rotation(rotation),
        elevation_mm=elevation,
    )


def quad_corners_m(width_mm: float, height_mm: float) -> tuple[tuple[float, float, float], ...]:
    """Corners of a box-sized quad in its node's local frame, metres, in the order
    top-left, bottom-left, bottom-right, top-right (counter-clockwise seen from +Y, so its face points +Y)."""
    hw, hh = mm_to_m(width_mm) / 2.0, mm_to_m(height_mm) / 2.0
    return ((-hw, 0.0, -hh), (-hw, 0.0, hh), (hw, 0.0, hh), (hw, 0.0, -hh))


# matches quad_corners_m: the image's top-left at the box's top-left
QUAD_UVS = ((0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0))
QUAD_INDICES = (0, 1, 2, 0, 2, 3)  # two triangles, counter-clockwise seen from +Y (front face toward the reader)
