"""SP+PP prefill, KV-cache sync, redundant decode: the engine's one entry point.

Rank s owns stage s (a contiguous slice of layers).  The prompt flows through the stages
chunk by chunk, so stage s works on chunk c while stage s-1 works on chunk c+1; each stage
keeps its layers' KV for every chunk.  When a stage's last chunk is done, a background
thread (own CUDA stream on GPU, own process group) spreads its KV to every rank.  The last
stage broadcasts the final hidden state of the last prompt token; then every rank decodes
greedily with the whole model and no communication, and the ranks' tokens are compared.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from sglang_ext.distributed import comm
from sglang_ext.distributed.dims import (
    EngineGroups,
    build_engine_groups,
    init_distributed,
)
from sglang_ext.engine.attention import resolve_backend
from sglang_ext.engine.config import PrefillConfig
from sglang_ext.engine.kv_sync import BackgroundKVSync, get_strategy
from sglang_ext.engine.model import Qwen3ForCausalLM, load_model
from sglang_ext.engine.perf_model import attn_ratio_from_flops
from sglang_ext.engine.pipeline import split_chunks, split_chunks_balanced, split_layers
from sglang_ext.perf.timing import Clock, RankTimings

__all__ = ["EngineResult", "PrefillEngine", "resolve_prompt", "run", "run_in_groups"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class EngineResult:
    tokens: list[int]
    """greedy tokens, identical on every rank"""
    logits: torch.Tensor
    """[V] logits of the last prompt token"""
    kv: torch.Tensor | None
    """[L, 2, P, Hkv, d] the prompt's KV of all layers as held by this rank (if keep_kv)"""
    timings: RankTimings


