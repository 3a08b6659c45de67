"""What vulture (``make test``: tests/test_static_checks.py) reports as unused but is used from outside Python.

Each entry names the object itself where it is importable, so this file fails to import (the static-checks test
imports it) when an entry outlives what it whitelists; what has no importable owner (a method on a local class, an
attribute set on a library object, a parameter) goes through vulture's ``Whitelist`` object. Flask views, Flask
hooks, pytest fixtures and SQLAlchemy listeners are skipped by decorator (``[tool.vulture]`` in pyproject.toml), not
listed here. Add an entry only with its reason; dead code is removed, not whitelisted.
"""
from vulture.whitelists.whitelist_utils import Whitelist

from builder import charts, importers, models

_ = Whitelist()

# Jinja templates (vulture reads no templates): templates/analytics.html draws the charts and reads the report.
charts.columns_svg
charts.heat_legend_svg
_.model_interactions  # builder.analytics.Report fields, also in the JSON report (dataclasses.asdict)
_.panoramas_entered
_.fallbacks

# Database columns: written by the code, read by SQL and by whoever inspects the tables.
models.ApiToken.last_used_at  # set on each use of a token (builder/auth.py)
models.PublishedVersion.published_by_id
models.Entitlement.created_by_id
models.CodeBatch.created_by_id
models.ApiNonce.key_id  # part of the unique (key_id, nonce) constraint that refuses a replayed request
models.Role.print_desk  # a role by value ("print_desk"): the CLI's --role, the UI's role labels

# Upload limits read by name: builder/importers/sniff.py's FormatInfo.limit names the field (getattr).
importers.UploadLimits.max_image_bytes
importers.UploadLimits.max_animated_bytes

# Interfaces of libraries that call these methods, or read these attributes, by name.
_.load_config  # gunicorn BaseApplication hook (builder/cli.py's local server classes)
_.JsonErrorWorker  # gunicorn worker class, named by string in the serve command's options (builder/serve_worker.py)
_.write_error  # gunicorn.util.write_error, replaced in the worker process (builder/serve_worker.py)
_.mesg  # gunicorn's write_error(sock, status_int, reason, mesg) signature, kept whole (builder/serve_worker.py)
_.seekable  # io.RawIOBase (builder/storage_s3.py, viewer_api/public.py streams)
_.readinto
_.readall
_.readline  # a file-like object handed to a library (tests/web/test_public.py)
_.get_base  # trimesh's Resolver interface (builder/importers/model.py)
_.namespaced
_._iter_errors  # openapi-core's validator, overridden (builder/web/validation.py)
_.own_fields  # FAISS index and clustering settings (markers/recognition/catalog.py)
_.niter
_.max_points_per_centroid
_.min_points_per_centroid
_.fontmode  # PIL ImageDraw: no anti-aliasing (markers/qr.py)
_.max_content_length  # Flask's per-request body limit, set in views before the body is read
_.permanent  # Flask's session.permanent (builder/web/ui.py)
_.via_token  # flask.g, read with g.get("via_token") (builder/web/common.py)
_.reader_checked  # flask.g, tested with "in g" (viewer_api/readers_api.py)
_.white_list  # read by OpenCV's build from this config file (scripts/opencv_js_tracker_config.py)

# Test helpers called by the libraries they plug into.
_.pix_fmt  # PyAV output stream setting (tests/browser/fixture_app.py)
_.log_message  # http.server.BaseHTTPRequestHandler, silenced (tests/browser/test_bundle_threejs.py)
_.create_system  # zipfile.ZipInfo field (tests/builder/test_safezip.py)
_.__test__  # pytest: a class not to collect (tests/conftest.py)
_.handle_DATA  # aiosmtpd handler hook (tests/web/smtp_server.py)
