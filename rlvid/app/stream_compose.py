"""The composition root of streaming runs (`streaming.enabled`): a recipe becomes streaming trainers.

As `rlvid/app/compose.py` does for the VL policy, this is the one place that reads a streaming
recipe to build a run's parts: the streams of each split (`data.train` / `data.val` when set:
samples with `stream_events` and their videos at `data.video.fps`; else `streaming.synthetic`), the
model (`streaming.model`: the tiny streaming LM, fresh or loaded from `model.path` / the warm start's
final/; or `QwenVLStream` over the Qwen-VL folder there), the
`StreamPolicy`, rewards and hooks, and the loop trainers (trainers/streaming_loop.py,
trainers/mdpo/stream_trainer.py). Recipe keys map onto the shared ones: `rollout.num_generations`
(G), `trainer.global_prompts_per_step` (streams per step), `trainer.lr`, `rollout.temperature`,
`trainer.scale_rewards`, `trainer.loss_agg`, `trainer.epsilon`, `data.video.stream_chunk_seconds`,
and `sft.*` for the warm start.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from rewards import RewardSet, compose_rewards
from rlvid.config import RecipeError
from rlvid.data.recipe_data import load_split
from rlvid.data.stream_clips import clips_from_samples
from rlvid.data.synthetic_streaming import StreamClip, make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM, load_stream_lm
from rlvid.policy.stream_vl import QwenVLStream
from rlvid.rollout.stream_policy import StreamPolicy
from rlvid.rollout.streaming import StreamSampling
from rlvid.trainers.checkpoint import COMPLETE
from rlvid.trainers.hooks import HookRunner
from rlvid.trainers.loop import make_accelerator
from rlvid.trainers.mdpo.stream_pairs import build_stream_pairs
from rlvid.trainers.mdpo.stream_trainer import StreamingMDPOTrainer
from rlvid.trainers.streaming_grpo import StreamingGRPOConfig
from rlvid.trainers.streaming_loop import StreamingGRPOLoopTrainer, StreamingSFTLoopTrainer, step_seed

SPLITS = ("train", "val")
VL_HOOKS = ("eval_grounding", "eval_mcq", "eval_grounded_qa", "eval_dense_caption", "eval_all", "save_samples")


def stream_clips(recipe, split: str, base_dir: str | Path | None = None) -> list[StreamClip]:
    """The streams of `split`: the samples of `data.<split>` when it is set (decoded at `data.video.fps`), else
    the synthetic ones: train (streaming.synthetic.seed) or val (seed + 1000)."""
    if split in ("train", "val", "test") and getattr(recipe.data, split):
        return clips_from_samples(load_split(recipe, split, base_dir), recipe.data.video.fps,
                                  **stream_frame_pixels(recipe))
    if split not in SPLITS:
        raise ValueError(f"streaming runs have the splits {list(SPLITS)} (streaming.synthetic), not {split!r}")
    syn = recipe.streaming.synthetic
    n, seed = (syn.train, syn.seed) if split == "train" else (syn.val, syn.seed + 1000)
    fps = {"fps": recipe.data.video.fps} if recipe.streaming.model == "qwen_vl" else {}  # the tiny LM's: 2
    return make_stream_clips(n, tuple(syn.kinds), seed=seed, num_chunks=syn.chunks,
                             chunk_seconds=recipe.data.video.stream_chunk_seconds, **fps)


def stream_frame_pixels(recipe) -> dict[str, int]:
    """Pixels per decoded frame of a data file's stream: the tiny LM's default (32 x 32, it pools to 4 x 4), or
    for Qwen-VL `data.video.max_pixels_per_frame`, else a clip's per-frame share (`total_pixels / max_frames`)."""
    if recipe.streaming.model != "qwen_vl":
        return {}
    v = recipe.data.video
    return {"frame_pixels": v.max_pixels_per_frame or v.total_pixels // v.max_frames}


def words_of(clips: list[StreamClip]) -> list[str]:
    """Every word of the clips' questions and expected answers: the tiny model's closed vocabulary."""
    text = " ".join(c.sample.question + " " + " ".join(e.content for e in c.sample.stream_events) for c in clips)
    return sorted(set(text.lower().replace(".", " ").replace("?", " ").replace(",", " ").split()))


def stream_model(recipe, model_path: str | Path | None = None,
                 clips: list[StreamClip] | None = None) -> TinyStreamLM | QwenVLStream:
    """`streaming.model` tiny_lm: the streaming LM at `model_path` (or `model.path`), else a fresh one over the
    words and lengths of `clips` (default: both splits' streams). qwen_vl: `qwen_vl_stream`."""
    if recipe.streaming.model == "qwen_vl":
        return qwen_vl_stream(recipe, model_path)
    path = model_path or recipe.model.path
    if path:
        return load_stream_lm(path)
    clips = clips if clips is not None else stream_clips(recipe, "train") + stream_clips(recipe, "val")
    seconds = recipe.data.video.stream_chunk_seconds
    vocab = StreamVocab(words_of(clips), max_chunks=max(math.ceil(c.sample.duration / seconds - 1e-6) for c in clips),
                        chunk_seconds=seconds)
    return TinyStreamLM(vocab, seed=recipe.trainer.seed)


def qwen_vl_stream(recipe, model_path: str | Path | None = None) -> QwenVLStream:
    """The Qwen-VL folder at `model_path` (a warm start's or run's final/, a checkpoint) or `model.path`, loaded as
    the recipe's `model:` section says, streaming at `data.video.fps` with `trainer.reuse_vision` and
    `streaming.drop_threshold`."""
    v = recipe.data.video
    frames = v.stream_chunk_seconds * v.fps
    if abs(frames - round(frames)) > 1e-6 or round(frames) % 2:
        raise RecipeError(f"'data.video.stream_chunk_seconds' {v.stream_chunk_seconds} x 'data.video.fps' {v.fps} "
                          f"= {frames:g} frames per chunk; streaming.model qwen_vl needs whole temporal patches "
                          "(an even number of frames)")
    if v.token_drop.mode != "none":
        raise RecipeError("'data.video.token_drop.mode' must be none with streaming.model qwen_vl "
                          "(streaming drops tokens itself: streaming.drop_threshold)")
    path = model_path or recipe.model.path
    if not path:
        raise RecipeError("'model.path' must name the Qwen-VL model folder (or hub id) with streaming.model qwen_vl")
    return QwenVLStream.from_pretrained(str(path), fps=v.fps, model_config=recipe.model,
                                        reuse_vision=recipe.trainer.reuse_vision,
                                        drop_threshold=recipe.streaming.drop_threshold)


def stream_policy(recipe, model: torch.nn.Module) -> StreamPolicy:
    return StreamPolicy(model, recipe.data.video.stream_chunk_seconds, recipe.streaming.max_response_tokens)


def grpo_config(recipe) -> StreamingGRPOConfig:
    """The streaming GRPO step's settings from the shared recipe keys."""
    t, r, s = recipe.trainer, recipe.rollout, recipe.streaming
    return StreamingGRPOConfig(num_generations=r.num_generations, streams_per_step=t.global_prompts_per_step,
                               lr=t.lr, temperature=r.temperature, max_response_tokens=s.max_response_tokens,
                               stream_chunk_seconds=recipe.data.video.stream_chunk_seconds, epsilon=t.epsilon,
                               loss_agg=t.loss_agg, seed=t.seed, credit=s.credit, adv_scale=t.scale_rewards,
                               word_rewards=tuple(s.word_rewards))


@dataclass
class StreamComponents:
    accelerator: Accelerator
    policy: StreamPolicy
    train: list = field(default_factory=list)
    val: list = field(default_factory=list)
    reward_set: RewardSet | None = None
    hooks: HookRunner | None = None

    def trainer_kwargs(self, output_dir: str | Path | None) -> dict:
        return {"val_samples": self.val, "hooks": self.hooks, "accelerator": self.accelerator,
                "output_dir": output_dir}


def stream_components(recipe, recipe_dir: str | Path | None = None, model_path: str | Path | None = None,
                      accelerator: Accelerator | None = None) -> StreamComponents:
    """Seed, accelerator, the streams of both splits, rewards, hooks and the streaming policy."""
    recipe_dir = Path(recipe_dir) if recipe_dir else Path.cwd()
    accelerator = accelerator or make_accelerator(recipe)
    set_seed(recipe.trainer.seed)
    specs = recipe.rewards.functions
    reward_set = (compose_rewards(specs, on_error=recipe.rewards.on_error, base_dir=recipe_dir,
                                  timeout_s=recipe.rewards.timeout_s) if specs else None)
    for i, hook in enumerate(recipe.hooks):
        if hook.name in VL_HOOKS:
            raise RecipeError(f"hooks[{i}] ({hook.name}) decodes with the VL policy; a streaming run evaluates with "
                              "eval_streaming (or a hook of your own)")
    hooks = HookRunner(recipe.hooks, recipe, recipe_dir)
    train, val = stream_clips(recipe, "train"), stream_clips(recipe, "val")
    policy = stream_policy(recipe, stream_model(recipe, model_path, train + val).to(accelerator.device))
    if recipe.trainer.max_eval_samples is not None:
        val = val[: recipe.trainer.max_eval_samples]  # what the hooks decode (the vocabulary saw every stream)
    return StreamComponents(accelerator, policy, train, val, reward_set, hooks)


def streaming_grpo_trainer(recipe, recipe_dir: str | Path | None = None, model_path: str | Path | None = None,
                           output_dir: str | Path | None = None,
                           accelerator: Accelerator | None = None) -> StreamingGRPOLoopTrainer:
    """Streaming GRPO. `trainer.advantage_sign: -1` (the control) trains on every reward weight negated, which
    negates every advantage of the step (they are linear in the weighted rewards, and the group std is sign-free);
    the logged training rewards are then the negated ones, the hooks' the recipe's."""
    c = stream_components(recipe, recipe_dir, model_path, accelerator)
    if c.reward_set is None:
        raise ValueError("streaming GRPO needs rewards: the recipe's rewards.functions is empty "
                         "(e.g. [{name: stream_timing}])")
    step_rewards = None
    if recipe.trainer.advantage_sign == -1:
        negated = [dataclasses.replace(s, weight=-s.weight) for s in recipe.rewards.functions]
        step_rewards = compose_rewards(negated, on_error=recipe.rewards.on_error, base_dir=recipe_dir,
                                       timeout_s=recipe.rewards.timeout_s)
    return StreamingGRPOLoopTrainer(recipe, c.policy, c.train, config=grpo_config(recipe), reward_set=c.reward_set,
                                    step_rewards=step_rewards,
                                    **c.trainer_kwargs(output_dir or recipe.trainer.output_dir))


def streaming_sft_trainer(recipe, recipe_dir: str | Path | None = None, output_dir: str | Path | None = None,
                          accelerator: Accelerator | None = None) -> StreamingSFTLoopTrainer:
    c = stream_components(recipe, recipe_dir, None, accelerator)
    return StreamingSFTLoopTrainer(recipe, c.policy, c.train, reward_set=c.reward_set,
                                   **c.trainer_kwargs(output_dir or recipe.trainer.output_dir))


def streaming_mdpo_trainer(recipe, recipe_dir: str | Path | None = None, model_path: str | Path | None = None,
                           output_dir: str | Path | None = None,
                           accelerator: Accelerator | None = None) -> StreamingMDPOTrainer:
    """Pairs from the starting model's sampled trajectories on the train streams (ranked by `mdpo.metric`, else
    the rewards), then M-DPO on them. Pairs are rebuilt from the same model and seed on resume."""
    m = recipe.mdpo
    if m.rounds != 1 or m.pairs is not None or m.reference != "precomputed" or m.cotasks:
        raise RecipeError("streaming M-DPO builds its pairs in the run: mdpo.rounds 1, mdpo.pairs null, "
                          "mdpo.reference precomputed and mdpo.cotasks false")
    c = stream_components(recipe, recipe_dir, model_path, accelerator)
    ranking = (compose_rewards(m.metric, on_error=recipe.rewards.on_error, base_dir=recipe_dir) if m.metric
               else c.reward_set)
    if ranking is None:
        raise ValueError("streaming M-DPO ranks trajectories by mdpo.metric or rewards.functions; both are empty")
    generator = torch.Generator().manual_seed(step_seed(recipe.trainer.seed, -1))
    sampling = StreamSampling(recipe.rollout.temperature, recipe.streaming.max_response_tokens)
    pairs = build_stream_pairs(c.policy.model, c.train, ranking, num_samples=m.num_samples,
                               chunk_seconds=c.policy.chunk_seconds, sampling=sampling, min_gap=m.min_gap,
                               pairs_per_prompt=m.pairs_per_prompt, generator=generator)
    return StreamingMDPOTrainer(recipe, c.policy, pairs, reward_set=c.reward_set,
                                **c.trainer_kwargs(output_dir or recipe.trainer.output_dir))


def streaming_warm_start(recipe, recipe_dir: str | Path | None = None) -> Path:
    """Run (or reuse) the streaming SFT stage in output_dir/sft; returns its final model folder."""
    sft_dir = Path(recipe.trainer.output_dir) / "sft"
    final = sft_dir / "final"
    if (final / COMPLETE).is_file():
        return final
    return streaming_sft_trainer(recipe, recipe_dir, output_dir=sft_dir).fit()
