"""One rank of a profile run: sglang's own ModelRunner, stepped like ``bench_one_batch``.

Each rank loads the model with ``sglang.bench_one_batch.load_model`` (the patched sglang,
activated by the parent before it spawned the ranks), builds the same random batch
(``seed``; DP-attention rank r uses ``seed + r``) and runs it. With CUDA graphs captured
(decode on a GPU without ``--disable-cuda-graph``): one warm-up and one timed run replaying
them, the served step's time, as reference. Then eagerly (the graph runner set aside,
unless ``--profile-graph``): ``warmup`` untimed runs, one timed run without the profiler,
one timed run under torch.profiler with the labels (:mod:`labels`) and the collective
recorder (:mod:`comm`) installed; the profiled step's parts around the model's forward
(batch preparation, DP-attention preparation, sampling) get ``op::`` ranges too. Eager
steps run the layers' Python code, so each kernel can be tied to the layer and op that
launched it; a graph replay launches all of them at once. Step times are wall times with
one device synchronize at the end of each step (none inside). The rank writes its Chrome
trace ``{name}_rank{r}.json`` and a JSON summary for the parent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.profiler import ProfilerActivity, profile, record_function

from .analysis import rank_summary
from .comm import CommLog, record_collectives
from .config import ProfileArgs
from .labels import STEP_PARTS, label_model

__all__ = ["rank_main", "StepRunner", "init_dist"]

logger = logging.getLogger(__name__)


def _dp_attn_prepare(batch: Any, mr: Any) -> None:
    """sglang's DP-attention batch preparation (``bench_one_batch`` calls it with an old
    signature in 0.4.7 and fails: TypeError, three missing arguments)."""
    sa = mr.server_args
    if not sa.enable_dp_attention:
        return
    from sglang.srt.managers.scheduler import Scheduler
    from sglang.srt.speculative.spec_info import SpeculativeAlgorithm
    from sglang.srt.utils import DeepEPMode

    Scheduler.prepare_dp_attn_batch_raw(
        batch,
        dp_size=sa.dp_size,
        attn_tp_size=sa.tp_size // sa.dp_size,
        moe_dense_tp_size=sa.moe_dense_tp_size,
        tp_cpu_group=mr.tp_group.cpu_group,
        get_idle_batch=None,
        disable_cuda_graph=sa.disable_cuda_graph,
        spec_algorithm=SpeculativeAlgorithm.NONE,
        speculative_num_draft_tokens=None,
        enable_two_batch_overlap=sa.enable_two_batch_overlap,
        enable_deepep_moe=sa.enable_deepep_moe,
        deepep_mode=DeepEPMode[sa.deepep_mode],
    )


def _part(name: str, on: bool) -> Any:
    """``op::<name>``: a part of the step outside the model (:data:`labels.STEP_PARTS`)."""
    assert name in STEP_PARTS, name
    return record_function(f"op::{name}") if on else contextlib.nullcontext()


@torch.no_grad()
def extend(reqs: list[Any], mr: Any, *, labels: bool = False) -> tuple[torch.Tensor, Any, Any]:
    """A prefill of ``reqs`` (``bench_one_batch.extend``, DP attention fixed)."""
    from sglang.srt.managers.schedule_batch import ScheduleBatch
    from sglang.srt.speculative.spec_info import SpeculativeAlgorithm

    with _part("batch_prep", labels):
        batch = ScheduleBatch.init_new(
            reqs=reqs,
            req_to_token_pool=mr.req_to_token_pool,
            token_to_kv_pool_allocator=mr.token_to_kv_pool_allocator,
            tree_cache=None,
            model_config=mr.model_config,
            enable_overlap=False,
            spec_algorithm=SpeculativeAlgorithm.NONE,
            enable_custom_logit_processor=False,
        )
        batch.prepare_for_extend()
    logits, fb = _forward(batch, mr, labels)
    with _part("sample", labels):
        return mr.sample(logits, fb), logits.next_token_logits, batch


def _forward(batch: Any, mr: Any, labels: bool) -> tuple[Any, Any]:
    """(logits output, forward batch) of a prepared batch: DP-attention preparation, the
    forward batch, the model runner's forward."""
    from sglang.srt.model_executor.forward_batch_info import ForwardBatch

    with _part("dp_prepare", labels and mr.server_args.enable_dp_attention):
        _dp_attn_prepare(batch, mr)
    with _part("batch_prep", labels):
        fb = ForwardBatch.init_new(batch.get_model_worker_batch(), mr)
    logits, graph = mr.forward(fb)
    if graph:
        mr.graph_steps = getattr(mr, "graph_steps", 0) + 1
    return logits, fb


