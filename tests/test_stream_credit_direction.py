"""The streaming RL signal points the right way: speaking right after the event gets the highest advantage,
and gradient steps make speaking then more likely and speaking before it less likely."""

import torch

from rewards import compose_rewards
from rlvid.data.synthetic_streaming import make_stream_clips
from rlvid.models.stream_lm import StreamVocab, TinyStreamLM
from rlvid.rollout.streaming import stream_chunks, teacher_trajectory
from rlvid.trainers.stream_credit import decision_starts, reward_to_go, tree_advantages
from rlvid.trainers.streaming_grpo import StreamingGRPOConfig, StreamingGRPOTrainer, factored_logprobs

WORDS = "tell me when the red circle appears".split()
TIMING = [{"name": "stream_timing", "kwargs": {"tolerance": 1.0, "decay": 0.5, "early_penalty": 0.5,
                                              "spurious_penalty": 0.5, "miss_penalty": 0.5}}]


def _toy_batch():
    """One alert stream (8 chunks) and G = 9 trajectories: "red circle" said once after chunk k (k = 0..7), or never."""
    vocab = StreamVocab(WORDS, max_chunks=8)
    model = TinyStreamLM(vocab, seed=0)
    clip = next(c for c in make_stream_clips(8, ("alert",), seed=0) if 2 <= c.sample.stream_events[0].due <= 5)
    chunks = stream_chunks(torch.as_tensor(clip.frames), clip.fps, 1.0)
    said = [{k: "red circle"} for k in range(len(chunks))] + [{}]
    trajs = [teacher_trajectory(vocab, clip.sample.question, chunks, s) for s in said]
    return model, clip, chunks, trajs, int(clip.sample.stream_events[0].due)


def _speak_logp(model, trajs, starts):
    """log P(speak) at each decision start of each trajectory: [B, chunks]."""
    with torch.no_grad():
        decision, _, mask, _ = factored_logprobs(model, trajs, starts)
    out = []
    for i, t in enumerate(trajs):
        cols = starts[i].nonzero().flatten()
        stop = decision[i, cols]
        spoke = torch.tensor([t.ids[c + 1] not in (model.vocab.silent, model.vocab.end) for c in cols.tolist()])
        out.append(torch.where(spoke, stop, torch.log(-torch.expm1(stop))))  # log(1 - P(not speaking))
    return torch.stack(out)


def test_speaking_right_after_the_event_gets_the_highest_advantage():
    model, clip, chunks, trajs, due = _toy_batch()
    rs = compose_rewards(TIMING)
    ends = [[c.end for c in chunks]] * len(trajs)
    rtg, word_rtg = reward_to_go(rs, [clip.sample] * len(trajs), trajs, ends)
    length = max(len(t.ids) for t in trajs) - 1
    adv, _ = tree_advantages(rtg, word_rtg, trajs, model.vocab, len(trajs), length, scale="none")
    starts = decision_starts(trajs, model.vocab, length)
    first = [float(adv[k, starts[k].nonzero().flatten()[k]]) for k in range(len(chunks))]  # trajectory k's response
    assert max(range(len(chunks)), key=first.__getitem__) == due  # the response after the due chunk is best
    assert first[due] > 0 and all(a < 0 for a in first[:due])  # early responses are worse than waiting
    # the trajectories still silent at the due chunk that wait there: negative on average, each below speaking
    waited = [float(adv[k, starts[k].nonzero().flatten()[due]]) for k in range(due + 1, len(trajs))]
    assert sum(waited) < 0 and max(waited) < first[due]


def test_steps_on_the_batch_raise_speaking_at_the_event_and_lower_it_before():
    model, clip, chunks, trajs, due = _toy_batch()
    trainer = StreamingGRPOTrainer(model, [clip], compose_rewards(TIMING),
                                   StreamingGRPOConfig(num_generations=len(trajs), streams_per_step=1,
                                                       adv_scale="none", lr=3e-3, word_rewards=()))
    silent = trajs[-1]  # never speaks: its decision k is "speak or not" from the fresh state after chunk k
    starts = decision_starts([silent], model.vocab, len(silent.ids) - 1)
    before = _speak_logp(model, [silent], starts)[0]
    for _ in range(20):  # fit the toy batch: the credit alone must place the response
        loss, _, _ = trainer.policy_loss([clip], trajs)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    after = _speak_logp(model, [silent], starts)[0]
    p_before, p_after = before.exp(), after.exp()
    assert p_after[due] > p_before[due] + 0.1  # P(speak | event visible, not yet spoken) rises ...
    assert all(p_after[k] < p_before[k] - 0.1 for k in range(due))  # ... and P(speak) before the event falls
    assert p_after[due] > 0.5 > float(p_after[:due].max())  # a greedy policy now speaks first at the due chunk
