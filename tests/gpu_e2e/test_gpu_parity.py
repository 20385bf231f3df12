"""The patched server on a CUDA GPU against HF transformers on the same weights.

What the CPU e2e tests cannot show: sglang's CUDA paths (``forward_cuda`` of every layer,
the sgl_kernel stand-in's Triton kernels, the Triton attention backend, CUDA graphs for the
decode batches) give HF's tokens.

* fp32, small one-expert Qwen3-MoE shapes (head_dim 32, 64 and 128; hidden 192, 193 (odd)
  and 256; GQA), ``--single-expert-mode tp`` and ``dp`` at TP 1: every greedy token must be
  HF's arg-max given the same prefix (HF scores sglang's whole sequence in one forward;
  agreeing at every step is the same as agreeing with HF's greedy loop), and the chosen
  tokens' logprobs within 2e-3.  TF32 is off on both sides (``NVIDIA_TF32_OVERRIDE=0``,
  ``TRITON_F32_DEFAULT=ieee``); a step where HF's own top-2 logits lie within 1e-4 may go
  either way and ends the comparison of that sequence (never counted as agreement).
* bf16, the real Qwen3-30B-A3B one-expert shape with 2 layers and random weights: sglang's
  logprobs of every prompt and output token vs HF in float32 on the same bf16 weights, for
  a batch of 4 and a batch of 1 (where patch 0023 runs both RMSNorms inside the linears, as
  the server log must say).  Both cases decode with patch 0024's one-launch attention (the
  log must say so too).
  Stated tolerance: mean |diff| <= max(0.03, 3 x HF-bf16's own mean |diff| to HF-fp32),
  max |diff| <= max(0.25, 3 x HF-bf16's max |diff|).

Prompts go in as token ids (``--skip-tokenizer-init``: random models emit ids past the
local tokenizer's vocabulary).  Run by the lead on the GPU: ``pytest -m gpu tests/gpu_e2e``.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest
import torch

from sglang_ext.perf.serving.server_process import ServerProcess

pytestmark = [pytest.mark.gpu, pytest.mark.slow]  # tests/conftest.py skips gpu without CUDA
MAX_NEW = 16
DEV = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run of the harness only
TIE = 1e-4  # HF top-2 logit gap below which fp32 rounding may pick either token
ONE_LAUNCH = "decode attention: q/k norm, rotary, KV write, attention and the merge"


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def _prompts(vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in (5, 17, 33, 64)]


def _serve(model: Path, dtype: str, mode: str, tmp: Path, env: dict[str, str]) -> ServerProcess:
    cmd = [sys.executable, "-m", "sglang_ext.launch_server", "--model-path", str(model),
           "--port", "{port}", "--tp-size", "1", "--single-expert-mode", mode,
           "--dtype", dtype, "--skip-tokenizer-init", "--cuda-graph-max-bs", "4",
           "--mem-fraction-static", "0.4", "--max-total-tokens", "32768"]  # fmt: skip
    return ServerProcess(cmd, "http://127.0.0.1:{port}", ready_timeout_s=400, env=env,
                         log_path=tmp / "server.log")  # fmt: skip


def _generate(url: str, prompts: list[list[int]]) -> list[dict]:
    """One batched greedy request; per prompt: output ids and prompt/output logprobs."""
    res = _post(url + "/generate", {
        "input_ids": prompts,
        "sampling_params": {"max_new_tokens": MAX_NEW, "temperature": 0, "ignore_eos": True},
        "return_logprob": True,
        "logprob_start_len": 0,
    })  # fmt: skip
    out = []
    for r in res:
        mi = r["meta_info"]
        out.append({
            "ids": [t[1] for t in mi["output_token_logprobs"]],
            "out_lp": [t[0] for t in mi["output_token_logprobs"]],
            "in_lp": [t[0] for t in mi["input_token_logprobs"]][1:],  # first is None
        })  # fmt: skip
    return out


def _hf_model(path: Path, dtype: torch.dtype):
    import transformers
    from transformers import AutoModelForCausalLM

    assert transformers.__version__.startswith("4."), (
        f"transformers {transformers.__version__}: the HF reference needs 4.x (5.x moved "
        "rope_theta into rope_parameters); install 4.52.3 from the device wheels"
    )
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype).to(DEV).eval()


@torch.no_grad()
def _hf_logprobs(model, seq: list[int]) -> torch.Tensor:
    """log_softmax of HF's next-token logits at every position of ``seq``: [len-1, V] fp64."""
    logits = model(torch.tensor([seq], device=DEV)).logits[0, :-1].double()
    return torch.log_softmax(logits, -1).cpu()