@torch.no_grad()
def decode(
    tokens: torch.Tensor, batch: Any, mr: Any, *, labels: bool = False
) -> tuple[torch.Tensor, Any]:
    """One decode step of ``batch`` (``bench_one_batch.decode``, DP attention fixed)."""
    with _part("batch_prep", labels):
        batch.output_ids = tokens
        batch.prepare_for_decode()
    logits, fb = _forward(batch, mr, labels)
    with _part("sample", labels):
        return mr.sample(logits, fb), logits.next_token_logits


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class StepRunner:
    """Prefill and decode steps of one synthetic batch on a loaded ModelRunner."""

    def __init__(self, model_runner: Any, pargs: ProfileArgs, *, seed: int) -> None:
        self.mr = model_runner
        self.pargs = pargs
        self.device = model_runner.device
        vocab = model_runner.model_config.vocab_size
        rng = np.random.default_rng(seed)
        self.ids = rng.integers(0, vocab, (pargs.batch_size, pargs.input_len)).tolist()
        self.prefill_s = float("nan")  # decode phase: the last run's prefill, seconds

    def _reqs(self) -> list[Any]:
        from sglang.srt.managers.schedule_batch import Req
        from sglang.srt.sampling.sampling_params import SamplingParams

        self.mr.req_to_token_pool.clear()
        self.mr.token_to_kv_pool_allocator.clear()
        sp = SamplingParams(temperature=0, max_new_tokens=self.pargs.steps + 1)
        reqs = []
        for i, ids in enumerate(self.ids):
            req = Req(rid=i, origin_input_text="", origin_input_ids=list(ids), sampling_params=sp)
            req.prefix_indices = []
            req.fill_ids = req.origin_input_ids
            req.extend_input_len = len(req.fill_ids)
            req.logprob_start_len = len(req.origin_input_ids) - 1
            reqs.append(req)
        return reqs

    def run(self, log: CommLog | None = None) -> tuple[list[list[int]], list[float]]:
        """(greedy tokens of each measured step, wall seconds of each measured step); the
        model runner's ``graph_steps`` counts the decode steps that replayed a CUDA graph."""
        phase, tokens, times = self.pargs.phase, [], []
        labelled = log is not None  # the step's parts outside the model: op::<part> ranges
        self.mr.graph_steps = 0

        def step(i: int, fn):
            if log is not None:
                log.step = i
            _sync(self.device)
            t0 = time.perf_counter()
            with record_function(f"step::{phase}"):
                out = fn()
                _sync(self.device)
            times.append(time.perf_counter() - t0)
            if log is not None:
                log.step = None
            return out

        if phase == "prefill":
            for i in range(self.pargs.steps):
                reqs = self._reqs()
                nxt, _, _ = step(i, lambda reqs=reqs: extend(reqs, self.mr, labels=labelled))
                tokens.append(nxt.tolist())
        else:
            reqs = self._reqs()
            _sync(self.device)
            t0 = time.perf_counter()
            nxt, _, batch = extend(reqs, self.mr)
            _sync(self.device)
            self.prefill_s = time.perf_counter() - t0
            for i in range(self.pargs.steps):
                nxt, _ = step(i, lambda nxt=nxt: decode(nxt, batch, self.mr, labels=labelled))
                tokens.append(nxt.tolist())
        return tokens, times


def init_dist(device: str, rank: int, timeout_s: float) -> None:
    """The default group on the parent's store (no port is picked); sglang then skips it."""
    from sglang_ext.distributed.dims import init_distributed

    got, _, _ = init_distributed(device, timeout_s)
    if got != rank:
        raise RuntimeError(f"rank {rank} joined the group as rank {got}")


