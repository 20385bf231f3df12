"""``SingleExpertMoE``: the MoE experts layer for models with exactly one expert.

With one expert and top-1 softmax routing the routing weight is exactly 1.0 (softmax of one
logit), so sglang's ``FusedMoE(hidden, router_logits)`` reduces to the expert's SwiGLU MLP
``down(silu(gate(x)) * up(x))``, whatever ``norm_topk_prob`` says. Stock sglang 0.4.7 refuses
tp_size > num_experts for such models; this layer replaces ``FusedMoE`` there, with the same
weight names (``w13_weight``, ``w2_weight``) and ``weight_loader`` signature, and two ways to
use several ranks:

- ``tp``: the intermediate dim is sharded (w1/w3 rows and w2 columns by ``rank``, as in
  FusedMoE); ``forward`` returns this rank's partial sum.
- ``dp``: every rank holds the whole expert and computes only the tokens routed to it
  (``routing.py``), written into a zero output.

In both modes the sum of the ranks' outputs is the layer's output: the caller's existing TP
all-reduce (sglang ``Qwen3MoeSparseMoeBlock``) works unchanged, or pass
``reduce_results=True`` and ``group`` and the layer all-reduces itself.

Assumptions in dp mode: every rank of ``group`` calls ``forward`` the same number of times
with the same hidden states (as under TP; not true under dp-attention, where ranks hold
different tokens). Routing needs no communication because every rank computes the same
assignment. Layers built with the same ``seed`` draw the same assignment at the same step;
pass e.g. ``seed=layer_id`` to decorrelate the layers' loads under ``random``. Under CUDA
graph capture the layer uses the static round-robin assignment with offset 0 (a captured graph
cannot re-route per replay) and ``tokens_computed`` counts only eager calls.

Compute (:func:`swiglu_mlp`): plain torch (``F.linear``, ``silu(gate) * up``, ``F.linear``,
i.e. cuBLAS on CUDA) unless the measured dispatch table for this GPU, shard shape (H, I/tp)
and token-count bucket names a kernel (``sglang_ext.kernels.fused_mlp_dispatch``): the Triton
``fused_mlp.fused_swiglu_mlp`` (``triton_v2``) or the CUDA one-launch
``cuda_onelaunch.fused_swiglu_mlp_cuda`` (``cuda_onelaunch``, M <= 32).  No table, no entry,
CPU, float32, or ``SGLANG_EXT_FUSED_MLP=0`` (read once per process:
``serving.config.rank_config().fused_mlp``): cuBLAS.  On the default path (fast path on)
the cuBLAS MLP's two GEMMs go where the device's measured gemv table says
(``kernels.gemv_dispatch``, as sglang's linears under patch 0020: the one-launch skinny GEMM
at the decode M it wins, else cuBLAS); ``SGLANG_EXT_FUSED_MLP=0`` keeps them on cuBLAS.
``use_kernel=False`` forces torch with cuBLAS GEMMs (the benches' baseline);
``use_kernel=True`` demands the Triton kernel and a name from ``IMPLS`` demands that one (an
error if unusable).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed import ProcessGroup
from torch.nn import Parameter

from sglang_ext.kernels import gemv_dispatch
from sglang_ext.kernels.fused_mlp_dispatch import IMPLS
from sglang_ext.layers.routing import (
    DP_ROUTINGS,
    ReplicaSelection,
    full_selection,
    random_selection,
    round_robin_selection,
)
from sglang_ext.serving.config import rank_config

__all__ = [
    "IMPLS",
    "SINGLE_EXPERT_MODES",
    "SINGLE_EXPERT_MODE_ENV",
    "SingleExpertMoE",
    "default_impl",
    "resolve_single_expert_mode",
    "served_torch_mlp",
    "swiglu_mlp",
]

logger = logging.getLogger(__name__)

SINGLE_EXPERT_MODES = ("tp", "dp")
SINGLE_EXPERT_MODE_ENV = "SINGLE_EXPERT_MODE"
_SHARD_IDS = ("w1", "w2", "w3")

KernelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
LinearFn = Callable[..., torch.Tensor]


def resolve_single_expert_mode(
    cli_value: str | None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The single-expert mode from ``--single-expert-mode`` or else env ``SINGLE_EXPERT_MODE``.

    The CLI value wins over the environment. Returns ``"tp"``, ``"dp"`` or ``None`` (neither
    set, or set to an empty string). Values are case-insensitive; anything else is an error.
    """
    env = os.environ if environ is None else environ
    env_value = env.get(SINGLE_EXPERT_MODE_ENV) or None
    if cli_value is not None:
        source, raw = "--single-expert-mode", cli_value
    elif env_value is not None:
        source, raw = f"environment variable {SINGLE_EXPERT_MODE_ENV}", env_value
    else:
        return None
    value = raw.strip().lower()
    if value not in SINGLE_EXPERT_MODES:
        raise ValueError(
            f"{source}={raw!r} is not a single-expert mode: use 'tp' (shard the expert's "
            f"intermediate dim over the ranks) or 'dp' (replicate the expert, split the "
            f"tokens between the ranks)"
        )
    if cli_value is not None and env_value is not None and env_value.strip().lower() != value:
        logger.info(
            "--single-expert-mode=%s overrides %s=%s", value, SINGLE_EXPERT_MODE_ENV, env_value
        )
    return value


