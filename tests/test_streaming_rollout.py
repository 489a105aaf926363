"""Streaming rollouts keep the KV cache across chunks and share it between trajectories."""

import torch

from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM
from rlvid.rollout.streaming import StreamSampling, allowed_logits, stream_chunks, stream_rollouts

WORDS = "tell me when the red circle appears".split()


def _setup(seed=0):
    vocab = StreamVocab(WORDS, max_chunks=8)
    model = TinyStreamLM(vocab, seed=seed).eval()
    clip = make_stream_clips(1, ("alert",), seed=seed)[0]
    return model, clip, stream_chunks(torch.as_tensor(clip.frames), clip.fps, 1.0)


def _trie_size(seqs):
    """Distinct prefixes of the sequences: the positions a shared-prefix rollout must compute."""
    return len({tuple(s[:k]) for s in seqs for k in range(1, len(s) + 1)})


def test_every_position_is_computed_once_across_chunks_and_trajectories():
    model, clip, chunks = _setup()
    trajs = stream_rollouts(model, clip.sample.question, chunks, 8, StreamSampling(temperature=1.5),
                            torch.Generator().manual_seed(0))
    # the tokens after the stream's last decision are never fed (nothing comes after them): the final
    # terminator, or a cut response's last word and the `<end>` added after it
    fed = _trie_size([t.ids[:-1] if t.policy_mask[-1] else t.ids[:-2] for t in trajs])
    assert model.tokens_fed == fed
    naive = sum(len(t.ids) * (len(t.ids) + 1) // 2 for t in trajs)  # re-prefilling per token
    assert model.tokens_fed < sum(len(t.ids) for t in trajs) < naive
    assert len({tuple(t.ids) for t in trajs}) > 1  # the trajectories did differ
    for t in trajs:
        assert t.ids.count(model.vocab.frame) == len(clip.frames)
        assert sum(t.policy_mask) >= len(chunks)  # at least one decision per chunk


def test_cached_log_probs_equal_a_full_recompute():
    model, clip, chunks = _setup(1)
    trajs = stream_rollouts(model, clip.sample.question, chunks, 4, StreamSampling(),
                            torch.Generator().manual_seed(1))
    for t in trajs:
        with torch.no_grad():
            logits, _ = model(model.embed(t.ids, t.frames))
        logp = torch.log_softmax(allowed_logits(logits[0, :-1], model.vocab), -1)
        full = logp.gather(-1, torch.tensor(t.ids[1:]).unsqueeze(-1)).squeeze(-1)
        mask = torch.tensor(t.policy_mask[1:])
        torch.testing.assert_close(full[mask], torch.tensor(t.rollout_logp[1:])[mask], atol=1e-5, rtol=0)


def test_responses_are_timed_at_the_chunk_end_and_written_as_a_transcript():
    model, clip, chunks = _setup(2)
    forward = model.forward

    def never_stop(embeds, cache=None):  # every decision is a word: each chunk gets a full-length response
        logits, cache = forward(embeds, cache)
        logits[..., [model.vocab.silent, model.vocab.end]] = -1e4
        return logits, cache

    model.forward = never_stop
    trajs = stream_rollouts(model, clip.sample.question, chunks, 2, StreamSampling(max_response_tokens=2),
                            torch.Generator().manual_seed(0))
    for t in trajs:
        assert [r.time for r in t.responses] == [c.end for c in chunks]
        assert all(len(r.text.split()) == 2 for r in t.responses)
        assert t.transcript.splitlines()[0].startswith("<t=1.0s> ")