# ---- fp32: small shapes, identical greedy tokens ------------------------------------------

SHAPES = {  # name: TinyMoEConfig fields
    "hd32-h192": dict(hidden_size=192, head_dim=32, num_attention_heads=6,
                      num_key_value_heads=2, num_hidden_layers=3, moe_intermediate_size=96),
    "hd64-h193": dict(hidden_size=193, head_dim=64, num_attention_heads=4,
                      num_key_value_heads=2, num_hidden_layers=2, moe_intermediate_size=160),
    "hd128-h256": dict(hidden_size=256, head_dim=128, num_attention_heads=4,
                       num_key_value_heads=4, num_hidden_layers=2, moe_intermediate_size=128),
}  # fmt: skip
CASES = [("hd32-h192", "tp"), ("hd64-h193", "tp"), ("hd128-h256", "dp")]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from sglang_ext.models.tiny import TinyMoEConfig, build_tiny_moe

    root = tmp_path_factory.mktemp("tiny")
    return {n: build_tiny_moe(root / n, TinyMoEConfig(**kw)) for n, kw in SHAPES.items()}


def _check_greedy(got: dict, prompt: list[int], hf_lp: torch.Tensor, what: str) -> int:
    """Assert sglang's tokens are HF's arg-max step by step; returns the steps compared."""
    n = len(prompt)
    torch.testing.assert_close(
        torch.tensor(got["in_lp"], dtype=torch.float64),
        hf_lp[torch.arange(n - 1), torch.tensor(prompt[1:])], rtol=0, atol=2e-3,
        msg=lambda m: f"{what}: prompt logprobs: {m}",
    )  # fmt: skip
    for j, tok in enumerate(got["ids"]):
        row = hf_lp[n - 1 + j]
        top2 = torch.topk(row, 2)
        if tok != int(top2.indices[0]):
            gap = float(top2.values[0] - top2.values[1])
            assert gap < TIE, (
                f"{what}: step {j}: sglang token {tok} (HF logprob {float(row[tok]):.5f}) != "
                f"HF arg-max {int(top2.indices[0])} ({float(top2.values[0]):.5f}), gap {gap:.2e}"
            )
            return j  # a near tie: the sequences may part here
        assert abs(got["out_lp"][j] - float(row[tok])) <= 2e-3, (
            f"{what}: step {j}: logprob {got['out_lp'][j]:.6f} vs HF {float(row[tok]):.6f}"
        )
    return len(got["ids"])


@pytest.mark.parametrize("shape,mode", CASES, ids=[f"{s}-{m}" for s, m in CASES])
def test_fp32_greedy_tokens_match_hf(shape, mode, tiny_models, tmp_path):
    path = tiny_models[shape]
    prompts = _prompts(1000, seed=len(shape))
    env = {"NVIDIA_TF32_OVERRIDE": "0", "TRITON_F32_DEFAULT": "ieee"}
    with _serve(path, "float32", mode, tmp_path, env) as srv:
        batched = _generate(srv.base_url, prompts)
        single = _generate(srv.base_url, prompts[:1])  # batch 1: another decode graph
        padded = _generate(srv.base_url, prompts[1:4])  # 3 of the batch-4 graph's 4 rows
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert f"SingleExpertMoE: mode {mode}, rank 0 of 1" in log
    assert ONE_LAUNCH in log, "the one-launch decode attention (patch 0024) did not run"
    model = _hf_model(path, torch.float32)
    compared = 0
    for i, (p, got) in enumerate(zip(prompts, batched, strict=True)):
        assert len(got["ids"]) == MAX_NEW
        compared += _check_greedy(got, p, _hf_logprobs(model, p + got["ids"]), f"prompt {i}")
    # batch 1 runs another decode graph; it must agree with HF on its own
    _check_greedy(single[0], prompts[0], _hf_logprobs(model, prompts[0] + single[0]["ids"]),
                  "prompt 0 alone")  # fmt: skip
    # 3 requests replay the batch-4 graph with a padded row (its metadata must ignore it)
    for i, got in enumerate(padded, 1):
        _check_greedy(got, prompts[i], _hf_logprobs(model, prompts[i] + got["ids"]),
                      f"prompt {i} in a padded batch")  # fmt: skip
    assert compared >= 0.75 * MAX_NEW * len(prompts), f"only {compared} steps compared"


