"""Configuration from environment variables (every one in README.md's table and docs/DEPLOY.md's list).

This module is the only one that reads the environment: `Settings.from_env()` (every ``BAONHUNG_*`` variable and
``DATABASE_URL``) and `read_secret` (a secret whose variable an operator names on the command line). Everything
else receives a `Settings`, so tests pass their values in directly; ``create_app(test_config)`` reads no
environment at all (builder/app.py). A malformed value is a `ConfigError` naming the variable, at start-up.

The node programs the builder runs (gltf-transform, the Khronos validator) are found through `node_tools()`: the
`NodeTools` of the `Settings` the process started with (`install_node_tools`, called by ``create_app``), or the
defaults (``node`` on PATH, the repository's node_modules) in a process that built none.
"""
from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEV_SECRET = "dev-only-insecure-secret-key"  # used only when BAONHUNG_ENV=development
REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(RuntimeError):
    """The environment (or a test mapping) does not describe a runnable service: the message names the variable."""


@dataclass(frozen=True)
class NodeTools:
    """Where node and the npm packages the builder runs are (``make deps-node`` installs them in the repository)."""

    node: str = ""  # BAONHUNG_NODE: the node executable; empty: ``node`` on PATH
    node_modules: Path = REPO_ROOT / "node_modules"  # BAONHUNG_NODE_MODULES: where gltf-transform's CLI is

    def node_binary(self) -> str | None:
        """The node executable to run, or None when there is none."""
        return self.node or shutil.which("node")

    @property
    def gltf_transform_cli(self) -> Path:
        return self.node_modules / "@gltf-transform" / "cli" / "bin" / "cli.js"


_NODE_TOOLS = NodeTools()  # the process's: replaced once at start by install_node_tools(settings.node_tools)


def install_node_tools(tools: NodeTools) -> None:
    """Make ``tools`` the process's node programs (``create_app`` calls it with its settings' ``node_tools``)."""
    global _NODE_TOOLS
    _NODE_TOOLS = tools


def node_tools() -> NodeTools:
    """The process's node programs (builder/compress.py, builder/gltf_validator.py)."""
    return _NODE_TOOLS


