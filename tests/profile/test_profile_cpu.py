"""``python -m sglang_ext.profile`` on the CPU: gloo, TP 2, the embedded one-expert model.

Two runs share this module (each about 30-60 s on an idle 2-core box, minutes on a loaded
one): single-expert ``tp`` at prefill (TP 2), and ``dp`` at decode in the original fork's EP
layout scaled to 2 ranks (attention DP 2 x TP 1, the expert replicated, tokens
exchanged). Checked against things the profiler does not compute itself: the collectives sglang's code must issue (derived below from the code, not from ours), greedy
tokens of HF transformers on the same weights and prompt ids, and the step's own range.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from sglang_ext.models.tiny import default_model_path

B, L, STEPS = 2, 24, 2
DEADLINE_S = 240  # each run; well below pytest's timeout


def _run(tmp, mode: str, phase: str, *extra: str) -> dict:
    out = tmp / f"{mode}.jsonl"
    cmd = [sys.executable, "-m", "sglang_ext.profile", "--tp-size", "2", *extra,
           "--single-expert-mode", mode, "--phase", phase, "--batch-size", str(B),
           "--input-len", str(L), "--steps", str(STEPS), "--warmup", "1", "--name", mode,
           "--output-dir", str(tmp), "--output-file", str(out),
           "--deadline-s", str(DEADLINE_S - 30)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE_S)
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    (rec,) = [json.loads(x) for x in out.read_text().splitlines()]
    return rec


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profile")
    return tmp, {
        "tp": _run(tmp, "tp", "prefill"),
        "dp": _run(tmp, "dp", "decode", "--dp-size", "2", "--enable-dp-attention"),
    }


def _config() -> dict:
    return json.loads((default_model_path() / "config.json").read_text())


def _hf_greedy(n_new: int) -> list[list[int]]:
    """HF transformers' greedy tokens for the prompts the profiler builds (seed 0)."""
    from transformers import AutoModelForCausalLM

    cfg = _config()
    ids = np.random.default_rng(0).integers(0, cfg["vocab_size"], (B, L))
    model = AutoModelForCausalLM.from_pretrained(default_model_path(), torch_dtype=torch.float32)
    with torch.no_grad():
        out = model.generate(
            torch.tensor(ids), max_new_tokens=n_new, do_sample=False, min_new_tokens=n_new
        )
    return out[:, L:].tolist()


