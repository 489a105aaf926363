"""CoTasks: chain construction (messages, ground-truth answers, both orders), the processor sees the video once,
and the per-sub-task scorers on hand-made answers."""

from __future__ import annotations

import pytest

from rlvid.data.loaders import load_samples
from rlvid.data.sample import Event, Sample
from rlvid.trainers.mdpo.cotasks import (
    ChainInputBuilder,
    ChainPrompt,
    assemble_events,
    chain_messages,
    events_answer,
    expand_cotasks,
    predicted_captions,
    score_turns,
    turn_answer,
)

EVENTS = [Event(5.0, 8.0, "a blue square moves left"), Event(0.5, 3.0, "a red circle appears")]  # out of order


def sample(**kw) -> Sample:
    base = dict(id="v1", video="v1.mp4", duration=10.0, task="dense_caption", question="Describe the events.",
                events=list(EVENTS))
    base.update(kw)
    return Sample(**base)


def test_ground_truth_answers_list_events_in_temporal_order():
    s = sample()
    assert turn_answer(s, "count") == "<answer>2</answer>"
    assert turn_answer(s, "segments") == "<answer>0.5 - 3.0\n5.0 - 8.0</answer>"
    assert turn_answer(s, "captions") == "<answer>a red circle appears\na blue square moves left</answer>"
    with pytest.raises(ValueError, match="unknown CoTasks sub-task"):
        turn_answer(s, "objects")


@pytest.mark.parametrize("order,names", [("segments_first", ["count", "segments", "captions"]),
                                         ("captions_first", ["count", "captions", "segments"])])
def test_chain_messages_alternate_turns_with_ground_truth_answers_and_show_the_video_once(order, names):
    s = sample()
    messages = chain_messages(s, order, 2)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == turn_answer(s, names[0])
    assert messages[3]["content"] == turn_answer(s, names[1])
    first = messages[0]["content"]
    assert first[0] == {"type": "video"} and "10.0 seconds" in first[1]["text"]
    assert sum(isinstance(m["content"], list) for m in messages) == 1  # no other message carries a video part
    assert "How many" in first[1]["text"]
    last_question = {"segments": "start and end time", "captions": "caption"}[names[2]]
    assert last_question in messages[4]["content"]
    assert [p.name for p in expand_cotasks([s], order)] == names


def test_chain_messages_take_the_models_own_earlier_answers_at_inference():
    messages = chain_messages(sample(), "segments_first", 1, answers=["<answer>3</answer>"], reasoning=False,
                              system="be brief")
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[2] == {"role": "assistant", "content": "<answer>3</answer>"}
    with pytest.raises(ValueError, match="needs 1 earlier answers"):
        chain_messages(sample(), "segments_first", 1, answers=[])
    with pytest.raises(ValueError, match="outside the 3-turn chain"):
        chain_messages(sample(), "segments_first", 3)
    with pytest.raises(ValueError, match="unknown CoTasks order"):
        expand_cotasks([sample()], "backwards")


def test_expand_cotasks_leaves_other_tasks_alone():
    grounding = sample(id="g", task="temporal_grounding", events=None, intervals=[(1.0, 2.0)])
    out = expand_cotasks([grounding, sample()], "segments_first")
    assert out[0] is grounding
    assert [p.id for p in out[1:]] == ["v1#cotask0-count", "v1#cotask1-segments", "v1#cotask2-captions"]
    assert all(p.video == "v1.mp4" for p in out[1:])


def test_multi_turn_prompt_goes_through_the_processor_with_the_video_once(synthetic_dir):
    from rlvid.data.model_inputs import VideoInputBuilder
    from rlvid.models.loading import load_processor
    from rlvid.models.tiny import make_tiny_model

    model_dir = make_tiny_model(synthetic_dir.parent / "cotasks-model")
    processor = load_processor(str(model_dir))
    dense = next(s for s in load_samples(str(synthetic_dir / "train.jsonl")).samples if s.task == "dense_caption")
    builder = ChainInputBuilder.like(VideoInputBuilder(processor))
    prompt = ChainPrompt(dense, "segments_first", 2)
    text = builder.prompt_text(prompt)
    assert text.count("<|vision_start|>") == 1 and text.endswith("<|im_start|>assistant\n")
    assert text.count("<|im_start|>assistant") == 3  # two ground-truth answers, then the generation prompt
    assert turn_answer(dense, "segments") in text
    batch = builder.prompts([prompt, dense]).inputs  # a chain turn and a plain sample in one batch
    video_token = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    merge = processor.video_processor.merge_size ** 2
    per_row = (batch["input_ids"] == video_token).sum(1).tolist()
    grids = batch["video_grid_thw"].prod(1).div(merge).tolist()
    assert per_row == grids  # each row holds exactly one video's placeholder tokens