def read_secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of the environment variable ``name`` (empty when unset): a secret an operator keeps out of the
    command line and names with an option (``baonhung events-db ingest-role --password-env VAR``)."""
    env = os.environ if environ is None else environ
    return env.get(name, "")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    env: str = "development"  # development | production
    storage_backend: str = "local"  # local | s3 (builder/storage.py, builder/storage_s3.py)
    s3_endpoint: str = ""  # http(s)://host[:port] of an S3-compatible service; empty: AWS's own for the region
    s3_bucket: str = ""  # required with s3
    s3_region: str = "us-east-1"
    s3_access_key: str = ""  # with the secret key, or neither (boto3's own chain: environment, instance role)
    s3_secret_key: str = ""
    s3_prefix: str = "blobs/"  # object names are <prefix><sha256>: the bucket may hold other things beside
    base_url: str = ""  # public URL used in QR deep links; empty = derived from the request
    login_max_failures: int = 5  # failures before the account+address pair is locked …
    login_lock_seconds: int = 300  # … for this long (throttle against password guessing)
    login_max_address_failures: int = 20  # failures from one address, whatever the emails, before it is locked
    recognize_rate_per_minute: int = 1200  # per client address (many readers may share one: a NAT, a school)
    recognize_session_rate_per_minute: int = 300  # per viewer page load: a phone sends <= 4 frames a second
    trusted_proxies: int = 0  # reverse proxies in front that set X-Forwarded-For/-Proto (nginx: 1)
    accel_redirect: str = ""  # nginx internal location of the local store ("/_store/"): /pub/a/ bodies sent by nginx
    ratelimit_storage: str = "memory://"  # counters shared by several processes: redis://host:6379
    max_request_mb: int = 210  # hard cap on a request body (largest per-kind upload limit + form overhead)
    events_url: str = ""  # readership events store (issue 26); empty: SQLite <data>/analytics/events.sqlite3
    events_ingest_url: str = ""  # the public side's append-only connection (PostgreSQL: the INSERT-only role)
    events_retention_days: int = 90  # raw events kept this long, then only their daily aggregates
    events_rate_per_minute: int = 600  # event batches per client address per minute (a viewer sends ~4)
    events_session_rate_per_minute: int = 30  # per viewer page load
    events_ack: str = "committed"  # 204 once the batch's group commit is done; "queued": once it is queued
    events_queue_max: int = 50_000  # events waiting for the writer's transaction; a batch past it is a 503
    # issue 27: premium overlays and reader accounts
    smtp_host: str = ""  # empty: mail is not sent but written to <data>/outbox/*.eml (development)
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_tls: str = "starttls"  # starttls | ssl | none (none: loopback servers only, as the tests' aiosmtpd)
    mail_from: str = "Báo Nhúng <no-reply@localhost>"
    premium_url_ttl_s: int = 300  # life of a signed premium URL; also the longest a revocation takes to bite
    entitlements_secret: str = ""  # HMAC key of the entitlements API (the payment system's); empty: API off
    # issue 28: the public app's database, for the reader tables only; empty: DATABASE_URL; "none": no reader accounts
    readers_database_url: str = ""
    # issue 28: the publish job queue; empty: SQLite at <data>/queue/huey.db; redis://… or postgresql://… (huey)
    queue_url: str = ""
    # issue 29: the node programs (gltf-transform, the Khronos validator)
    node_tools: NodeTools = field(default_factory=NodeTools)
    # BAONHUNG_MAX_* as given (each a positive number, checked here): builder.importers.UploadLimits.from_env's input
    extra: dict[str, str] = field(default_factory=dict)

    def derived_key(self, purpose: str) -> bytes:
        """A key for one purpose ("premium-url", "subscription-codes", ...) derived from the secret key, so one
        secret never signs two kinds of thing."""
        import hashlib
        import hmac

        return hmac.new(self.secret_key.encode(), b"baonhung/" + purpose.encode(), hashlib.sha256).digest()

    @classmethod
    def defaults(cls) -> "Settings":
        """Every setting at its default, without reading the environment (the base of a test configuration)."""
        return cls.from_env({})

    def with_test_config(self, test_config: Mapping[str, Any]) -> "Settings":
        """These settings with a test mapping's ``DATA_DIR`` (and its SQLite file as the default database) and
        ``DATABASE_URL`` applied — the step both app factories share."""
        if "DATA_DIR" in test_config:
            data_dir = Path(test_config["DATA_DIR"])
            default_db = f"sqlite:///{data_dir / 'baonhung.sqlite3'}"
            return replace(self, data_dir=data_dir, database_url=test_config.get("DATABASE_URL") or default_db)
        if test_config.get("DATABASE_URL"):
            return replace(self, database_url=test_config["DATABASE_URL"])
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings from ``environ`` (default: the process's environment); ConfigError naming the variable
        when one is malformed or out of its range."""
        env = dict(os.environ if environ is None else environ)
        mode = env.get("BAONHUNG_ENV", "development").strip().lower()
        if mode not in ("development", "production"):
            raise ConfigError(f"BAONHUNG_ENV must be 'development' or 'production', not {mode!r}")
        data_dir = Path(env.get("BAONHUNG_DATA_DIR", "./var")).resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'baonhung.sqlite3'}"
        secret = env.get("BAONHUNG_SECRET_KEY", "")
        if not secret:
            if mode == "production":
                raise ConfigError(
                    "BAONHUNG_SECRET_KEY is required when BAONHUNG_ENV=production "
                    "(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')"
                )
            secret = DEV_SECRET
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            secret_key=secret,
            env=mode,
            storage_backend=_choice(env, "BAONHUNG_STORAGE", "local", ("local", "s3")),
            **_s3_settings(env),
            base_url=env.get("BAONHUNG_BASE_URL", "").rstrip("/"),
            login_max_failures=_ranged(env, "BAONHUNG_LOGIN_MAX_FAILURES", 5, 1, 1000),
            login_lock_seconds=_ranged(env, "BAONHUNG_LOGIN_LOCK_SECONDS", 300, 1, 7 * 86400),
            login_max_address_failures=_ranged(env, "BAONHUNG_LOGIN_MAX_ADDRESS_FAILURES", 20, 1, 100_000),
            recognize_rate_per_minute=_ranged(env, "BAONHUNG_RECOGNIZE_RATE", 1200, 1, 1_000_000),
            recognize_session_rate_per_minute=_ranged(env, "BAONHUNG_RECOGNIZE_SESSION_RATE", 300, 1, 1_000_000),
            trusted_proxies=_ranged(env, "BAONHUNG_TRUSTED_PROXIES", 0, 0, 10),
            accel_redirect=_accel_redirect(env),
            ratelimit_storage=_ratelimit_storage(env),
            max_request_mb=_ranged(env, "BAONHUNG_MAX_REQUEST_MB", 210, 1, 4096),
            events_url=env.get("BAONHUNG_EVENTS_URL", ""),
            events_ingest_url=env.get("BAONHUNG_EVENTS_INGEST_URL", ""),
            events_retention_days=_ranged(env, "BAONHUNG_EVENTS_RETENTION_DAYS", 90, 8, 36500),
            events_rate_per_minute=_ranged(env, "BAONHUNG_EVENTS_RATE", 600, 1, 1_000_000),
            events_session_rate_per_minute=_ranged(env, "BAONHUNG_EVENTS_SESSION_RATE", 30, 1, 1_000_000),
            events_ack=_choice(env, "BAONHUNG_EVENTS_ACK", "committed", ("committed", "queued")),
            events_queue_max=_ranged(env, "BAONHUNG_EVENTS_QUEUE_MAX", 50_000, 100, 1_000_000),
            smtp_host=env.get("BAONHUNG_SMTP_HOST", "").strip(),
            smtp_port=_ranged(env, "BAONHUNG_SMTP_PORT", 587, 1, 65535),
            smtp_user=env.get("BAONHUNG_SMTP_USER", ""),
            smtp_password=env.get("BAONHUNG_SMTP_PASSWORD", ""),
            smtp_tls=_choice(env, "BAONHUNG_SMTP_TLS", "starttls", ("starttls", "ssl", "none")),
            mail_from=env.get("BAONHUNG_MAIL_FROM", "") or "Báo Nhúng <no-reply@localhost>",
            premium_url_ttl_s=_ranged(env, "BAONHUNG_PREMIUM_URL_TTL", 300, 30, 600),
            entitlements_secret=_entitlements_secret(env),
            readers_database_url=env.get("BAONHUNG_READERS_DATABASE_URL", "").strip(),
            queue_url=_queue_url(env),
            node_tools=_node_tools(env),
            extra=_upload_limits_env(env),
        )


