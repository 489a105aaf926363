"""VidChain's chain-of-tasks (CoTasks): dense captioning asked as a multi-turn chain of sub-tasks.

A dense-captioning sample becomes one conversation; the video is shown once, in the first user
message, and each user turn asks one sub-task:

    segments_first:  count -> segments -> captions
    captions_first:  count -> captions -> segments

For pair building and M-DPO training every turn is a prompt of its own (`ChainPrompt`): the
conversation up to that turn, with the GROUND-TRUTH answers of the earlier turns as the
assistant's messages, so each sub-task is sampled and scored on its own while the rest of the
chain is filled from ground truth. At inference (`chain_messages` with the model's own earlier
answers) the turns are chained and `assemble_events` turns the segment and caption answers back
into one event list, which the usual dense-captioning metrics read.

Scores per sub-task (all in [0, 1]), in `score_turns`:
- count: 1 - |predicted - true| / true, floored at 0 (1 only for the exact count);
- segments: F1 of the localisation precision/recall against the true segments, averaged over the
  tIoU thresholds {0.3, 0.5, 0.7, 0.9} (the ActivityNet Captions localisation measure);
- captions: SODA_c of the captions placed, in order, on the true segments (so only the captions
  are judged), with METEOR, CIDEr or ROUGE-L as the caption scorer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewards.dense_caption import localization_pr
from rewards.iou import fix_interval
from rewards.parsing import extract_answer, parse_intervals, parse_number, strip_intervals
from rewards.soda import soda_c_many
from rlvid.data.model_inputs import VideoInputBuilder
from rlvid.data.prompts import DIRECT, REASONING
from rlvid.data.sample import Event, Sample
from rlvid.data.streaming import stream_messages

ORDERS: dict[str, tuple[str, ...]] = {
    "segments_first": ("count", "segments", "captions"),
    "captions_first": ("count", "captions", "segments"),
}

INTRO = "The video lasts {duration:.1f} seconds. We will describe its events step by step.\n"
QUESTIONS = {
    "count": "How many distinct events happen in the video? The answer is a single number, e.g. <answer>3</answer>.",
    "segments": (
        "Give the start and end time in seconds of each event, in temporal order, one per line as 'start - end', "
        "e.g. <answer>0.0 - 3.5\n4.0 - 7.5</answer>."
    ),
    "captions": (
        "Describe each event in one short caption, in temporal order, one per line, "
        "e.g. <answer>a red circle appears\na blue square moves left</answer>."
    ),
}
_LIST_MARKER = re.compile(r"^\s*(?:\d+[.):]|[-*\u2022])\s*")


def sorted_events(sample: Sample) -> list[Event]:
    """The sample's events in temporal order (the order every turn lists them in)."""
    return sorted(sample.events or [], key=lambda e: (e.start, e.end))


def turn_answer(sample: Sample, name: str) -> str:
    """The ground-truth answer of sub-task `name`, in the format its question asks for."""
    events = sorted_events(sample)
    if name == "count":
        body = str(len(events))
    elif name == "segments":
        body = "\n".join(f"{e.start:.1f} - {e.end:.1f}" for e in events)
    elif name == "captions":
        body = "\n".join(e.caption for e in events)
    else:
        raise ValueError(f"unknown CoTasks sub-task {name!r}; known: {sorted(QUESTIONS)}")
    return f"<answer>{body}</answer>"


def chain_messages(sample: Sample, order: str, turn: int, answers: Sequence[str] | None = None,
                   reasoning: bool = True, system: str | None = None) -> list[dict]:
    """Chat messages asking turn `turn` (0-based) of the chain, after the earlier turns and their answers.

    `answers` are the assistant's answers to turns 0..turn-1 (default: the ground truth). The
    video is a part of the first user message only, so the processor sees it once.
    """
    names = turn_names(order)
    if not 0 <= turn < len(names):
        raise ValueError(f"turn {turn} is outside the {len(names)}-turn chain {order!r}")
    if answers is None:
        answers = [turn_answer(sample, n) for n in names[:turn]]
    if len(answers) != turn:
        raise ValueError(f"turn {turn} needs {turn} earlier answers, got {len(answers)}")
    instruction = REASONING if reasoning else DIRECT
    messages: list[dict] = [{"role": "system", "content": system}] if system else []
    for k in range(turn + 1):
        text = f"{QUESTIONS[names[k]]}\n{instruction}"
        if k == 0:
            messages.append({"role": "user", "content": [
                {"type": "video"}, {"type": "text", "text": INTRO.format(duration=sample.duration) + text}]})
        else:
            messages.append({"role": "user", "content": text})
        if k < turn:
            messages.append({"role": "assistant", "content": answers[k]})
    return messages


def turn_names(order: str) -> tuple[str, ...]:
    if order not in ORDERS:
        raise ValueError(f"unknown CoTasks order {order!r}; known: {sorted(ORDERS)}")
    return ORDERS[order]