_KERNEL_DTYPES = (torch.bfloat16, torch.float16)


@functools.cache
def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device)


def _switched_off() -> bool:
    """``SGLANG_EXT_FUSED_MLP=0``, read once per process (``serving.config.rank_config``)."""
    return not rank_config().fused_mlp


def default_impl(m: int, hidden: int, inter: int, dtype: torch.dtype, device: torch.device) -> str:
    """What :func:`swiglu_mlp` runs by default for ``m`` tokens of shard (hidden, inter)."""
    if device.type != "cuda" or m == 0 or dtype not in _KERNEL_DTYPES or _switched_off():
        return "cublas"
    from sglang_ext.kernels import cuda_onelaunch
    from sglang_ext.kernels.fused_mlp_dispatch import choose_impl

    impl = choose_impl(m, hidden, inter, _device_name(device))
    if impl == "cuda_onelaunch" and not cuda_onelaunch.supports(m, hidden, inter, dtype):
        return "cublas"
    return impl


@functools.cache
def _load_kernel(impl: str, device: str) -> KernelFn | None:
    """The kernel function of ``impl`` if it imports and is usable on ``device``, else None."""
    dev = torch.device(device)
    try:
        if impl == "triton_v2":
            from sglang_ext.kernels import fused_mlp as mod

            fn = mod.fused_swiglu_mlp
        elif impl == "cuda_onelaunch":
            from sglang_ext.kernels import cuda_onelaunch as mod

            fn = mod.fused_swiglu_mlp_cuda
        else:
            raise ValueError(f"impl={impl!r}: use one of {IMPLS}")
    except ImportError as exc:
        logger.warning("%s unavailable (%s); using the torch MLP", impl, exc)
        return None
    if not mod.is_available(dev):
        logger.warning("%s is not usable on %s; using the torch MLP", impl, device)
        return None
    return fn


def _torch_mlp(
    x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, linear: LinearFn = F.linear
) -> torch.Tensor:
    """Two GEMMs (``linear``) around the activation; on CUDA the activation is one Triton
    kernel (``kernels.activation``, as sgl_kernel's ``silu_and_mul``), elsewhere plain torch."""
    gate_up = linear(x, w13)  # [M, 2*I]
    inter = w2.shape[1]
    if gate_up.is_cuda:
        from sglang_ext.kernels.activation import gated_act

        h = gated_act(gate_up, gate_up.new_empty(*gate_up.shape[:-1], inter))
    else:
        gate, up = gate_up.split(inter, dim=-1)
        h = F.silu(gate) * up
    return linear(h, w2)  # [M, H]


