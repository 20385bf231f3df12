"""sglang 0.4.7's Triton decode attention at decode shapes: its KV-split rule, and its
grouped (GQA) stage-1 kernel under other block configurations.

sglang's Triton backend (the attention the served model runs here) splits each sequence's
KV into ``num_kv_splits`` parts by a rule (``get_num_kv_splits_triton``): one program per
(sequence, head group, split) in stage 1, then stage 2 merges the splits.  The stage-1
launch in sglang 0.4.7 is fixed at ``BLOCK_N=32, num_warps=4, num_stages=2``; patch 0019
takes it from a measured table (``sglang_ext.kernels.decode_attention_launch``), which
``--write-table`` writes from this bench's records.

* :func:`sglang_kv_splits`: that rule for ``batch`` sequences of one length (the Triton
  kernel's arithmetic, checked against the kernel itself under the interpreter);
* :func:`grouped_decode`: stage 1 (any :class:`Stage1Config`) and sglang's stage 2;
* :func:`reference`: float64 softmax attention over each sequence's cached tokens;
* :func:`bench_fused_point` (``--fused``): our one-launch decode attention
  (``sglang_ext.kernels.decode_attention``, patch 0024) under each launch against the three
  kernels it replaces (q/k norm + rotary + KV write, then sglang's stage 1 with the table's
  launch and stage 2), from the raw qkv of one decode step.

``bench/bench_decode_attention.py`` times them on a GPU.  Import sglang first through
:func:`sglang_ext.perf.kernel_bench.sglang_baseline.activate_sglang` (the patched copy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sglang_ext.kernels.decode_attention_launch import SGLANG_STAGE1, Stage1Config, parse_config

__all__ = [
    "AttnBenchArgs",
    "SGLANG_STAGE1",
    "Stage1Config",
    "bench_fused_point",
    "bench_point",
    "grouped_decode",
    "parse_config",
    "preset_heads",
    "reference",
    "scattered_cache",
    "sglang_kv_splits",
]


def sglang_kv_splits(
    batch: int,
    seq_len: int,
    *,
    num_heads: int,
    num_kv_heads: int,
    max_kv_splits: int,
    sm_count: int,
) -> int:
    """``num_kv_splits`` that sglang's rule gives each of ``batch`` sequences of
    ``seq_len`` tokens (``triton_backend.get_num_kv_splits_triton``, one group)."""
    if min(batch, seq_len, num_heads, num_kv_heads, max_kv_splits) < 1:
        raise ValueError("batch, seq_len, heads and max_kv_splits must be >= 1")
    import numpy as np

    # equal lengths: max == min, so the kernel's first candidate is one split per sequence
    # and the answer is its second, from the grid and a core budget
    f32 = np.float32  # the kernel computes the core budget in float32, then truncates
    cores = int(f32(sm_count) * max(np.log2(f32(seq_len) / f32(64.0)), f32(1.0)))
    group = num_heads // num_kv_heads
    grid = batch * (num_heads if group == 1 else math.ceil(num_heads / min(16, group)))
    splits = min(math.ceil(cores / grid), max_kv_splits)
    return math.ceil(seq_len / math.ceil(seq_len / splits))


def grouped_decode(
    q: torch.Tensor,
    k_buffer: torch.Tensor,
    v_buffer: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_indices: torch.Tensor,
    num_kv_splits: torch.Tensor,
    max_kv_splits: int,
    *,
    config: Stage1Config = SGLANG_STAGE1,
    out: torch.Tensor | None = None,
    workspace: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """sglang's GQA decode attention with stage 1 launched as ``config`` says.

    q [B, H, D]; k_buffer, v_buffer [slots, Hkv, D]; kv_indptr [B + 1] (int32) and
    kv_indices (the cache slots of each sequence's tokens); num_kv_splits [B] (int32,
    each <= max_kv_splits).  ``workspace``: stage 1's (logits [B, H, max_kv_splits, D],
    lse [B, H, max_kv_splits]) float32 buffers, allocated when None.  Returns out [B, H, D].
    """
    import triton
    from sglang.srt.layers.attention.triton_ops import decode_attention as da

    b, h, d = q.shape
    hkv = k_buffer.shape[1]
    group = h // hkv
    if group < 2 or h % hkv:
        raise ValueError(f"{h} query heads over {hkv} KV heads: the grouped kernel needs GQA")
    if workspace is None:
        workspace = (
            torch.empty(b, h, max_kv_splits, d, dtype=torch.float32, device=q.device),
            torch.empty(b, h, max_kv_splits, dtype=torch.float32, device=q.device),
        )
    att, lse = workspace
    if out is None:
        out = torch.empty_like(q)
    block_h = 16
    grid = (b, triton.cdiv(h, min(block_h, group)), max_kv_splits)
    da._fwd_grouped_kernel_stage1[grid](
        q, k_buffer, v_buffer, d**-0.5, kv_indptr, kv_indices, att, lse, num_kv_splits,
        q.stride(0), q.stride(1), k_buffer.stride(0), k_buffer.stride(1),
        v_buffer.stride(0), v_buffer.stride(1), att.stride(0), att.stride(1), att.stride(2),
        kv_group_num=group, q_head_num=h, BLOCK_DMODEL=triton.next_power_of_2(d),
        BLOCK_DPE=0, BLOCK_DV=triton.next_power_of_2(d), BLOCK_N=config.block_n,
        BLOCK_H=block_h, MIN_BLOCK_KV=da._MIN_BLOCK_KV, logit_cap=0.0,
        num_warps=config.num_warps, num_stages=config.num_stages, Lk=d, Lv=d,
    )  # fmt: skip
    da._decode_softmax_reducev_fwd(
        att, lse, q, out, v_buffer, kv_indptr, num_kv_splits, max_kv_splits
    )
    return out


def scattered_cache(
    lens: list[int],
    heads: int,
    kv_heads: int,
    head_dim: int,
    *,
    generator: torch.Generator,
    spare: int = 5,
) -> tuple[torch.Tensor, ...]:
    """Random float32 (q, k_buffer, v_buffer, kv_indptr, kv_indices) for sequences of
    ``lens`` tokens whose cache slots are scattered over a pool ``spare`` slots larger."""
    b, total = len(lens), sum(lens) + spare
    q = torch.randn(b, heads, head_dim, generator=generator)
    k = torch.randn(total, kv_heads, head_dim, generator=generator)
    v = torch.randn(total, kv_heads, head_dim, generator=generator)
    idx = torch.randperm(total, generator=generator)[: sum(lens)].int()
    indptr = torch.tensor([0] + lens).cumsum(0).int()
    return q, k, v, indptr, idx


def reference(
    q: torch.Tensor,
    k_buffer: torch.Tensor,
    v_buffer: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_indices: torch.Tensor,
) -> torch.Tensor:
    """float64 softmax(q k^T / sqrt(D)) v over each sequence's cached tokens: [B, H, D]."""
    b, h, d = q.shape
    group = h // k_buffer.shape[1]
    out = torch.empty(b, h, d, dtype=torch.float64, device=q.device)
    for i in range(b):
        idx = kv_indices[int(kv_indptr[i]) : int(kv_indptr[i + 1])].long()
        k = k_buffer[idx].double().repeat_interleave(group, 1)  # [L, H, D]
        v = v_buffer[idx].double().repeat_interleave(group, 1)
        p = torch.softmax(torch.einsum("hd,lhd->hl", q[i].double(), k) * d**-0.5, -1)
        out[i] = torch.einsum("hl,lhd->hd", p, v)
    return out


