"""Task prompts: reasoning in <think>...</think>, the answer in <answer>...</answer>.

Each task states its answer format in the prompt (and in docs/prompts.md), because rewards parse
exactly that format. Templates are plain format strings so a recipe can name another set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from rlvid.data.sample import OPTION_LETTERS, Sample

REASONING = (
    "Think about the question inside <think> </think> tags, then give the final answer inside "
    "<answer> </answer> tags."
)
DIRECT = "Give the final answer inside <answer> </answer> tags."

ANSWER_FORMATS = {
    "temporal_grounding": "The answer is the start and end time in seconds, e.g. <answer>12.5 to 20.0</answer>.",
    "mcq": "The answer is the letter of the correct option, e.g. <answer>B</answer>.",
    "grounded_qa": (
        "The answer is the answer text followed by the supporting time interval in seconds, "
        "e.g. <answer>red from 2.0 to 5.5</answer>."
    ),
    "dense_caption": (
        "The answer lists every event on its own line as 'start - end seconds: caption', "
        "e.g. <answer>0.0 - 3.5 seconds: a red circle moves left</answer>."
    ),
    "open_qa": "The answer is a short phrase, e.g. <answer>a blue square</answer>.",
    "numeric": "The answer is a single number, e.g. <answer>3</answer>.",
}

TEMPLATES: dict[str, dict[str, str]] = {
    "default": {
        "temporal_grounding": "The video lasts {duration:.1f} seconds. {question}\n{format}\n{instruction}",
        "mcq": "{question}\nOptions:\n{options}\n{format}\n{instruction}",
        "grounded_qa": "The video lasts {duration:.1f} seconds. {question}\n{options_block}{format}\n{instruction}",
        "dense_caption": "The video lasts {duration:.1f} seconds. {question}\n{format}\n{instruction}",
        "open_qa": "{question}\n{format}\n{instruction}",
        "numeric": "{question}\n{format}\n{instruction}",
    },
}


# Answer formats that differ from ANSWER_FORMATS in a template set: a paper's reward parses only
# the form its prompt asked for (Temporal-R1: a JSON object of quoted seconds).
TEMPLATE_FORMATS: dict[str, dict[str, str]] = {
    "temporal_r1": {
        "temporal_grounding": (
            "Output the final answer in JSON format, the start and end time in seconds, "
            'e.g. <answer>{"start_time": "12.5", "end_time": "20.0"}</answer>.'
        ),
    },
}
TEMPLATES["temporal_r1"] = TEMPLATES["default"]


# What an SFT target says inside its think block when the sample has no `meta.think` of its own: a short,
# task-shaped sentence, so that the warm-started model writes the think block the format reward asks for.
THINK_TEXT = {
    "temporal_grounding": "I look for the moment the question describes and note the seconds where it starts and ends.",
    "mcq": "I compare each option with what happens in the video and pick the one that fits.",
    "grounded_qa": "I find the part of the video the question is about, answer from it and note when it happens.",
    "dense_caption": "I go through the video event by event and note when each one starts and ends.",
    "open_qa": "I look at what the video shows and answer in a short phrase.",
    "numeric": "I count what the question asks about as it appears in the video.",
}


@dataclass(frozen=True)
class PromptTemplate:
    """A task-prompt set: per task a format string and its answer-format sentence.

    `answers` names the builtin set whose answer form SFT targets use ("temporal_r1": a JSON object
    for grounding). Builtin sets are looked up by name; a recipe's own set comes from a YAML file
    (rlvid.data.prompt_files).
    """

    name: str
    templates: Mapping[str, str]
    formats: Mapping[str, str] = field(default_factory=dict)
    answers: str = "default"


def builtin_template(name: str) -> PromptTemplate:
    """The builtin set `name` (KeyError listing the allowed names otherwise)."""
    if name not in TEMPLATES:
        raise KeyError(f"unknown prompt template {name!r}; allowed: {sorted(TEMPLATES)}")
    return PromptTemplate(name, TEMPLATES[name], {**ANSWER_FORMATS, **TEMPLATE_FORMATS.get(name, {})}, name)


def as_template(template: str | PromptTemplate) -> PromptTemplate:
    return template if isinstance(template, PromptTemplate) else builtin_template(template)


def format_options(options: list[str]) -> str:
    return "\n".join(f"{OPTION_LETTERS[i]}. {text}" for i, text in enumerate(options))


def build_prompt(sample: Sample, template: str | PromptTemplate = "default", reasoning: bool = True) -> str:
    """The user's text for a sample (the video is placed before it by `build_messages`)."""
    t = as_template(template)
    options = format_options(sample.options) if sample.options else ""
    return t.templates[sample.task].format(
        question=sample.question.strip(),
        duration=sample.duration,
        options=options,
        options_block=f"Options:\n{options}\n" if options else "",
        format=t.formats.get(sample.task, ANSWER_FORMATS[sample.task]),
        instruction=REASONING if reasoning else DIRECT,
    )


def build_messages(sample: Sample, template: str | PromptTemplate = "default", reasoning: bool = True,
                   system: str | None = None) -> list[dict]:
    """Chat messages with one video part followed by the task prompt."""
    messages: list[dict] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({
        "role": "user",
        "content": [{"type": "video"}, {"type": "text", "text": build_prompt(sample, template, reasoning)}],
    })
    return messages


def sft_target(sample: Sample, template: str | PromptTemplate = "default", reasoning: bool = True) -> str:
    """What SFT trains the model to write: the answer block, after a think block when `reasoning` is on,
    so the target passes the format reward of a recipe whose prompts ask for that (tests/test_prompt_targets.py).

    The think text is the sample's own `meta.think` (a string), else a short sentence for its task.
    """
    answer = target_answer(sample, template)
    if not reasoning:
        return answer
    think = (sample.meta or {}).get("think")
    think = think.strip() if isinstance(think, str) and think.strip() else THINK_TEXT[sample.task]
    return f"<think>{think}</think>\n{answer}"


def target_answer(sample: Sample, template: str | PromptTemplate = "default") -> str:
    """The ground-truth answer in the format the prompt asks for (SFT targets, M-DPO references)."""
    answers = as_template(template).answers
    if sample.task == "temporal_grounding" and answers == "temporal_r1":
        start, end = sample.intervals[0]
        body = json.dumps({"start_time": f"{start:.1f}", "end_time": f"{end:.1f}"})
    elif sample.task == "temporal_grounding":
        start, end = sample.intervals[0]
        body = f"{start:.1f} to {end:.1f}"
    elif sample.task == "grounded_qa":
        start, end = sample.intervals[0]
        body = f"{sample.answer} from {start:.1f} to {end:.1f}"
    elif sample.task == "dense_caption":
        body = "\n".join(f"{e.start:.1f} - {e.end:.1f} seconds: {e.caption}" for e in sample.events)
    else:
        body = str(sample.answer)
    return f"<answer>{body}</answer>"
