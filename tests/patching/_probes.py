"""Probes run in a child interpreter with PYTHONPATH set to a pristine or patched tree.

usage: python _probes.py expert_location EP_SIZES STORE_FILE | registry [break]
(EP_SIZES: comma-separated, e.g. 2,4,8)
Prints one JSON line.
"""

import json
import sys


def expert_location(ep_sizes: list[int], store: str) -> dict:
    from types import SimpleNamespace

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    import sglang.srt.managers.expert_location as el

    # a 2-layer model with ONE logical expert, without loading a real model config
    el.ModelConfigForExpertLocation.from_model_config = staticmethod(
        lambda _: el.ModelConfigForExpertLocation(num_layers=2, num_logical_experts=1)
    )
    return {str(ep): _one_map(el, SimpleNamespace, ep) for ep in ep_sizes}


def _one_map(el, SimpleNamespace, ep: int) -> dict:
    args = SimpleNamespace(
        init_expert_location="trivial",
        ep_num_redundant_experts=0,
        ep_size=ep,
        device="cpu",
        ep_dispatch_algorithm="static",
        nnodes=1,
    )
    try:
        md = el.compute_initial_expert_location_metadata(args, None)
        num_physical = md.physical_to_logical_map.shape[1]
        dispatch = [
            el.compute_logical_to_rank_dispatch_physical_map(
                md.logical_to_all_physical_map,
                num_gpus=ep,
                num_physical_experts=num_physical,
                ep_rank=r,
            ).tolist()
            for r in range(ep)
        ]
    except Exception as e:  # the pristine tree fails here
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {
        "ok": True,
        "physical_to_logical": md.physical_to_logical_map.tolist(),
        "logical_to_all_physical": md.logical_to_all_physical_map.tolist(),
        "dispatch": dispatch,  # [rank][layer][logical] -> physical
    }


def registry(break_qwen3_moe: bool) -> dict:
    if break_qwen3_moe:  # the module fails to import, as it did in the original fork
        sys.modules["sglang.srt.models.qwen3_moe"] = None
    from sglang.srt.models.registry import ModelRegistry

    try:
        _, arch = ModelRegistry.resolve_model_cls(["Qwen3MoeForCausalLM"])
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    return {"resolved": arch}


if __name__ == "__main__":
    if sys.argv[1] == "expert_location":
        out = expert_location([int(e) for e in sys.argv[2].split(",")], sys.argv[3])
    else:
        out = registry(len(sys.argv) > 2 and sys.argv[2] == "break")
    print("PROBE " + json.dumps(out))
