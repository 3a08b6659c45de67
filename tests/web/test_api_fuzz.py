"""The JSON API fuzzed from its own OpenAPI document (schemathesis; issue 25): every operation, with generated valid
and invalid path parameters, queries and bodies, by an admin's token. Whatever it sends, the answer is never a 5xx.

The app is the test app (exceptions caught by its handlers as in production: a 500 is an answer here, not a crash of
the test). Examples per operation are bounded (FUZZ_EXAMPLES) to keep make test quick; raise it to fuzz longer.

Every bundle check the fuzz sends for the real page packages the same draft, so the node programs it runs get the same
bytes each time: their results are reused within this module (``node_results_reused``) — the first call of each
runs gltf-transform / the Khronos validator for real, and every request still goes through the whole endpoint.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import admin_token, make_app

FUZZ_EXAMPLES = int(os.environ.get("BAONHUNG_FUZZ_EXAMPLES", 12))


@pytest.fixture(scope="module")
def node_results_reused():
    """gltf-transform's optimize and decode and the Khronos validator are pure functions of their input bytes and
    options: within this module a second call with the same bytes gets the first call's result (a copy of the output
    file, the same report) instead of another node process (seconds each; the fuzz checks one draft page 7 times)."""
    from builder import compress, gltf_validator

    results: dict = {}

    def reused(key, run):
        if key not in results:
            results[key] = run()
        return results[key]

    real_optimize, real_decode, real_validate = compress.optimize, compress.decode_glb, gltf_validator.validate_gltf

    def optimize(src, dst, *, texture_max_px):
        key = ("optimize", hashlib.sha256(Path(src).read_bytes()).digest(), texture_max_px)
        data = reused(key, lambda: Path(real_optimize(src, dst, texture_max_px=texture_max_px)).read_bytes())
        Path(dst).write_bytes(data)
        return Path(dst)

    def decode_glb(data):
        return reused(("decode", hashlib.sha256(bytes(data)).digest()), lambda: real_decode(data))

    def validate_gltf(data, **options):
        key = ("validate", hashlib.sha256(bytes(data)).digest(), tuple(sorted(options.items())))
        return reused(key, lambda: real_validate(data, **options))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compress, "optimize", optimize)
        patch.setattr(compress, "decode_glb", decode_glb)
        patch.setattr(gltf_validator, "validate_gltf", validate_gltf)
        yield results


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("fuzz") / "data")
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a fault is answered (and counted as a 5xx), as in production
    _, secret = admin_token(app, "fuzz@toasoan.vn")
    app.config["FUZZ_TOKEN"] = secret
    # real objects, so that half of the generated requests reach them instead of a 404
    from tests.conftest import png_bytes
    from tests.web.test_api import make_edition, make_page, make_publication

    client = app.test_client()
    make_publication(client, secret, slug="bao")
    edition = make_edition(client, secret, slug="bao")
    page = make_page(client, secret, edition["id"], png_bytes(620, 877, seed=41))
    overlay = client.post(f"/api/v1/pages/{page['id']}/overlays", headers={"Authorization": f"Bearer {secret}"},
                          json={"kind": "link", "url": "https://example.org", "x_mm": 10, "y_mm": 10, "width_mm": 30,
                                "height_mm": 20}).get_json()
    app.config["FUZZ_IDS"] = {"slug": "bao", "edition_id": str(edition["id"]), "page_id": str(page["id"]),
                              "overlay_id": str(overlay["id"]), "fmt": "svg", "sha": page.get("image_sha", "0" * 64)}
    return app


@pytest.mark.usefixtures("node_results_reused")
def test_no_request_the_api_documents_gets_a_server_error(fuzz_app):
    from hypothesis import given

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)
    headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_TOKEN']}"}
    faults, operations, statuses = [], 0, {}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            real = fuzz_app.config["FUZZ_IDS"]
            # (never for DELETE: the objects must outlive the operations fuzzed after it)
            if case.path_parameters and case.method != "DELETE" and len(repr(case.query) + repr(case.body)) % 2:
                case.path_parameters = {k: real.get(k, v) for k, v in case.path_parameters.items()}
            response = case.call(headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if os.environ.get("FUZZ_DEBUG") and response.status_code == 404:
                print("404", case.method, case.formatted_path, response.text[:80])
            if response.status_code >= 500:
                faults.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                              f"{response.text[:200]}")

        run()
    print(f"{operations} operations, {sum(statuses.values())} requests, answers {dict(sorted(statuses.items()))}")
    assert operations >= 20, "the OpenAPI document should list the API's operations"
    assert sum(statuses.values()) >= 5 * operations
    assert not faults, "\n".join(faults[:20])
