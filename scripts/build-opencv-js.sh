#!/usr/bin/env bash
# Builds the viewer's small opencv.js (only what viewer_api/static/viewer/tracker.js + pose.js call) with the
# WebAssembly in a separate file, from the OpenCV source in the opencv-python sdist on PyPI and Debian's
# emscripten package. One command, from scratch, on Debian 12 (bookworm), as root or with sudo:
#
#   scripts/build-opencv-js.sh
#
# Writes viewer_api/vendor/opencv/{opencv.js,opencv.wasm,BUILD-INFO.json}.
# Environment knobs (all optional):
#   OPENCV_JS_WORK=DIR   work dir (download, sources, build tree), kept and reused; default /tmp/opencv-js-build,
#                        wiped before and removed after. The outputs are bit-identical only for the same work dir
#                        and python: OpenCV embeds source paths (__FILE__ in CV_Assert) and the build python's path
#                        (getBuildInformation) in the wasm.
#   SKIP_APT=1           do not apt-get (toolchain already installed)
#   PYTHON=...           python used for pip download and build_js.py; default Debian's /usr/bin/python3
#
# Loading the result (emscripten 3.1.6, MODULARIZE=1 with OpenCV's UMD wrapper): the script defines the global
# `cv` as a Promise that resolves to the ready module; the JS asks for the wasm under the name "opencv_js.wasm",
# so map it with Module.locateFile, e.g. before the <script>:
#   var Module = { locateFile: (p) => p.endsWith(".wasm") ? "/v/vendor/opencv/opencv.wasm?v=..." : p };
#   ... then: const cvReady = await window.cv;   // resolves to the module, which has no then()
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
OPENCV_VERSION="4.10.0"
SDIST_VERSION="4.10.0.84"
SDIST="opencv-python-${SDIST_VERSION}.tar.gz"
SDIST_SHA256="72d234e4582e9658ffea8e9cae5b63d488ad06994ef12d81dc303b17472f3526"
BUILD_LIST="core,imgproc,features2d,flann,calib3d,video,js"
CONFIG="$REPO/scripts/opencv_js_tracker_config.py"
OUT="$REPO/viewer_api/vendor/opencv"
PY="${PYTHON:-/usr/bin/python3}"
EMSCRIPTEN_DIR="/usr/share/emscripten"

log() { printf '\n=== %s\n' "$*" >&2; }

# ---- 1. toolchain: Debian's emscripten (3.1.6 on bookworm: clang/lld 14, binaryen, node-acorn) + cmake/make
if [ "${SKIP_APT:-0}" != 1 ]; then
  log "apt-get: emscripten cmake make python3-pip"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y emscripten cmake make python3 python3-pip ca-certificates
fi
# Debian's emcc runs tools/acorn-optimizer.js with `require('acorn')` from the node-acorn package, which lives in
# /usr/share/nodejs: Debian's own node searches there, a nodesource/nvm node does not.
export NODE_PATH="/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}"
export EMSCRIPTEN="$EMSCRIPTEN_DIR"
EMCC_VERSION="$(emcc --version | head -n1)"
log "$EMCC_VERSION"

# ---- 2. sources: the opencv-python sdist carries the OpenCV tree in opencv/
if [ -n "${OPENCV_JS_WORK:-}" ]; then
  WORK="$OPENCV_JS_WORK"; mkdir -p "$WORK"; CLEANUP=0
else
  WORK="/tmp/opencv-js-build"; rm -rf "$WORK"; mkdir -p "$WORK"; CLEANUP=1
fi
mkdir -p "$WORK/dl"
if [ ! -f "$WORK/dl/$SDIST" ]; then
  log "pip download $SDIST"
  # --no-binary only for opencv-python itself: pip prepares the sdist's metadata, and forcing its build deps
  # (numpy, cmake, scikit-build) to source as well fails.
  "$PY" -m pip download --no-deps --no-binary opencv-python "opencv-python==$SDIST_VERSION" -d "$WORK/dl"
