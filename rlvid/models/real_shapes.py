"""Random-weight models with the published shapes of Qwen2.5-VL-3B/7B and Qwen3-VL-4B/8B, written shard by shard.

GPU checks (scripts/gpu_check.py) need real-size models without downloading weights: speed and
memory depend on the shapes, not on the values. `write_real_shape_model` writes a folder that
`from_pretrained` loads: rlvid's tiny tokenizer, processor and chat template (rlvid.models.tiny),
the published architecture (vision tower, merger, LLM, vocabulary size) and random bf16 weights.
The weights are made one tensor at a time and flushed into ~1 GB safetensors shards, so the
whole model never sits in host memory (7B: 16.6 GB on disk, peak RSS about one shard).

Shapes come from the published `config.json` files of Qwen/Qwen2.5-VL-3B-Instruct,
Qwen/Qwen2.5-VL-7B-Instruct, Qwen/Qwen3-VL-4B-Instruct and Qwen/Qwen3-VL-8B-Instruct (read
2026-11 through copies of those files in public repositories; the fields below are the ones that
set parameter shapes and attention layout). The vocabulary keeps its published size, so the
embedding, lm_head and the [T, V] logits cost what they cost in the real models, but the tokenizer
has ~1k tokens: sampled ids above it decode to nothing. Fix completion lengths with
`fix_completion_length` (min_new_tokens = max_new_tokens) so every run does the same work.
"""

from __future__ import annotations

import json
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

SHARD_BYTES = 1024**3
CHUNK = 1 << 24  # values drawn per randn call: bounds the fp32 temporary at 64 MB


@dataclass(frozen=True)
class RealShape:
    """The shape-setting fields of one published config (text_config / vision_config keys)."""

    arch: str
    source: str
    text: dict
    vision: dict
    tie_word_embeddings: bool
    extra: dict = field(default_factory=dict)


QWEN2_5_VL_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                         spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                         fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, hidden_act="silu")

SHAPES: dict[str, RealShape] = {
    "3b": RealShape(
        "qwen2_5_vl", "Qwen/Qwen2.5-VL-3B-Instruct config.json",
        text=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                  num_attention_heads=16, num_key_value_heads=2, rope_theta=1e6, mrope_section=[16, 24, 24]),
        vision=dict(QWEN2_5_VL_VISION, out_hidden_size=2048), tie_word_embeddings=True),
    "7b": RealShape(
        "qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct config.json",
        text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                  num_attention_heads=28, num_key_value_heads=4, rope_theta=1e6, mrope_section=[16, 24, 24]),
        vision=dict(QWEN2_5_VL_VISION, out_hidden_size=3584), tie_word_embeddings=False),
    "4b": RealShape(
        "qwen3_vl", "Qwen/Qwen3-VL-4B-Instruct config.json",
        text=dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                  num_attention_heads=32, num_key_value_heads=8, head_dim=128, rope_theta=5e6,
                  mrope_section=[24, 20, 20]),
        vision=dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, out_hidden_size=2560,
                    patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                    deepstack_visual_indexes=[5, 11, 17], hidden_act="gelu_pytorch_tanh"),
        tie_word_embeddings=True),
    "8b": RealShape(
        "qwen3_vl", "Qwen/Qwen3-VL-8B-Instruct config.json",
        text=dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                  num_attention_heads=32, num_key_value_heads=8, head_dim=128, rope_theta=5e6,
                  mrope_section=[24, 20, 20]),
        vision=dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=4096,
                    patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                    deepstack_visual_indexes=[8, 16, 24], hidden_act="gelu_pytorch_tanh"),
        tie_word_embeddings=False),
}


# Not a published model: the real-shape code path (shard writer, vocabulary larger than the tokenizer, untied
# lm_head) at a size a CPU runs in seconds; scripts/gpu_check.py --rehearse and the tests use it.
REHEARSAL = RealShape(
    "qwen2_5_vl", "rehearsal (not a published model)",
    text=dict(vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, rope_theta=1e6, mrope_section=[2, 3, 3]),
    vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=14,
                spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[1]),
    tie_word_embeddings=False)

def shape_config(arch: str, preset: str, base_dir: str | Path):
    """The HF config of `preset` for `arch`, built on the tiny folder at `base_dir` (its token ids)."""
    from transformers import AutoConfig

    shape = SHAPES[preset]
    if shape.arch != arch:
        raise ValueError(f"preset {preset!r} is a {shape.arch} shape, not {arch}; "
                         f"{arch} presets: {[k for k, s in SHAPES.items() if s.arch == arch]}")
    config = AutoConfig.from_pretrained(base_dir)
    text = dict(shape.text)
    mrope, theta = text.pop("mrope_section"), text.pop("rope_theta")
    for key, value in text.items():
        setattr(config.text_config, key, value)
    if getattr(config.text_config, "layer_types", None):  # one entry per layer; every published layer is full
        config.text_config.layer_types = ["full_attention"] * text["num_hidden_layers"]
    if "head_dim" not in text:
        config.text_config.head_dim = text["hidden_size"] // text["num_attention_heads"]
    config.text_config.rope_parameters = {**config.text_config.rope_parameters, "mrope_section": mrope,
                                          "rope_theta": theta}
    for key, value in shape.vision.items():
        setattr(config.vision_config, key, value)
    config.tie_word_embeddings = shape.tie_word_embeddings
    config.text_config.tie_word_embeddings = shape.tie_word_embeddings
    config.dtype = torch.bfloat16
    return config


