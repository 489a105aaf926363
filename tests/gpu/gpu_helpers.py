"""Helpers of the GPU tests and scripts/bench_rollout.py: real-size random models, recipes, figure reports.

`make_shaped_model(out, "3b")` writes a Qwen2.5-VL model with Qwen2.5-VL-3B-Instruct's layer sizes
(36 x 2048 LLM layers, 16 heads / 2 KV heads, MLP 11008; 32-block 1280-wide vision tower with
window attention, full attention at blocks 7/15/23/31; tied embeddings), random weights, in bf16,
with rlvid's tiny tokenizer, processor and chat template. The one difference from the real model is
the vocabulary: the tiny tokenizer's ~1k tokens instead of 151,936 (the real embedding and lm_head
are 0.6 GB of its ~7.5 GB), because a random model samples any id of its vocabulary and every id
must decode.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

# 16 frames of ~448x448 pixels each (392x532 for the 4:3 synthetic clips: 266 visual tokens per pair of frames after
# the 2x2 merge, 2128 per video): the benchmark videos
VIDEO_16 = {"fps": 2.0, "min_frames": 16, "max_frames": 16, "total_pixels": 16 * 448 * 448,
            "min_pixels_per_frame": 448 * 448, "max_pixels_per_frame": 448 * 448}

SHAPES = {
    "3b": dict(
        text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                  num_key_value_heads=2, mrope_section=[16, 24, 24]),
        vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                    fullatt_block_indexes=[7, 15, 23, 31]),
    ),
}


def make_shaped_model(out: str | Path, shape: str = "3b", seed: int = 0) -> Path:
    """A loadable Qwen2.5-VL folder of `shape`'s sizes (reused when already written)."""
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    from rlvid.models.tiny import make_tiny_model

    out = Path(out)
    marker = out / "rlvid_shape.json"
    if marker.is_file() and json.loads(marker.read_text()) == {"shape": shape, "seed": seed}:
        return out
    make_tiny_model(out, arch="qwen2_5_vl", preset="tiny", seed=seed)  # tokenizer, processor, chat template
    config = AutoConfig.from_pretrained(out)
    sizes = SHAPES[shape]
    text = dict(sizes["text"])
    mrope = text.pop("mrope_section")
    for key, value in text.items():
        setattr(config.text_config, key, value)
    config.text_config.head_dim = text["hidden_size"] // text["num_attention_heads"]
    config.text_config.rope_parameters = {**config.text_config.rope_parameters, "mrope_section": mrope}
    for key, value in sizes["vision"].items():
        setattr(config.vision_config, key, value)
    config.dtype = torch.bfloat16
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    for f in out.glob("model*.safetensors*"):
        f.unlink()
    model.save_pretrained(out)
    del model
    marker.write_text(json.dumps({"shape": shape, "seed": seed}))
    return out


def report(name: str, figures: dict) -> None:
    """Print (and append to $RLVID_GPU_REPORT as a JSON line) one named set of figures."""
    line = json.dumps({"name": name, **figures}, default=float)
    print(f"GPU-REPORT {name} {line}", flush=True)
    path = os.environ.get("RLVID_GPU_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def vllm_recipe(root: Path, setup: dict, model_path: Path, engine: str = "vllm", overrides: dict | None = None):
    """A GRPO recipe on the synthetic data with `model_path`, bf16, 16-frame videos, G=8 and `engine`."""
    from tiny_setup import write_recipe

    from rlvid.config import load_recipe

    base = {"model": {"path": str(model_path), "dtype": "bf16"}, "data": {"video": dict(VIDEO_16)},
            "rollout": {"engine": engine, "num_generations": 8, "max_new_tokens": 64,
                        "vllm": {"gpu_memory_utilization": 0.45}}}
    _deep_merge(base, overrides or {})
    root.mkdir(parents=True, exist_ok=True)
    return load_recipe(write_recipe(root / "recipe.yaml", {**setup, "model": model_path}, root / "run", base))


def _deep_merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value
