"""Presets: real Qwen3-MoE shapes with one expert, and a synthetic Qwen3-style tokenizer."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from sglang_ext.presets import PRESETS, materialize
from sglang_ext.presets.tokenizer import build_tokenizer, special_token_ids

# The published configs of Qwen/Qwen3-30B-A3B and Qwen/Qwen3-235B-A22B (Hugging Face model
# cards), with the expert count and top-k the pruning changes.
EXPECTED = {
    "qwen3-30b-a3b-1e": dict(
        hidden_size=2048,
        num_hidden_layers=48,
        num_attention_heads=32,
        moe_intermediate_size=768,
        intermediate_size=6144,
    ),
    "qwen3-235b-a22b-1e": dict(
        hidden_size=4096,
        num_hidden_layers=94,
        num_attention_heads=64,
        moe_intermediate_size=1536,
        intermediate_size=12288,
    ),
}
COMMON = dict(
    num_key_value_heads=4,
    head_dim=128,
    vocab_size=151936,
    rope_theta=1e6,
    max_position_embeddings=40960,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    num_experts=1,
    num_experts_per_tok=1,
    norm_topk_prob=True,
    decoder_sparse_step=1,
    mlp_only_layers=[],
    model_type="qwen3_moe",
)
TEXTS = [
    "Hello, world!",
    "  leading spaces\tand tabs\n\nnew lines ",
    "ünïcödé 你好 🤖 ∑x²",
    "def f(x):\n    return x ** 2  # comment",
    "<|im_start|> inline special text",
    "",
]


@pytest.fixture(scope="module")
def preset_dirs(tmp_path_factory):
    return {name: materialize(name, tmp_path_factory.mktemp(name)) for name in PRESETS}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_shapes(preset_dirs, name):
    assert set(PRESETS) == set(EXPECTED)
    cfg = AutoConfig.from_pretrained(preset_dirs[name])
    assert type(cfg).__name__ == "Qwen3MoeConfig"
    for key, want in {**COMMON, **EXPECTED[name]}.items():
        assert getattr(cfg, key) == want, f"{name}: {key}={getattr(cfg, key)!r}, want {want!r}"
    # The module shapes HF builds from it (meta device: no memory).
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    layer = model.model.layers[0]
    h, moe_i = cfg.hidden_size, cfg.moe_intermediate_size
    assert layer.mlp.gate.weight.shape == (1, h)
    assert len(layer.mlp.experts) == 1
    assert layer.mlp.experts[0].gate_proj.weight.shape == (moe_i, h)
    assert layer.mlp.experts[0].down_proj.weight.shape == (h, moe_i)
    assert layer.self_attn.q_proj.weight.shape == (cfg.num_attention_heads * 128, h)
    assert layer.self_attn.k_proj.weight.shape == (4 * 128, h)
    assert model.lm_head.weight.shape == (151936, h)
    gen = json.loads((preset_dirs[name] / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [151645, 151643]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tokenizer_round_trip_and_chat_template(preset_dirs, name):
    d = preset_dirs[name]
    tok = AutoTokenizer.from_pretrained(d)
    cfg = AutoConfig.from_pretrained(d)
    assert len(tok) == 151669 <= cfg.vocab_size
    assert tok.convert_tokens_to_ids("<|im_end|>") == tok.eos_token_id == cfg.eos_token_id == 151645
    assert tok.convert_tokens_to_ids("<|endoftext|>") == tok.pad_token_id == cfg.bos_token_id
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        assert max(ids, default=0) < len(tok)
        assert tok.decode(ids) == text, f"round trip of {text!r}"
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    want = (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert rendered == want
    no_think = tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert no_think == want + "<think>\n\n</think>\n\n"
    ids = tok.apply_chat_template(messages, add_generation_prompt=True)
    assert ids[0] == 151644 and ids.count(151645) == 2, "special tokens must encode as one id"


def test_build_tokenizer_deterministic_fast_small(tmp_path):
    t0 = time.process_time()
    a = build_tokenizer(tmp_path / "a", vocab_size=300)
    cpu_s = time.process_time() - t0
    b = build_tokenizer(tmp_path / "b", vocab_size=300)
    files = sorted(p.name for p in a.iterdir())
    assert files == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    for f in files:
        assert (
            hashlib.sha256((a / f).read_bytes()).digest()
            == hashlib.sha256((b / f).read_bytes()).digest()
        )
    # CPU time of this process (the tokenizers trainer's threads included), which other
    # processes on a busy machine do not inflate the way they do wall time; ~0.1 s idle.
    # 5 s still catches a trainer that grew a large corpus or many merges.
    assert cpu_s < 5.0, f"build_tokenizer used {cpu_s:.1f} s of CPU"
    tok = AutoTokenizer.from_pretrained(a)
    assert len(tok) == 326 and tok.eos_token_id == special_token_ids(300)["<|im_end|>"] == 302
    for text in TEXTS:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    with pytest.raises(ValueError, match="too small"):
        build_tokenizer(tmp_path / "c", vocab_size=100)


def test_materialize_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown preset .* qwen3-30b-a3b-1e"):
        materialize("qwen3-7b", tmp_path / "x")
    (tmp_path / "model.safetensors").write_bytes(b"real weights")
    with pytest.raises(FileExistsError, match="other files"):
        materialize("qwen3-30b-a3b-1e", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_sglang_loaders_accept_preset(preset_dirs):
    """sglang 0.4.7's own config/tokenizer loaders (what --model-path goes through)."""
    from sglang.srt.hf_transformers_utils import get_config, get_context_length, get_tokenizer

    d = str(preset_dirs["qwen3-30b-a3b-1e"])
    cfg = get_config(d, trust_remote_code=False)
    tok = get_tokenizer(d)
    assert (cfg.num_experts, cfg.num_experts_per_tok, cfg.hidden_size) == (1, 1, 2048)
    assert get_context_length(cfg) == 40960
    assert tok.eos_token_id == 151645 and len(tok) == 151669
