#!/usr/bin/env bash
# ONE device call for the single-expert MLP fast path on the lent GPU (H200: torch 2.11,
# Triton 3.6, nvcc 13; about 6-7 min), from the repository root:
#   bash bench/fused_mlp_h200.sh
# Steps: build the CUDA one-launch kernel (csrc/), GPU tests of kernels and layers, tune the
# Triton v2 kernel (bounded candidate set) for the four shards, measure cuBLAS / Triton v2 /
# CUDA one-launch per M bucket and write the dispatch table, then bench every impl with that
# table (layer_default = what SingleExpertMoE runs).  sglang's fused_experts baseline runs
# only if the sglang wheels are carried in .whl/ (../shared/tools/device-wheels.sh .whl) and
# git is present (the patched overlay); otherwise the bench skips it and says so.
# Writes to $OUT (6 files):
#   run.log                              everything printed (tests, build, tables, summary)
#   fused_mlp_tune_<GPU>.jsonl           tuning candidates
#   fused_mlp_dispatch_<GPU>.jsonl       dispatch measurements (repeated graph medians)
#   fused_mlp_<GPU>.jsonl                bench records (commit as bench/results/fused_mlp_<GPU>.jsonl)
#   device_name=<GPU>.json               launch table   } commit both into
#   dispatch_device_name=<GPU>.json      dispatch table } sglang_ext/kernels/configs/triton_<ver>/
set -uo pipefail
OUT=${OUT:-/tmp/fused_mlp_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
export PYTHONUNBUFFERED=1 SGLANG_EXT_CACHE=/tmp/sxcache NCCL_NVLS_ENABLE=0
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
CFG=/tmp/fused_mlp_cfg
rm -rf "$CFG" && mkdir -p "$CFG"
export SGLANG_EXT_FUSED_MLP_CONFIG_DIR=$CFG   # tables are written and read here, then copied
T0=$(date +%s)
step() { echo; echo "=== $* (t=$(( $(date +%s) - T0 )) s, $(date +%T))"; }
TAG=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '_'))")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
which nvcc ninja git

SGLANG=--no-sglang
if ls .whl/*.whl >/dev/null 2>&1 && which git >/dev/null; then
  step install sglang wheels for the baseline
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site && SGLANG=
fi

step build the CUDA one-launch kernel
timeout 90 python3 -c "
from sglang_ext.kernels import cuda_onelaunch as c
c.load()
for s in [(2048, 768), (2048, 96), (4096, 1536), (4096, 192)]:
    print(s, {m: c.plan(m, *s) for m in (1, 32)})"

step GPU tests: kernels and layers
SGLANG_EXT_V4_REPEATS=10 SGLANG_EXT_CUDA_REPEATS=50 timeout 180 python3 -m pytest -q -m gpu \
  -rfE -p no:cacheprovider tests/kernels/test_fused_mlp_*.py tests/layers

step tune Triton v2 'bounded' and write the dispatch table
timeout 150 python3 bench/tune_fused_mlp.py --config-dir "$CFG" --bounded --dispatch \
  --ms 1 8 32 64 256 1024 4096 16384 --repeats 3 \
  --candidates-out "$OUT/fused_mlp_tune_$TAG.jsonl" --dispatch-out "$OUT/fused_mlp_dispatch_$TAG.jsonl"
cp "$CFG"/triton_*/device_name=*.json "$CFG"/triton_*/dispatch_device_name=*.json "$OUT/"

step bench with the new table
timeout 120 python3 bench/bench_fused_mlp.py --modes graph --rep-ms 20 --v4-max-m 4 $SGLANG \
  --output "$OUT/fused_mlp_$TAG.jsonl"

step done
ls -la "$OUT"