# ---- the GPU bench (bench/bench_decode_attention.py) --------------------------------------


def preset_heads(preset: str) -> tuple[int, int, int]:
    """(query heads, KV heads, head dim) of a ``sglang_ext.presets`` model at TP 1."""
    from sglang_ext.presets import preset_config

    c = preset_config(preset)
    return c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]


@dataclass(kw_only=True, slots=True)
class AttnBenchArgs:
    """What the decode-attention bench runs."""

    presets: list[str] = field(default_factory=lambda: ["qwen3-30b-a3b-1e", "qwen3-235b-a22b-1e"])
    """Attention shapes: sglang_ext.presets names."""
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32, 64, 128])
    """Sequences per decode step."""
    context_len: int = 530
    """KV tokens per sequence (decode_budget's mean: 512 prompt + 1 + 16 + 1)."""
    configs: list[str] = field(
        default_factory=lambda: ["n32w4s2", "n32w4s3", "n64w4s2", "n64w4s3", "n64w8s3", "n128w8s2"]
    )
    """Stage-1 launches, n<BLOCK_N>w<num_warps>s<num_stages>; n32w4s2 is sglang's."""
    splits: list[str] = field(default_factory=lambda: ["sglang", "8", "16"])
    """KV splits per sequence: ``sglang`` (its rule at --max-kv-splits) or a fixed count."""
    max_kv_splits: int = 8
    """sglang's --triton-attention-num-kv-splits (its default 8), for the ``sglang`` rule."""
    rep_ms: float = 30.0
    """do_bench repetition budget per measurement."""
    output_file: str = ""
    """Default bench/results/<gpu>/decode_attention.jsonl."""
    write_table: bool = False
    """Write this run's fastest launches into the device's stage-1 table (patch 0019 reads
    it; ``sglang_ext.kernels.decode_attention_launch``)."""
    table_from: str = ""
    """Write the table from these records (one run's) instead, without a GPU (for the GPU
    and Triton version the records name)."""
    fused: bool = False
    """Time the one-launch decode attention (patch 0024) under each of ``configs`` against
    the three kernels it replaces, at sglang's split rule and each of ``splits`` (records
    ``decode_attention_fused.jsonl``)."""

    def __post_init__(self) -> None:
        from sglang_ext.presets import PRESETS

        bad = [p for p in self.presets if p not in PRESETS]
        if bad:
            raise ValueError(f"unknown presets {bad}; choose from {list(PRESETS)}")
        for c in self.configs:
            parse_config(c)
        for s in self.splits:
            if s != "sglang" and not (s.isdigit() and int(s) >= 1):
                raise ValueError(f"--splits {s!r}: 'sglang' or a count >= 1")
        if min(self.batch_sizes, default=0) < 1 or self.context_len < 1:
            raise ValueError("--batch-sizes and --context-len must be >= 1")


