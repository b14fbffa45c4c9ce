#!/usr/bin/env bash
# The CUDA path on one NVIDIA GPU, installed, tested and measured in one go.
#
#   scripts/gpu_check.sh OUT [--data DIR|DATA.tar.gz] [--wheels DIR] [--budget-s S]
#                            [--gsplat-so FILE] [--steps all|build,tests,...] [--dry-run]
#
# 1. installs instgs' GPU dependencies: from --wheels (offline: gsplat, plyfile, tyro, ...
#    into a private folder on PYTHONPATH; the machine's own CUDA torch is used) or else
#    `pip install -e . gsplat==1.5.3` into the current environment;
# 2. builds gsplat's CUDA ops for this GPU's architecture (TORCH_CUDA_ARCH_LIST, MAX_JOBS =
#    the core count) while the C++ CPU rasterizer compiles beside it, or installs the build an
#    earlier run left (--gsplat-so OUT/gsplat_csrc.so.gz, or WORK/gsplat_build/csrc.so; a
#    path that does not exist is ignored);
# 3. runs scripts/gpu_check.py all: `pytest -m gpu`, gsplat-vs-CPU parity on a fern view,
#    the rasterizer benchmark, ScanNet and fern training on the GPU (+ segment, language,
#    eval), each sized to what is left of --budget-s (default 3600 s); --steps runs some.
# GPU_CHECK_WORK names the work folder (runs, builds; default a fresh /tmp/gpu_check.XXXX).
#
# OUT receives gpu_check.json (the figures), gpu_check.log, parity_fern.png and the packed
# gsplat build. DATA holds llff-fern/ (images_8, poses_bounds.npy, sparse/0),
# scannet/scene0000_00/ (python ../shared/tools/render_scannet_views.py --scene scene0000_00
# --views 80 --width 320 --height 240 --out DATA/scannet) and text_features.json
# (../shared/data/opengaussian-clip-text-features/assets); a .tar.gz of that folder is
# unpacked first. --dry-run rehearses everything on the CPU (no gsplat, 40 training steps).
set -uo pipefail

T0=$(date +%s)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:?usage: scripts/gpu_check.sh OUT [--data D] [--wheels W] [--budget-s S] [--gsplat-so F]}
shift
DATA="$REPO/../shared/data" WHEELS="" BUDGET=3600 SO="" DRY="" STEPS=all
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --budget-s) BUDGET=$2; shift 2 ;;
    --gsplat-so) SO=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --dry-run) DRY=--dry-run; shift ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check.XXXX)}
PY=${PYTHON:-python3}
log() { echo "[gpu_check.sh $(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/gpu_check.log"; }

# 1. dependencies
if [ -n "$WHEELS" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$WHEELS"/*.whl || { log "wheel install failed"; exit 1; }
  export PYTHONPATH="$WORK/site:$REPO${PYTHONPATH:+:$PYTHONPATH}"
elif [ -z "$DRY" ]; then
  "$PY" -m pip install -q -e "$REPO" "gsplat==1.5.3" || { log "pip install failed"; exit 1; }
fi
log "installed; $("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())')"
if [ -z "$DRY" ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$OUT/gpu_check.log" 2>&1
  nvcc --version 2>/dev/null | tail -1 >>"$OUT/gpu_check.log"
  TORCH_CUDA_ARCH_LIST=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
  export TORCH_CUDA_ARCH_LIST
fi
export MAX_JOBS=${MAX_JOBS:-$(nproc)} INSTGS_CACHE_DIR=${INSTGS_CACHE_DIR:-$WORK/cache}

# 2. data (an archive is unpacked once)
if [ -f "$DATA" ]; then
  mkdir -p "$WORK/data" && "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
    "$DATA" "$WORK/data" || { log "cannot unpack $DATA"; exit 1; }
  DATA="$WORK/data"
fi

# 3. the CPU kernel compiles in the background (the parity check and tests need it), then
#    gsplat builds and every measurement runs
( cd "$REPO" && "$PY" -c 'from instgs._native import cpu_ops; cpu_ops()' \
    >>"$OUT/gpu_check.log" 2>&1 && echo "[gpu_check.sh] CPU kernel built" >>"$OUT/gpu_check.log" ) &
[ -n "$SO" ] && [ ! -f "$SO" ] && { log "no $SO: gsplat is built"; SO=""; }
if [ -n "$SO" ] && [ "${SO%.gz}" != "$SO" ]; then
  "$PY" -c 'import gzip, shutil, sys; shutil.copyfileobj(gzip.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$SO" "$WORK/gsplat_csrc.so" && SO="$WORK/gsplat_csrc.so"
fi
cd "$REPO" && "$PY" scripts/gpu_check.py "$STEPS" --out "$OUT" --work "$WORK" --data "$DATA" \
  --budget-s "$BUDGET" --started "$T0" ${SO:+--gsplat-so "$SO"} $DRY
rc=$?
wait
log "done (rc $rc)"
exit $rc
