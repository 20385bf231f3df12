"""Decode-step budget of the one-expert presets on the GPU (issue 10, deliverable 4).

python bench/decode_budget.py                       # both presets, batch 1 8 32 128, 512 in / 32 out
python bench/decode_budget.py --presets qwen3-30b-a3b-1e --batch-sizes 1 32
Records: bench/results/<gpu>/decode_budget.jsonl (config.preset, config.batch_size; metrics
decode_step_ms, prefill_ms, kernels_per_layer_step, gpu_busy_frac, floor_ms, ratio_to_floor).
Any other flag goes to sglang's ServerArgs (e.g. --attention-backend flashinfer).
"""

import sys

from sglang_ext.profile.budget import main

if __name__ == "__main__":
    sys.exit(main())
