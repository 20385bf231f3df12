"""RMSNorm / fused-add RMSNorm / q-k norm Triton kernels vs float64, CPU interpreter.

float32 and float16 only (bf16 under the interpreter is garbage; tested on the GPU).  Shapes:
tokens 1, 7, 33; hidden 192 and 2048; head_dim 32/64/128 rows; strided row views; NaN-filled
outputs.  Cases and references: ``_standin_cases``.
"""

import pytest
from _standin_interpret import case_ids, check


@pytest.mark.parametrize("case", case_ids("norm") + case_ids("qknorm"))
def test_norm_kernel_matches_float64(case):
    check(case)
