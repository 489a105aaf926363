"""Build a tiny, randomly initialised Hugging Face VLM folder of a real architecture, offline.

Tests, the quickstart and benchmarks need a model that loads with `from_pretrained` and
`AutoProcessor` and runs the real Qwen2.5-VL / Qwen3-VL code paths, without downloading weights.
Everything (byte-level BPE tokenizer, processor configs, chat template) is made here.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import torch

ARCHS = ("qwen2_5_vl", "qwen3_vl")

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Reasoning/answer tags are single tokens, as in Qwen3's vocabulary.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'video' -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif part['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class Preset:
    """Sizes of the random model. `tiny` is for tests; `tiny32` is `tiny` with text head_dim 32, the smallest
    vLLM's CPU attention takes (it has no kernel for `tiny`'s 16); `mid` (hidden 512, 8 layers) for benchmarks;
    `reader` (hidden 128, 4 layers, head_dim 32) for the flash-grounding learning test, whose "find the bright
    patch, copy the time written before it" needs more width and depth than `tiny` to be learnt early."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    vision_intermediate: int
    vocab_size: int


PRESETS = {
    "tiny": Preset(64, 2, 4, 2, 128, 32, 2, 2, 64, 1024),
    "tiny32": Preset(64, 2, 2, 1, 128, 32, 2, 2, 64, 1024),
    "mid": Preset(512, 8, 8, 4, 1408, 256, 4, 4, 1024, 4096),
    "reader": Preset(128, 4, 4, 2, 256, 32, 2, 2, 64, 1024),
}


def make_tiny_model(out_dir: str | Path, arch: str = "qwen2_5_vl", preset: str = "tiny", seed: int = 0) -> Path:
    """Write a loadable model folder (config, safetensors, tokenizer, processor, chat template)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; allowed: {list(ARCHS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {list(PRESETS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = PRESETS[preset]
    tokenizer = _build_tokenizer(p.vocab_size)
    processor = _build_processor(arch, tokenizer)
    config = _build_config(arch, p, tokenizer)
    torch.manual_seed(seed)
    model = _model_class(arch)(config)
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.eos_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.do_sample = False
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "rlvid_tiny.json").write_text(json.dumps({"arch": arch, "preset": preset, "seed": seed}, indent=2))
    return out


def _model_class(arch: str):
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration if arch == "qwen2_5_vl" else Qwen3VLForConditionalGeneration


def _training_corpus() -> list[str]:
    """Text the tokenizer learns merges from: task vocabulary, numbers and answer formats."""
    colours = ["red", "green", "blue", "yellow", "white", "black", "purple", "orange"]
    shapes = ["circle", "square", "triangle", "shape", "shapes", "object"]
    moves = ["left", "right", "up", "down", "appears", "disappears", "moves", "moving", "static"]
    words = (
        "when does the what which how many is are there a an in of to from and or seconds second video "
        "answer think question option options choose select letter best describe event events happen "
        "during time interval start end first then after before caption grounding please output format "
        "the answer is between frame frames visible colour color count number one two three four"
    ).split()
    lines = [" ".join(w) for w in itertools.product(colours, shapes)]
    lines += [f"the {c} {s} {m}" for c, s, m in itertools.product(colours, shapes[:3], moves)]
    lines += [" ".join(words)] * 20
    numbers = itertools.product(range(0, 40, 3), range(10), range(0, 40, 7), range(5))
    lines += [f"{a}.{b} to {c}.{d}" for a, b, c, d in numbers]
    lines += [f"[{i}, {i + 3}] ({chr(65 + i % 4)}) {chr(65 + i % 4)}. {i} seconds" for i in range(100)]
    lines += ['{"start_time": "1.5", "end_time": "4.0"} 00:12.5-00:20 from 2s to 5s'] * 10
    return lines


def _build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS) - len(TAG_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    fast.add_special_tokens({"pad_token": "<|endoftext|>"})
    fast.add_tokens(TAG_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _build_processor(arch: str, tokenizer):
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    patch = 14 if arch == "qwen2_5_vl" else 16
    factor = patch * 2
    pixels = {"shortest_edge": 4 * factor * factor, "longest_edge": 768 * factor * factor}
    image_processor = Qwen2VLImageProcessor(patch_size=patch, merge_size=2, temporal_patch_size=2, size=pixels)
    if arch == "qwen2_5_vl":
        video_processor = Qwen2VLVideoProcessor(patch_size=patch, merge_size=2, temporal_patch_size=2, size=pixels)
        return Qwen2_5_VLProcessor(image_processor, tokenizer, video_processor, chat_template=CHAT_TEMPLATE)
    video_processor = Qwen3VLVideoProcessor(patch_size=patch, merge_size=2, temporal_patch_size=2, size=pixels)
    return Qwen3VLProcessor(image_processor, tokenizer, video_processor, chat_template=CHAT_TEMPLATE)


def _build_config(arch: str, p: Preset, tokenizer):
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in [
        ("image_token_id", "<|image_pad|>"),
        ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"),
        ("vision_end_token_id", "<|vision_end|>"),
    ]}
    head_dim = p.hidden // p.heads
    half = head_dim // 2
    mrope = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]  # (t, h, w), sums to head_dim/2
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=p.hidden,
        intermediate_size=p.intermediate,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        num_key_value_heads=p.kv_heads,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    if arch == "qwen2_5_vl":
        text.update(rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope})
        vision = dict(
            depth=p.vision_depth, hidden_size=p.vision_hidden, intermediate_size=p.vision_intermediate,
            num_heads=p.vision_heads, out_hidden_size=p.hidden, patch_size=14, spatial_merge_size=2,
            temporal_patch_size=2, window_size=112, fullatt_block_indexes=[p.vision_depth - 1], tokens_per_second=2,
        )
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    text.update(head_dim=head_dim, rope_parameters={"rope_type": "default", "rope_theta": 5e6,
                                                    "mrope_section": mrope, "mrope_interleaved": True})
    vision = dict(
        depth=p.vision_depth, hidden_size=p.vision_hidden, intermediate_size=p.vision_intermediate,
        num_heads=p.vision_heads, out_hidden_size=p.hidden, patch_size=16, spatial_merge_size=2,
        temporal_patch_size=2, num_position_embeddings=256, deepstack_visual_indexes=[0],
    )
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
