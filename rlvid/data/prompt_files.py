"""`data.prompt_template`: a builtin prompt set by name, or a recipe's own set from a YAML file, checked when
the run is built (before any model loads), so a typo never surfaces as a KeyError mid-rollout.

A template file (docs/prompts.md):

    base: default            # builtin set for the tasks this file leaves out, and the SFT answer form
    templates:               # per task, a format string over the placeholders below
      mcq: "{question}\\nChoices:\\n{options}\\n{format}\\n{instruction}"
    formats:                 # per task, the sentence that states the answer format ({format})
      mcq: "Answer with the option's letter, e.g. <answer>B</answer>."

A relative path is looked up in the recipe's folder first, then in the working folder (the rule of
plugin files, rlvid.plugins).
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

import yaml

from rlvid.data.loaders import DataError
from rlvid.data.prompts import TEMPLATES, PromptTemplate, builtin_template
from rlvid.data.sample import TASKS

PLACEHOLDERS = ("question", "duration", "options", "options_block", "format", "instruction")
FILE_KEYS = ("base", "templates", "formats")
_EXAMPLE = {"question": "q", "duration": 10.0, "options": "A. a\nB. b", "options_block": "", "format": "f",
            "instruction": "i"}


def resolve_prompt_template(spec: str, base_dir: str | os.PathLike | None = None) -> PromptTemplate:
    """The builtin set named `spec`, or the set in the YAML file `spec` (recipe folder first, then the working
    folder); DataError naming `data.prompt_template` and what is wrong otherwise."""
    if spec in TEMPLATES:
        return builtin_template(spec)
    if not spec.endswith((".yaml", ".yml")):
        raise DataError(f"data.prompt_template: {spec!r} is neither a builtin prompt set "
                        f"({', '.join(sorted(TEMPLATES))}) nor a .yaml template file (docs/prompts.md)")
    tried = [Path(base_dir) / spec] if base_dir is not None and not os.path.isabs(spec) else []
    tried.append(Path(spec))
    for path in tried:
        if path.is_file():
            return load_prompt_file(path)
    raise DataError(f"data.prompt_template: template file {spec!r} not found (looked at "
                    f"{', '.join(str(p.absolute()) for p in tried)})")


def load_prompt_file(path: str | os.PathLike) -> PromptTemplate:
    """Read and check a template file: known keys and tasks, strings, only known placeholders, each
    template naming {question}."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise DataError(f"{path}: cannot read prompt template file: {err}") from err
    if not isinstance(raw, dict):
        raise DataError(f"{path}: a prompt template file is a mapping with keys {list(FILE_KEYS)}")
    unknown = sorted(set(raw) - set(FILE_KEYS))
    if unknown:
        raise DataError(f"{path}: unknown key(s) {unknown}; allowed: {list(FILE_KEYS)}")
    base_name = raw.get("base", "default")
    if base_name not in TEMPLATES:
        raise DataError(f"{path}: 'base' must be a builtin prompt set ({', '.join(sorted(TEMPLATES))}), "
                        f"got {base_name!r}")
    base = builtin_template(base_name)
    templates = _task_strings(raw.get("templates"), "templates", path)
    formats = _task_strings(raw.get("formats"), "formats", path)
    for task, text in templates.items():
        _check_placeholders(text, f"{path}: templates.{task}")
    return PromptTemplate(str(path), {**base.templates, **templates}, {**base.formats, **formats}, base.answers)


def _task_strings(value: Any, key: str, path: Path) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DataError(f"{path}: '{key}' must be a mapping of task -> text, got {type(value).__name__}")
    for task, text in value.items():
        if task not in TASKS:
            raise DataError(f"{path}: {key}.{task}: unknown task; tasks: {', '.join(TASKS)}")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: {key}.{task} must be a non-empty string")
    return dict(value)


def _check_placeholders(text: str, where: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as err:
        raise DataError(f"{where}: not a valid format string ({err}); write a literal brace as {{{{ or }}}}") from None
    bad = sorted(n for n in names if n.split(".")[0].split("[")[0] not in PLACEHOLDERS)
    if bad:
        raise DataError(f"{where}: unknown placeholder(s) {['{' + n + '}' for n in bad]}; "
                        f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    if "question" not in names:
        raise DataError(f"{where}: the template must contain {{question}}")
    try:
        text.format(**_EXAMPLE)
    except (ValueError, IndexError, KeyError, AttributeError) as err:
        raise DataError(f"{where}: does not format ({err})") from None
