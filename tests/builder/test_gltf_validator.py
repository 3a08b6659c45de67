"""The Khronos glTF validator wrapper: real verdicts, and a loud error when it cannot run."""
from __future__ import annotations

import json
import shutil

import pytest

from builder import gltf_validator
from builder.errors import ValidatorUnavailableError
from builder.gltf_validator import ValidationReport, validate_gltf
from builder.importers import read_glb, write_glb
from builder.stock import build_stock_glb


def test_valid_glb_has_no_errors_and_reports_info():
    report = validate_gltf(build_stock_glb("pin"))
    assert isinstance(report, ValidationReport) and report.ok
    assert report.info["totalTriangleCount"] > 0 and report.info["animationCount"] == 0


def test_embedded_gltf_json_is_validated_too():
    doc, binary = read_glb(build_stock_glb("arrow"))
    import base64
    doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(binary).decode()
    assert validate_gltf(json.dumps(doc).encode()).errors == 0


def test_broken_glb_reports_errors_with_codes_and_pointers():
    doc, binary = read_glb(build_stock_glb("arrow"))
    doc["accessors"][0]["count"] = 10_000_000  # indices far past the end of the buffer
    report = validate_gltf(write_glb(doc, binary))
    assert report.errors >= 1 and not report.ok
    first = report.messages[0]
    assert first["severity"] == "error" and first["code"] and first["pointer"].startswith("/")
    assert report.first_messages(1)[0].startswith(first["code"])


def test_external_uri_is_an_error_not_a_fetch():
    doc, _ = read_glb(build_stock_glb("arrow"))
    doc["buffers"][0]["uri"] = "../../etc/passwd"
    report = validate_gltf(json.dumps(doc).encode())
    assert report.errors >= 1


def test_bytes_that_are_not_gltf_count_as_one_error():
    report = validate_gltf(b"just some text")
    assert report.errors == 1 and report.messages[0]["code"] == "UNRECOGNIZED_FORMAT"


def test_missing_node_raises_instead_of_passing(monkeypatch):
    from builder import config  # BAONHUNG_NODE reaches the validator through the process's settings (issue 29)

    monkeypatch.setattr(config, "_NODE_TOOLS", config.NodeTools(node="/nonexistent/node"))
    with pytest.raises(ValidatorUnavailableError) as info:
        validate_gltf(build_stock_glb("pin"))
    assert info.value.http_status == 503 and info.value.code == "validator_unavailable"


def test_missing_npm_package_raises_instead_of_passing(monkeypatch, tmp_path):
    lonely = tmp_path / "repo" / "builder" / "js" / "validate_gltf.mjs"
    lonely.parent.mkdir(parents=True)
    shutil.copy(gltf_validator.SCRIPT, lonely)  # resolves node_modules from tmp_path/repo: none there
    monkeypatch.setattr(gltf_validator, "SCRIPT", lonely)
    with pytest.raises(ValidatorUnavailableError, match="gltf-validator"):
        validate_gltf(build_stock_glb("pin"))