class PrefillEngine:
    def __init__(
        self,
        cfg: PrefillConfig,
        model: Qwen3ForCausalLM,
        groups: EngineGroups,
        device: torch.device,
    ):
        self.cfg, self.model, self.groups, self.device = cfg, model, groups, device
        self.rank, self.n = comm.group_rank(groups.pipeline), comm.group_size(groups.pipeline)
        self.stages = split_layers(model.args.num_hidden_layers, self.n, cfg.stage_split)
        self.backend = resolve_backend(cfg.attention_backend, device)
        self.strategy = get_strategy(cfg.sync)

    def chunks(self, P: int) -> list[tuple[int, int]]:
        """[start, end) of each prompt chunk under the configured schedule."""
        cfg = self.cfg
        if cfg.chunk_schedule == "fixed":
            return split_chunks(P, cfg.chunk_size)
        a = self.model.args
        ratio = cfg.attn_ratio
        if ratio is None:
            ratio = attn_ratio_from_flops(
                hidden_size=a.hidden_size,
                num_heads=a.num_attention_heads,
                num_kv_heads=a.num_key_value_heads,
                head_dim=a.head_dim,
                mlp_size=a.moe_intermediate_size if a.num_experts else a.intermediate_size,
            )
        return split_chunks_balanced(P, -(-P // cfg.chunk_size), ratio)

    def _dev_sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.no_grad()
    def generate(self, ids: list[int], *, keep_kv: bool = False) -> EngineResult:
        cfg, m, pp, r, n = self.cfg, self.model, self.groups.pipeline, self.rank, self.n
        P, D = len(ids), m.args.hidden_size
        chunks = self.chunks(P)
        layers = self.stages[r]
        caches = m.new_cache(P + cfg.max_new_tokens)
        ids_t = torch.tensor(ids, dtype=torch.long, device=self.device)
        dist.barrier(group=pp)
        clock = Clock()
        tm = RankTimings(
            rank=r,
            world_size=n,
            stage_layers=[layers.start, layers.stop],
            prompt_len=P,
            n_chunks=len(chunks),
        )
        syncer = BackgroundKVSync(
            self.strategy,
            caches,
            self.stages,
            P,
            group=self.groups.kv_sync,
            device=self.device,
            clock=clock,
        )
        pending: list[tuple[dist.Work, torch.Tensor]] = []  # keep sent tensors alive
        dtype = m.lm_head.weight.dtype
        x = None
        tm.prefill_start_s = clock()
        marks = _ChunkMarks(self.device)
        for c, (a, b) in enumerate(chunks):
            marks.mark()
            if r == 0:
                x = m.embed(ids_t[a:b])
            else:
                x = self._recv_chunk((b - a, D), dtype, c)
            marks.mark()
            x = m.run_layers(x, layers, caches, a, self.backend)  # x: [T, D]
            marks.mark()
            if r < n - 1:
                pending.append((comm.isend(x, r + 1, group=pp), x))
            if cfg.fault_rank == r and cfg.fault_after_chunk == c:
                sys.stderr.write(f"rank {r}: fault injection, exiting after chunk {c}\n")
                sys.stderr.flush()
                os._exit(1)
        spans = marks.spans()  # one device sync, after the last chunk
        tm.chunk_recv_wait_s = spans[0::2]
        tm.chunk_compute_s = spans[1::2]
        syncer.kv_final()
        tm.kv_final_s = clock()
        try:
            for w, _ in pending:
                w.wait()
        except RuntimeError as e:
            raise RuntimeError(
                f"rank {r}: sending chunks to rank {r + 1} failed (rank {r + 1} dead or stuck?): {e}"
            ) from e
        h = x[-1].clone() if r == n - 1 else torch.empty(D, dtype=dtype, device=self.device)
        try:
            comm.broadcast(h, n - 1, group=pp)
        except RuntimeError as e:
            raise RuntimeError(
                f"rank {r}: broadcast of the last hidden state from rank {n - 1} failed "
                f"(did a rank die?): {e}"
            ) from e
        logits = m.logits(h[None])[0]
        self._dev_sync()
        tm.prefill_end_s = clock()

        syncer.join(cfg.timeout_s)
        tm.kv_sync_start_s, tm.kv_sync_end_s = syncer.start_s, syncer.end_s
        tm.kv_sync_bytes_sent, tm.kv_sync_bytes_recv = syncer.bytes_sent, syncer.bytes_recv
        kv = None
        if keep_kv:  # before decode appends to the cache
            kv = torch.stack([torch.stack([c_.k[:P], c_.v[:P]]) for c_ in caches]).cpu()

        tm.decode_start_s = clock()
        tokens = [int(logits.argmax())]
        all_layers = range(m.args.num_hidden_layers)
        for i in range(cfg.max_new_tokens - 1):
            x = m.embed(torch.tensor(tokens[-1:], device=self.device))
            x = m.run_layers(x, all_layers, caches, P + i, self.backend)
            tokens.append(int(m.logits(x)[0].argmax()))
        tm.decode_steps = cfg.max_new_tokens - 1
        tm.decode_end_s = clock()
        self._check_same_tokens(tokens)
        tm.total_s = clock()
        return EngineResult(tokens=tokens, logits=logits.float().cpu(), kv=kv, timings=tm)

    def _recv_chunk(self, shape: tuple[int, int], dtype: torch.dtype, c: int) -> torch.Tensor:
        buf = torch.empty(shape, dtype=dtype, device=self.device)
        try:
            return comm.recv(buf, self.rank - 1, group=self.groups.pipeline)
        except RuntimeError as e:
            raise RuntimeError(
                f"rank {self.rank}: receiving chunk {c} from rank {self.rank - 1} failed (rank {self.rank - 1} "
                f"dead or stuck?): {e}"
            ) from e

    def _check_same_tokens(self, tokens: list[int]) -> None:
        mine = torch.tensor(tokens, dtype=torch.long, device=self.device)
        every = [torch.empty_like(mine) for _ in range(self.n)]
        dist.all_gather(every, mine, group=self.groups.pipeline)
        bad = [s for s, t in enumerate(every) if not torch.equal(t, every[0])]
        if bad:
            raise RuntimeError(
                f"ranks {bad} decoded tokens different from rank 0 ({[t.tolist() for t in every]}); "
                "the KV caches or weights differ between ranks"
            )


class _ChunkMarks:
    """Instants between which chunk phases run: host clock on CPU, CUDA events on GPU, so
    the chunk loop never waits for the device (one synchronisation in :meth:`spans`)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self) -> None:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.marks.append(e)
        else:
            self.marks.append(time.perf_counter())

    def spans(self) -> list[float]:
        """Seconds between consecutive marks of each chunk (recv wait, compute, ...)."""
        ms = self.marks
        if self.cuda:
            ms[-1].synchronize()
            return [ms[i].elapsed_time(ms[i + 1]) / 1e3 for i in range(len(ms) - 1) if (i + 1) % 3]
        return [ms[i + 1] - ms[i] for i in range(len(ms) - 1) if (i + 1) % 3]


def resolve_prompt(cfg: PrefillConfig, vocab_size: int) -> list[int]:
    if cfg.prompt_ids is not None:
        bad = [t for t in cfg.prompt_ids if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"--prompt-ids {bad[:5]} outside the vocabulary 0..{vocab_size - 1}")
        return list(cfg.prompt_ids)
    if cfg.prompt_len is not None:
        g = torch.Generator().manual_seed(cfg.seed + 1)
        return torch.randint(0, vocab_size, (cfg.prompt_len,), generator=g).tolist()
    if cfg.model_path is None:
        raise ValueError(
            "--prompt text needs a tokenizer: use --model-path, or --prompt-len with --dummy-preset"
        )
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(cfg.model_path)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"no tokenizer in {cfg.model_path} ({e}); give --prompt-ids or --prompt-len"
        ) from e
    return tok(cfg.prompt)["input_ids"]


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def run_in_groups(cfg: PrefillConfig, groups: EngineGroups, device: torch.device) -> EngineResult:
    """Load the model and run once inside existing groups; write the log record and dump."""
    if cfg.num_threads is not None and device.type == "cpu":
        torch.set_num_threads(cfg.num_threads)
    logger.info("loading model")
    model = load_model(
        cfg.model_path,
        dummy_preset=cfg.dummy_preset,
        num_layers=cfg.num_layers,
        device=device,
        dtype=_DTYPES[cfg.dtype],
        seed=cfg.seed,
    )
    logger.info("model loaded")
    engine = PrefillEngine(cfg, model, groups, device)
    ids = resolve_prompt(cfg, model.args.vocab_size)
    r = engine.rank
    for i in range(cfg.repeats):
        res = engine.generate(ids, keep_kv=cfg.dump_dir is not None)
        if cfg.log_dir:
            from sglang_ext.perf.records import append_jsonl, make_record

            rec = make_record("sp_pp_rank", cfg, {**res.timings.metrics(), "repeat": i})
            rec["config"]["attention_backend_resolved"] = engine.backend
            rec["config"]["world_size"] = engine.n
            append_jsonl(Path(cfg.log_dir) / f"rank{r}.jsonl", rec)
    if cfg.dump_dir:
        Path(cfg.dump_dir).mkdir(parents=True, exist_ok=True)
        torch.save(
            {"tokens": res.tokens, "logits": res.logits, "kv": res.kv},
            Path(cfg.dump_dir) / f"rank{r}.pt",
        )
    logger.info("rank %d: prefill %.3fs, tokens %s", r, res.timings.prefill_s, res.tokens)
    return res


def run(cfg: PrefillConfig) -> EngineResult:
    """Join the (torchrun or launcher) rendezvous, build groups, run, tear down."""
    _, _, device = init_distributed(cfg.device, cfg.timeout_s)
    try:
        groups = build_engine_groups(cfg.timeout_s)
        return run_in_groups(cfg, groups, device)
    finally:
        dist.destroy_process_group()