def _kv_regions(batch, seq, hkv, d, dtype, dev, rotate_bytes):
    """(KV bytes of one step, regions, k_buffer, v_buffer, generator): enough copies of a
    step's KV (``regions``, >= 2) that ``rotate_bytes`` of them rotate past the L2."""
    kv_bytes = 2 * batch * seq * hkv * d * torch.empty(0, dtype=dtype).element_size()
    regions = max(2, math.ceil(rotate_bytes / kv_bytes))
    g = torch.Generator(device=dev).manual_seed(0)
    kb = torch.randn(regions * batch * seq, hkv, d, device=dev, dtype=dtype, generator=g)
    vb = torch.randn(regions * batch * seq, hkv, d, device=dev, dtype=dtype, generator=g)
    return kv_bytes, regions, kb, vb, g


def bench_point(
    preset: str,
    batch: int,
    args: AttnBenchArgs,
    copy_gbps: float,
    sm_count: int,
    *,
    device: str = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    timer: Callable[..., float] | None = None,
    rotate_bytes: int = 256 << 20,
) -> list[tuple[dict, dict]]:
    """(config, metrics) rows of one (preset, batch): every stage-1 config x split count,
    graph medians (``timer``, default ``perf.timing.time_graph``) over KV regions that
    rotate past the L2 (``rotate_bytes`` of KV in all), each checked against fp32."""
    from sglang_ext.perf.timing import time_graph

    timer = timer or time_graph
    h, hkv, d = preset_heads(preset)
    seq, dev = args.context_len, torch.device(device)
    kv_bytes, regions, kb, vb, g = _kv_regions(batch, seq, hkv, d, dtype, dev, rotate_bytes)
    q = torch.randn(batch, h, d, device=dev, dtype=dtype, generator=g)
    indptr = torch.arange(batch + 1, device=dev, dtype=torch.int32) * seq
    sets = [
        torch.arange(r * batch * seq, (r + 1) * batch * seq, device=dev) for r in range(regions)
    ]
    ref = reference(q, kb, vb, indptr, sets[0]).float()
    rule = sglang_kv_splits(batch, seq, num_heads=h, num_kv_heads=hkv,
                            max_kv_splits=args.max_kv_splits, sm_count=sm_count)  # fmt: skip
    counts = sorted({rule if s == "sglang" else int(s) for s in args.splits})
    floor = kv_bytes / (copy_gbps * 1e3)
    rows = []
    for text in args.configs:
        cfg = parse_config(text)
        for n in counts:
            maxs = max(n, args.max_kv_splits)
            ns = torch.full((batch,), n, device=dev, dtype=torch.int32)
            ws = (
                torch.empty(batch, h, maxs, d, dtype=torch.float32, device=dev),
                torch.empty(batch, h, maxs, dtype=torch.float32, device=dev),
            )
            out = torch.empty_like(q)

            def call(idx, cfg=cfg, ns=ns, maxs=maxs, ws=ws, out=out):
                grouped_decode(q, kb, vb, indptr, idx, ns, maxs, config=cfg, out=out, workspace=ws)

            call(sets[0])
            err = ((out.float() - ref).abs().max() / ref.abs().max()).item()
            us = timer(call, sets, rep_ms=args.rep_ms)
            conf = {"preset": preset, "batch_size": batch, "context_len": seq, "heads": h,
                    "kv_heads": hkv, "head_dim": d, "stage1": cfg.name, "kv_splits": n,
                    "sglang_rule_splits": rule, "max_kv_splits": maxs,
                    "is_sglang_default": cfg == SGLANG_STAGE1 and n == rule}  # fmt: skip
            rows.append((conf, {"median_us": us, "kv_bytes": kv_bytes, "floor_us": floor,
                                "ratio_to_floor": us / floor, "max_rel_err_vs_fp32": err}))  # fmt: skip
    base = [m["median_us"] for c, m in rows if c["is_sglang_default"]]
    for _, m in rows:
        m["speedup_vs_sglang_default"] = base[0] / m["median_us"] if base else None
    return rows


