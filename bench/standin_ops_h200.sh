#!/usr/bin/env bash
# The sgl_kernel stand-in's ops through flashinfer and through our Triton kernels, on the lent
# H200 (issue 10, deliverable 1): installs flashinfer-python 0.2.6.post1 from the sdist in
# .whl/sdist (pip, no network), restores its carried JIT builds, builds what is missing, runs
# the flashinfer GPU tests, times every op through triton, torch and flashinfer in one run,
# and packs the JIT builds for the next call.
#
#   OUT=... bash bench/standin_ops_h200.sh          (carry .whl and, if present, .gpu-cache)
#
# Files under $OUT: standin_ops_flashinfer.jsonl (one record per op, tokens, hidden, impl; each
# has metrics.triton_us and metrics.flashinfer_us), flashinfer-jit.tgz (the built *.so; copy it
# to .gpu-cache/flashinfer-jit.tgz here and carry .gpu-cache next time), standin_ops_h200.log.
# Without carried builds the JIT step takes ~1-2 min (5 modules, one parallel ninja run);
# with them, seconds.  The rest: ~2 min.
set -uo pipefail
OUT=${OUT:-bench/results/h200}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/standin_ops_h200.log") 2>&1
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
export SGLANG_EXT_FLASHINFER_CACHE=${SGLANG_EXT_FLASHINFER_CACHE:-/tmp/flashinfer-jit}
export MAX_JOBS=${MAX_JOBS:-16}
CARRIED=${FLASHINFER_JIT_TGZ:-.gpu-cache/flashinfer-jit.tgz}
T0=$(date +%s); step() { echo; echo "=== $* (t=$(( $(date +%s) - T0 ))s)"; }
rc=0

step wheels and flashinfer
if [ ! -d /tmp/site/sglang ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
if ! python3 -c "import flashinfer" 2>/dev/null; then
  timeout 180 python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/site \
    .whl/sdist/flashinfer_python-0.2.6.post1.tar.gz || { echo "FAILED: flashinfer install"; exit 1; }
fi
if [ -f "$CARRIED" ]; then
  mkdir -p "$SGLANG_EXT_FLASHINFER_CACHE" && tar -xzf "$CARRIED" -C "$SGLANG_EXT_FLASHINFER_CACHE" \
    && echo "restored $(tar -tzf "$CARRIED" | wc -l) built modules from $CARRIED"
fi

step flashinfer JIT builds of the stand-in modules
timeout 420 python3 -m sglang_ext.compat.flashinfer_jit --build || { echo "FAILED: JIT build"; exit 1; }
(cd "$SGLANG_EXT_FLASHINFER_CACHE" && find . -name '*.so' -print0 | tar --null -czf "$OUT/flashinfer-jit.tgz" -T -)
ls -la "$OUT/flashinfer-jit.tgz"
[ "$(stat -c %s "$OUT/flashinfer-jit.tgz")" -lt 16000000 ] || echo "WARNING: flashinfer-jit.tgz is over 16 MB and will not come back"

step GPU tests: flashinfer provider and the stand-in
SGLANG_EXT_REQUIRE_FLASHINFER=1 timeout 300 python3 -m pytest -m gpu -o addopts="" -p no:cacheprovider \
  -q -rfE --tb=short tests/compat/test_standin_flashinfer_gpu.py tests/compat/test_standin_gpu.py || rc=1

step bench: triton vs torch vs flashinfer, CUDA-graph medians
rm -f "$OUT/standin_ops_flashinfer.jsonl"
timeout 300 python3 bench/bench_standin_ops.py --impls triton torch flashinfer \
  --output "$OUT/standin_ops_flashinfer.jsonl" >/dev/null || { echo "FAILED: bench"; rc=1; }

step flashinfer vs triton
python3 - "$OUT/standin_ops_flashinfer.jsonl" <<'EOF'
import json, sys
from pathlib import Path

p = Path(sys.argv[1])
print(f"{'op':22} {'tokens':>6} {'hidden':>6} {'triton us':>10} {'flashinfer us':>14} {'fi/triton':>10}")
for line in p.read_text().splitlines() if p.exists() else []:
    r = json.loads(line)
    c, m = r["config"], r["metrics"]
    if c["impl"] != "triton":
        continue
    fi = m["flashinfer_us"]
    print(f"{c['op']:22} {c['tokens']:6d} {c['hidden']:6d} {m['triton_us']:10.2f} "
          + (f"{fi:14.2f} {fi / m['triton_us']:10.2f}" if fi else f"{'-':>14} {'-':>10}"))
EOF
echo; echo "done in $(( $(date +%s) - T0 )) s, rc $rc"
exit $rc
