"""Streaming rollouts and streaming GRPO on a real (tiny) Qwen2.5-VL / Qwen3-VL through `QwenVLStream`."""

import copy

import pytest
import torch

from rewards import compose_rewards
from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.policy.stream_vl import QwenVLStream
from rlvid.rollout.streaming import (
    StreamChunk,
    StreamSampling,
    allowed_logits,
    stream_chunks,
    stream_rollouts,
    teacher_trajectory,
)
from rlvid.trainers.streaming_grpo import StreamingGRPOConfig, StreamingGRPOTrainer, trajectory_logprobs

ARCHS = ("qwen2_5_vl", "qwen3_vl")
CHUNK = 2.0  # 4 frames at 2 fps: two temporal patches per chunk, so temporal positions advance inside a chunk


def _stream(vl_models, arch, **options):
    stream = QwenVLStream.from_pretrained(str(vl_models[arch]), fps=2.0, **options)  # the documented entry point
    return stream.eval()


def _clip(seed=0):
    clip = make_stream_clips(1, ("alert",), seed=seed, num_chunks=4, chunk_seconds=CHUNK)[0]
    return clip, stream_chunks(torch.as_tensor(clip.frames), clip.fps, CHUNK)


def _rollouts(stream, question, chunks, n, seed=0):
    return stream_rollouts(stream, question, chunks, n, StreamSampling(temperature=1.5),
                           torch.Generator().manual_seed(seed))


def _trie_size(seqs):
    """Distinct prefixes of the sequences: the positions a shared-prefix rollout must compute."""
    return len({tuple(s[:k]) for s in seqs for k in range(1, len(s) + 1)})


def _fed(stream, trajs):
    """Trie size of the tokens that are fed: DTD-dropped video tokens removed, and the tokens after the stream's
    last decision (never fed: nothing comes after them)."""
    seqs = []
    for t in trajs:
        ids = t.ids[:-1] if t.policy_mask[-1] else t.ids[:-2]
        kept = stream.kept(t.ids, t.frames)
        seqs.append([tok for tok, k in zip(ids, kept, strict=False) if k])
    return _trie_size(seqs)