def _node_tools(env: dict) -> NodeTools:
    """``BAONHUNG_NODE`` (an executable file) and ``BAONHUNG_NODE_MODULES`` (a directory), when set."""
    node = env.get("BAONHUNG_NODE", "").strip()
    if node and not (os.path.isfile(node) and os.access(node, os.X_OK)):
        raise ConfigError(f"BAONHUNG_NODE must be the path of the node executable, not {node!r}")
    modules = env.get("BAONHUNG_NODE_MODULES", "").strip()
    if modules and not Path(modules).is_dir():
        raise ConfigError(f"BAONHUNG_NODE_MODULES must be a node_modules directory, not {modules!r}")
    return NodeTools(node=node, node_modules=Path(modules).resolve() if modules else NodeTools().node_modules)


def _upload_limits_env(env: dict) -> dict[str, str]:
    """The ``BAONHUNG_MAX_*`` variables, each a positive number (upload limits: builder.importers.UploadLimits)."""
    out = {}
    for name, raw in env.items():
        if not name.startswith("BAONHUNG_MAX_") or raw.strip() == "":
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {raw!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{name} must be a positive number, not {raw!r}")
        out[name] = raw
    return out


def _ratelimit_storage(env: dict) -> str:
    value = env.get("BAONHUNG_RATELIMIT_STORAGE", "").strip() or "memory://"
    if not re.match(r"^[a-z][a-z0-9+.-]*://", value):
        raise ConfigError(f"BAONHUNG_RATELIMIT_STORAGE must be memory:// or a storage URL such as "
                          f"redis://host:6379, not {value!r}")
    return value


def _accel_redirect(env: dict) -> str:
    """``BAONHUNG_ACCEL_REDIRECT``: empty (the app sends artifact bodies itself), or the path of nginx's internal
    location aliasing the local store, ``/`` at both ends (deploy/nginx-baonhung.conf.template: ``/_store/``)."""
    value = env.get("BAONHUNG_ACCEL_REDIRECT", "").strip()
    if value and not re.fullmatch(r"/(?:[A-Za-z0-9_-]+/)+", value):
        raise ConfigError(f"BAONHUNG_ACCEL_REDIRECT must be empty or an internal location such as /_store/, "
                          f"not {value!r}")
    return value


def _queue_url(env: dict) -> str:
    value = env.get("BAONHUNG_QUEUE_URL", "").strip()
    if value and not value.startswith(("redis://", "rediss://", "postgresql://", "postgresql+psycopg://")):
        raise ConfigError(f"BAONHUNG_QUEUE_URL must be empty (SQLite under the data directory), redis://… or "
                          f"postgresql://…, not {value!r}")
    return value


def _entitlements_secret(env: dict) -> str:
    value = env.get("BAONHUNG_ENTITLEMENTS_SECRET", "").strip()
    if value and len(value) < 32:
        raise ConfigError("BAONHUNG_ENTITLEMENTS_SECRET must be at least 32 characters "
                          "(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')")
    return value


S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's bucket naming rules (3-63 characters)
S3_REGION_RE = re.compile(r"^[a-z0-9-]{1,32}$")
S3_PREFIX_RE = re.compile(r"^((?!\.\.?/)[A-Za-z0-9._-]{1,64}/){0,4}$")  # empty, or up to 4 path segments ending in "/"


def _s3_settings(env: dict) -> dict:
    """The S3 store's settings; ConfigError naming the variable when one is malformed, or when BAONHUNG_STORAGE=s3
    lacks a bucket or has only one of the two keys."""
    out = {
        "s3_endpoint": env.get("BAONHUNG_S3_ENDPOINT", "").strip().rstrip("/"),
        "s3_bucket": env.get("BAONHUNG_S3_BUCKET", "").strip(),
        "s3_region": env.get("BAONHUNG_S3_REGION", "").strip() or "us-east-1",
        "s3_access_key": env.get("BAONHUNG_S3_ACCESS_KEY", "").strip(),
        "s3_secret_key": env.get("BAONHUNG_S3_SECRET_KEY", "").strip(),
        "s3_prefix": env.get("BAONHUNG_S3_PREFIX", "blobs/").strip(),
    }
    endpoint = out["s3_endpoint"]
    if endpoint:
        parsed = urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/") \
                or parsed.query or parsed.username:
            raise ConfigError(f"BAONHUNG_S3_ENDPOINT must be http(s)://host[:port], not {endpoint!r}")
    if out["s3_bucket"] and not S3_BUCKET_RE.match(out["s3_bucket"]):
        raise ConfigError("BAONHUNG_S3_BUCKET must be 3-63 lowercase letters, digits, dots and hyphens, "
                          f"not {out['s3_bucket']!r}")
    if not S3_REGION_RE.match(out["s3_region"]):
        raise ConfigError(f"BAONHUNG_S3_REGION must be a region name such as ap-southeast-1, not {out['s3_region']!r}")
    if not S3_PREFIX_RE.match(out["s3_prefix"]):
        raise ConfigError(f"BAONHUNG_S3_PREFIX must be empty or path segments ending in '/', not {out['s3_prefix']!r}")
    if bool(out["s3_access_key"]) != bool(out["s3_secret_key"]):
        raise ConfigError("BAONHUNG_S3_ACCESS_KEY and BAONHUNG_S3_SECRET_KEY go together: set both, or neither")
    storage = env.get("BAONHUNG_STORAGE", "").strip().lower()
    if storage == "s3" and not out["s3_bucket"]:
        raise ConfigError("BAONHUNG_STORAGE=s3 needs BAONHUNG_S3_BUCKET")
    return out


def _choice(env: dict, name: str, default: str, choices: tuple[str, ...]) -> str:
    """A setting among ``choices``; ConfigError (naming it and them) otherwise."""
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _ranged(env: dict, name: str, default: int, low: int, high: int) -> int:
    """An integer setting within [low, high]; ConfigError (naming it) otherwise."""
    raw = env.get(name, "")
    try:
        value = int(raw) if raw != "" else default
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {value}")
    return value
