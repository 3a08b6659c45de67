#!/usr/bin/env bash
# Start a local OpenStack Swift (Debian's packages) with its S3 API (s3api + tempauth) for the S3 asset-store tests,
# and print the S3 endpoint as a URL with the test credentials: http://ACCESS:SECRET@127.0.0.1:PORT/
# A single-replica "Swift all in one" on loopback under a temporary directory: rings built with swift-ring-builder,
# one device each for the account, container and object servers, no memcached (the proxy's cache middleware then
# caches nothing; tempauth checks S3 signatures itself). Installs the packages with apt when missing. Idempotent:
# a second call while it runs prints the same URL.
# `scripts/test-swift.sh stop` stops the servers this script started and removes their directory (make test does).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
STATE="${TMPDIR:-/tmp}/baonhung-test-swift"
ACCESS="test%3Atester"  # tempauth user test:tester (the colon URL-quoted)
SECRET="testing"

healthy() {  # the proxy at $1 answers its healthcheck
  python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + 'healthcheck', timeout=2)" "$1" \
    >/dev/null 2>&1
}

stop() {
  if [ -d "$STATE" ]; then
    for pidfile in "$STATE"/run/*.pid; do
      [ -f "$pidfile" ] || continue
      pid=$(cat "$pidfile")
      # only a process of ours: its command line names our configuration directory
      if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$STATE/"; then
        kill "$pid" 2>/dev/null || true
      fi
    done
    sleep 1
    rm -rf "$STATE"
  fi
}

if [ "${1:-}" = stop ]; then
  stop
  exit 0
fi

if [ -f "$STATE/url" ] && healthy "$(sed 's#//[^@]*@#//#' "$STATE/url")"; then
  cat "$STATE/url"
  exit 0
fi
stop

if ! command -v swift-proxy-server >/dev/null || ! command -v swift-object-server >/dev/null \
    || ! command -v swift-ring-builder >/dev/null || ! python3 -c 'import swift.common.middleware.s3api' 2>/dev/null; then
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq swift swift-proxy swift-object swift-container \
    swift-account python3-swift >/dev/null
fi

mkdir -p "$STATE"/{conf,run,log,srv/node/d1}
# four free loopback ports: proxy, account, container, object
read -r PROXY ACCOUNT CONTAINER OBJECT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
CONF="$STATE/conf"
USER_NAME=$(id -un)
cat > "$CONF/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = baonhung-test
swift_hash_path_prefix = baonhung-test
[storage-policy:0]
name = Policy-0
default = yes
EOF
for kind in account container object; do
  port_var=${kind^^}
  port=${!port_var}
  cat > "$CONF/$kind-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
workers = 1
user = $USER_NAME
swift_dir = $CONF
devices = $STATE/srv/node
mount_check = false
log_facility = LOG_LOCAL2
log_level = WARNING
[pipeline:main]
pipeline = $kind-server
[app:$kind-server]
use = egg:swift#$kind
EOF
  (cd "$CONF" && swift-ring-builder "$kind.builder" create 10 1 1 >/dev/null \
    && swift-ring-builder "$kind.builder" add "r1z1-127.0.0.1:$port/d1" 1 >/dev/null \
    && swift-ring-builder "$kind.builder" rebalance >/dev/null)
done
cat > "$CONF/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PROXY
workers = 1
user = $USER_NAME
swift_dir = $CONF
log_level = WARNING
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = $SECRET .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:1
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
for server in account container object proxy; do
  nohup "swift-$server-server" "$CONF/$server-server.conf" >"$STATE/log/$server.log" 2>&1 &
  echo $! > "$STATE/run/$server.pid"
done
for _ in $(seq 1 60); do
  healthy "http://127.0.0.1:$PROXY/" && break
  sleep 0.5
done
if ! healthy "http://127.0.0.1:$PROXY/"; then
  echo "Swift did not start; logs in $STATE/log" >&2
  tail -5 "$STATE"/log/*.log >&2
  exit 1
fi
echo "http://$ACCESS:$SECRET@127.0.0.1:$PROXY/" | tee "$STATE/url"
