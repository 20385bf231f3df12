"""Bad SRC/DST/--expert are refused with nothing written; SRC never changes; failures are atomic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeModel, Qwen3MoeSparseMoeBlock

import sglang_ext.prune.writer as writer
from sglang_ext.prune import PruneConfig, moe_layout, prune
from sglang_ext.prune.__main__ import main
from tests._support.trees import snapshot


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def _refused(src: Path, dst: Path, expert: str, exc: type, match: str) -> None:
    parent = dst.parent if dst.parent.exists() else None
    before = _listing(parent) if parent else None
    with pytest.raises(exc, match=match):
        prune(PruneConfig(src=src, dst=dst, expert=expert))
    if parent:
        assert _listing(parent) == before, "something was written next to DST"


def test_dst_inside_src(src_guard):
    _refused(src_guard, src_guard / "pruned", "3", ValueError, "inside SRC")
    assert not (src_guard / "pruned").exists()


def test_dst_equals_src(src_guard):
    _refused(src_guard, src_guard, "3", ValueError, "is SRC")


def test_src_inside_dst(src_guard):
    _refused(src_guard, src_guard.parent, "3", ValueError, "SRC .* is inside DST")


def test_non_empty_dst(src_guard, tmp_path):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    _refused(src_guard, dst, "3", FileExistsError, "not empty")
    assert _listing(dst) == ["keep.txt"] and (dst / "keep.txt").read_text() == "mine"


def test_missing_src(tmp_path):
    _refused(tmp_path / "nope", tmp_path / "out", "3", FileNotFoundError, "does not exist")
    assert not (tmp_path / "out").exists()


def test_expert_index_out_of_range(src_guard, tmp_path):
    _refused(src_guard, tmp_path / "out", "8", ValueError, r"out of range.*8 experts \(0\.\.7\)")


def test_bad_expert_word():
    with pytest.raises(ValueError, match="not understood"):
        PruneConfig(src=Path("a"), dst=Path("b"), expert="best")


def test_not_qwen3_moe(tmp_path):
    src = tmp_path / "llama"
    src.mkdir()
    (src / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    (src / "model.safetensors").write_bytes(b"")
    _refused(src, tmp_path / "out", "0", ValueError, "not a Qwen3-MoE")


def test_already_single_expert_and_cli_exit_code(src_guard, tmp_path, capsys):
    once = tmp_path / "once"
    assert main([str(src_guard), str(once), "--expert", "0"]) == 0
    assert (once / "model.safetensors").is_file(), "default shard size gives one file"
    before = snapshot(once)
    assert main([str(once), str(tmp_path / "twice"), "--expert", "0"]) == 2
    assert "already single-expert" in capsys.readouterr().err
    assert not (tmp_path / "twice").exists() and snapshot(once) == before


def test_failure_mid_write_leaves_nothing(src_guard, tmp_path, monkeypatch):
    real_save, calls = writer.save_file, []

    def flaky_save(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(writer, "save_file", flaky_save)
    dst = tmp_path / "out"
    with pytest.raises(OSError, match="simulated"):
        prune(PruneConfig(src=src_guard, dst=dst, expert="3", max_shard_size="150KB"))
    assert len(calls) == 2 and not dst.exists()
    assert _listing(tmp_path) == [], "partial output left behind"


def test_corrupt_write_is_detected(src_guard, tmp_path, monkeypatch):
    """A shard that reads back differently from what was meant fails the run."""
    real_save = writer.save_file

    def bitflip_save(tensors, path, metadata=None):
        name = sorted(tensors)[0]
        tensors = dict(tensors, **{name: tensors[name].clone().add_(1.0)})
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(writer, "save_file", bitflip_save)
    with pytest.raises(RuntimeError, match="re-read differs"):
        prune(PruneConfig(src=src_guard, dst=tmp_path / "out", expert="3"))
    assert _listing(tmp_path) == []


def test_non_finite_source_is_refused(tiny_moe_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    src = tmp_path / "nan_src"
    shutil.copytree(tiny_moe_dir, src)
    shard = sorted(src.glob("model-*.safetensors"))[0]
    tensors = load_file(shard)
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, shard, metadata={"format": "pt"})
    with pytest.raises(ValueError, match="NaN or Inf"):
        prune(PruneConfig(src=src, dst=tmp_path / "out", expert="3"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("step", "mlp_only"), [(1, []), (2, []), (1, [0, 3]), (3, [2])])
def test_moe_layout_matches_hf(step, mlp_only, moe_config):
    cfg = moe_config(num_hidden_layers=6, decoder_sparse_step=step, mlp_only_layers=mlp_only)
    model = Qwen3MoeModel(cfg)
    hf = tuple(
        i for i, layer in enumerate(model.layers) if isinstance(layer.mlp, Qwen3MoeSparseMoeBlock)
    )
    assert moe_layout(cfg.to_dict()).moe_layers == hf


def test_most_used_needs_a_tokenizer(tiny_moe_dir, tmp_path):
    src = tmp_path / "no_tok"
    shutil.copytree(tiny_moe_dir, src)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (src / f).unlink()
    _refused(src, tmp_path / "out", "most-used", ValueError, "needs the source's tokenizer")
    assert not (tmp_path / "out").exists()