def bench_fused_point(
    preset: str,
    batch: int,
    args: AttnBenchArgs,
    copy_gbps: float,
    sm_count: int,
    *,
    device: str = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    timer: Callable[..., float] | None = None,
    rotate_bytes: int = 256 << 20,
) -> list[tuple[dict, dict]]:
    """(config, metrics) rows of one (preset, batch) decode step from raw qkv: the three
    kernels (``qk_norm_rope`` with the KV write, sglang's stage 1 launched as the device's
    table says, stage 2) and the one-launch kernel under each of ``args.configs``, all at
    sglang's split rule; graph medians over KV regions that rotate past the L2.  Each fused
    row carries its largest difference from the three kernels' output (relative to its
    largest value)."""
    from sglang_ext.kernels.decode_attention import decode_attention, tickets
    from sglang_ext.kernels.decode_attention_launch import stage1_config
    from sglang_ext.kernels.qk_norm_rope import qk_norm_rope
    from sglang_ext.perf.timing import time_graph

    timer = timer or time_graph
    h, hkv, d = preset_heads(preset)
    seq, eps, maxs, dev = args.context_len, 1e-6, args.max_kv_splits, torch.device(device)
    kv_bytes, regions, kb, vb, g = _kv_regions(batch, seq, hkv, d, dtype, dev, rotate_bytes)
    qkv0 = torch.randn(batch, (h + 2 * hkv) * d, device=dev, dtype=dtype, generator=g)
    qkv = qkv0.clone()
    qw = torch.rand(d, device=dev, generator=g).to(dtype) + 0.5
    kw = torch.rand(d, device=dev, generator=g).to(dtype) + 0.5
    inv = 1.0 / 1e6 ** (torch.arange(0, d, 2, device=dev, dtype=torch.float64) / d)
    ang = torch.arange(seq, device=dev, dtype=torch.float64)[:, None] * inv[None, :]
    cos_sin = torch.cat([ang.cos(), ang.sin()], -1).float()
    pos = torch.full((batch,), seq - 1, device=dev, dtype=torch.int64)
    indptr = torch.arange(batch + 1, device=dev, dtype=torch.int32) * seq
    sets = []
    for r in range(regions):
        idx = torch.arange(r * batch * seq, (r + 1) * batch * seq, device=dev, dtype=torch.int32)
        sets.append((idx, idx.view(batch, seq)[:, -1].long()))
    rule = sglang_kv_splits(batch, seq, num_heads=h, num_kv_heads=hkv, max_kv_splits=maxs,
                            sm_count=sm_count)  # fmt: skip
    ns = torch.full((batch,), rule, device=dev, dtype=torch.int32)
    mid_o = torch.empty(batch, h, maxs, d, dtype=torch.float32, device=dev)
    mid_lse = torch.empty(batch, h, maxs, dtype=torch.float32, device=dev)
    ticket = tickets(dev, batch * hkv)
    q, k, v = qkv.split([h * d, hkv * d, hkv * d], dim=-1)
    out = torch.empty(batch, h, d, dtype=dtype, device=dev)
    table = Stage1Config(*stage1_config(batch, h // hkv, d, dev))

    def three(st):
        qk_norm_rope(pos, q, k, qw, kw, eps, d, cos_sin, value=v, k_cache=kb, v_cache=vb,
                     cache_loc=st[1])  # fmt: skip
        grouped_decode(q.view(batch, h, d), kb, vb, indptr, st[0], ns, maxs, config=table,
                       out=out, workspace=(mid_o, mid_lse))  # fmt: skip

    def fused(st, cfg, splits, mo, ml):
        return decode_attention(pos, q, k, v, qw, kw, eps, cos_sin, kb, vb, st[1], indptr,
                                st[0], splits, mo, ml, d**-0.5, ticket=ticket,
                                block_n=cfg.block_n, num_warps=cfg.num_warps,
                                num_stages=cfg.num_stages)  # fmt: skip

    three(sets[0])
    want = out.float().reshape(batch, h * d).clone()
    floor = kv_bytes / (copy_gbps * 1e3)
    base = {"preset": preset, "batch_size": batch, "context_len": seq, "heads": h,
            "kv_heads": hkv, "head_dim": d, "kv_splits": rule, "max_kv_splits": maxs}  # fmt: skip
    us = timer(three, sets, rep_ms=args.rep_ms)
    rows = [({**base, "kernel": "qk_norm_rope+stage1+stage2", "stage1": table.name},
             {"median_us": us, "kv_bytes": kv_bytes, "floor_us": floor,
              "ratio_to_floor": us / floor})]  # fmt: skip
    counts = sorted({rule if s == "sglang" else int(s) for s in args.splits})
    for n in counts:  # the one launch takes any split count its workspace holds
        ws = max(n, maxs)
        ns_n = torch.full((batch,), n, device=dev, dtype=torch.int32)
        mo = torch.empty(batch, h, ws, d, dtype=torch.float32, device=dev)
        ml = torch.empty(batch, h, ws, dtype=torch.float32, device=dev)
        for text in args.configs:
            cfg = parse_config(text)
            qkv.copy_(qkv0)
            got = fused(sets[0], cfg, ns_n, mo, ml).float()
            err = ((got - want).abs().max() / want.abs().max()).item()
            t = timer(lambda st, c=cfg, a=ns_n, o=mo, s=ml: fused(st, c, a, o, s), sets,
                      rep_ms=args.rep_ms)  # fmt: skip
            rows.append(({**base, "kernel": "fused", "stage1": cfg.name, "kv_splits": n,
                          "max_kv_splits": ws},
                         {"median_us": t, "kv_bytes": kv_bytes, "floor_us": floor,
                          "ratio_to_floor": t / floor, "speedup_vs_three_kernels": us / t,
                          "max_rel_diff_vs_three_kernels": err}))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python bench/bench_decode_attention.py``: every (preset, batch, stage-1 config,
    split count) timed on the GPU, one record each, and a table of the fastest per batch."""
    import argparse
    import json
    import sys
    from pathlib import Path

    from sglang_ext.cli import add_dataclass_args, dataclass_from_args
    from sglang_ext.perf.records import append_jsonl, collect_env, make_record
    from sglang_ext.perf.timing import copy_us
    from sglang_ext.profile.decode_budget import gpu_folder

    from .sglang_baseline import activate_sglang

    p = argparse.ArgumentParser(
        prog="python bench/bench_decode_attention.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_args(p, AttnBenchArgs)
    args = dataclass_from_args(AttnBenchArgs, p.parse_args(argv))
    if args.table_from:
        records = [json.loads(line) for line in Path(args.table_from).read_text().splitlines()]
        write_stage1_table(records, args.table_from)
        return 0
    if not torch.cuda.is_available():
        print("error: the decode-attention bench needs a CUDA GPU", file=sys.stderr)
        return 2
    notes = activate_sglang()
    env = collect_env()
    us, nbytes = copy_us()
    copy_gbps = nbytes / us / 1e3
    props = torch.cuda.get_device_properties(0)
    name = "decode_attention_fused" if args.fused else "decode_attention"
    out = args.output_file or f"bench/results/{gpu_folder(props.name)}/{name}.jsonl"
    run = {"copy_gbps": copy_gbps, "sm_count": props.multi_processor_count, "setup": notes}
    print(f"copy {copy_gbps:.0f} GB/s, {props.multi_processor_count} SMs; records -> {out}")
    records = []
    if args.fused:
        for preset in args.presets:
            for b in args.batch_sizes:
                rows = bench_fused_point(preset, b, args, copy_gbps, props.multi_processor_count)
                for conf, m in rows:
                    append_jsonl(out, make_record(name, {**conf, **run}, m, env=env))
                (c3, m3), fused = rows[0], rows[1:]
                best_c, best = min(fused, key=lambda r: r[1]["median_us"])
                print(f"{preset} batch {b}: three kernels {m3['median_us']:.1f} us "
                      f"({c3['stage1']}, {c3['kv_splits']} splits), one launch "
                      f"{best['median_us']:.1f} us ({best_c['stage1']}), KV floor "
                      f"{best['floor_us']:.2f} us; max rel diff "
                      f"{max(m['max_rel_diff_vs_three_kernels'] for _, m in fused):.1e}",
                      flush=True)  # fmt: skip
        return 0
    for preset in args.presets:
        for b in args.batch_sizes:
            rows = bench_point(preset, b, args, copy_gbps, props.multi_processor_count)
            for conf, m in rows:
                records.append(make_record("decode_attention", {**conf, **run}, m, env=env))
                append_jsonl(out, records[-1])
            base = next((m for c, m in rows if c["is_sglang_default"]), None)
            best_c, best = min(rows, key=lambda r: r[1]["median_us"])
            ours = (
                f"sglang's {base['median_us']:.1f} us ({SGLANG_STAGE1.name}, "
                f"{best_c['sglang_rule_splits']} splits)"
                if base
                else f"sglang's launch not timed (add {SGLANG_STAGE1.name} and sglang)"
            )
            print(
                f"{preset} batch {b}: {ours}, best "
                f"{best['median_us']:.1f} us ({best_c['stage1']}, {best_c['kv_splits']} splits), "
                f"KV floor {best['floor_us']:.1f} us; max rel err "
                f"{max(m['max_rel_err_vs_fp32'] for _, m in rows):.1e}",
                flush=True,
            )
    if args.write_table:
        write_stage1_table(records, out)
    return 0


def write_stage1_table(records: list[dict], source: str) -> None:
    """The stage-1 launch table from one run's records (for the GPU and Triton version the
    records name), and a summary."""
    from sglang_ext.kernels import decode_attention_launch as dal
    from sglang_ext.perf.records import one_run

    device, triton_version, sha = one_run(records, source)
    shapes = dal.choose_buckets(records)
    path = dal.table_file(device, triton_version=triton_version)
    notes = {"source": f"{source} (sglang-ext {sha})"}
    dal.write_table(path, device, shapes, triton_version=triton_version, notes=notes)
    print(f"stage-1 table -> {path}")
    for key, buckets in shapes.items():
        print(f"  {key}: " + ", ".join(f"<= {b.batch_max}: {b.stage1.name} ({b.us} us, "
                                       f"sglang's {b.sglang_us})" for b in buckets))  # fmt: skip
