"""The analytic prefill model (``engine.perf_model.predict_prefill``) against a real CPU run
of the engine at N = 1 and 2 (gloo, one thread a rank, the tiny one-expert preset, 512
tokens in 4 chunks of 128).

The model is fed the compute of every chunk on every stage MEASURED in the same run (the
rank records' ``chunk_compute_s``), so what other processes do to the 2 cores inflates both
sides alike; what is checked is the rest of the model: the flow-shop schedule (a stage
starts chunk k when it has finished k-1 and the previous stage has sent k), its bubble and
the activation-hop term.

Tolerances (median over 3 timed repeats; the first repeat warms up and is dropped):

* prefill: |model / measured - 1| <= 12%. Left out of the model: the tail after the last
  chunk (broadcast of the last hidden state, logits: 1-2% here) and the wake-up of a rank
  blocked in a gloo recv, which on two overloaded cores costs a few ms a chunk against the
  model's 0.1 ms hop. Seen: the model 2-7% under the measurement (median of repeats 3-6%)
  at load 4-7 and with two extra busy loops on the 2 cores. The bubble term is 14-40% of
  the N=2 makespan in this setup: the model without it is 24% under (fails). The hop term is
  ~0.05% of the prefill, so the run bounds it only coarsely: 1000x fails, 300x still passes.
* bubble fraction at N=2: measured / model within 1.5x either way (the issue's target);
  seen 1.07-1.4.

Each N gets up to 3 runs (fresh spawns) and passes when one run holds: starved ranks can
inflate one run's measurement (seen once in a full-suite run: 35% over the model in two of
three repeats), while a wrong model fails every run.

Cost: two spawns (N=1, N=2), 20-45 s on the shared 2 cores, mostly process start-up; a
failed run adds one more.
"""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from sglang_ext.engine.model import DUMMY_PRESETS
from sglang_ext.engine.perf_model import PrefillModelInputs, predict_prefill, summarize_ranks
from sglang_ext.perf.dist_env import run_spawned

PRESET, P, CHUNK, REPEATS = "tiny-moe-1e", 512, 128, 4
PREFILL_TOL = 0.12
ATTEMPTS = 3
BUBBLE_FACTOR = 1.5
BW_BYTES_PER_S, LATENCY_S = 2e9, 50e-6  # bench_sp_pp.py's defaults for the links


def _worker(rank: int, out: str) -> None:
    torch.set_num_threads(1)
    from sglang_ext.distributed.dims import build_engine_groups, init_distributed
    from sglang_ext.engine.config import PrefillConfig
    from sglang_ext.engine.prefill_engine import run_in_groups

    _, _, dev = init_distributed("cpu", 60.0)
    groups = build_engine_groups(60.0)
    cfg = PrefillConfig(
        dummy_preset=PRESET,
        prompt_len=P,
        chunk_size=CHUNK,
        max_new_tokens=1,
        repeats=REPEATS,
        log_dir=out,
        num_threads=1,
        attention_backend="sdpa",
        timeout_s=60.0,
    )
    run_in_groups(cfg, groups, dev)
    torch.distributed.destroy_process_group()


def _model(ranks: list[dict]) -> dict:
    shape = DUMMY_PRESETS[PRESET]
    return predict_prefill(
        PrefillModelInputs(
            t1_compute_s=0.0,  # replaced by the measured stage times
            prompt_len=P,
            chunk_size=CHUNK,
            n_stages=len(ranks),
            n_layers=shape["num_hidden_layers"],
            hidden_size=shape["hidden_size"],
            kv_bytes_per_token_layer=2 * shape["num_key_value_heads"] * shape["head_dim"] * 4,
            act_bytes=4,
            bw_bytes_per_s=BW_BYTES_PER_S,
            latency_s=LATENCY_S,
            stage_chunk_s=[r["chunk_compute_s"] for r in ranks],
        )
    )


def _check(n: int, out) -> str | None:
    """One spawned run checked: None if the model holds, else what was measured."""
    run_spawned(_worker, n, str(out), deadline_s=240)  # hang guard naming the rank
    recs = [
        [json.loads(line)["metrics"] for line in open(out / f"rank{r}.jsonl")] for r in range(n)
    ]
    assert all(len(r) == REPEATS for r in recs)
    ratios, bubbles, lines = [], [], []
    for i in range(1, REPEATS):
        ranks = [recs[r][i] for r in range(n)]
        meas, model = summarize_ranks(ranks), _model(ranks)
        ratios.append(model["prefill_s"] / meas["prefill_s"])
        bubbles.append((meas["bubble_frac"], model["bubble_frac"]))
        lines.append(
            f"repeat {i}: prefill measured {meas['prefill_s']:.4f}s model {model['prefill_s']:.4f}s, "
            f"bubble measured {meas['bubble_frac']:.3f} model {model['bubble_frac']:.3f}"
        )
    what = f"N={n}\n" + "\n".join(lines)
    if abs(statistics.median(ratios) - 1) > PREFILL_TOL:
        return f"{what}\nprefill model/measured median {statistics.median(ratios):.3f}"
    if n > 1:
        factor = statistics.median(m / p for m, p in bubbles)
        if not 1 / BUBBLE_FACTOR <= factor <= BUBBLE_FACTOR:
            return f"{what}\nbubble measured/model median {factor:.3f}"
    elif not all(p == 0.0 and m < 0.1 for m, p in bubbles):
        return f"{what}\none stage: the bubble must be the unmodelled tail only"
    return None


@pytest.mark.parametrize("n", [1, 2])
def test_model_predicts_measured_prefill_and_bubble(n, tmp_path):
    """Up to ATTEMPTS runs, each a fresh spawn: the model must hold in one of them. A wrong
    model (no bubble term: 24% under) fails every run; a run whose ranks the other tests
    starved of the 2 cores (seen once in a full-suite run: measured 35% over the model in two
    of three repeats, the third within 6%) gets another chance."""
    fails = []
    for attempt in range(ATTEMPTS):
        why = _check(n, tmp_path / f"attempt{attempt}")
        if why is None:
            return
        fails.append(f"attempt {attempt}: {why}")
    pytest.fail("\n".join(fails))
