"""One configuration path (issue 29): builder/config.py reads the environment, create_app(test_config) reads none
of it, every variable the code reads is documented, and a bad value is a clear error naming its variable."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from builder.app import app_config
from builder.config import ConfigError, NodeTools, Settings
from builder.importers import UploadLimits
from tests.conftest import REPO, make_app, test_database

SOURCES = ("builder", "viewer_api", "markers")
VARIABLE = re.compile(r"\bBAONHUNG_[A-Z0-9_]*[A-Z0-9]\b")  # a whole name: not a prefix such as "BAONHUNG_MAX_"
ENV_READ = re.compile(r"\bos\.(environ|getenv)\b|\bfrom os import\b.*\b(environ|getenv)\b")
# Environment reads outside builder/config.py that are known and why (matched by the stripped line, wherever it
# moves). Anything else reading os.environ fails test_only_config_reads_the_environment.
KNOWN_ENV_LINES = {
    # writes, not reads: OpenMP's idle threads must not spin (set before cv2 loads)
    'os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")',
}


def _source_files():
    for package in SOURCES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def variables_in_code() -> set[str]:
    """Every whole BAONHUNG_* name in the code, plus DATABASE_URL, plus the names UploadLimits.from_env asks for
    (it builds some from its field names)."""
    names = {"DATABASE_URL"}
    for path in _source_files():
        names |= set(VARIABLE.findall(path.read_text(encoding="utf-8")))

    class Recording(dict):
        def get(self, key, default=None):
            names.add(key)
            return default

    UploadLimits.from_env(Recording())
    return names


def _expand(text: str) -> set[str]:
    """Names in ``text`` with shell-style braces expanded: BAONHUNG_MAX_{A,B}_MB -> BAONHUNG_MAX_A_MB, ..._B_MB."""
    out = set()
    for token in re.findall(r"(?:BAONHUNG_|DATABASE_URL)[A-Z0-9_{},]*", text):
        match = re.search(r"\{([A-Z0-9_,]+)\}", token)
        if match:
            for choice in match.group(1).split(","):
                out |= _expand(token[:match.start()] + choice + token[match.end():])
        else:
            out.add(token.rstrip("_,"))
    return out


def _section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end > 0 else len(text)]


def documented_in_readme() -> set[str]:
    table = _section(REPO / "README.md", "## Configuration (environment variables)")
    return _expand("\n".join(line.split("|")[1] for line in table.splitlines() if line.startswith("| `")))


def documented_in_deploy() -> set[str]:
    return _expand(_section(REPO / "docs" / "DEPLOY.md", "## Environment variables"))


def test_brace_expansion_of_documented_names():
    assert _expand("`BAONHUNG_MAX_ZIP_{FILES,TOTAL_MB}`, `DATABASE_URL`") == {
        "BAONHUNG_MAX_ZIP_FILES", "BAONHUNG_MAX_ZIP_TOTAL_MB", "DATABASE_URL"}


def test_every_variable_the_code_reads_is_in_the_readme_table_and_the_deploy_list():
    code = variables_in_code()
    assert {"BAONHUNG_NODE", "BAONHUNG_EVENTS_URL", "BAONHUNG_MAX_MODEL3D_MB", "BAONHUNG_QUEUE_URL"} <= code
    assert not code - documented_in_readme(), "missing from README.md's configuration table"
    assert not code - documented_in_deploy(), "missing from docs/DEPLOY.md's environment variables"


def test_the_docs_name_no_variable_the_code_does_not_read():
    code = variables_in_code()
    assert not documented_in_readme() - code
    assert not documented_in_deploy() - code


def test_only_config_reads_the_environment():
    readers = []
    for path in _source_files():
        if path == REPO / "builder" / "config.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ENV_READ.search(line) and line.strip() not in KNOWN_ENV_LINES:
                readers.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert readers == []


def test_the_test_mapping_overrides_the_environment_and_is_not_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("BAONHUNG_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("BAONHUNG_MAX_REQUEST_MB", "3")
    monkeypatch.setenv("BAONHUNG_TRUSTED_PROXIES", "2")
    monkeypatch.setenv("BAONHUNG_MAX_PDF_MB", "1")
    served = app_config()  # the serving process: the environment
    assert served.settings.data_dir == tmp_path / "from-env" and served.settings.trusted_proxies == 2
    assert served.flask["MAX_CONTENT_LENGTH"] == 3 * 1024 * 1024 and served.limits.max_pdf_bytes == 1_000_000

    data = tmp_path / "mapped"
    mapping = {"MAX_CONTENT_LENGTH": 5 * 1024 * 1024, "JOBS_IMMEDIATE": False}
    before = dict(mapping)
    app = make_app(data, **mapping)
    assert mapping == before
    state = app.extensions["baonhung"]
    assert state.settings.data_dir == data and state.settings.database_url == test_database(data)
    assert app.config["MAX_CONTENT_LENGTH"] == 5 * 1024 * 1024
    assert state.settings.trusted_proxies == 0 and state.limits.max_pdf_bytes == UploadLimits().max_pdf_bytes
    assert state.jobs is not None and state.jobs.huey.immediate is False
    assert not (tmp_path / "from-env").exists()
    for key in ("DATA_DIR", "DATABASE_URL", "BUNDLE_OPTIONS", "JOBS_IMMEDIATE", "SETTINGS", "UPLOAD_LIMITS"):
        assert key not in app.config

    ours = {"DATA_DIR": data, "DATABASE_URL": "sqlite:///elsewhere.db", "SETTINGS": Settings.defaults(),
            "UPLOAD_LIMITS": UploadLimits(max_page_bytes=10), "TESTING": True}
    kept = dict(ours)
    config = app_config(ours)
    assert ours == kept and config.settings.database_url == "sqlite:///elsewhere.db"
    assert config.limits.max_page_bytes == 10 and config.jobs_immediate


def test_an_unknown_key_in_the_test_mapping_is_an_error(tmp_path):
    mapping = {"DATA_DIR": tmp_path, "TESTING": True, "UPLOAD_LIMIT": UploadLimits()}
    with pytest.raises(ConfigError, match="UPLOAD_LIMIT;"):
        app_config(mapping)
    with pytest.raises(ConfigError, match="SETTINGS must be a Settings"):
        app_config({"SETTINGS": {"data_dir": tmp_path}})


@pytest.mark.parametrize("name, value, says", [
    ("BAONHUNG_MAX_REQUEST_MB", "lots", "must be an integer"),
    ("BAONHUNG_MAX_REQUEST_MB", "0", "between 1 and 4096"),
    ("BAONHUNG_TRUSTED_PROXIES", "-1", "between 0 and 10"),
    ("BAONHUNG_LOGIN_MAX_FAILURES", "0", "between 1 and 1000"),
    ("BAONHUNG_RECOGNIZE_RATE", "1e3", "must be an integer"),
    ("BAONHUNG_MAX_PDF_MB", "lots", "must be a number"),
    ("BAONHUNG_MAX_VIDEO_MB", "-2", "positive"),
    ("BAONHUNG_NODE", "/nonexistent/node", "node executable"),
    ("BAONHUNG_NODE_MODULES", "/nonexistent/node_modules", "node_modules directory"),
    ("BAONHUNG_RATELIMIT_STORAGE", "redis-host:6379", "storage URL"),
])
def test_a_bad_value_is_an_error_naming_its_variable(name, value, says):
    with pytest.raises(ConfigError, match=re.escape(name) + ".*" + says):
        Settings.from_env({name: value})


def test_a_bad_value_stops_the_command_with_its_message_not_a_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(tmp_path / "data"), "BAONHUNG_TRUSTED_PROXIES": "many"}
    r = subprocess.run([sys.executable, "-m", "builder.cli", "db", "upgrade"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "BAONHUNG_TRUSTED_PROXIES must be an integer" in r.stderr and "Traceback" not in r.stderr


def test_node_settings_reach_the_node_tools(tmp_path):
    modules = tmp_path / "node_modules"
    modules.mkdir()
    tools = Settings.from_env({"BAONHUNG_NODE": sys.executable, "BAONHUNG_NODE_MODULES": str(modules)}).node_tools
    assert tools.node_binary() == sys.executable
    assert tools.gltf_transform_cli == modules / "@gltf-transform" / "cli" / "bin" / "cli.js"
    assert Settings.defaults().node_tools == NodeTools()
