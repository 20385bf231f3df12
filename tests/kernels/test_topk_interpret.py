"""``topk_softmax`` Triton kernel vs a float64 softmax + top-k, CPU interpreter: 1 to 128
experts (60: not a power of two), k 1-8, outputs poisoned before the call.
"""

import pytest
from _standin_interpret import case_ids, check


@pytest.mark.parametrize("case", case_ids("topk"))
def test_topk_softmax_kernel_matches_float64(case):
    check(case)
