#!/usr/bin/env bash
# One GPU call that produces this repo's single-GPU records (run from the repo root on the
# lent H100/H200: torch 2.11, Triton 3.6, no sglang there). Needs the sglang 0.4.7 wheels:
#   bash ../shared/tools/device-wheels.sh .whl     (here; name .whl in the device call's carry)
# Writes records into ${OUT:-bench/results/gpu} (env, device bandwidth, profiler, SP+PP N=1
# over NCCL, single-GPU serving of the Qwen3-30B-A3B one-expert shape with dummy weights).
set -uo pipefail
OUT=${OUT:-bench/results/gpu}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
export SGLANG_EXT_CACHE=/tmp/sxcache
step() { echo; echo "=== $* ($(date +%T))"; }

step install sglang wheels
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
which git || echo "WARNING: no git here: the patch tool needs it"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

step env check
timeout 60 python3 bench/env_check.py --output-file "$OUT/env.jsonl"

step device bandwidth
timeout 90 python3 bench/bw_device.py --output-file "$OUT/bw_device.jsonl"

step SP+PP prefill, N=1, NCCL, Qwen3-30B-A3B one-expert shape
timeout 150 python3 bench/bench_sp_pp.py --device cuda --dummy-preset qwen3-30b-a3b-1e \
  --dtype bfloat16 --nprocs 1 --prompt-lens 4096,16384 --chunk-size 4096 --sglang '' \
  --output "$OUT/sp_pp.jsonl"

step serving: patched sglang on the GPU, dummy 30B-A3B one-expert weights
python3 -c "from sglang_ext.presets import materialize; print(materialize('qwen3-30b-a3b-1e', '/tmp/m30'))"
python3 -m sglang_ext.launch_server \
  --model-path /tmp/m30 --load-format dummy --single-expert-mode tp --port 30000 \
  --mem-fraction-static 0.6 > "$OUT/server.log" 2>&1 &  # sglang's own CUDA-graph sizes
SERVER=$!
for _ in $(seq 100); do
  curl -sf localhost:30000/health >/dev/null && break
  kill -0 $SERVER 2>/dev/null || break
  sleep 2
done
if curl -sf localhost:30000/health >/dev/null; then
  curl -s localhost:30000/generate -H 'Content-Type: application/json' \
    -d '{"text": "Hello", "sampling_params": {"max_new_tokens": 8, "temperature": 0}}'; echo
  timeout 100 python3 bench/serve_load.py --base-url http://127.0.0.1:30000 --qps 8 \
    --num-prompts 64 --sequence-length 512 --output-length 64 \
    --sample-gpu-memory --disable-progress --output-file "$OUT/serve.jsonl"
else
  echo "server did not come up"; tail -40 "$OUT/server.log"
fi
kill $SERVER 2>/dev/null; sleep 5; pkill -9 -f sglang 2>/dev/null
step decode budget and per-layer profile of the served model
timeout 240 python3 bench/decode_budget.py --presets qwen3-30b-a3b-1e --output-file "$OUT/decode_budget.jsonl"
timeout 150 python3 -m sglang_ext.profile --model-path /tmp/m30 --load-format dummy --dtype bfloat16 \
  --single-expert-mode tp --phase decode --batch-size 8 --input-len 512 --steps 3 \
  --mem-fraction-static 0.8 --name p30 --output-dir /tmp/tr30 --output-file "$OUT/profile.jsonl"

step done
