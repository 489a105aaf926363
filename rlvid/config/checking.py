"""Check raw recipe data (parsed YAML, or one command-line override) against the schema.

OmegaConf would reject the same mistakes, but its messages lose the file and, inside lists,
the path of the key. These checks run first and name the source, the full dotted key
(`rewards.functions[1].weight`), the expected type, and the allowed keys or values with a
close-match suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from typing import Any, Literal, Union

from omegaconf import MISSING
from omegaconf.errors import ValidationError
from omegaconf.nodes import FloatNode, IntegerNode, StringNode

from rlvid.config.errors import RecipeError

_SCALAR_NODES = {int: IntegerNode, float: FloatNode, str: StringNode}
# names users bring from TRL / transformers, suggested as ours when a typo is close to them
_FAMILIAR_NAMES = {"learning_rate": "lr", "num_train_epochs": "epochs", "lr_scheduler_type": "lr_scheduler"}


def check_mapping(data: Any, schema: type, prefix: str, source: str, require_all: bool = False) -> None:
    """Check every key and value of `data` against dataclass `schema`; `prefix` is its dotted path."""
    if not isinstance(data, dict):
        where = f"'{prefix}'" if prefix else "the top level"
        raise RecipeError(f"{source}: {where} must be a mapping of {schema.__name__} keys, got {_show(data)}")
    hints = field_types(schema)
    for key, value in data.items():
        if key not in hints:
            raise RecipeError(unknown_key_message(str(key), schema, prefix, source))
        check_value(value, hints[key], join(prefix, key), source)
    if require_all:
        for f in dataclasses.fields(schema):
            if f.default is MISSING and f.name not in data:
                raise RecipeError(f"{source}: '{join(prefix, f.name)}' is required")


def check_value(value: Any, expected: Any, key: str, source: str) -> None:
    """Check one value against a schema type (dataclass, list, dict, Literal, scalar, Optional)."""
    if _is_interpolation(value) or value == MISSING:
        return  # resolved (and type-checked by OmegaConf) when the recipe is built
    wanted = type_name(expected)  # as declared, e.g. "float or null"
    expected, optional = _unwrap_optional(expected)
    if value is None:
        if optional or expected is Any:
            return
        raise RecipeError(f"{source}: '{key}' expects {wanted}, got null")
    origin = typing.get_origin(expected)
    if expected is Any:
        return
    if dataclasses.is_dataclass(expected):
        check_mapping(value, expected, key, source, require_all=_in_list(key))
    elif origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{source}: '{key}' expects {wanted}, got {_show(value)}")
        (item_type,) = typing.get_args(expected)
        for i, item in enumerate(value):
            check_value(item, item_type, f"{key}[{i}]", source)
    elif origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{source}: '{key}' expects a mapping, got {_show(value)}")
        _, value_type = typing.get_args(expected)
        for k, v in value.items():
            check_value(v, value_type, join(key, str(k)), source)
    elif origin is Literal:
        allowed = list(typing.get_args(expected))
        if value not in allowed:
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RecipeError(f"{source}: '{key}' must be one of {allowed}, got {value!r}.{hint}")
    elif expected is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{source}: '{key}' expects {wanted} (true or false), got {_show(value)}")
    elif expected in _SCALAR_NODES:
        try:
            _SCALAR_NODES[expected](value=value)
        except ValidationError:
            raise RecipeError(f"{source}: '{key}' expects {wanted}, got {_show(value)}") from None
    else:  # a schema type this checker does not know: leave it to OmegaConf
        return


def resolve_key_type(segments: list[str], root: type, source: str) -> Any:
    """Schema type at a dotted path (`trainer.lr`, `rewards.functions.0.weight`), checking each segment."""
    current: Any = root
    prefix = ""
    for segment in segments:
        current, _ = _unwrap_optional(current)
        origin = typing.get_origin(current)
        if dataclasses.is_dataclass(current):
            hints = field_types(current)
            if segment not in hints:
                raise RecipeError(unknown_key_message(segment, current, prefix, source))
            current = hints[segment]
            prefix = join(prefix, segment)
        elif origin is list:
            if not segment.isdigit():
                raise RecipeError(f"{source}: '{prefix}' is a list; index it with a number, not {segment!r}")
            current = typing.get_args(current)[0]
            prefix = f"{prefix}[{segment}]"
        elif origin is dict:
            current = typing.get_args(current)[1]
            prefix = join(prefix, segment)
        elif current is Any:
            prefix = join(prefix, segment)
        else:
            raise RecipeError(f"{source}: '{prefix}' is a {type_name(current)}, it has no key {segment!r}")
    return current


def unknown_key_message(key: str, schema: type, prefix: str, source: str) -> str:
    allowed = list(field_types(schema))
    familiar = {name: ours for name, ours in _FAMILIAR_NAMES.items() if ours in allowed}
    close = difflib.get_close_matches(key, allowed + list(familiar), n=1)
    hint = f" Did you mean '{join(prefix, familiar.get(close[0], close[0]))}'?" if close else ""
    level = f"in '{prefix}'" if prefix else "at the top level"
    return f"{source}: unknown key '{join(prefix, key)}'.{hint} Allowed keys {level}: {', '.join(allowed)}"


@functools.cache
def field_types(schema: type) -> dict[str, Any]:
    """Resolved field types of a dataclass, in declaration order."""
    hints = typing.get_type_hints(schema)
    return {f.name: hints[f.name] for f in dataclasses.fields(schema)}


def type_name(tp: Any) -> str:
    """Readable name of a schema type: "float or null", "list[RewardSpec]", "one of 'a', 'b'"."""
    tp, optional = _unwrap_optional(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        name = "one of " + ", ".join(repr(a) for a in args)
    elif origin in (list, dict):
        name = f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    elif tp is Any:
        name = "Any"
    elif isinstance(tp, type):
        name = tp.__name__
    else:
        name = str(tp)
    return f"{name} or null" if optional else name


def join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _in_list(key: str) -> bool:
    # a list element replaces the default wholesale, so its required fields must be given
    return key.endswith("]")


def _is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