# ---- bf16: the real 30B-A3B shape, 2 layers, logprobs close ------------------------------


@pytest.fixture(scope="module")
def model_30b_2l(tmp_path_factory):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    from sglang_ext.presets import materialize

    path = materialize("qwen3-30b-a3b-1e", tmp_path_factory.mktemp("m30") / "m")
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(num_hidden_layers=2, max_window_layers=2, initializer_range=0.05)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen3MoeForCausalLM(Qwen3MoeConfig(**cfg)).to(torch.bfloat16)
    model.save_pretrained(path, safe_serialization=True)
    del model
    torch.cuda.empty_cache()
    return path


def test_bf16_30b_shape_logprobs_close_to_hf(model_30b_2l, tmp_path):
    prompts = _prompts(151643, seed=7)
    with _serve(model_30b_2l, "bfloat16", "tp", tmp_path, {}) as srv:
        got = _generate(srv.base_url, prompts)
        got_one = _generate(srv.base_url, prompts[:1])  # batch 1: both norms fused (0023)
    log = (tmp_path / "server.log").read_text(errors="replace")
    # patch 0023 on a shipped gemv table (the H200's): at 1 token both norms sit inside the
    # linears.  A GPU without a table (the H100) runs cuBLAS and the separate norms
    from sglang_ext.kernels.tables import present_tables

    if "gemv" in present_tables(torch.cuda.get_device_name()):
        assert "input norm inside qkv_proj, post-attention norm inside the expert" in log, (
            "the fused decoder layer (patch 0023) did not run with both norms fused"
        )
    assert ONE_LAUNCH in log, "the one-launch decode attention (patch 0024) did not run"
    prompts, got = prompts + prompts[:1], got + got_one
    diffs, calib = [], []
    hf32 = _hf_model(model_30b_2l, torch.float32)
    refs = [_hf_logprobs(hf32, p + g["ids"]) for p, g in zip(prompts, got, strict=True)]
    del hf32
    hf16 = _hf_model(model_30b_2l, torch.bfloat16)
    for p, g, ref in zip(prompts, got, refs, strict=True):
        seq = p + g["ids"]
        pick = torch.tensor(seq[1:])
        want = ref[torch.arange(len(seq) - 1), pick]
        mine = torch.tensor(g["in_lp"] + g["out_lp"], dtype=torch.float64)
        assert torch.isfinite(mine).all(), "non-finite sglang logprobs"
        diffs.append((mine - want).abs())
        calib.append((_hf_logprobs(hf16, seq)[torch.arange(len(seq) - 1), pick] - want).abs())
    d, c = torch.cat(diffs), torch.cat(calib)
    mean_tol, max_tol = max(0.03, 3 * float(c.mean())), max(0.25, 3 * float(c.max()))
    assert float(d.mean()) <= mean_tol and float(d.max()) <= max_tol, (
        f"sglang bf16 vs HF fp32 logprobs: mean |diff| {float(d.mean()):.4f} (tol "
        f"{mean_tol:.4f}), max {float(d.max()):.4f} (tol {max_tol:.4f}); HF bf16's own: "
        f"mean {float(c.mean()):.4f}, max {float(c.max()):.4f}"
    )