fi
echo "$SDIST_SHA256  $WORK/dl/$SDIST" | sha256sum -c -
SRC_TOP="$WORK/src/opencv-python-$SDIST_VERSION"
if [ ! -f "$SRC_TOP/opencv/platforms/js/build_js.py" ]; then
  log "unpack OpenCV tree"
  rm -rf "$WORK/src"; mkdir -p "$WORK/src"
  tar -xzf "$WORK/dl/$SDIST" -C "$WORK/src" "opencv-python-$SDIST_VERSION/opencv"
fi
OPENCV_DIR="$SRC_TOP/opencv"
grep -q "CV_VERSION_MINOR *10" "$OPENCV_DIR/modules/core/include/opencv2/core/version.hpp"

# ---- 3. build: wasm, separate .wasm (no SINGLE_FILE), no SIMD, no threads, -O3 (OpenCV's Release default)
BUILD_DIR="$WORK/build"
CMD=("$PY" "$OPENCV_DIR/platforms/js/build_js.py" "$BUILD_DIR"
     --build_wasm --disable_single_file
     --emscripten_dir "$EMSCRIPTEN_DIR"
     --config "$CONFIG"
     "--cmake_option=-DBUILD_LIST=$BUILD_LIST"
     "--cmake_option=-DBUILD_TESTS=OFF" "--cmake_option=-DBUILD_PERF_TESTS=OFF" "--cmake_option=-DBUILD_EXAMPLES=OFF")
# recorded with $WORK / $REPO in place of this run's directories, so BUILD-INFO.json does not change between runs
CMD_STR="${CMD[*]}"; CMD_STR="${CMD_STR//"$WORK"/\$WORK}"; CMD_STR="${CMD_STR//"$REPO"/\$REPO}"
log "nice -n 19 ${CMD[*]}"
T0=$(date +%s)
nice -n 19 "${CMD[@]}"
T1=$(date +%s)
log "build took $((T1 - T0)) s"

JS="$BUILD_DIR/bin/opencv.js"
WASM="$BUILD_DIR/bin/opencv_js.wasm"   # emcc names it after the CMake target opencv_js; the JS asks for this name
test -s "$JS" && test -s "$WASM"
# separate wasm, not SINGLE_FILE (the runtime always contains the "data:...;base64," prefix string, so test the name)
if ! grep -q 'wasmBinaryFile="opencv_js.wasm"' "$JS"; then
  echo "error: $JS does not load opencv_js.wasm (wasm inlined / SINGLE_FILE?)" >&2; exit 1
fi

# ---- 4. install + BUILD-INFO.json
mkdir -p "$OUT"
install -m 644 "$JS" "$OUT/opencv.js"
install -m 644 "$WASM" "$OUT/opencv.wasm"
"$PY" - "$OUT" "$OPENCV_VERSION" "$SDIST" "$SDIST_SHA256" "$EMCC_VERSION" "$CMD_STR" "$CONFIG" "$REPO" "$BUILD_LIST" <<'EOF'
import hashlib, json, os, sys
out, ver, sdist, sdist_sha, emcc, cmd, config, repo, build_list = sys.argv[1:]
def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()
info = {
    "opencv_version": ver,
    "sdist": {"file": sdist, "sha256": sdist_sha, "source": "PyPI opencv-python"},
    "emscripten_version": emcc,
    "build_command": "nice -n 19 " + cmd,
    "options": {"BUILD_LIST": build_list, "wasm": True, "single_file": False, "simd": False,
                "threads": False, "optimisation": "-O3 (CMAKE_BUILD_TYPE=Release)"},
    "whitelist": {"file": os.path.relpath(config, repo), "sha256": sha(config)},
    "wasm_name_requested_by_js": "opencv_js.wasm",
    "outputs": {name: {"size": os.path.getsize(os.path.join(out, name)), "sha256": sha(os.path.join(out, name))}
                for name in ("opencv.js", "opencv.wasm")},
}
with open(os.path.join(out, "BUILD-INFO.json"), "w") as f:
    json.dump(info, f, indent=2)
    f.write("\n")
print(json.dumps(info["outputs"], indent=2))
EOF

if [ "$CLEANUP" = 1 ]; then rm -rf "$WORK"; fi
log "done: $OUT"
