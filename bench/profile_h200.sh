#!/usr/bin/env bash
# Per-layer GPU profile of the served model, one TP 1 record per one-expert preset
# (Qwen3-30B-A3B and Qwen3-235B-A22B shapes, dummy bf16 weights), decode phase.
# Run from the repo root on the lent H200 after the sglang 0.4.7 wheels are installed
# (torch 2.11, no internet). Records: "$OUT/profile.jsonl"; Chrome traces stay in /tmp.
#
# Each run: sglang's ModelRunner captures its CUDA graphs for the batch (the served decode
# step, timed unprofiled: graph_step_wall_ms), then runs the same batch eagerly, unprofiled
# and under torch.profiler; every kernel is counted in the layer/op whose CPU range launched
# it. Printed: step times, the per-layer sum against the step, the top costs.
set -uo pipefail
OUT=${OUT:-bench/results/h200}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
export SGLANG_EXT_CACHE=${SGLANG_EXT_CACHE:-/tmp/sxcache}
if [ -d /tmp/site ]; then export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}; fi
rc=0
for preset in qwen3-30b-a3b-1e qwen3-235b-a22b-1e; do
  model=/tmp/model-$preset
  echo; echo "=== profile $preset: TP 1, decode, batch 8 x 256, 3 steps ($(date +%T))"
  python3 -c "from sglang_ext.presets import materialize; materialize('$preset', '$model')" || { rc=1; continue; }
  timeout 120 python3 -m sglang_ext.profile --model-path "$model" --load-format dummy \
    --dtype bfloat16 --single-expert-mode tp --mem-fraction-static 0.8 \
    --phase decode --batch-size 8 --input-len 256 --steps 3 --warmup 1 --deadline-s 110 \
    --name "profile-$preset" --output-dir "/tmp/profile-traces/$preset" --output-file "$OUT/profile.jsonl" \
    || { echo "FAILED: $preset (rc $?)"; rc=1; }
done
echo; echo "=== records ($(date +%T))"
python3 - "$OUT/profile.jsonl" <<'EOF'
import json, sys
from pathlib import Path

p = Path(sys.argv[1])
for line in p.read_text().splitlines() if p.exists() else []:
    r = json.loads(line)
    m, c = r["metrics"], r["config"]
    per = m["per_layer_us"]
    head = (f"{Path(c['model_path']).name}: step {m['step_us'] / 1e3:.2f} ms profiled, "
            f"{m['step_wall_ms']:.2f} ms eager, graph replay {m.get('graph_step_wall_ms')} ms")
    if per is None:
        print(head, "| per layer: none:", m.get("per_layer_reason"))
        continue
    print(head, f"| per-layer sum {sum(per) / 1e3:.2f} ms ({sum(per) / m['step_us']:.0%} of step),",
          f"zeros {sum(v == 0 for v in per)}/{len(per)}, GPU busy {m['gpu_busy_us'] / 1e3:.2f} ms,",
          f"{m['gpu_kernels_per_step']:.0f} kernels/step")
    print("  top:", "; ".join(f"{b['name']} {b['us']:.0f} us" for b in m["bottlenecks"][:6]))
EOF
exit $rc