def test_collectives_match_the_code(runs):
    # Derivation from sglang 0.4.7 + our series, TP 2, no DP attention, T tokens per step:
    #  - VocabParallelEmbedding.forward (tp > 1): all_reduce of [T, H];
    #  - each decoder layer: LayerCommunicator.prepare_mlp -> _gather_hidden_states
    #    all_reduces the attention output (o_proj has reduce_results=False), [T, H]; then
    #    Qwen3MoeSparseMoeBlock.forward_normal all_reduces the expert output, [T, H]
    #    (dp mode: each rank's output holds only its tokens, zeros elsewhere: the same
    #    all_reduce is the token exchange);
    #  - LogitsProcessor._get_logits: all_gather of this rank's half of the logits of the
    #    B sampled positions, [B, V_pad / 2] (ParallelLMHead pads V to a multiple of 64);
    #  - no sampler all_reduce (no grammar, SYNC_TOKEN_IDS_ACROSS_TP unset).
    # float32 everywhere: 4 bytes.
    _, recs = runs
    cfg = _config()
    h, n_layers, v_pad = (
        cfg["hidden_size"],
        cfg["num_hidden_layers"],
        -(-cfg["vocab_size"] // 64) * 64,
    )
    comm = recs["tp"]["metrics"]["comm"]  # prefill: T = B x L
    assert set(comm) == {"all_reduce", "all_gather"}, comm
    assert comm["all_reduce"]["count"] == 1 + 2 * n_layers, comm
    assert comm["all_reduce"]["bytes"] == (1 + 2 * n_layers) * B * L * h * 4, comm
    assert comm["all_gather"]["count"] == 1, comm
    assert comm["all_gather"]["bytes"] == B * v_pad // 2 * 4, comm
    # DP attention (dp 2 x attention TP 1), a decode step, each DP rank B tokens, so the
    # gathered batch is G = 2B tokens:
    #  - qwen2_moe builds the embedding with enable_tp=not enable_dp_attention: no collective;
    #  - each layer: _gather_hidden_states (local_attn_dp_size 2) -> dp_gather_partial ->
    #    _dp_gather: all_reduce of the zero-filled [G, H] buffer holding each rank's tokens;
    #    then the MoE block's all_reduce of [G, H]; dp_scatter copies, no collective;
    #  - LogitsProcessor: dp_gather_replicate all_reduces [G, H] (one sampled position per
    #    request), lm_head is vocab-parallel over the TP group of 2: all_gather of
    #    [G, V_pad / 2];
    #  - before the forward, Scheduler.prepare_dp_attn_batch_raw all_gathers each rank's
    #    local_info, torch.tensor([6 ints], dtype=int64), with torch.distributed on the TP
    #    CPU group: one all_gather of 48 bytes.
    comm = recs["dp"]["metrics"]["comm"]
    assert set(comm) == {"all_reduce", "all_gather"}, comm
    assert comm["all_reduce"]["count"] == 2 * n_layers + 1, comm
    assert comm["all_reduce"]["bytes"] == (2 * n_layers + 1) * 2 * B * h * 4, comm
    assert comm["all_gather"]["count"] == 2, comm
    assert comm["all_gather"]["bytes"] == 2 * B * v_pad // 2 * 4 + 6 * 8, comm
    for rec in recs.values():
        m = rec["metrics"]
        assert m["comm"]["all_reduce"]["time_us"] > 0 and m["comm"]["all_reduce"]["algbw_gbps"] > 0
        # the library's analytic count (in the record, for the report) agrees too
        got = {k: {"count": v["count"], "bytes": v["bytes"]} for k, v in m["comm"].items()}
        assert got == m["comm_analytic"], (got, m["comm_analytic"])


def test_layers_and_labelled_parts_account_for_the_step(runs):
    _, recs = runs
    n_layers = _config()["num_hidden_layers"]
    for mode, rec in recs.items():
        m = rec["metrics"]
        assert len(m["per_layer_us"]) == n_layers and min(m["per_layer_us"]) > 0, mode
        out = m["outside_us"]
        parts = {"embed", "final_norm", "logits", "batch_prep", "sample"}
        if mode == "dp":  # the token-count all_gather before the forward (rank waits there)
            parts.add("dp_prepare")
        assert set(out) == parts | {"other"} and min(out[k] for k in parts) > 0, (mode, out)
        labelled = sum(m["per_layer_us"]) + sum(out[k] for k in parts)
        # the step's own range against its labelled parts: the rest ('other', the Python
        # between the parts) is small, for both modes
        assert labelled == pytest.approx(m["step_us"], rel=0.10), (mode, out)
        for rk in m["ranks"]:  # every layer: compute + comm + idle = its time, none negative
            for i, t in enumerate(rk["per_layer_us"]):
                parts = [rk[f"per_layer_{k}_us"][i] for k in ("compute", "comm", "idle")]
                assert min(parts) >= 0 and sum(parts) == pytest.approx(t, rel=1e-6), (mode, i)
        ops = m["ops_us"]
        for op in ("qkv_proj", "rotary", "attention", "o_proj", "routing", "expert_mlp",
                   "input_norm", "post_attn_norm", "qk_norm"):  # fmt: skip
            assert len(ops[op]) == n_layers and min(ops[op]) > 0, (mode, op)
        for i in range(n_layers):  # ops nest inside their layer
            assert sum(ops[op][i] for op in ops) <= m["per_layer_us"][i] * 1.001, (mode, i)


def test_tokens_equal_unprofiled_and_hf(runs):
    _, recs = runs
    hf_prefill = _hf_greedy(1 + STEPS)
    m = recs["tp"]["metrics"]
    assert m["tokens_equal_unprofiled"]
    assert all(step == [row[0] for row in hf_prefill] for step in m["tokens"]), m["tokens"]
    m = recs["dp"]["metrics"]
    assert m["tokens_equal_unprofiled"]
    # DP rank 0 runs the seed-0 prompts (rank r: seed r); decode step i produces the
    # (i + 2)-th new token (the prefill produced the first)
    want = [[row[i + 1] for row in hf_prefill] for i in range(STEPS)]
    assert m["tokens"] == want


def test_one_chrome_trace_per_rank(runs):
    tmp, recs = runs
    for mode in recs:
        for r in (0, 1):
            ev = json.loads((tmp / f"{mode}_rank{r}.json").read_text())["traceEvents"]
            names = {e.get("name") for e in ev}
            assert {"layer::L0", "layer::L1", "comm::all_reduce"} <= names, (mode, r)
        assert [rk["rank"] for rk in recs[mode]["metrics"]["ranks"]] == [0, 1]
        assert isinstance(recs[mode]["metrics"]["overhead_pct"], float)


def test_tp_vs_dp_report(runs, tmp_path):
    from sglang_ext.profile.report import make_report, pick_pair

    _, recs = runs
    # the module's two runs differ in phase on purpose (both formulas above are checked):
    # the report refuses to pair them, then plots them once told they match
    with pytest.raises(ValueError, match="same phase"):
        pick_pair([recs["tp"], recs["dp"]])
    dp = json.loads(json.dumps(recs["dp"]))
    dp["config"].update({k: recs["tp"]["config"][k] for k in ("phase", "input_len")})
    paths = make_report([recs["tp"], dp], tmp_path)
    assert [p.name for p in paths] == [
        "profile_layers_tp_vs_dp.png",
        "profile_heatmap_tp_vs_dp.png",
        "profile_comm_bytes_tp_vs_dp.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
