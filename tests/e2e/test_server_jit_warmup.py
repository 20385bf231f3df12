"""The JIT warm-up's batches (launch_server sends them on CUDA) on the real patched server:
sglang 0.4.7 takes each batch of token-id prompts and decodes every prompt's tokens."""

from sglang_ext.serving.jit_warmup import jit_warmup


def test_the_real_server_answers_every_warmup_batch(server_tp1):
    assert jit_warmup(server_tp1.url, deadline_s=120) < 120
