"""Batched streaming rollouts: one forward per lockstep step for all streams, same trajectories as per branch."""

import torch

from rlvid.app.stream_compose import words_of
from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM
from rlvid.rollout.streaming import StreamSampling, allowed_logits, stream_chunks, stream_rollouts
from rlvid.rollout.streaming_batched import batched_stream_rollouts, rollouts_for

WORDS = "tell me when the red circle appears".split()


def _setup(n_streams=3, seed=0, kinds=("alert",)):
    clips = make_stream_clips(n_streams, kinds, seed=seed)
    vocab = StreamVocab(WORDS if kinds == ("alert",) else words_of(clips), max_chunks=8)
    model = TinyStreamLM(vocab, seed=seed).eval()
    streams = [stream_chunks(torch.as_tensor(c.frames), c.fps, 1.0) for c in clips]
    return model, [c.sample.question for c in clips], streams


def _trie_size(seqs):
    return len({tuple(s[:k]) for s in seqs for k in range(1, len(s) + 1)})


def test_batched_rollouts_compute_each_position_of_each_tree_once():
    model, questions, streams = _setup()
    calls = []
    forward_batch = model.forward_batch
    model.forward_batch = lambda *a: calls.append(1) or forward_batch(*a)
    trajs = batched_stream_rollouts(model, questions, streams, 8, StreamSampling(temperature=1.5),
                                    torch.Generator().manual_seed(0))
    assert len(trajs) == 3 * 8
    fed = sum(_trie_size([t.ids[:-1] if t.policy_mask[-1] else t.ids[:-2] for t in trajs[s * 8:(s + 1) * 8]])
              for s in range(3))
    assert model.tokens_fed == fed  # forks copy cache rows, padding is not a position
    assert len({tuple(t.ids) for t in trajs[:8]}) > 1  # the trajectories did differ
    decisions = 8 * (1 + 3)  # per chunk: the chunk, then at most max_response_tokens + 1 tokens
    assert len(calls) <= 1 + decisions  # one call per lockstep step for all 24 trajectories
    for s, t in enumerate(trajs):
        assert t.ids.count(model.vocab.frame) == sum(len(c.frames) for c in streams[s // 8])


def test_batched_log_probs_equal_a_full_recompute():
    model, questions, streams = _setup(2, seed=1)
    trajs = batched_stream_rollouts(model, questions, streams, 4, StreamSampling(), torch.Generator().manual_seed(1))
    for t in trajs:
        with torch.no_grad():
            logits, _ = model(model.embed(t.ids, t.frames))
        logp = torch.log_softmax(allowed_logits(logits[0, :-1], model.vocab), -1)
        full = logp.gather(-1, torch.tensor(t.ids[1:]).unsqueeze(-1)).squeeze(-1)
        mask = torch.tensor(t.policy_mask[1:])
        torch.testing.assert_close(full[mask], torch.tensor(t.rollout_logp[1:])[mask], atol=1e-5, rtol=0)


def test_greedy_batched_equals_per_branch_and_a_forward_only_model_still_works():
    model, questions, streams = _setup(6, seed=2, kinds=("alert", "narration", "magqa"))  # rows of unequal lengths
    batched = batched_stream_rollouts(model, questions, streams, 1, StreamSampling(0.0, 3))
    single = [t for q, s in zip(questions, streams, strict=True) for t in stream_rollouts(model, q, s, 1,
                                                                                          StreamSampling(0.0, 3))]
    assert len({len(t.ids) for t in batched}) > 1  # the rows did hold different numbers of tokens
    assert [t.ids for t in batched] == [t.ids for t in single]
    assert [t.transcript for t in batched] == [t.transcript for t in single]

    class ForwardOnly:  # the minimal streaming interface: vocab, embed, forward
        vocab = model.vocab
        embed = staticmethod(model.embed)

        def __call__(self, embeds, cache=None):
            return model(embeds, cache)

    plain = rollouts_for(ForwardOnly(), questions, streams, 1, StreamSampling(0.0, 3))
    assert [t.ids for t in plain] == [t.ids for t in single]
