#!/usr/bin/env bash
# make audit: known vulnerabilities in the pinned Python packages (pip-audit, against requirements.lock) and the npm
# packages (npm audit, against package-lock.json). Both ask an advisory service on the internet; where the network
# does not reach it (as on the project's build machines) each says so plainly instead of failing or passing silently.
# Exit status: 1 when vulnerabilities were found, 0 otherwise (checked clean, or could not check: see the message).
set -uo pipefail
cd "$(dirname "$0")/.."
found=0
unreachable="could not reach its advisory service (no network to it from here): not checked"

echo "== pip-audit (requirements.lock)"
out=$(.venv/bin/python -m pip_audit -r requirements.lock --progress-spinner off --disable-pip --no-deps 2>&1); rc=$?
skipped=$(echo "$out" | grep -c "could not be audited")
if [ "$skipped" -gt 0 ]; then
  # pip-audit says "No known vulnerabilities found" even when it could look none of them up
  echo "pip-audit $unreachable ($skipped of $(grep -c '==' requirements.lock) packages could not be looked up)"
  [ $rc -ne 0 ] && { echo "$out" | grep -v "could not be audited"; found=1; }
elif [ $rc -eq 0 ]; then echo "$out" | tail -3
elif echo "$out" | grep -qiE "connection|resolve|timed out|network|Max retries|HTTPSConnectionPool"; then
  echo "pip-audit $unreachable"
else echo "$out"; found=1; fi

echo "== npm audit (package-lock.json)"
out=$(npm audit --omit=dev 2>&1); rc=$?
if [ $rc -eq 0 ]; then echo "$out" | tail -3
elif echo "$out" | grep -qiE "ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|network|audit endpoint returned an error"; then
  echo "npm audit $unreachable"
else echo "$out"; found=1; fi
exit $found
