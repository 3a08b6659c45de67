#!/usr/bin/env python3
"""Call Báo Nhúng's entitlements API as a payment system would: standard library only, copy it into yours.

    BAONHUNG_ENTITLEMENTS_SECRET=... python3 scripts/entitlements_example.py http://localhost:8000 \\
        grant ban-doc@example.vn --publication bao-yen-bai --days 30 --reference "order 88213"
    BAONHUNG_ENTITLEMENTS_SECRET=... python3 scripts/entitlements_example.py http://localhost:8000 \\
        revoke ban-doc@example.vn --publication bao-yen-bai

The signature: X-BaoNhung-Signature = "sha256=" + hex HMAC-SHA256(secret, timestamp + "\\n" + nonce + "\\n" + body),
over the exact bytes sent as the body; the timestamp (unix seconds) within 300 s of the server's clock; a new nonce
every request (16-64 characters of A-Z a-z 0-9 _ -). See docs/PREMIUM.md.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request


def signed_headers(secret: str, body: bytes) -> dict:
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(16)
    mac = hmac.new(secret.encode(), timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body, hashlib.sha256)
    return {"Content-Type": "application/json", "X-BaoNhung-Timestamp": timestamp, "X-BaoNhung-Nonce": nonce,
            "X-BaoNhung-Signature": "sha256=" + mac.hexdigest()}


def call(base_url: str, secret: str, payload: dict) -> tuple[int, dict]:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(base_url.rstrip("/") + "/api/v1/entitlements", data=body, method="POST",
                                     headers=signed_headers(secret, body))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:  # 4xx: {"error": code, "message": text}
        return refused.code, json.loads(refused.read() or b"{}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("action", choices=("grant", "revoke"))
    parser.add_argument("email", help="the reader's email (or use --external-id)")
    parser.add_argument("--external-id")
    parser.add_argument("--publication", help="slug; omitted: every publication")
    parser.add_argument("--days", type=int, help="omitted: no end")
    parser.add_argument("--reference", default="")
    args = parser.parse_args(argv)
    secret = os.environ.get("BAONHUNG_ENTITLEMENTS_SECRET", "")
    if not secret:
        parser.error("set BAONHUNG_ENTITLEMENTS_SECRET to the server's secret")
    payload = {"action": args.action, "email": args.email, "publication": args.publication,
               "reference": args.reference}
    if args.external_id:
        payload["external_id"] = args.external_id
    if args.action == "grant":
        payload["days"] = args.days
    status, answer = call(args.base_url, secret, payload)
    print(status, json.dumps(answer, ensure_ascii=False, indent=2))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
