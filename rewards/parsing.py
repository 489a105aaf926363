"""Read answers out of model completions: answer tags, option letters, numbers, intervals.

Every reward and every evaluation metric parses through these functions, so a form that is
understood here is understood everywhere. All parsers are lenient (they look for the answer in
the forms models actually write) and return None when nothing usable is found; they never raise
on model output. Regexes are compiled once at import: rewards run on every rollout.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from typing import Any

from rlvid.data.sample import OPTION_LETTERS

Interval = tuple[float, float]

# ---------------------------------------------------------------- answer tags

_INTERVAL_TAGS = ("time", "timestamp", "interval")


def extract_answer(text: str) -> str:
    """The text the answer lives in: the last `<answer>...</answer>` block (an unterminated
    `<answer>` runs to the end); failing that, what follows `</think>`; failing that, everything."""
    end = text.rfind("</answer>")
    if end != -1:
        start = text.rfind("<answer>", 0, end)
        if start != -1:
            return text[start + 8 : end].strip()
    start = text.rfind("<answer>")
    if start != -1:
        return text[start + 8 :].strip()
    think_end = text.rfind("</think>")
    if think_end != -1:
        return text[think_end + 8 :].strip()
    return text.strip()


def extract_tag(text: str, tag: str) -> str | None:
    """Content of the last `<tag>...</tag>` block, or None when there is none."""
    close = f"</{tag}>"
    end = text.rfind(close)
    if end == -1:
        return None
    opening = f"<{tag}>"
    start = text.rfind(opening, 0, end)
    if start == -1:
        return None
    return text[start + len(opening) : end].strip()


def interval_text(completion: str) -> str:
    """Where to look for predicted interval(s): a `<time>`, `<timestamp>` or `<interval>` block
    when the completion has one (grounded QA often keeps the answer and the time apart), else the
    answer text."""
    if "</t" in completion or "</i" in completion:
        for tag in _INTERVAL_TAGS:
            found = extract_tag(completion, tag)
            if found is not None:
                return found
    return extract_answer(completion)


_BOXED = "\\boxed{"
_TEXT = "\\text{"


def unbox(text: str) -> str:
    """The content of the last `\\boxed{...}` in `text` (braces balanced), or `text` unchanged
    when it has none; math-style answers put the final answer in a box."""
    start = text.rfind(_BOXED)
    if start == -1:
        return text
    depth = 0
    body = start + len(_BOXED)
    for i in range(body, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            if depth == 0:
                inner = text[body:i].strip()
                if inner.startswith(_TEXT) and inner.endswith("}"):
                    inner = inner[len(_TEXT) : -1].strip()  # \boxed{\text{B}}
                return inner
            depth -= 1
    return text


# ---------------------------------------------------------------- text normalisation

_PUNCT_TABLE = str.maketrans({c: " " for c in string.punctuation})
_ARTICLES = frozenset({"a", "an", "the"})


def normalize_text(text: str) -> str:
    """Lower case, punctuation to spaces, articles dropped, whitespace collapsed (SQuAD-style);
    used for exact-match comparison of free-text answers and option texts."""
    words = text.lower().translate(_PUNCT_TABLE).split()
    return " ".join(w for w in words if w not in _ARTICLES)


# ---------------------------------------------------------------- numbers

_NUMBER_RE = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|(?<![\w.])-?\.\d+")
_NUMBER_WORDS = {
    w: float(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER_WORD_RE = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.I)


def parse_number(text: str) -> float | None:
    """A number from an answer: the whole text when it is one ("1,200", "3.5", "42.", "1e1"), else
    the last number written in it ("There are 5 people" -> 5), else a number word up to twenty.
    A `\\boxed{...}` answer is read from inside the box."""
    text = unbox(text)
    s = text.strip().rstrip(".").replace(",", "")
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        return value if value == value and abs(value) != float("inf") else None
    found = _NUMBER_RE.findall(text)
    if found:
        value = float(found[-1].replace(",", ""))
        return value if abs(value) != float("inf") else None  # "1e310" overflows
    words = _NUMBER_WORD_RE.findall(text)
    if words:
        return _NUMBER_WORDS[words[-1].lower()]
    return None


# ---------------------------------------------------------------- multiple-choice options

_DECOR = " \t\n*\"'`"
_LETTER_ONLY_RE = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\]]?[.:]?")
_LETTER_LEAD_RE = re.compile(r"(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])[.):,\]]|([A-Z])\s+[-\u2013\u2014]\s)")
_LETTER_CUE_RE = re.compile(
    r"(?i:answer|option|choice)(?:\s+(?i:is|would be|should be))?\s*[:\uff1a]?\s*(?i:option\s+)?"
    r"[(\[]?\s*([A-Z])\s*[)\]]?(?![\w'])"
)
_LETTER_PAREN_RE = re.compile(r"\(([A-Z])\)")
# A capital letter standing alone (not inside a word); "A"/"I" followed by a lower-case word are
# the article and the pronoun ("A man walks", "I think B"), not options.
_LETTER_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])([A-Z])(?![A-Za-z0-9'])")
_WORD_AFTER_RE = re.compile(r"\s+[a-z]")


def named_letters(text: str, valid: str) -> set[str]:
    """The option letters (among `valid`) that `text` names as stand-alone capitals."""
    found = set()
    for m in _LETTER_TOKEN_RE.finditer(text):
        letter = m.group(1)
        if letter not in valid:
            continue
        if letter in "AI" and _WORD_AFTER_RE.match(text, m.end()):
            continue
        found.add(letter)
    return found


def parse_option(text: str, options: Sequence[str] | None = None) -> str | None:
    """The option letter an answer chooses, or None.

    Understands `B`, `(B)`, `[B]`, `B.`, `B)`, `B) text`, `B: text`, `**B**`, `the answer is B`,
    `Answer: (B)`, `option B`, and the option's text itself (normalised exact match, or the one
    option whose text appears in the answer), also inside `\\boxed{...}`. With `options`, letters
    outside the range are None. An answer naming more than one option ("C, B", "A or B") is a hedge
    and chooses none (None).
    """
    s = unbox(text).strip(_DECOR)
    n = len(options) if options else len(OPTION_LETTERS)
    valid = OPTION_LETTERS[:n]
    if len(named_letters(s, valid)) > 1:
        return None
    m = _LETTER_ONLY_RE.fullmatch(s)
    if m:
        letter = m.group(1).upper()
        return letter if letter in valid else None
    m = _LETTER_LEAD_RE.match(s)
    if m:
        letter = m.group(1) or m.group(2) or m.group(3) or m.group(4)
        return letter if letter in valid else None
    if options:
        letter = _match_option_text(s, options)
        if letter is not None:
            return letter
    m = _LETTER_CUE_RE.search(s)
    if m:
        letter = m.group(1)
        return letter if letter in valid else None
    found = set(_LETTER_PAREN_RE.findall(s))
    if len(found) == 1:
        letter = found.pop()
        return letter if letter in valid else None
    return None


def _match_option_text(text: str, options: Sequence[str]) -> str | None:
    norm = normalize_text(text)
    if not norm:
        return None
    opts = [normalize_text(o) for o in options]
    for i, o in enumerate(opts):
        if o and o == norm:
            return OPTION_LETTERS[i]
    padded = f" {norm} "
    hits = [i for i, o in enumerate(opts) if o and f" {o} " in padded]
    if not hits:
        return None
    if len(hits) == 1:
        return OPTION_LETTERS[hits[0]]
    # Several option texts appear: take the longest only if it contains all the others
    # ("red" and "red car" in "the red car"); otherwise the answer is ambiguous.
    best = max(hits, key=lambda i: len(opts[i]))
    if all(f" {opts[i]} " in f" {opts[best]} " for i in hits):
        return OPTION_LETTERS[best]
    return None


# ---------------------------------------------------------------- intervals

# A time: an optional minus sign, then hh:mm:ss, mm:ss, a decimal (exponent allowed) or .5; then an optional %.
_T = r"(-?(?:\d+:\d{1,2}:\d{1,2}(?:\.\d+)?|\d+:\d{1,2}(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+))(%?)"
_UNIT = r"(?:\s*(?:s|secs?|seconds?)\b)?"
_SEP = r"\s*(?:-|\u2013|\u2014|~|to|until|till|and|,)\s*"
PAIR_RE = re.compile(r"(?<![\w.:])" + _T + _UNIT + _SEP + _T + _UNIT, re.I)
_STRIP_RE = re.compile(r"(?:\b(?:from|between|during|at)\s+)?(?<![\w.:])" + _T + _UNIT + _SEP + _T + _UNIT, re.I)
_EMPTY_BRACKETS_RE = re.compile(r"[(\[]\s*[)\]]")
_TIME_RE = re.compile(r"(?<![\w.:])" + _T + _UNIT, re.I)
_KEYED_RE = re.compile(
    r"(?<![A-Za-z])[\"']?(start|begin|end)(?:_?time|_?timestamp|_?sec(?:ond)?s?)?[\"']?\s*[:=]\s*[\"']?" + _T, re.I
)


def parse_time(token: str) -> float:
    """Seconds from `12.5`, `-3`, `1e1`, `00:12.5` (mm:ss) or `1:02:03.5` (hh:mm:ss)."""
    if ":" not in token:
        return float(token)
    if token.startswith("-"):
        return -parse_time(token[1:])
    parts = token.split(":")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60.0 + float(p)
    return seconds


def to_seconds(value: str, percent: str = "", duration: float | None = None, fractions: bool = False) -> float:
    """A written time in seconds; `percent` ("%" or "") and `fractions` scale it by `duration`."""
    t = parse_time(value)
    if percent and duration is not None:
        return t / 100.0 * duration
    if fractions and duration is not None:
        return t * duration
    return t


def parse_intervals(
    text: str, duration: float | None = None, fractions: bool = False
) -> list[Interval]:
    """Every [start, end] interval written in `text`, in order, as given (possibly reversed).

    Forms: `12.5 to 20`, `12.5 - 20.0 seconds`, `[12.5, 20]`, `00:12.5-00:20`, `from 12.5s to
    20s`, `between 12.5 and 20`, Temporal-R1's JSON `{"start_time": "12.5", "end_time": "20"}`
    (and `start: 12.5, end: 20`). Percentages are fractions of `duration`; with `fractions=True`
    plain numbers are fractions of `duration` too (for prompts that ask for relative positions).
    Failing all of these, a text holding exactly two times gives one interval.
    """
    keyed = _KEYED_RE.findall(text)
    if keyed:
        starts = [to_seconds(v, p, duration, fractions) for k, v, p in keyed if k.lower() != "end"]
        ends = [to_seconds(v, p, duration, fractions) for k, v, p in keyed if k.lower() == "end"]
        if starts and ends:
            return list(zip(starts, ends, strict=False))
    pairs = PAIR_RE.findall(text)
    if pairs:
        return [
            (to_seconds(a, pa, duration, fractions), to_seconds(b, pb, duration, fractions)) for a, pa, b, pb in pairs
        ]
    times = _TIME_RE.findall(text)
    if len(times) == 2:
        (a, pa), (b, pb) = times
        return [(to_seconds(a, pa, duration, fractions), to_seconds(b, pb, duration, fractions))]
    return []


def parse_interval(text: str, duration: float | None = None, fractions: bool = False) -> Interval | None:
    """The first interval written in `text` (see `parse_intervals`), or None."""
    found = parse_intervals(text, duration, fractions)
    return found[0] if found else None


def strip_intervals(text: str) -> str:
    """`text` with its written intervals removed (to read the answer part of a grounded answer)."""
    text = _EMPTY_BRACKETS_RE.sub(" ", _STRIP_RE.sub(" ", text))
    return " ".join(text.split()).strip(" ,;:-")


def as_intervals(items: Iterable[Any] | None) -> list[Interval]:
    """Ground-truth intervals from a column item: a list of [start, end] pairs (or one pair)."""
    if not items:
        return []
    items = list(items)
    if len(items) == 2 and all(isinstance(x, (int, float)) for x in items):
        return [(float(items[0]), float(items[1]))]
    return [(float(a), float(b)) for a, b in items]
