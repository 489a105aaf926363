"""`rlvid train` / `rlvid eval` on a streaming recipe: warm start, streaming GRPO, streaming metrics.

What runs: synthetic streams (`data`), the tiny streaming LM (rlvid/models/stream_lm.py), the
SFT warm start (rlvid/trainers/streaming_sft.py), `StreamingGRPOTrainer` and greedy streaming
evaluation (rlvid/eval/streaming_metrics.py). The run folder gets recipe.json, metrics.jsonl (one
line per step, then the held-out metrics), sft/ (the warm-start model) and final/.

What does not (docs/streaming.md): the shared loop `trainers/loop.py` (accelerate, several
processes, checkpoints mid-run and resume, hooks) and the Qwen-VL policy; the streaming run is
one CPU process from start to end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from rewards import compose_rewards
from rlvid.app.stream_recipe import StreamRecipe, load_stream_recipe
from rlvid.data.synthetic_streaming import StreamClip, make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM, load_stream_lm, save_stream_lm
from rlvid.redact import scrub
from rlvid.trainers.streaming_grpo import StreamingGRPOConfig, StreamingGRPOTrainer
from rlvid.trainers.streaming_sft import streaming_warm_start


def stream_clips(recipe: StreamRecipe) -> tuple[list[StreamClip], list[StreamClip]]:
    """The recipe's training streams and its held-out streams (seed + 1000)."""
    d = recipe.data
    train = make_stream_clips(d.train, tuple(d.kinds), seed=d.seed, num_chunks=d.chunks,
                              chunk_seconds=recipe.streaming.stream_chunk_seconds)
    held_out = make_stream_clips(d.held_out, tuple(d.kinds), seed=d.seed + 1000, num_chunks=d.chunks,
                                 chunk_seconds=recipe.streaming.stream_chunk_seconds)
    return train, held_out


def words_of(clips: list[StreamClip]) -> list[str]:
    """Every word of the clips' questions and expected answers: the tiny model's closed vocabulary."""
    text = " ".join(c.sample.question + " " + " ".join(e.content for e in c.sample.stream_events) for c in clips)
    return sorted(set(text.lower().replace(".", " ").replace("?", " ").replace(",", " ").split()))


def grpo_config(recipe: StreamRecipe) -> StreamingGRPOConfig:
    s = recipe.streaming
    return StreamingGRPOConfig(num_generations=s.num_generations, streams_per_step=s.streams_per_step, lr=s.lr,
                               temperature=s.temperature, max_response_tokens=s.max_response_tokens,
                               stream_chunk_seconds=s.stream_chunk_seconds, seed=s.seed, credit=s.credit,
                               adv_scale=s.adv_scale)


def warm_started_model(recipe: StreamRecipe, train: list[StreamClip], held_out: list[StreamClip]) -> TinyStreamLM:
    """A fresh tiny streaming LM after the recipe's warm start (`sft_steps` on `sft_times` targets)."""
    s = recipe.streaming
    torch.manual_seed(s.seed)
    vocab = StreamVocab(words_of(train + held_out), max_chunks=recipe.data.chunks,
                        chunk_seconds=s.stream_chunk_seconds)
    model = TinyStreamLM(vocab, seed=s.seed)
    streaming_warm_start(model, train, steps=s.sft_steps, lr=s.sft_lr, chunk_seconds=s.stream_chunk_seconds,
                         times=s.sft_times, seed=s.seed)
    return model


def run_stream_train(recipe_path: str, overrides: list[str] | None = None) -> Path:
    """Warm start, then streaming GRPO; returns output_dir/final (the model folder)."""
    recipe = load_stream_recipe(recipe_path, overrides)
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.json").write_text(json.dumps(scrub(recipe.to_dict()), indent=1) + "\n")
    train, held_out = stream_clips(recipe)
    model = warm_started_model(recipe, train, held_out)
    save_stream_lm(model, out / "sft")
    trainer = StreamingGRPOTrainer(model, train, compose_rewards(recipe.rewards), grpo_config(recipe))
    with open(out / "metrics.jsonl", "w") as log:
        log.write(json.dumps({"eval": "sft", **_prefixed(trainer.evaluate(held_out))}) + "\n")
        for step in range(recipe.streaming.steps):
            start = time.perf_counter()
            metrics = trainer.train_step(step)
            log.write(json.dumps({"step": step + 1, **metrics, "time/step": time.perf_counter() - start}) + "\n")
            log.flush()
        final = _prefixed(trainer.evaluate(held_out))
        log.write(json.dumps({"eval": "final", **final}) + "\n")
    print(json.dumps(final, indent=1))
    return save_stream_lm(model, out / "final")


def run_stream_eval(recipe_path: str, checkpoint: str | None, overrides: list[str] | None = None,
                    out: str | None = None) -> int:
    """Greedy streaming rollouts of `checkpoint` (default output_dir/final) on the held-out streams."""
    recipe = load_stream_recipe(recipe_path, overrides)
    model = load_stream_lm(checkpoint or Path(recipe.output_dir) / "final")
    _, held_out = stream_clips(recipe)
    trainer = StreamingGRPOTrainer(model, held_out, compose_rewards(recipe.rewards), grpo_config(recipe))
    trajs = trainer.rollouts(held_out, 1, trainer.greedy_sampling())
    metrics = trainer.metrics_of(trajs, held_out)
    out_dir = Path(out or Path(recipe.output_dir) / "eval_held_out")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(_prefixed(metrics), indent=2, sort_keys=True) + "\n")
    with open(out_dir / "predictions.jsonl", "w") as f:
        for clip, t in zip(held_out, trajs, strict=True):
            f.write(json.dumps({"id": clip.sample.id, "completion": t.transcript}) + "\n")
    width = max(len(k) for k in metrics)
    print("\n".join(f"  stream/{k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items())))
    print(f"wrote {out_dir / 'metrics.json'} and {out_dir / 'predictions.jsonl'}")
    return 0


def _prefixed(metrics: dict[str, float]) -> dict[str, float]:
    return {f"stream/{k}": v for k, v in metrics.items()}
