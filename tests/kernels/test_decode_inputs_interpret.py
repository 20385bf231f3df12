"""``decode_inputs`` (a decode step's bookkeeping in one launch each) vs sglang 0.4.7's own
ops (``decode_inputs_ref``) and a case by hand, CPU interpreter: the ``req_to_token`` write
and ``seq_lens + 1`` in place and not, 0 to 300 requests (two programs); the graph inputs'
copies and padding with sglang's buffer dtypes.  Bad shapes get a clear error, not a launch.
"""

import pytest
import torch
from _standin_interpret import case_ids, check

from sglang_ext.kernels.decode_inputs import advance_decode, copy_graph_inputs


@pytest.mark.parametrize("case", case_ids("decodeinputs"))
def test_decode_inputs_kernel_matches_sglang_ops(case):
    check(case)


def test_a_float_or_strided_tensor_is_refused_before_any_launch():
    table = torch.zeros(4, 8, dtype=torch.int32)
    ok = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="contiguous 1-D integer"):
        advance_decode(table, ok, torch.zeros(2), ok, in_place=True)
    with pytest.raises(ValueError, match="2-D int32 table"):
        advance_decode(table.long(), ok, ok, ok, in_place=True)
    with pytest.raises(ValueError, match="contiguous 1-D integer"):
        advance_decode(table, torch.zeros(4, dtype=torch.int64)[::2], ok, ok, in_place=True)
    buffers = tuple(torch.zeros(8, dtype=torch.int64) for _ in range(5))
    with pytest.raises(ValueError, match="at most bs=2 rows, got 5, 5 and 3 rows"):
        copy_graph_inputs(buffers, tuple(torch.zeros(3, dtype=torch.int64) for _ in range(5)), 2)
