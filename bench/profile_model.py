"""Per-layer, per-op profile of the served model: a front of ``python -m sglang_ext.profile``.

python bench/profile_model.py --tp-size 2 --single-expert-mode tp --phase prefill   # CPU, gloo
python bench/profile_model.py --model-path /tmp/m30 --load-format dummy --phase decode \\
    --batch-size 8 --output-file bench/results/h200/profile.jsonl                  # one GPU
Takes sglang's server flags plus --phase, --batch-size, --input-len, --steps, --output-dir,
--output-file, --profile-graph (see ``python -m sglang_ext.profile --help``). On a GPU the
decode steps are profiled eagerly (per-layer attribution) and sglang's CUDA-graph replay of
the same batch is timed unprofiled beside them; bench/profile_h200.sh runs both presets.
"""

import sys

from sglang_ext.profile.launch import main

if __name__ == "__main__":
    sys.exit(main())
