#!/usr/bin/env bash
# Engine N=1 prefill vs sglang 0.4.7's own TP-1 prefill, measured in the same run (issue 12):
# Qwen3-30B-A3B one-expert shape, dummy bf16 weights, prompts 4096 and 16384, chunk 4096.
# Needs: one CUDA GPU, sglang_ext + sglang 0.4.7 importable (PYTHONPATH), $OUT. No internet.
# Writes $OUT/sp_pp.jsonl (2 sp_pp_sglang records, then 2 sp_pp records whose metrics carry
# ratio_to_sglang, sglang_prefill_s and sglang_command) and $OUT/sglang_tp1.log.
# Budget: checkpoint ~30 s, server start ~60 s (no CUDA graphs: prefill never runs in one),
# engine 2 x ~30 s; the timeout (270 s) ends it well inside 5 minutes.
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
cd "$(dirname "$0")/.."
T0=$(date +%s)
timeout 270 python3 bench/bench_sp_pp.py --device cuda --dummy-preset qwen3-30b-a3b-1e \
    --dtype bfloat16 --nprocs 1 --prompt-lens 4096,16384 --chunk-size 4096 --repeats 3 \
    --sglang tp1 --sglang-flags=--disable-cuda-graph --sglang-log-dir "$OUT" \
    --output "$OUT/sp_pp.jsonl" 2>&1 | grep -E "P=|Error|error|Traceback" | tail -20
rc=${PIPESTATUS[0]}
echo "bench_sp_pp exit $rc after $(( $(date +%s) - T0 )) s"
python3 - "$OUT/sp_pp.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    m, c = r["metrics"], r["config"]
    if r["bench"] == "sp_pp":
        print(f"P={c['prompt_len']} engine {m['measured_prefill_s']:.4f}s "
              f"sglang {m.get('sglang_prefill_s')} ratio_to_sglang {m.get('ratio_to_sglang')}")
PY
exit $rc
