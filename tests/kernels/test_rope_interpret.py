"""Rotary-embedding Triton kernel (in place on strided q/k views of a fused qkv) vs float64,
CPU interpreter: head_dim 32/64/128, full and half rotary_dim, neox and GPT-J pairs,
[T, H*D] and [T, H, D] views, tokens 1/7/33; v must stay untouched.  ``_standin_cases``.
"""

import pytest
from _standin_interpret import case_ids, check


@pytest.mark.parametrize("case", case_ids("rope"))
def test_rope_kernel_matches_float64(case):
    check(case)
