"""Gated-activation Triton kernel (silu/gelu/gelu_tanh ``_and_mul``) vs float64, CPU
interpreter: tokens 1/7/33, d 96 and 1000 (masked), strided rows, NaN-filled outputs.
"""

import pytest
from _standin_interpret import case_ids, check


@pytest.mark.parametrize("case", case_ids("act"))
def test_gated_activation_kernel_matches_float64(case):
    check(case)