@dataclass(frozen=True)
class ChainPrompt:
    """Turn `turn` of a dense-captioning sample's chain: a prompt that rollout engines and input builders
    take in place of a Sample (it has an `id` and the sample's `video`). Earlier turns are answered with
    the ground truth, or with `answers` (the model's own, when a chain is run at inference)."""

    sample: Sample
    order: str
    turn: int
    answers: tuple[str, ...] | None = None  # earlier turns' answers; None = the ground truth (training)

    @property
    def name(self) -> str:
        return turn_names(self.order)[self.turn]

    @property
    def id(self) -> str:
        return f"{self.sample.id}#cotask{self.turn}-{self.name}"

    @property
    def video(self) -> str:
        return self.sample.video

    def messages(self, reasoning: bool = True, system: str | None = None) -> list[dict]:
        return chain_messages(self.sample, self.order, self.turn, self.answers, reasoning, system)

    def to_dict(self) -> dict[str, Any]:
        return {"sample": self.sample.to_dict(), "order": self.order, "turn": self.turn}


def expand_cotasks(samples: Sequence[Sample], order: str) -> list[Sample | ChainPrompt]:
    """Every dense_caption sample replaced by its chain's turns; other samples unchanged."""
    turn_names(order)
    out: list[Sample | ChainPrompt] = []
    for s in samples:
        if s.task == "dense_caption" and s.events:
            out += [ChainPrompt(s, order, k) for k in range(len(ORDERS[order]))]
        else:
            out.append(s)
    return out


class ChainInputBuilder(VideoInputBuilder):
    """A VideoInputBuilder that also renders `ChainPrompt`s (multi-turn, the video once) as prompts."""

    @classmethod
    def like(cls, builder: VideoInputBuilder) -> ChainInputBuilder:
        """A builder sharing every setting of `builder`: processor, frame sampling, decode cache, prompts, streaming."""
        new = cls.__new__(cls)
        new.__dict__.update(builder.__dict__)
        return new

    def prompt_text(self, item: Sample | ChainPrompt) -> str:
        if not isinstance(item, ChainPrompt):
            return super().prompt_text(item)
        messages = item.messages(self.reasoning, self.system)
        if self.streams:  # a streamed video: its chunks replace the one video part
            messages = stream_messages(messages, self.video_chunks(self.video(item)))
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# ---------------------------------------------------------------- reading answers


def _answer_lines(completion: str) -> list[str]:
    lines = [_LIST_MARKER.sub("", line).strip() for line in extract_answer(completion).splitlines()]
    return [line for line in lines if line]


def predicted_count(completion: str) -> float | None:
    return parse_number(extract_answer(completion))


def predicted_segments(completion: str, duration: float | None) -> list[tuple[float, float]]:
    """Intervals of a segments answer, in the order written, reversed ones swapped, clipped to the video."""
    return [fix_interval(iv, duration, "swap", True) for iv in parse_intervals(extract_answer(completion), duration)]


def predicted_captions(completion: str) -> list[str]:
    """One caption per answer line (list markers and any written interval removed)."""
    captions = [strip_intervals(line).strip(" :-") for line in _answer_lines(completion)]
    return [c for c in captions if c]


def captions_on_segments(captions: Sequence[str], segments: Sequence[tuple[float, float]], duration: float
                         ) -> list[Event]:
    """Caption i placed on segment i; captions beyond the segments get an empty interval at the end of the video
    (they overlap nothing, so they only lower precision, as an extra predicted event should)."""
    events = [Event(s, e, c) for c, (s, e) in zip(captions, segments, strict=False)]
    events += [Event(duration, duration, c) for c in captions[len(segments):]]
    return events


def assemble_events(segments_answer: str, captions_answer: str, duration: float) -> list[Event]:
    """The event list of a finished chain: the segments turn's intervals, each with the captions turn's caption
    of the same position (an empty caption where the captions run short)."""
    captions = predicted_captions(captions_answer)
    return [Event(s, e, captions[i] if i < len(captions) else "")
            for i, (s, e) in enumerate(predicted_segments(segments_answer, duration))]


def events_answer(events: Sequence[Event]) -> str:
    """Events in the one-turn dense-captioning answer format (what `dense_caption` metrics parse)."""
    return "<answer>" + "\n".join(f"{e.start:.1f} - {e.end:.1f} seconds: {e.caption}" for e in events) + "</answer>"


# ---------------------------------------------------------------- scoring


def score_turns(prompts: Sequence[ChainPrompt], completions: Sequence[str], caption_scorer: Any = "meteor",
                tious: Sequence[float] = (0.3, 0.5, 0.7, 0.9)) -> list[float]:
    """The sub-task score in [0, 1] of each completion of a chain turn (see the module docstring)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(completions)} completions for {len(prompts)} prompts")
    scores: list[float] = [0.0] * len(prompts)
    caption_rows, preds, gts = [], [], []
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        truth = sorted_events(p.sample)
        if p.name == "count":
            n = predicted_count(c)
            scores[i] = 0.0 if n is None else max(0.0, 1.0 - abs(n - len(truth)) / len(truth))
        elif p.name == "segments":
            pred = [Event(s, e, "") for s, e in predicted_segments(c, p.sample.duration)]
            precision, recall = localization_pr(pred, truth, tious)
            scores[i] = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        else:
            caption_rows.append(i)
            preds.append(captions_on_segments(predicted_captions(c), [(e.start, e.end) for e in truth],
                                              p.sample.duration))
            gts.append(truth)
    if caption_rows:
        for i, s in zip(caption_rows, soda_c_many(preds, gts, caption_scorer), strict=True):
            scores[i] = s
    return scores
