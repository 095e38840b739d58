#!/usr/bin/env bash
# The optional mmdet backend of the detection and instance-segmentation tasks
# (discover/tasks/mmdet_backend.py): mmengine, mmcv with its compiled ops, and mmdet.
#
#   bash scripts/mmdet/install.sh [VENV]        # VENV: a virtualenv or conda prefix (.venv)
#   make mmdet                                  # the same for the project's .venv
#
# Why a build: mmdet's detectors need mmcv's compiled ops (mmcv._ext: RoIAlign, NMS), which
# mmcv-lite lacks, and mmcv publishes no wheel for this torch. mmdet 3.3.0 accepts
# mmcv>=2.0.0rc4,<2.2.0, so mmcv 2.1.0 is built from its PyPI sdist, CPU-only, with two fixes:
# its setup.py pins -std=c++14/17 where torch's headers need C++20 (torch's own default), and
# it imports pkg_resources, which recent setuptools (81+) no longer ships, so it is built with
# setuptools 69.5.1 in a small build environment. The wheel is built once into
# ${DISCOVER_WHEEL_CACHE:-~/.cache/discover/wheels}/<key>/ (key: mmcv, torch and Python
# versions, platform) and reused by every later install. Packages already in the environment
# (torch first of all) are held at their versions; a second run only checks.
set -euo pipefail

MMCV_VERSION=2.1.0
MMCV_SDIST_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
MMENGINE_VERSION=0.10.7
MMDET_VERSION=3.3.0
BUILD_REQUIREMENTS=("setuptools==69.5.1" "wheel==0.43.0" "ninja==1.11.1.1")

VENV=${1:-.venv}
PY=$VENV/bin/python
CACHE=${DISCOVER_WHEEL_CACHE:-$HOME/.cache/discover/wheels}
started=$(date +%s)

elapsed() { echo "$(($(date +%s) - started)) s"; }
die() { echo "scripts/mmdet/install.sh: $*" >&2; exit 1; }

[ -x "$PY" ] || die "no Python at $PY (create the environment first: make setup)"
"$PY" -c 'import torch' 2>/dev/null || die "torch is not importable from $PY (make setup)"

# Everything installed and mmcv's compiled ops load: nothing to do.
check() {
  "$PY" - "$MMCV_VERSION" "$MMENGINE_VERSION" "$MMDET_VERSION" <<'PY'
import importlib.metadata as md
import sys

want = dict(zip(("mmcv", "mmengine", "mmdet"), sys.argv[1:], strict=True))
have = {}
for name in want:
    try:
        have[name] = md.version(name)
    except md.PackageNotFoundError:
        have[name] = None
wrong = {n: have[n] for n in want if have[n] != want[n]}
if wrong:
    print("to install: " + ", ".join(f"{n}=={want[n]} (have {wrong[n]})" for n in wrong))
    sys.exit(1)
from mmcv.ops import RoIAlign, nms  # noqa: E402,F401  (the compiled ops)
import mmdet.apis  # noqa: E402,F401

print("present: " + ", ".join(f"{n} {v}" for n, v in have.items()) + " (mmcv ops load)")
PY
}

if check; then
  echo "mmdet backend ready in $VENV ($(elapsed))"
  exit 0
fi

key=$("$PY" - "$MMCV_VERSION" <<'PY'
import sys, sysconfig, torch
tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
print(f"mmcv-{sys.argv[1]}_torch-{torch.__version__}_{tag}_{platform}")
PY
)
cached_dir=$CACHE/$key
wheel=""
if [ -d "$cached_dir" ]; then
  wheel=$(find "$cached_dir" -maxdepth 1 -name "mmcv-$MMCV_VERSION-*.whl" | head -n 1)
fi

if [ -n "$wheel" ]; then
  echo "mmcv wheel from the cache: $wheel"