def served_torch_mlp(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """The ``cublas`` impl as the default path serves it: two GEMMs through the gemv table
    (``gemv_dispatch.linear``: the skinny GEMM where it was measured faster, else cuBLAS)
    around the activation.  The dispatch table's reference (``measure_dispatch``)."""
    return _torch_mlp(x, w13, w2, gemv_dispatch.linear)


def swiglu_mlp(
    x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, *, use_kernel: bool | str | None = None
) -> torch.Tensor:
    """x: [M, H], w13: [2I, H], w2: [H, I] -> [M, H], the way SingleExpertMoE computes it.

    ``use_kernel``: None = the measured default (:func:`default_impl`); False = torch;
    True = the Triton kernel (any device ``fused_mlp.is_available`` accepts, CPU only under
    ``TRITON_INTERPRET=1``); an impl name = that one.  Demanded kernels raise if unusable.
    """
    m, hidden = x.shape
    if use_kernel is None:
        impl = default_impl(m, hidden, w2.shape[1], x.dtype, x.device)
    elif use_kernel is False or m == 0:
        impl = "cublas"
    elif use_kernel is True:
        impl = "triton_v2"
    elif use_kernel in IMPLS:
        impl = use_kernel
    else:
        raise ValueError(f"use_kernel={use_kernel!r}: use None, True, False or one of {IMPLS}")
    if impl == "cublas":  # the default's GEMMs: cuBLAS, or gemv where its table says it wins
        if use_kernel is None and not _switched_off():
            return served_torch_mlp(x, w13, w2)
        return _torch_mlp(x, w13, w2)
    kernel = _load_kernel(impl, str(x.device))
    if kernel is not None:
        return kernel(x.contiguous(), w13, w2)
    if use_kernel is not None:
        raise RuntimeError(
            f"use_kernel={use_kernel!r} but {impl} is not usable on {x.device} (missing, "
            f"SGLANG_EXT_FUSED_MLP=0, no nvcc, or CPU without TRITON_INTERPRET=1): pass "
            f"use_kernel=None to fall back to the torch MLP"
        )
    return _torch_mlp(x, w13, w2)


class SingleExpertMoE(torch.nn.Module):
    """One SwiGLU expert, tensor-parallel (``tp``) or replicated with token routing (``dp``)."""

    def __init__(
        self,
        *,
        hidden_size: int,
        intermediate_size: int,
        mode: str,
        rank: int,
        world_size: int,
        group: ProcessGroup | None = None,
        params_dtype: torch.dtype | None = None,
        dp_routing: str = "random",
        seed: int = 0,
        reduce_results: bool = False,
        use_kernel: bool | str | None = None,
    ) -> None:
        super().__init__()
        if hidden_size <= 0 or intermediate_size <= 0:
            raise ValueError(
                f"hidden_size={hidden_size} and intermediate_size={intermediate_size} must be > 0"
            )
        if mode not in SINGLE_EXPERT_MODES:
            raise ValueError(f"mode={mode!r} is not one of {SINGLE_EXPERT_MODES}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}"
            )
        if use_kernel not in (None, True, False, *IMPLS):
            raise ValueError(f"use_kernel={use_kernel!r}: use None, True, False or one of {IMPLS}")
        if dp_routing not in DP_ROUTINGS:
            raise ValueError(f"dp_routing={dp_routing!r} is not one of {DP_ROUTINGS}")
        if mode == "tp" and intermediate_size % world_size != 0:
            divisors = [
                d for d in range(1, min(intermediate_size, 64) + 1) if intermediate_size % d == 0
            ]
            raise ValueError(
                f"single-expert tp mode shards intermediate_size={intermediate_size} over "
                f"world_size={world_size} ranks, but {intermediate_size} is not divisible by "
                f"{world_size}: use a TP size that divides it (one of {divisors}) or "
                f"--single-expert-mode dp, which replicates the expert instead"
            )
        if reduce_results and world_size > 1 and group is None:
            raise ValueError(
                "reduce_results=True needs the process group to all-reduce over: pass group="
            )
        if group is not None and dist.is_initialized():
            g_size, g_rank = dist.get_world_size(group=group), dist.get_rank(group=group)
            if (g_size, g_rank) != (world_size, rank):
                raise ValueError(
                    f"group has size {g_size} and this process is its rank {g_rank}, but "
                    f"world_size={world_size} rank={rank} were given: pass the group the "
                    f"expert is split over, with this process's rank in it"
                )

        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.mode = mode
        self.rank = rank
        self.world_size = world_size
        self.group = group
        self.dp_routing = dp_routing
        self.seed = seed
        self.reduce_results = reduce_results
        self.use_kernel = use_kernel
        self.intermediate_size_per_partition = (
            intermediate_size // world_size if mode == "tp" else intermediate_size
        )
        inter = self.intermediate_size_per_partition
        dtype = params_dtype if params_dtype is not None else torch.get_default_dtype()
        # No device argument: sglang builds models under a ``with torch.device(...)`` context.
        self.w13_weight = Parameter(
            torch.empty(2 * inter, hidden_size, dtype=dtype), requires_grad=False
        )
        self.w2_weight = Parameter(
            torch.empty(hidden_size, inter, dtype=dtype), requires_grad=False
        )
        for param in (self.w13_weight, self.w2_weight):
            param.weight_loader = self.weight_loader  # what sglang's set_weight_attrs does

        self.tokens_computed = 0  # tokens this rank pushed through the expert (eager calls)
        self.last_selection: ReplicaSelection | None = None  # dp: tokens of the last call
        self._step = 0  # dp/random: forward calls so far
        self._offset = 0  # dp/round_robin: tokens routed so far, mod world_size
        self._warned_capture = False

    # ------------------------------------------------------------------ weights
    @classmethod
    def make_expert_params_mapping(
        cls,
        ckpt_gate_proj_name: str,
        ckpt_down_proj_name: str,
        ckpt_up_proj_name: str,
        num_experts: int,
    ) -> list[tuple[str, str, int, str]]:
        """Same rows as ``FusedMoE.make_expert_params_mapping`` (num_experts must be 1)."""
        if num_experts != 1:
            raise ValueError(
                f"SingleExpertMoE holds one expert, got num_experts={num_experts}: use "
                f"sglang's FusedMoE for models with several experts"
            )
        return [
            (
                "experts.w13_" if shard_id != "w2" else "experts.w2_",
                f"experts.0.{name}.",
                0,
                shard_id,
            )
            for shard_id, name in (
                ("w1", ckpt_gate_proj_name),
                ("w2", ckpt_down_proj_name),
                ("w3", ckpt_up_proj_name),
            )
        ]

    def weight_loader(
        self,
        param: Parameter,
        loaded_weight: torch.Tensor,
        weight_name: str,
        shard_id: str,
        expert_id: int,
    ) -> None:
        """Load a full (unsharded) HF expert weight into this rank's part of ``param``.

        shard_id ``w1`` (gate_proj, [I, H]) and ``w3`` (up_proj, [I, H]) go to rows
        ``0:I_local`` and ``I_local:2*I_local`` of ``w13_weight``; ``w2`` (down_proj, [H, I])
        goes to ``w2_weight``. In tp mode rows (w1/w3) or columns (w2) are narrowed by rank.
        """
        if expert_id != 0:
            raise ValueError(
                f"SingleExpertMoE holds one expert (id 0) but {weight_name!r} is for "
                f"expert_id={expert_id}: the checkpoint has several experts per layer; use "
                f"sglang's FusedMoE/EPMoE for it, not the single-expert layer"
            )
        if shard_id not in _SHARD_IDS:
            raise ValueError(
                f"shard_id must be one of {_SHARD_IDS}, got {shard_id!r} ({weight_name!r})"
            )
        if any(key in weight_name for key in ("scale", "zero", "g_idx", "qweight")):
            raise ValueError(
                f"{weight_name!r} is a quantization tensor; SingleExpertMoE loads unquantized "
                f"weights only: use an unquantized (bf16/fp16/fp32) checkpoint"
            )
        target = self.w2_weight if shard_id == "w2" else self.w13_weight
        if param is not target:
            name = "w2_weight" if shard_id == "w2" else "w13_weight"
            raise ValueError(f"shard_id={shard_id!r} ({weight_name!r}) must be loaded into {name}")

        H, full_i, inter = (
            self.hidden_size,
            self.intermediate_size,
            self.intermediate_size_per_partition,
        )
        expected = (H, full_i) if shard_id == "w2" else (full_i, H)
        if tuple(loaded_weight.shape) != expected:
            raise ValueError(
                f"{weight_name!r} (shard {shard_id}) has shape {tuple(loaded_weight.shape)}, "
                f"expected {expected} for hidden_size={H} intermediate_size={full_i}: check "
                f"the model config against the checkpoint"
            )
        start = inter * self.rank if self.mode == "tp" else 0
        with torch.no_grad():
            if shard_id == "w2":
                param.data.copy_(loaded_weight.narrow(1, start, inter))
            else:
                rows = 0 if shard_id == "w1" else inter
                param.data.narrow(0, rows, inter).copy_(loaded_weight.narrow(0, start, inter))

    # ------------------------------------------------------------------ forward
    def forward(
        self, hidden_states: torch.Tensor, router_logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """hidden_states: [T, H] (or [..., H]), identical on every rank -> this rank's share
        of the output, same shape; the sum over ranks is the layer output (summed here when
        ``reduce_results``). router_logits: [T, 1] or None; the one expert's weight is 1.0."""
        if hidden_states.shape[-1] != self.hidden_size:
            raise ValueError(
                f"hidden_states has shape {tuple(hidden_states.shape)}, last dim must be "
                f"hidden_size={self.hidden_size}"
            )
        if hidden_states.dtype != self.w13_weight.dtype:
            raise ValueError(
                f"hidden_states dtype {hidden_states.dtype} != weight dtype "
                f"{self.w13_weight.dtype}: build the layer with params_dtype={hidden_states.dtype}"
            )
        x = hidden_states.reshape(-1, self.hidden_size)  # x: [T, H]
        num_tokens = x.shape[0]
        if router_logits is not None and tuple(router_logits.shape) != (num_tokens, 1):
            raise ValueError(
                f"router_logits has shape {tuple(router_logits.shape)}, expected "
                f"({num_tokens}, 1) for {num_tokens} tokens and one expert"
            )
        if self.mode == "tp":
            out = self._mlp(x)
            self._count(num_tokens)
        else:
            out = self._forward_dp(x)
        if self.reduce_results and self.world_size > 1:
            dist.all_reduce(out, group=self.group)
        return out.view(hidden_states.shape)

    def forward_normed(
        self, x: torch.Tensor, residual: torch.Tensor | None, norm_weight: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The decoder layer's post-attention RMSNorm and this expert in two launches:
        ``(forward(rmsnorm(x + residual) * norm_weight), x + residual)``, the norm inside the
        gate/up GEMM's prologue and the SwiGLU in its epilogue (``kernels.norm_gemv``), then
        the down GEMM (``gemv_dispatch.linear``).  None where that is not this layer's
        computation or not measured faster: more than one rank, a CPU tensor, the measured
        MLP dispatch switched off (``SGLANG_EXT_FUSED_MLP=0``), a demanded kernel, or no gemv
        launch for the gate/up weight at this many tokens (``norm_gemv.fused_launch``: none in
        the device's gemv table, or one too narrow for the norm to pay)."""
        if self.world_size != 1 or self.use_kernel is not None or _switched_off():
            return None
        from sglang_ext.kernels.norm_gemv import fused_launch, norm_gemv

        config = fused_launch(x, self.w13_weight, swiglu=True)
        if config is None:
            return None
        h, new_res = norm_gemv(
            x, residual, norm_weight, eps, self.w13_weight, swiglu=True, config=config
        )  # fmt: skip
        self._count(x.shape[0])
        return gemv_dispatch.linear(h, self.w2_weight), new_res

    def _forward_dp(self, x: torch.Tensor) -> torch.Tensor:
        sel = self._route(x.shape[0], x.device)
        self.last_selection = sel
        if sel.count == x.shape[0]:
            out = self._mlp(x)
        else:
            out = torch.zeros_like(x)  # out: [T, H]; other ranks' tokens stay 0
            if sel.count > 0:
                sel.scatter_(out, self._mlp(sel.gather(x)))
        self._count(sel.count)
        return out

    def _route(self, num_tokens: int, device: torch.device) -> ReplicaSelection:
        if self.world_size == 1:
            return full_selection(num_tokens)
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            if self.dp_routing == "random" and not self._warned_capture:
                self._warned_capture = True
                logger.info("CUDA graph capture: dp routing inside graphs is static round-robin")
            return round_robin_selection(num_tokens, self.world_size, self.rank, offset=0)
        if self.dp_routing == "round_robin":
            sel = round_robin_selection(num_tokens, self.world_size, self.rank, self._offset)
            self._offset = (self._offset + num_tokens) % self.world_size
        else:
            sel = random_selection(
                num_tokens,
                self.world_size,
                self.rank,
                seed=self.seed,
                step=self._step,
                device=device,
            )
        self._step += 1
        return sel

    def _count(self, n: int) -> None:
        if not (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()):
            self.tokens_computed += n

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        """x: [M, H] -> [M, H] through this rank's (shard of the) expert."""
        return swiglu_mlp(x, self.w13_weight, self.w2_weight, use_kernel=self.use_kernel)

    def extra_repr(self) -> str:
        routing = f", dp_routing={self.dp_routing}" if self.mode == "dp" else ""
        return (
            f"hidden_size={self.hidden_size}, intermediate_size={self.intermediate_size}, "
            f"mode={self.mode}, rank={self.rank}, world_size={self.world_size}{routing}"
        )
