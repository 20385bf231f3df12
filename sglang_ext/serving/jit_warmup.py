"""Batch shapes a served model meets first, prefilled once before the server says ready.

On CUDA the Triton kernels (ours and sglang's) compile on first use for each
specialisation of their integer arguments: Triton keys a kernel on whether each int is 1,
divisible by 16, or neither. sglang's own warm-up prefills one 3-token request, and its
CUDA-graph capture covers the decode batch sizes, so the first real prefills (a 512-token
prompt, two prompts at once, an odd total) each compiled new variants while requests waited:
the first serving run on a fresh H200 stalled up to 2.2 s (median TPOT 4.7-6.0 ms against
3.6 ms on a second run of the same server, ``bench/results/h200/serve.jsonl``).

:func:`jit_warmup` sends :data:`WARMUP_BATCHES` to the server's ``/generate`` (token ids, so
no tokenizer is needed): one prompt whose length is a multiple of 16, two such prompts, and
three prompts of an odd total, each decoding a few tokens. ``launch_server`` runs it on CUDA
only, after sglang's warm-up and before it reports ready.
"""

from __future__ import annotations

import logging
import time

from sglang_ext.net import post_json

__all__ = ["WARMUP_BATCHES", "jit_warmup"]

logger = logging.getLogger(__name__)

WARMUP_BATCHES: tuple[tuple[int, ...], ...] = ((64,), (48, 48), (17, 33, 51))
"""Prompt lengths of each warm-up request: prefill totals 64 (one prompt), 96 (two) and 101
(three): divisible by 16 with batch 1 and 2, and neither with batch 3."""
NEW_TOKENS = 4


def _ids(n: int, salt: int) -> list[int]:
    return [10 + (7 * i + 13 * salt) % 990 for i in range(n)]  # ids < 1000: in any vocabulary


def jit_warmup(base_url: str, *, api_key: str | None = None, deadline_s: float = 300.0) -> float:
    """Send the warm-up batches one after another; returns the seconds taken. Raises
    RuntimeError naming the batch when one fails or the deadline passes."""
    t0 = time.monotonic()
    for k, lens in enumerate(WARMUP_BATCHES):
        left = deadline_s - (time.monotonic() - t0)
        if left <= 0:
            raise RuntimeError(
                f"JIT warm-up: past its {deadline_s:.0f} s deadline before batch {lens}"
            )
        body = {
            "input_ids": [_ids(n, k * 10 + j) for j, n in enumerate(lens)],
            "sampling_params": {"max_new_tokens": NEW_TOKENS, "temperature": 0, "ignore_eos": True},
        }
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            out = post_json(base_url.rstrip("/") + "/generate", body, timeout=left, headers=auth)
        except (OSError, ValueError) as e:  # urllib's errors and timeouts; a non-JSON answer
            raise RuntimeError(
                f"JIT warm-up: the batch of prompt lengths {lens} failed: {e}"
            ) from e
        got = (
            [(o.get("meta_info") or {}).get("completion_tokens") for o in out]
            if isinstance(out, list)
            else []
        )
        if got != [NEW_TOKENS] * len(lens):
            raise RuntimeError(f"JIT warm-up: the batch {lens} answered {str(out)[:300]}")
    took = time.monotonic() - t0
    logger.info("JIT warm-up: %d batches in %.1f s", len(WARMUP_BATCHES), took)
    return took