else
  compiler=${CXX:-c++}  # what torch's extension builder calls
  command -v "$compiler" >/dev/null || die "no C++ compiler ($compiler) to build mmcv (apt-get install g++)"
  mkdir -p "$CACHE"
  work=$(mktemp -d "$CACHE/.build-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "building mmcv $MMCV_VERSION (CPU ops) for $key; log: $work/build.log (15-30 min on 2 cores)"

  # A build environment with the old setuptools mmcv's setup.py needs, that sees the target
  # environment's torch through a .pth file (torch is not installed twice).
  "$PY" -m venv "$work/env"
  "$work/env/bin/python" -m pip install --quiet --disable-pip-version-check "${BUILD_REQUIREMENTS[@]}"
  "$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"]); print(sysconfig.get_paths()["platlib"])' \
    | sort -u > "$("$work/env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz-target.pth"

  "$work/env/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work"
  sdist=$work/mmcv-$MMCV_VERSION.tar.gz
  echo "$MMCV_SDIST_SHA256  $sdist" | sha256sum --check --quiet \
    || die "$sdist: sha256 differs from the pinned $MMCV_SDIST_SHA256"
  tar -xzf "$sdist" -C "$work"
  src=$work/mmcv-$MMCV_VERSION
  sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$src/setup.py"
  if grep -q -E -- '-std=c\+\+1[47]' "$src/setup.py" || ! grep -q -- '-std=c++20' "$src/setup.py"; then
    die "$src/setup.py: could not raise its -std=c++14/17 flags to -std=c++20"
  fi

  build_started=$(date +%s)
  # CUDA_VISIBLE_DEVICES='': CPU ops even on a machine with a GPU (no nvcc needed). The full
  # output goes to the log; ninja's [done/total] counters show progress.
  if ! (cd "$src" && PATH="$work/env/bin:$PATH" MMCV_WITH_OPS=1 FORCE_CUDA=0 CUDA_VISIBLE_DEVICES='' \
        MAX_JOBS=${MAX_JOBS:-$(nproc)} "$work/env/bin/python" -m pip wheel --verbose --no-deps \
        --no-build-isolation --disable-pip-version-check -w "$work/dist" . 2>&1 \
        | tee "$work/build.log" | sed -u -n -E 's|^ *(\[[0-9]+/[0-9]+\]).*|  compiling \1|p'); then
    tail -n 40 "$work/build.log" >&2
    cp "$work/build.log" "$CACHE/mmcv-build-failed.log"
    die "building mmcv failed; full log: $CACHE/mmcv-build-failed.log"
  fi
  built=$(find "$work/dist" -name "mmcv-$MMCV_VERSION-*.whl" | head -n 1)
  [ -n "$built" ] || die "the mmcv build made no wheel (log: $work/build.log)"
  mkdir -p "$cached_dir"
  {
    echo "mmcv $MMCV_VERSION sdist sha256 $MMCV_SDIST_SHA256, -std=c++20, CPU ops"
    echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), $("$compiler" --version | head -n 1)"
    echo "built $(date -u +%FT%TZ) in $(($(date +%s) - build_started)) s with MAX_JOBS=${MAX_JOBS:-$(nproc)}"
  } > "$cached_dir/BUILD_INFO"
  cp "$work/build.log" "$cached_dir/build.log"
  cp "$built" "$cached_dir/.$(basename "$built").tmp"
  mv "$cached_dir/.$(basename "$built").tmp" "$cached_dir/$(basename "$built")"  # atomic
  wheel=$cached_dir/$(basename "$built")
  echo "built $wheel in $(($(date +%s) - build_started)) s"
fi

# mmcv-lite and mmcv both own the mmcv package: keep only the one with the ops.
if "$PY" -m pip show --quiet mmcv-lite >/dev/null 2>&1; then
  echo "replacing mmcv-lite (no compiled ops) by mmcv"
  "$PY" -m pip uninstall --quiet --yes mmcv-lite
fi
# Hold every package already installed at its version (torch, numpy, ...), so that the
# new ones fit the environment rather than the other way round.
constraints=$(mktemp)
"$PY" -m pip freeze --exclude-editable --disable-pip-version-check \
  | grep -E '^[A-Za-z0-9_.-]+==' | grep -v -i -E '^(mmcv|mmcv-lite|mmdet|mmengine)==' > "$constraints" || true
if ! "$PY" -m pip install --quiet --disable-pip-version-check -c "$constraints" \
    "mmengine==$MMENGINE_VERSION" "$wheel" "mmdet==$MMDET_VERSION"; then
  rm -f "$constraints"
  die "pip could not install mmengine/mmcv/mmdet without changing packages of $VENV"
fi
rm -f "$constraints"
check || die "installed, but mmcv's ops or mmdet do not import (see above)"
echo "mmdet backend ready in $VENV ($(elapsed))"
