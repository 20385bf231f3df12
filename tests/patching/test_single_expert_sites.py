"""Where one expert breaks stock sglang 0.4.7, run on the pristine and the patched tree."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sglang_ext.patching import PatchSeries, apply

PROBE = Path(__file__).with_name("_probes.py")


@pytest.fixture(scope="module")
def trees(tmp_path_factory, pristine_tree, series):
    """'stock': 0.4.7 with only the portability patches (stock 0.4.7 cannot even be
    imported on a CPU machine without vllm), so the single-expert behaviour is
    upstream's; 'patched': the whole series."""
    root = tmp_path_factory.mktemp("trees")
    portability = PatchSeries(
        directory=series.directory,
        names=tuple(n for n in series.names if "-portability-" in n),
    )
    assert 0 < len(portability.names) < len(series.names)
    shutil.copytree(pristine_tree, root / "stock" / "sglang")
    apply(root / "stock" / "sglang", portability)
    shutil.copytree(pristine_tree, root / "patched" / "sglang")
    apply(root / "patched" / "sglang", series)
    return {"stock": root / "stock", "patched": root / "patched"}


def probes(*calls: tuple[Path, tuple[str, ...]]) -> list[dict]:
    """Run each ``(tree_root, probe args)`` in its own child interpreter, all at once
    (each one mostly waits on sglang's imports), and return their JSON results in order."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(PROBE), *args],
            env=dict(os.environ, PYTHONPATH=str(tree_root)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tree_root, args in calls
    ]
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            lines = [ln for ln in stdout.splitlines() if ln.startswith("PROBE ")]
            assert lines, f"probe {proc.args[2:]} crashed:\n{stderr[-3000:]}"
            results.append(json.loads(lines[-1][len("PROBE ") :]))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)
    return results


EP_SIZES = (2, 4, 8)


@pytest.fixture(scope="module")
def maps(trees, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("store")
    sizes = ",".join(map(str, EP_SIZES))
    names = ("stock", "patched")
    got = probes(*((trees[n], ("expert_location", sizes, str(tmp / n))) for n in names))
    return dict(zip(names, got, strict=True))


@pytest.mark.parametrize("ep", EP_SIZES)
def test_expert_location_one_expert(maps, ep):
    stock = maps["stock"][str(ep)]
    assert not stock["ok"], "stock 0.4.7 was expected to fail with 1 expert"
    assert "AssertionError" in stock["error"]

    ours = maps["patched"][str(ep)]
    assert ours["ok"], ours
    p2l = ours["physical_to_logical"]
    num_physical = len(p2l[0])
    assert num_physical % ep == 0 and num_physical >= ep
    local = num_physical // ep
    for layer in range(2):
        assert set(p2l[layer]) == {0}, "every physical expert must be a replica of expert 0"
        replicas = [p for p in ours["logical_to_all_physical"][layer][0] if p != -1]
        assert sorted(replicas) == list(range(num_physical))
        # each physical expert lives on a real rank, and every rank holds one
        assert sorted({p // local for p in replicas}) == list(range(ep))
    for rank, per_layer in enumerate(ours["dispatch"]):
        for layer in range(2):
            target = per_layer[layer][0]
            assert 0 <= target < num_physical
            assert target // local == rank, "static dispatch should pick the local replica"


def test_registry_reports_failed_native_import(trees):
    # (that the patched tree resolves Qwen3-MoE natively when it imports is what every
    # server test's "SingleExpertMoE: mode ..." log line shows)
    stock, ours = probes(
        (trees["stock"], ("registry", "break")), (trees["patched"], ("registry", "break"))
    )
    assert stock == {"resolved": "TransformersForCausalLM"}, "stock falls back silently"
    assert "sglang.srt.models.qwen3_moe" in ours.get("error", ""), ours
    assert "SGLANG_MODEL_IMPL=transformers" in ours["error"]
