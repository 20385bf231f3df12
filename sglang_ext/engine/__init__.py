"""Native SP+PP prefill engine for Qwen3 / Qwen3-MoE on torch.distributed.

The prompt is cut into chunks that flow through layers split over the ranks (one pipeline
stage each); the KV cache is then spread to every rank (``pairwise`` all_gather or ``ring``),
and every rank decodes redundantly.  Entry points:

* ``torchrun --nproc-per-node N -m sglang_ext.engine --model-path M --chunk-size 128 --sync ring ...``
* ``python -m sglang_ext.engine.launcher --nproc-per-node N -- <same flags>`` (single host)
* :func:`sglang_ext.engine.prefill_engine.run` with a :class:`PrefillConfig`.
"""

from sglang_ext.engine.config import PrefillConfig
from sglang_ext.engine.prefill_engine import EngineResult, PrefillEngine, run, run_in_groups

__all__ = ["PrefillConfig", "PrefillEngine", "EngineResult", "run", "run_in_groups"]
