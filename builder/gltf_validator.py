"""Run the Khronos glTF-Validator (npm ``gltf-validator``) on GLB / glTF bytes.

One ``node`` process per call (≈0.3 s): ``builder/js/validate_gltf.mjs`` reads the bytes on stdin and prints the
validator's JSON report. If ``node`` or the npm package is missing, :class:`ValidatorUnavailableError` is raised —
a model is never accepted unchecked.

Note: the validator does not look inside meshopt/Draco-compressed buffers (it reports them as unsupported
extensions); callers that need those checked must decode first.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.config import node_tools
from builder.errors import ValidatorUnavailableError
from builder.procs import limited, node_args

SCRIPT = Path(__file__).resolve().parent / "js" / "validate_gltf.mjs"
# Enough for a 50 MB model on a busy 2-core machine; a hung validator must not hold an upload forever.
TIMEOUT_S = 120
# The validator stops collecting after this many issues; the counts below are then lower bounds.
MAX_ISSUES = 100
# Exit code of validate_gltf.mjs when `gltf-validator` cannot be required.
_EXIT_NO_MODULE = 3
# Severity numbers used by the validator's report.
SEVERITY_NAMES = {0: "error", 1: "warning", 2: "info", 3: "hint"}


@dataclass(frozen=True)
class ValidationReport:
    """The validator's verdict: ``errors == 0`` means valid.

    messages : list of ``{"code", "message", "severity" ("error"|"warning"|"info"|"hint"), "pointer"?,
    "offset"?}`` in the validator's order, errors first.
    info : the validator's ``info`` section (``version``, ``extensionsUsed``, ``animationCount``,
    ``totalTriangleCount``, ...), empty when the input was not glTF at all.
    """

    errors: int
    warnings: int
    messages: list[dict]
    infos: int = 0
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def first_messages(self, n: int = 3, min_severity: str = "error") -> list[str]:
        """Up to ``n`` messages as ``"CODE: text (pointer)"`` of at least ``min_severity``."""
        order = ["error", "warning", "info", "hint"]
        allowed = set(order[: order.index(min_severity) + 1])
        out = []
        for m in self.messages:
            if m.get("severity") in allowed:
                where = m.get("pointer") or (f"@{m['offset']}" if "offset" in m else "")
                out.append(f"{m.get('code')}: {m.get('message')}" + (f" ({where})" if where else ""))
                if len(out) == n:
                    break
        return out


def node_binary() -> str:
    """The ``node`` executable (``BAONHUNG_NODE`` through the process's settings, else on PATH), or
    :class:`ValidatorUnavailableError`."""
    node = node_tools().node_binary()
    if not node:
        raise ValidatorUnavailableError("node not found on PATH")
    return node


def _report_from_json(raw: dict[str, Any]) -> ValidationReport:
    if not raw.get("ok"):
        reason = str(raw.get("reason", "not glTF"))
        return ValidationReport(
            errors=1, warnings=0,
            messages=[{"code": "UNRECOGNIZED_FORMAT", "message": reason, "severity": "error"}],
        )
    report = raw["report"]
    issues = report.get("issues", {})
    messages = []
    for m in issues.get("messages", []):
        item = {
            "code": m.get("code"),
            "message": m.get("message"),
            "severity": SEVERITY_NAMES.get(m.get("severity"), str(m.get("severity"))),
        }
        for key in ("pointer", "offset"):
            if key in m:
                item[key] = m[key]
        messages.append(item)
    order = {name: i for i, name in SEVERITY_NAMES.items()}
    messages.sort(key=lambda m: order.get(m["severity"], 9))  # stable: validator order within a severity
    return ValidationReport(
        errors=int(issues.get("numErrors", 0)),
        warnings=int(issues.get("numWarnings", 0)),
        messages=messages,
        infos=int(issues.get("numInfos", 0)),
        info=dict(report.get("info", {})),
    )


def validate_gltf(data: bytes, *, max_issues: int = MAX_ISSUES, timeout_s: float = TIMEOUT_S) -> ValidationReport:
    """Validate GLB or glTF-JSON ``data``; bytes that are not glTF at all give ``errors=1`` (UNRECOGNIZED_FORMAT).

    External URIs are not fetched: they are reported as errors (uploads must be self-contained).
    Raises :class:`ValidatorUnavailableError` when node, the script or the npm package is missing, the process
    crashes or times out.
    """
    if not SCRIPT.is_file():
        raise ValidatorUnavailableError(f"missing {SCRIPT}")
    cmd = [node_binary(), *node_args(), str(SCRIPT), str(int(max_issues))]
    try:
        proc = subprocess.run(cmd, input=bytes(data), capture_output=True, timeout=timeout_s, check=False,
                              preexec_fn=limited(None))
    except subprocess.TimeoutExpired as exc:
        raise ValidatorUnavailableError(f"timed out after {timeout_s:.0f} s") from exc
    except OSError as exc:
        raise ValidatorUnavailableError(f"cannot start node: {exc}") from exc
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode == _EXIT_NO_MODULE:
        raise ValidatorUnavailableError(f"npm package gltf-validator missing ({stderr[:200]})")
    if proc.returncode != 0:
        raise ValidatorUnavailableError(f"node exited with {proc.returncode}: {stderr[:300]}")
    try:
        raw = json.loads(proc.stdout)
    except ValueError as exc:
        raise ValidatorUnavailableError(f"unreadable validator output: {proc.stdout[:200]!r}") from exc
    return _report_from_json(raw)
