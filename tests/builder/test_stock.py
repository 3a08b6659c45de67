"""Stock models: small, valid, metres, Y up, centred on their base, and the committed files are up to date."""
from __future__ import annotations

import pytest

from builder.gltf_validator import validate_gltf
from builder.importers import gltf_model_meta, read_glb
from builder.stock import STOCK_MODELS, build_stock_glb, list_stock, main, stock_path

# The largest sensible stock model: arrows and pins are a few thousand triangles at most.
MAX_BYTES = 50_000


@pytest.fixture(scope="module")
def built() -> dict[str, bytes]:
    return {name: build_stock_glb(name) for name in STOCK_MODELS}


def test_registry_has_the_arrow_pin_and_info_marker():
    assert {"arrow", "pin", "info"} <= set(STOCK_MODELS)
    listed = list_stock()
    assert [m["name"] for m in listed] == list(STOCK_MODELS)
    for m in listed:
        assert m["title_vi"] and m["title_en"] and m["title_vi"] != m["title_en"]
        assert m["file"] == f"assets/3d/{m['name']}.glb"


@pytest.mark.parametrize("name", list(STOCK_MODELS))
def test_stock_model_passes_the_khronos_validator_without_errors_or_warnings(built, name):
    report = validate_gltf(built[name])
    assert report.errors == 0 and report.warnings == 0, report.first_messages(5, "warning")


@pytest.mark.parametrize("name", list(STOCK_MODELS))
def test_stock_model_is_small_centred_on_its_base_and_coloured(built, name):
    data = built[name]
    assert len(data) < MAX_BYTES
    doc, _ = read_glb(data)
    meta = gltf_model_meta(doc)
    (x0, y0, z0), (x1, y1, z1) = meta["bounds_m"]
    assert y0 == pytest.approx(0.0, abs=1e-6)  # stands on the paper
    assert (x0 + x1) / 2 == pytest.approx(0.0, abs=1e-6) and (z0 + z1) / 2 == pytest.approx(0.0, abs=1e-6)
    assert 0.02 < y1 < 0.1 and max(x1 - x0, z1 - z0) < 0.1  # centimetres, in metres
    assert meta["triangles"] > 50 and meta["textures"] == 0
    colours = [m["pbrMetallicRoughness"]["baseColorFactor"][:3] for m in doc["materials"]]
    assert any(max(c) - min(c) > 0.3 for c in colours)  # at least one saturated colour, not default white
    assert "extras" not in str(doc) and "trimesh" not in doc["asset"]["generator"]


def test_arrow_points_down_with_its_tip_at_the_origin(built):
    doc, _ = read_glb(built["arrow"])
    head = next(n for n in doc["nodes"] if n["name"] == "arrow_head")
    pos = doc["accessors"][doc["meshes"][head["mesh"]]["primitives"][0]["attributes"]["POSITION"]]
    assert pos["min"][1] == pytest.approx(0.0, abs=1e-6) and pos["max"][0] > 0.005  # wide at the top, tip at 0


def test_building_is_deterministic_and_matches_the_committed_files(built):
    for name, data in built.items():
        assert build_stock_glb(name) == data
        assert stock_path(name).read_bytes() == data, f"run `python -m builder.stock` and commit {name}.glb"


def test_main_writes_every_model(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.glb" for n in STOCK_MODELS)
    assert "arrow.glb" in capsys.readouterr().out


def test_unknown_stock_name_is_a_key_error():
    with pytest.raises(KeyError, match="unicorn"):
        build_stock_glb("unicorn")
