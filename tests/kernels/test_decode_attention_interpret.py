"""One-launch Qwen3 decode attention (q/k norm, rotary, KV-cache write, split-KV attention,
merge of the splits) vs float64 from the definitions, CPU interpreter: 1-5 sequences of 1-529
tokens, 1-16 query heads per KV head, head_dim 32/64/128, 2-16 splits; NaN in the new
token's cache rows and the split buffers, two launches on one set of counters.  Also the
plain-torch reference against the same float64.  ``_standin_cases``."""

import pytest
from _standin_interpret import case_ids, check


@pytest.mark.parametrize("case", case_ids("decodeattn"))
def test_decode_attention_kernel_matches_float64(case):
    check(case)


def test_refusals():
    import torch

    from sglang_ext.kernels.decode_attention import check_launch, tickets

    assert check_launch(32, 4, 128) is None
    assert "multiple" in check_launch(30, 4, 128)
    assert "at most 32" in check_launch(128, 2, 128)
    assert "even" in check_launch(8, 4, 15)
    t = tickets(torch.device("cpu"), 10)
    assert t.dtype == torch.int32 and t.numel() >= 10 and int(t.count_nonzero()) == 0
    assert tickets(torch.device("cpu"), 5) is t  # kept between launches
