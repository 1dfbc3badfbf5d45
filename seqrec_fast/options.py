"""The one options engine: dataclass fields <-> YAML values and ``--key value`` flags.

A field declared with :func:`option` carries its help text, its choices and its range check in
its metadata; from that alone this module converts a YAML value or a command-line string to the
field's type, checks it (an error names the key and what was expected) and generates the
argparse options, each with its help and default. Training (``train.config``), the backbones'
``ModelConfig`` and every algorithm's options are declared this way.

Torch-free: ``--help`` builds its options from these dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the key."""


@dataclass(frozen=True)
class Check:
    """A range a value must lie in, and how an error says it."""

    allowed: Callable[[Any], bool]
    expected: str


POSITIVE = Check(lambda v: v > 0, "a positive integer")
NON_NEGATIVE = Check(lambda v: v >= 0, "a non-negative integer")
NON_NEGATIVE_NUMBER = Check(lambda v: v >= 0, "a non-negative number")
POSITIVE_NUMBER = Check(lambda v: v > 0, "a number > 0")
FRACTION = Check(lambda v: 0 <= v < 1, "a number in [0, 1)")
PROBABILITY = Check(lambda v: 0 <= v <= 1, "a number in [0, 1]")


def option(default: Any = MISSING, *, help: str, choices: Iterable[Any] | None = None, check: Check | None = None,
           default_factory: Callable[[], Any] | Any = MISSING) -> Any:
    """A dataclass field with the metadata this engine reads."""
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "check": check}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# ------------------------------------------------------------------------------ conversion
def _type_name(annotation) -> str:
    if typing.get_origin(annotation) is tuple:
        item = typing.get_args(annotation)[0]
        return {int: "a list of integers", float: "a list of numbers"}[item]
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[annotation]


def convert(key: str, value: Any, annotation) -> Any:
    """A YAML value or a command-line string as the type ``annotation`` (numbers finite), or a
    ConfigError naming ``key``."""

    def fail(expected: str | None = None) -> typing.NoReturn:
        raise ConfigError(f"config key {key!r}: expected {expected or _type_name(annotation)}, got {value!r}")

    if typing.get_origin(annotation) is tuple:
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            fail()
        item_type = typing.get_args(annotation)[0]
        try:
            return tuple(convert(key, item, item_type) for item in items)
        except ConfigError:
            fail()
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.strip().lower() in ("true", "yes", "1", "on")
        fail()
    if annotation is int:
        if isinstance(value, bool):
            fail()
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                fail()
        fail()
    if annotation is float:
        if isinstance(value, bool):
            fail()
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                fail()
        else:
            fail()
        if not math.isfinite(number):
            fail("a finite number")
        return number
    if annotation is str:
        if isinstance(value, (str, Path)):
            return str(value)
        fail()
    raise ConfigError(f"config key {key!r}: unsupported type {annotation}")


def check_value(key: str, value: Any, field: dataclasses.Field) -> None:
    """``value`` against the field's range and choices."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {key!r}: expected a finite number, got {value}")
    check: Check | None = field.metadata.get("check")
    if check is not None and not check.allowed(value):
        raise ConfigError(f"config key {key!r}: expected {check.expected}, got {value}")
    choices = field.metadata.get("choices")
    if choices and value not in choices:
        shown = ", ".join(repr(c) if c == "" else str(c) for c in choices)
        raise ConfigError(f"config key {key!r}: unknown value {value!r}; valid values: {shown}")


def parse_value(cls, key: str, value: Any, shown: str | None = None) -> Any:
    """One field of ``cls`` from a YAML value or a command-line string, converted and checked;
    errors call the key ``shown`` (default: its name)."""
    shown = shown or key
    converted = convert(shown, value, field_types(cls)[key])
    check_value(shown, converted, fields(cls)[key])
    return converted


def unknown_key(key: str, valid: Iterable[str], what: str = "option") -> ConfigError:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"unknown {what} {key!r}{hint}; valid options: {', '.join(valid)}")


def parse_options(cls, values: dict[str, Any], where: str = ""):
    """An instance of the options dataclass ``cls`` from ``{key: YAML value or text}``, the
    other fields at their defaults; errors name the key (and ``where`` the values came from)."""
    prefix = f"{where}: " if where else ""
    known = fields(cls)
    parsed = {}
    for key, value in values.items():
        key = str(key).replace("-", "_")
        if key not in known:
            raise ConfigError(prefix + str(unknown_key(key, known)))
        try:
            parsed[key] = parse_value(cls, key, value)
        except ConfigError as error:
            raise ConfigError(prefix + str(error)) from None
    try:
        return cls(**parsed)
    except ConfigError:
        raise
    except ValueError as error:  # a check across fields, in __post_init__
        raise ConfigError(f"{prefix}{error}") from None


def to_dict(options) -> dict[str, Any]:
    """The options as YAML/JSON data (tuples as lists)."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(options).items()}


# ------------------------------------------------------------------------------- argparse
def _shown_default(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    if value == "":
        return '""'
    return str(value).lower() if isinstance(value, bool) else str(value)


def help_text(field: dataclasses.Field) -> str:
    """The field's help, its choices and its default, as ``--help`` shows them."""
    text = field.metadata.get("help") or ""
    choices = field.metadata.get("choices")
    if choices:
        text += f" [{'|'.join(_shown_default(c) for c in choices)}]"
    default = field.default if field.default is not MISSING else field.default_factory()
    return f"{text} (default: {_shown_default(default)})".replace("%", "%%")


def add_arguments(parser, cls, *, dest_prefix: str = "", exclude: Iterable[str] = ()) -> None:
    """One ``--key`` per field of ``cls`` (booleans also get ``--no-key``), parsed as text so that
    :func:`parse_value` checks it and names the key in its errors; absent flags leave no
    attribute on the namespace."""
    types = field_types(cls)
    for key, field in fields(cls).items():
        if key in exclude:
            continue
        flag, dest = "--" + key.replace("_", "-"), dest_prefix + key
        if types[key] is bool:
            parser.add_argument(flag, dest=dest, nargs="?", const="true", default=argparse.SUPPRESS,
                                metavar="BOOL", help=help_text(field) + "; --no-" + key.replace("_", "-") + " sets false")
            parser.add_argument("--no-" + key.replace("_", "-"), dest=dest, action="store_const", const="false",
                                default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        else:
            parser.add_argument(flag, dest=dest, default=argparse.SUPPRESS, metavar=key.upper(), help=help_text(field))
