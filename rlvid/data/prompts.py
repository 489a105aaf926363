"""Task prompts: reasoning in <think>...</think>, the answer in <answer>...</answer>.

Each task states its answer format in the prompt (and in docs/prompts.md), because rewards parse
exactly that format. Templates are plain format strings so a recipe can name another set.
"""

from __future__ import annotations

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


def format_options(options: list[str]) -> str:
    return "\n".join(f"{OPTION_LETTERS[i]}. {text}" for i, text in enumerate(options))


def build_prompt(sample: Sample, template: str = "default", reasoning: bool = True) -> str:
    """The user's text for a sample (the video is placed before it by `build_messages`)."""
    if template not in TEMPLATES:
        raise KeyError(f"unknown prompt template {template!r}; allowed: {sorted(TEMPLATES)}")
    options = format_options(sample.options) if sample.options else ""
    return TEMPLATES[template][sample.task].format(
        question=sample.question.strip(),
        duration=sample.duration,
        options=options,
        options_block=f"Options:\n{options}\n" if options else "",
        format=TEMPLATE_FORMATS.get(template, {}).get(sample.task, ANSWER_FORMATS[sample.task]),
        instruction=REASONING if reasoning else DIRECT,
    )


def build_messages(sample: Sample, template: str = "default", reasoning: bool = True,
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


def target_answer(sample: Sample) -> str:
    """The ground-truth answer in the format the prompt asks for (SFT targets, M-DPO references)."""
    if sample.task == "temporal_grounding":
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
