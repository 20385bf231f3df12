"""Serving load generator: offline prompts, Poisson arrivals, streaming requests.

Comparable to ``sglang.bench_serving`` (same request functions, Poisson arrivals with
``qps=inf`` meaning all at once, ``max_concurrency``), but it runs with ``num_prompts``
or ``duration_s``, makes prompts offline (random token ids or random text from a local
tokenizer; no dataset download) and returns plain data for :mod:`serve_metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .bench_serving_compat import REQUEST_FUNCS, bench_serving_args
from .gpumem import gpu_memory

__all__ = [
    "LoadConfig",
    "LoadResult",
    "make_prompts",
    "run_load",
    "run_load_sync",
    "server_tokenizer_path",
]

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class LoadConfig:
    """One load run against a running server."""

    base_url: str = field(default="http://127.0.0.1:30000", metadata={"help": "server URL"})
    backend: str = field(
        default="sglang",
        metadata={
            "help": "sglang: POST /generate; openai: POST /v1/completions",
            "choices": tuple(REQUEST_FUNCS),
        },
    )
    model: str = field(default="default", metadata={"help": "model name sent to /v1/completions"})
    qps: float = field(
        default=math.inf, metadata={"help": "Poisson request rate (req/s); inf sends at once"}
    )
    num_prompts: int | None = field(default=None, metadata={"help": "number of requests"})
    duration_s: float | None = field(
        default=None, metadata={"help": "issue requests for this long"}
    )
    sequence_length: int = field(default=128, metadata={"help": "input length in tokens"})
    output_length: int = field(
        default=32, metadata={"help": "output length in tokens (ignore_eos)"}
    )
    max_concurrency: int | None = field(
        default=None, metadata={"help": "cap on in-flight requests"}
    )
    prompt_kind: str = field(
        default="ids",
        metadata={
            "help": "ids: random token ids; text: random text decoded by --tokenizer",
            "choices": ("ids", "text"),
        },
    )
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "local tokenizer path (default: the server's, from its /get_model_info)"},
    )
    vocab_size: int | None = field(
        default=None,
        metadata={"help": "vocab size for random ids without a tokenizer (no server lookup)"},
    )
    seed: int = field(default=0, metadata={"help": "seed for prompts and arrivals"})
    warmup_requests: int = field(
        default=1, metadata={"help": "requests sent (and discarded) before the run"}
    )
    slo_ttft_ms: float | None = field(default=None, metadata={"help": "goodput SLO on TTFT"})
    slo_tpot_ms: float | None = field(default=None, metadata={"help": "goodput SLO on TPOT"})
    slo_e2e_ms: float | None = field(default=None, metadata={"help": "goodput SLO on E2E latency"})
    disable_progress: bool = field(default=False, metadata={"help": "no progress bar"})
    sample_gpu_memory: bool = field(
        default=True, metadata={"help": "sample this host's GPU memory during the run"}
    )

    def __post_init__(self) -> None:
        if (self.num_prompts is None) == (self.duration_s is None):
            raise ValueError(
                f"give exactly one of num_prompts ({self.num_prompts}) and duration_s ({self.duration_s})"
            )
        if self.num_prompts is not None and self.num_prompts < 1:
            raise ValueError(f"num_prompts must be >= 1, got {self.num_prompts}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if not self.qps > 0:
            raise ValueError(f"qps must be > 0 (or inf), got {self.qps}")
        if self.duration_s is not None and math.isinf(self.qps) and self.max_concurrency is None:
            raise ValueError(
                "qps=inf with duration_s would issue unboundedly many requests: "
                "set max_concurrency or use num_prompts"
            )
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.sequence_length < 1 or self.output_length < 1:
            raise ValueError(
                f"sequence_length ({self.sequence_length}) and output_length "
                f"({self.output_length}) must be >= 1"
            )
        if self.backend not in REQUEST_FUNCS:
            raise ValueError(f"backend {self.backend!r} is not one of {sorted(REQUEST_FUNCS)}")
        if self.prompt_kind == "text" and self.tokenizer is None and self.vocab_size is not None:
            raise ValueError(
                "prompt_kind='text' needs a tokenizer, not vocab_size: pass tokenizer=PATH "
                "(or neither, to use the server's tokenizer)"
            )
        if self.prompt_kind not in ("ids", "text"):
            raise ValueError(f"prompt_kind must be 'ids' or 'text', got {self.prompt_kind!r}")


@dataclass(slots=True)
class LoadResult:
    """What one run produced: per-request inputs/outputs and timing."""

    prompt_lens: list[int]
    outputs: list[Any]  # sglang.bench_serving.RequestFuncOutput
    duration_s: float
    gpu_memory: list[dict[str, Any]]
    peak_gpu_mem_used_gb: float | None
    scheduled_s: list[float] = field(default_factory=list)  # planned send offsets
    sent_s: list[float] = field(default_factory=list)  # actual send offsets (>= planned)
    tokenizer_path: str | None = None  # where the prompts' vocabulary came from


def make_prompts(
    cfg: LoadConfig, tokenizer: Any | None, rng: np.random.Generator
) -> Iterator[tuple[list[int] | str, int]]:
    """Yield ``(prompt, prompt_len)`` forever: random ids, or text that re-encodes to the length."""
    if tokenizer is not None:
        vocab = len(tokenizer)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
    else:
        vocab, special = int(cfg.vocab_size), set()
    allowed = np.array([i for i in range(vocab) if i not in special], dtype=np.int64)
    n = cfg.sequence_length
    while True:
        ids = rng.choice(allowed, size=n).tolist()
        if cfg.prompt_kind == "ids":
            yield ids, n
            continue
        text = tokenizer.decode(ids)
        ids2 = tokenizer.encode(text, add_special_tokens=False)[:n]
        text = tokenizer.decode(ids2)
        yield text, len(tokenizer.encode(text, add_special_tokens=False))


def _load_tokenizer(path: str | None) -> Any | None:
    if path is None:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


async def server_tokenizer_path(base_url: str, timeout_s: float = 10.0) -> str:
    """The tokenizer the server at ``base_url`` uses, from sglang's ``/get_model_info``
    (``tokenizer_path``, else ``model_path``); ValueError naming the fix if there is none."""
    import aiohttp

    url = base_url.rstrip("/") + "/get_model_info"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
            async with s.get(url) as r:
                r.raise_for_status()
                info = await r.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
        raise ValueError(
            f"random prompts need the vocabulary and {url} did not give it "
            f"({type(e).__name__}: {e}): pass --tokenizer PATH or --vocab-size N"
        ) from None
    path = info.get("tokenizer_path") or info.get("model_path")
    if not path:
        raise ValueError(f"{url} names no model_path: pass --tokenizer PATH or --vocab-size N")
    return str(path)


def _load_server_tokenizer(path: str, url: str) -> Any:
    try:
        return _load_tokenizer(path)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"the server at {url} uses the tokenizer {path!r}, which cannot be loaded here "
            f"({type(e).__name__}: {str(e)[:200]}): pass --tokenizer PATH or --vocab-size N"
        ) from None


async def _gpu_sampler(stop: asyncio.Event, peak: list[float]) -> None:
    while not stop.is_set():
        mem = await asyncio.to_thread(gpu_memory)
        if mem:
            peak[0] = max(peak[0], sum(m["used_gb"] for m in mem))
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except asyncio.TimeoutError:
            pass


async def run_load(cfg: LoadConfig, tokenizer: Any | None = None) -> LoadResult:
    """Run the load described by ``cfg``; failures are recorded per request, not raised."""
    from tqdm.asyncio import tqdm

    tok_path = cfg.tokenizer
    if tokenizer is None and cfg.tokenizer is None and cfg.vocab_size is None:
        tok_path = await server_tokenizer_path(cfg.base_url)
        tokenizer = await asyncio.to_thread(_load_server_tokenizer, tok_path, cfg.base_url)
        logger.info("prompts from the server's tokenizer %s (%d tokens)", tok_path, len(tokenizer))
    tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(cfg.tokenizer)
    rng = np.random.default_rng(cfg.seed)
    prompts = make_prompts(cfg, tokenizer, rng)
    func_name, path = REQUEST_FUNCS[cfg.backend]
    api_url = cfg.base_url.rstrip("/") + path
    with bench_serving_args() as bs:
        request_func = getattr(bs, func_name)

        def _input(prompt: Any, plen: int) -> Any:
            return bs.RequestFuncInput(
                prompt=prompt,
                api_url=api_url,
                prompt_len=plen,
                output_len=cfg.output_length,
                model=cfg.model,
                lora_name=None,
                image_data=None,
                extra_request_body={},
            )

        for _ in range(cfg.warmup_requests):
            out = await request_func(_input(*next(prompts)))
            if not out.success:
                raise RuntimeError(
                    f"warm-up request to {api_url} failed: {out.error.strip()[-500:]}"
                )

        sem = asyncio.Semaphore(cfg.max_concurrency) if cfg.max_concurrency else None
        total = cfg.num_prompts
        pbar = None if cfg.disable_progress else tqdm(total=total, desc="requests")
        stop, peak = asyncio.Event(), [0.0]
        sampler = asyncio.create_task(_gpu_sampler(stop, peak)) if cfg.sample_gpu_memory else None

        async def _one(inp: Any) -> Any:
            try:
                return await request_func(inp, pbar=pbar)
            finally:
                if sem is not None:
                    sem.release()

        tasks: list[asyncio.Task] = []
        plens: list[int] = []
        scheduled: list[float] = []
        sent: list[float] = []
        start = time.perf_counter()
        next_t = 0.0
        i = 0
        while total is None or i < total:
            if math.isfinite(cfg.qps):
                next_t += float(rng.exponential(1.0 / cfg.qps))
            if cfg.duration_s is not None and next_t >= cfg.duration_s:
                break
            delay = start + next_t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if sem is not None:
                await sem.acquire()
            if cfg.duration_s is not None and time.perf_counter() - start >= cfg.duration_s:
                if sem is not None:
                    sem.release()
                break
            prompt, plen = next(prompts)
            plens.append(plen)
            scheduled.append(next_t)
            sent.append(time.perf_counter() - start)
            tasks.append(asyncio.create_task(_one(_input(prompt, plen))))
            i += 1
        outputs = await asyncio.gather(*tasks)
        duration = time.perf_counter() - start
        if sampler is not None:
            stop.set()
            await sampler
        if pbar is not None:
            pbar.close()
    mem = gpu_memory() if cfg.sample_gpu_memory else []
    return LoadResult(
        prompt_lens=plens,
        outputs=list(outputs),
        duration_s=duration,
        gpu_memory=mem,
        peak_gpu_mem_used_gb=peak[0] if mem else None,
        scheduled_s=scheduled,
        sent_s=sent,
        tokenizer_path=tok_path,
    )


def run_load_sync(cfg: LoadConfig, tokenizer: Any | None = None) -> LoadResult:
    """:func:`run_load` on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop

        return uvloop.run(run_load(cfg, tokenizer))
    except ImportError:
        return asyncio.run(run_load(cfg, tokenizer))
