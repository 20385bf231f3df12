"""Fused q/k head RMSNorm + neox rotary (Triton, in place on the q/k slices of a qkv buffer)
vs float64 norm-then-rope, CPU interpreter: head_dim 32/64/128, tokens 1/7/33, [T, H*D] and
[T, H, D] views; v must stay untouched.  ``_standin_cases``."""

import pytest
from _standin_interpret import case_ids, check


@pytest.mark.parametrize("case", case_ids("qknormrope"))
def test_qk_norm_rope_kernel_matches_float64(case):
    check(case)