def rank_main(rank: int, sglang_argv: list[str], pargs: ProfileArgs, work_dir: str) -> None:
    """Entry of rank ``rank`` (spawned by :func:`sglang_ext.perf.dist_env.run_spawned`)."""
    from sglang.bench_one_batch import load_model
    from sglang.srt.server_args import prepare_server_args

    server_args = prepare_server_args(sglang_argv)
    if pargs.phase == "prefill":
        server_args.disable_cuda_graph = True  # sglang 0.4.7 replays graphs at decode only
    elif server_args.cuda_graph_max_bs is None:
        server_args.cuda_graph_max_bs = pargs.batch_size  # as bench_one_batch does

    logging.basicConfig(level=logging.WARNING)
    for k, v in (("NCCL_CUMEM_ENABLE", "0"), ("TORCH_NCCL_AVOID_RECORD_STREAMS", "1")):
        os.environ.setdefault(k, v)
    init_dist(server_args.device, rank, min(300.0, pargs.deadline_s))
    mr, _ = load_model(server_args, SimpleNamespace(nccl_port=0), rank)
    attn_tp = server_args.tp_size // server_args.dp_size if server_args.enable_dp_attention else 0
    dp_rank = rank // attn_tp if attn_tp else 0
    runner = StepRunner(mr, pargs, seed=pargs.seed + dp_rank)
    graphs = getattr(mr, "cuda_graph_runner", None)  # None: --disable-cuda-graph, prefill, CPU
    graph_tokens, graph_s, graph_steps = None, None, 0
    if graphs is not None:  # the served path, unprofiled: the reference step time
        runner.run()  # warm-up
        graph_tokens, graph_s = runner.run()
        graph_steps = mr.graph_steps
        if not pargs.profile_graph:
            mr.cuda_graph_runner = None  # eager steps from here: per-layer attribution
    for _ in range(pargs.warmup):
        runner.run()
    base_tokens, base_s = runner.run()

    acts = [ProfilerActivity.CPU]
    if server_args.device == "cuda":
        acts.append(ProfilerActivity.CUDA)
    trace = Path(pargs.output_dir) / f"{pargs.name}_rank{rank}.json"
    trace.parent.mkdir(parents=True, exist_ok=True)
    with label_model(mr.model) as where:
        log = CommLog(where)
        with record_collectives(log), profile(activities=acts) as prof:
            prof_tokens, prof_s = runner.run(log)
    prof_graph_steps = mr.graph_steps
    mr.cuda_graph_runner = graphs
    prof.export_chrome_trace(str(trace))
    summary = rank_summary(
        trace, n_layers=len(where.layer_names), phase=pargs.phase, gpu=server_args.device == "cuda"
    )
    weights = sum(p.numel() * p.element_size() for p in mr.model.parameters())
    out = {
        "rank": rank,
        "dp_rank": dp_rank,
        "trace": str(trace),
        "layer_names": where.layer_names,
        "tokens": base_tokens,
        "profiled_tokens": prof_tokens,
        "step_s": base_s,
        "profiled_step_s": prof_s,
        "graph_step_s": graph_s,
        "graph_tokens": graph_tokens,
        "graph_steps": graph_steps,
        "profiled_graph_steps": prof_graph_steps,
        "calls": [dataclasses.asdict(c) for c in log.calls],
        "weight_bytes": weights,
        "server": {
            "model_path": server_args.model_path,
            "load_format": server_args.load_format,
            "dtype": str(mr.model_config.dtype).removeprefix("torch."),
            "dtype_size": torch.empty(0, dtype=mr.model_config.dtype).element_size(),
            "device": server_args.device,
            "attention_backend": server_args.attention_backend,
            "tp_size": server_args.tp_size,
            "dp_size": server_args.dp_size,
            "enable_dp_attention": server_args.enable_dp_attention,
            "disable_cuda_graph": server_args.disable_cuda_graph,
        },
        **summary,
    }
    Path(work_dir, f"rank{rank}.json").write_text(json.dumps(out))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