def _one_shot_logprobs(stream, traj, chunks):
    """Log-probs of `traj`'s next tokens from the Hugging Face model's own forward of the whole sequence:
    its processor outputs per chunk, its own `get_rope_index` (no adapter code in the path)."""
    model, vocab = stream.model, stream.vocab
    outs = [stream.vision.processor(videos=[stream.vision.resized(c.frames)], do_sample_frames=False,
                                    do_resize=False, cap_pixels_per_frame=False, return_tensors="pt") for c in chunks]
    grid = torch.cat([o["video_grid_thw"] for o in outs])
    ids = torch.tensor(traj.ids)[None]
    inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), video_grid_thw=grid,
                  pixel_values_videos=torch.cat([o["pixel_values_videos"] for o in outs]),
                  mm_token_type_ids=(ids == vocab.frame).long() * 2)
    if "second_per_grid_ts" in outs[0]:
        inputs["second_per_grid_ts"] = torch.cat([o["second_per_grid_ts"] for o in outs])
    with torch.no_grad():
        logits = model(**inputs).logits
    logp = torch.log_softmax(allowed_logits(logits[0, :-1].float(), vocab), -1)
    return logp.gather(-1, torch.tensor(traj.ids[1:]).unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("arch", ARCHS)
def test_cached_chunks_equal_one_forward_of_the_whole_stream_and_are_computed_once(vl_models, arch, one_thread):
    stream = _stream(vl_models, arch)
    clip, chunks = _clip()
    trajs = _rollouts(stream, clip.sample.question, chunks, 6)
    fed = stream.pop_stats()["tokens_fed"]
    assert len({tuple(t.ids) for t in trajs}) > 1  # the trajectories did differ
    assert fed == _fed(stream, trajs)  # every position of the rollout tree once: the prefix is never recomputed
    assert fed < sum(len(t.ids) for t in trajs)
    for t in trajs:
        assert t.ids.count(stream.vocab.frame) == len(chunks) * 2 * stream.vision.tokens_per_patch(chunks[0].frames)
        mask = torch.tensor(t.policy_mask[1:])
        full = _one_shot_logprobs(stream, t, chunks)
        torch.testing.assert_close(full[mask], torch.tensor(t.rollout_logp[1:])[mask], atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_trainer_recompute_equals_the_cached_rollout(vl_models, arch, one_thread):
    stream = _stream(vl_models, arch)
    clip, chunks = _clip(1)
    trajs = _rollouts(stream, clip.sample.question, chunks, 3, seed=1)
    with torch.no_grad():
        logp, mask = trajectory_logprobs(stream, trajs)
    for i, t in enumerate(trajs):
        n = len(t.ids) - 1
        policy = mask[i, :n].bool()
        assert policy.tolist() == t.policy_mask[1:]
        torch.testing.assert_close(logp[i, :n][policy], torch.tensor(t.rollout_logp[1:])[policy], atol=1e-4, rtol=0)


def test_qwen3_chunk_carries_the_processor_timestamps_of_the_stream(vl_models):
    stream = _stream(vl_models, "qwen3_vl")
    clip, chunks = _clip()
    text = stream.vocab.tokenizer.decode(stream.vocab.chunk_ids(chunks[1]))
    assert text.startswith("<|vision_start|><2.2 seconds><|vision_start|>")  # frames at 2.0 and 2.5 s
    assert "<3.2 seconds>" in text and text.endswith("<|vision_end|><|vision_end|>")
    two = _stream(vl_models, "qwen2_5_vl")
    assert two.vocab.tokenizer.decode(two.vocab.chunk_ids(chunks[1])).startswith("<t=2.0s><|vision_start|>")


def test_vision_reuse_encodes_each_chunk_once_for_all_branches(vl_models, one_thread):
    clip, chunks = _clip(2)
    chunks = [StreamChunk(c.start, c.end, c.frames + k) for k, c in enumerate(chunks)]  # no two chunks alike
    shared = _stream(vl_models, "qwen2_5_vl")
    trajs = _rollouts(shared, clip.sample.question, chunks, 4)
    stats = shared.pop_stats()
    assert stats["vision_blocks_computed"] == len(chunks)
    alone = _stream(vl_models, "qwen2_5_vl", reuse_vision=False)
    again = _rollouts(alone, clip.sample.question, chunks, 4)
    feeds = alone.pop_stats()["vision_blocks_computed"]  # one per (branch, chunk) fed
    assert feeds > len(chunks) and stats["vision_blocks_reused"] == feeds - len(chunks)
    assert [t.ids for t in again] == [t.ids for t in trajs]
    for a, b in zip(trajs, again, strict=True):
        torch.testing.assert_close(torch.tensor(a.rollout_logp), torch.tensor(b.rollout_logp), atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_token_dropping_drops_what_did_not_change_since_the_previous_chunk(vl_models, arch, one_thread):
    stream = _stream(vl_models, arch, drop_threshold=0.02)
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (2, 32, 32, 3), generator=g, dtype=torch.uint8).repeat(2, 1, 1, 1)  # 4 frames
    moved = base.clone()
    moved[:, :16, :16] = 255 - moved[:, :16, :16]  # the top-left quarter changes in the second chunk
    frames = torch.cat([base, moved, moved])  # chunk 3 repeats chunk 2
    chunks = stream_chunks(frames, 2.0, CHUNK)
    trajs = _rollouts(stream, "Tell me when the red circle appears.", chunks, 4)
    stats = stream.pop_stats()
    per_patch = stream.vision.tokens_per_patch(frames)
    video = [k for k, tok in enumerate(trajs[0].ids) if tok == stream.vocab.frame]
    kept = stream.kept(trajs[0].ids, trajs[0].frames)
    by_chunk = [[kept[k] for k in video[c * 2 * per_patch:(c + 1) * 2 * per_patch]] for c in range(3)]
    assert all(by_chunk[0][:per_patch]) and not any(by_chunk[0][per_patch:])  # chunk 1: its second patch repeats
    assert per_patch == 4  # 2x2 merged tokens per temporal patch: the top-left one is token 0
    assert [k for k, v in enumerate(by_chunk[1][:per_patch]) if v] == [0]
    assert not any(by_chunk[1][per_patch:]) and not any(by_chunk[2])
    assert stats["visual_tokens_kept"] < stats["visual_tokens_total"]
    assert stats["tokens_fed"] == _fed(stream, trajs)
    with torch.no_grad():
        logp, mask = trajectory_logprobs(stream, trajs)
    for i, t in enumerate(trajs):
        n = len(t.ids) - 1
        policy = mask[i, :n].bool()
        torch.testing.assert_close(logp[i, :n][policy], torch.tensor(t.rollout_logp[1:])[policy], atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_streaming_grpo_step_on_qwen_vl_changes_the_weights(vl_models, arch, one_thread):
    stream = _stream(vl_models, arch)
    clips = make_stream_clips(2, ("alert",), seed=0, num_chunks=4, chunk_seconds=CHUNK)
    before = copy.deepcopy(stream.model.state_dict())
    config = StreamingGRPOConfig(num_generations=4, streams_per_step=2, lr=1e-2, temperature=1.5,
                                 max_response_tokens=2, stream_chunk_seconds=CHUNK)
    trainer = StreamingGRPOTrainer(stream, clips, compose_rewards(["stream_timing", "stream_content"]), config)
    trainer.generator.manual_seed(3)
    out = trainer.train_step(0)
    assert torch.isfinite(torch.tensor(out["loss"]))
    after = stream.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("language_model" in k for k in changed) and any("visual" in k for k in changed)


def test_teacher_trajectory_masks_only_the_policy_tokens(vl_models):
    stream = _stream(vl_models, "qwen2_5_vl")
    clip, chunks = _clip()
    t = teacher_trajectory(stream.vocab, clip.sample.question, chunks, {2: "red circle"})
    chosen = [tok for tok, m in zip(t.ids, t.policy_mask, strict=True) if m]
    v = stream.vocab
    assert chosen == [v.silent] * 2 + v.encode("red circle") + [v.end] + [v.silent]
    assert t.transcript == "<t=6.0s> red circle"
    assert v.chunk_index(t.ids)[t.ids.index(v.end)] == 2


def test_bad_chunks_are_named(vl_models):
    stream = _stream(vl_models, "qwen2_5_vl")
    frames = torch.zeros(3, 32, 32, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="holds 3 frames; a chunk must hold whole temporal patches"):
        stream.vocab.chunk_ids(StreamChunk(0.0, 1.5, frames))
    with pytest.raises(ValueError, match="not 2 fps"):
        stream.vocab.chunk_ids(StreamChunk(0.0, 1.0, frames[:2].repeat(2, 1, 1, 1)))
    from transformers import AutoProcessor

    with pytest.raises(ValueError, match="must be 3 tokens"):
        QwenVLStream(stream.model, AutoProcessor.from_pretrained(vl_models["qwen2_5_vl"]), fps=2.0,
                     silent_token="<|im_end|>")


def test_streaming_warm_start_runs_on_qwen_vl_and_lowers_the_loss(vl_models, one_thread):
    from rlvid.trainers.streaming_sft import streaming_warm_start

    stream = _stream(vl_models, "qwen3_vl")
    clips = make_stream_clips(2, ("alert",), seed=0, num_chunks=4, chunk_seconds=CHUNK)
    losses = streaming_warm_start(stream, clips, steps=6, batch=2, lr=1e-2, chunk_seconds=CHUNK, times="end")
    assert losses[-1] < 0.5 * losses[0]


def test_the_adapter_holds_one_copy_of_the_weights(vl_models):
    stream = _stream(vl_models, "qwen2_5_vl")
    assert set(stream.state_dict()) == set(stream.model.state_dict())  # the HF model's names: checkpoints load


def test_lora_and_a_frozen_vision_tower_from_the_model_section(vl_models, one_thread):
    from rlvid.config.schema import LoraConfig, ModelConfig

    config = ModelConfig(freeze_vision_tower=True, freeze_projector=True,
                         lora=LoraConfig(enabled=True, r=4, alpha=8, dropout=0.0))
    stream = QwenVLStream.from_pretrained(str(vl_models["qwen2_5_vl"]), fps=2.0, model_config=config).eval()
    clips = make_stream_clips(1, ("alert",), seed=0, num_chunks=4, chunk_seconds=CHUNK)
    clips[0].frames = clips[0].frames + torch.arange(8).repeat_interleave(2).view(-1, 1, 1, 1).numpy().astype("uint8")
    before = {k: v.detach().clone() for k, v in stream.model.named_parameters()}
    trainer = StreamingGRPOTrainer(stream, clips, compose_rewards(["stream_timing"]),
                                   StreamingGRPOConfig(num_generations=4, streams_per_step=1, lr=1e-2, temperature=1.5,
                                                       max_response_tokens=2, stream_chunk_seconds=CHUNK))
    trajs = trainer.rollouts(clips, 4, StreamSampling(temperature=1.5))
    stream.pop_stats()
    trajectory_logprobs(stream, trajs)  # with gradients: the frozen tower's features are computed once, not per row
    stats = stream.pop_stats()
    assert stats["vision_blocks_computed"] == 4 and stats["vision_blocks_reused"] == 3 * 4
    trainer.train_step(0)
    changed = {k for k, v in stream.model.named_parameters() if not torch.equal(before[k], v)}
    assert changed and all("lora_" in k for k in changed)