def write_real_shape_model(out_dir: str | Path, arch: str, preset: str, seed: int = 0,
                           shard_bytes: int = SHARD_BYTES, device: str | None = None) -> Path:
    """Write a loadable bf16 model folder of `preset`'s published shape with random weights, shard by shard.

    `device` is where random values are drawn (default: cuda when available, which is much faster);
    each tensor is moved to the CPU as a shard fills, so host memory stays at about one shard.
    """
    from rlvid.models.tiny import make_tiny_model

    if preset not in SHAPES:
        raise ValueError(f"unknown real-size preset {preset!r}; allowed: {sorted(SHAPES)}")
    out = Path(out_dir)
    make_tiny_model(out, arch=arch, preset="tiny", seed=seed)  # tokenizer, processor, chat template
    config = shape_config(arch, preset, out)
    for old in list(out.glob("model*.safetensors")) + list(out.glob("model.safetensors.index.json")):
        old.unlink()
    with torch.device("meta"):
        model = _model_class(arch)(config)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    weight_map, total = _write_shards(out, _unique_tensors(model), seed, shard_bytes, device)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    config.save_pretrained(out)
    meta = {"arch": arch, "preset": preset, "seed": seed, "source": SHAPES[preset].source,
            "parameters": total // 2}
    (out / "rlvid_tiny.json").write_text(json.dumps(meta, indent=2))
    return out


def _model_class(arch: str):
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration if arch == "qwen2_5_vl" else Qwen3VLForConditionalGeneration


def _unique_tensors(model: torch.nn.Module) -> list[tuple[str, torch.Size]]:
    """(name, shape) of every saved tensor, tied weights once (the name `save_pretrained` keeps)."""
    seen: set[int] = set()
    out = []
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        out.append((name, tensor.shape))
    return out


def random_value(name: str, shape: torch.Size, seed: int, device: str) -> torch.Tensor:
    """bf16 value of one tensor: norms 1, biases 0, everything else N(0, 0.02) (the configs' initializer_range).

    Seeded by name, so a tensor's value does not depend on shard boundaries or on the device order.
    """
    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=torch.bfloat16, device=device)
    if "norm" in name.split(".")[-2] or name.split(".")[-2] in ("ln_q", "q_norm", "k_norm"):
        return torch.ones(shape, dtype=torch.bfloat16, device=device)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    out = torch.empty(shape.numel(), dtype=torch.bfloat16, device=device)
    for start in range(0, out.numel(), CHUNK):
        part = out[start:start + CHUNK]
        part.copy_(torch.randn(part.numel(), generator=gen, device=device).mul_(0.02))
    return out.view(shape)


def _write_shards(out: Path, tensors: list[tuple[str, torch.Size]], seed: int, shard_bytes: int,
                  device: str) -> tuple[dict[str, str], int]:
    from safetensors.torch import save_file

    sizes = [shape.numel() * 2 for _, shape in tensors]
    groups: list[list[int]] = [[]]
    filled = 0
    for i, size in enumerate(sizes):
        if groups[-1] and filled + size > shard_bytes:
            groups.append([])
            filled = 0
        groups[-1].append(i)
        filled += size
    weight_map: dict[str, str] = {}
    for n, group in enumerate(groups, start=1):
        fname = f"model-{n:05d}-of-{len(groups):05d}.safetensors"
        shard = {tensors[i][0]: random_value(*tensors[i], seed, device).cpu() for i in group}
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        weight_map.update({name: fname for name in shard})
        del shard
    return weight_map, sum(sizes)


def fix_completion_length(model_dir: str | Path, tokens: int) -> None:
    """Make every completion exactly `tokens` long: min_new_tokens in the folder's generation_config.json.

    `generate` reads it as the floor under the caller's max_new_tokens (eos is masked until then), so
    with max_new_tokens = `tokens` each rollout does the same work in every run.
    """
    path = Path(model_dir) / "generation_config.json"
    cfg = json.loads(path.read_text()) if path.is_file() else {}
    cfg["min_new_tokens"] = int(tokens)
    path.write_text(json.dumps(cfg, indent=2) + "\n")


def parameter_counts(arch: str, preset: str) -> dict[str, int]:
    """Parameters of `preset` by part (vision tower incl. merger, LLM incl. embeddings, lm_head if untied),
    counted on the meta device from the shapes alone."""
    from rlvid.models.tiny import make_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        make_tiny_model(tmp, arch=arch, preset="tiny")
        config = shape_config(arch, preset, tmp)
    with torch.device("meta"):
        model = _model_class(arch)(config)
    counts = {"vision": 0, "llm": 0, "embedding": 0, "lm_head": 0}
    for name, shape in _unique_tensors(model):
        n = shape.numel()
        if ".visual." in f".{name}":
            counts["vision"] += n
        elif name.startswith("lm_head"):
            counts["lm_head"] += n
        elif "embed_tokens" in name:
            counts["embedding"] += n
        else:
            counts["llm"] += n
    counts["total"] = sum(counts.values())
    return counts