def test_count_scores_exact_one_and_relative_error_otherwise():
    p = ChainPrompt(sample(events=[Event(0, 1, "a"), Event(2, 3, "b"), Event(4, 5, "c"), Event(6, 7, "d")]),
                    "segments_first", 0)
    got = score_turns([p] * 5, ["<answer>4</answer>", "<answer>3</answer>", "<answer>6</answer>",
                                "<answer>9</answer>", "<answer>many</answer>"])
    assert got == pytest.approx([1.0, 0.75, 0.5, 0.0, 0.0])


def test_segments_score_is_localisation_f1_over_tiou_thresholds():
    p = ChainPrompt(sample(), "segments_first", 1)
    perfect, half, none, reversed_ = score_turns([p] * 4, [
        "<answer>0.5 - 3.0\n5.0 - 8.0</answer>",
        "<answer>0.5 - 3.0</answer>",  # precision 1, recall 0.5 -> F1 2/3 at every threshold
        "<answer>9.0 - 9.5</answer>",
        "<answer>3.0 - 0.5\n8.0 - 5.0</answer>",  # reversed intervals are swapped, as the rewards do
    ])
    assert perfect == pytest.approx(1.0) and half == pytest.approx(2 / 3) and none == 0.0
    assert reversed_ == pytest.approx(1.0)


def test_captions_score_is_soda_c_of_the_captions_on_the_true_segments():
    p = ChainPrompt(sample(), "captions_first", 1)
    assert p.name == "captions"
    right, swapped, one, extra = score_turns([p] * 4, [
        "<answer>a red circle appears\na blue square moves left</answer>",
        "<answer>a blue square moves left\na red circle appears</answer>",
        "<answer>1. a red circle appears</answer>",
        "<answer>a red circle appears\na blue square moves left\na green triangle appears</answer>",
    ], caption_scorer="rouge_l")
    assert right == pytest.approx(1.0)
    assert swapped < 0.6  # each caption lands on the other event's segment
    assert one == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # precision 1, recall 1/2
    assert extra == pytest.approx(2 * (2 / 3) * 1.0 / (2 / 3 + 1.0))  # the third caption only costs precision


def test_finished_chain_assembles_events_the_dense_caption_metrics_read():
    from rewards.dense_caption import predicted_events

    segments, captions = "<answer>0.5 - 3.0\n5.0 - 8.0</answer>", "<answer>- a red circle\n- a blue square</answer>"
    events = assemble_events(segments, captions, 10.0)
    assert events == [Event(0.5, 3.0, "a red circle"), Event(5.0, 8.0, "a blue square")]
    assert predicted_events(events_answer(events), 10.0) == events
    assert predicted_captions("<answer>1) one\n\n2) 0.0 - 2.0: two</answer>") == ["one", "two"]


def test_chain_evaluation_feeds_each_turn_the_models_own_answers_and_scores_the_assembled_events(monkeypatch):
    from types import SimpleNamespace

    from rlvid.trainers.mdpo import chain_eval as mdpo_eval

    s = sample()
    scripted = {0: "<answer>3</answer>", 1: "<answer>0.5 - 3.0\n5.0 - 8.0</answer>",
                2: "<answer>a red circle appears\na blue square moves left</answer>"}
    seen = []

    def fake_predict(policy, prompts, batch_size, max_new_tokens):
        seen.append([p.messages() for p in prompts])
        return [scripted[p.turn] for p in prompts]

    monkeypatch.setattr(mdpo_eval, "predict", fake_predict)
    recipe = SimpleNamespace(mdpo=SimpleNamespace(cotasks_order="segments_first"),
                             trainer=SimpleNamespace(eval_batch_size=4, eval_dense="rlvid"),
                             rollout=SimpleNamespace(max_new_tokens=32))
    grounding = sample(id="g", task="temporal_grounding", events=None, intervals=[(1.0, 2.0)])
    policy = SimpleNamespace(builder=VideoInputBuilderStub(), with_builder=lambda b: SimpleNamespace(builder=b))
    out = mdpo_eval.eval_dense_caption_cotasks(policy, 1, 0, recipe, samples=[s, grounding],
                                               caption_scorers=("rouge_l",), soda_scorer="rouge_l")
    assert [len(turn) for turn in seen] == [1, 1, 1]  # the grounding sample is not a chain
    last = seen[2][0]
    assert last[1]["content"] == scripted[0] and last[3]["content"] == scripted[1]  # its own answers, not the truth
    assert out["dense_caption_cotasks/SODA_c"] == pytest.approx(1.0)
    assert out["dense_caption_cotasks/F1"] == pytest.approx(1.0)
    assert out["dense_caption_cotasks/turn_count"] == pytest.approx(0.5)  # said 3 of 2 events
    assert out["dense_caption_cotasks/turn_segments"] == pytest.approx(1.0)
    assert out["dense_caption_cotasks/count"] == 1.0


class VideoInputBuilderStub:
    """Only what ChainInputBuilder.like copies; the stubbed predict never renders a prompt."""

    def __init__(self):
        self.streaming = False
