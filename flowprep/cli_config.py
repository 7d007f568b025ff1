"""Typed, frozen configs and their command lines: one click option per dataclass field, defaults defined once.

A config field is declared with `option(default, help, choices=None, content=None, cli=None)`; its type
annotation says what it holds once built:

    bool                       --name/--no-name
    int, float, str            --name VALUE
    an Enum subclass           --name with the members' values as choices
    tuple[int | float | str, ...]   --name a,b,c  (a comma list; "" is the empty tuple)
    dict                       --name '{"key": 1}'  (a JSON object)

`choices` (a tuple, or a callable returning one, e.g. a registry's `names`) restricts a str field.
`content` says whether the field changes what a job writes: the content fields make the config's
`fingerprint`, which a resumed job must match (a job's configs classify every field, and a test fails
on a field that says neither). `cli` is what the field's flag says instead of the defaults (see
`config_options`): a flag spelled otherwise, a value in other units, a repeatable flag.
Strings that spell a tuple, a dict or an enum value are parsed by the config itself (`coerce_fields`
in its `__post_init__`), so a config built from flags, from a saved `config.json` or from Python holds
the same typed values, and a bad value raises `ValueError` naming its flag before any work starts.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import typing
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

REQUIRED: Any = dataclasses.MISSING  # option(REQUIRED, ...): a field without a default


class StrEnum(str, enum.Enum):
    """An enum whose members are their string values (in comparisons, JSON and f-strings)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


Choices = tuple[Any, ...] | Callable[[], tuple[Any, ...]] | None


def option(
    default: Any,
    help: str,
    choices: Choices = None,
    *,
    content: bool | None = None,
    cli: dict[str, Any] | None = None,
    fingerprint_default: bool = True,
) -> Any:
    """A config field: its default, its help text, for a str field its valid values, whether it is content
    (fingerprinted) and what its flag says instead of the defaults. `fingerprint_default=False` is for a
    content field added after jobs were written: at its default it stays out of the fingerprint, so those
    jobs (whose output the default reproduces) still resume."""
    metadata = {
        "help": help,
        "choices": choices,
        "content": content,
        "cli": cli or {},
        "fingerprint_default": fingerprint_default,
    }
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=functools.partial(type(default), default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def unclassified_fields(cls: type) -> list[str]:
    """Fields of `cls` declared without `content=True` or `content=False`."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("content") is None]


def fingerprint(cfg: Any) -> str:
    """16 hex digits of the content fields' values: two configs that write the same data agree on it."""
    content = {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if f.metadata.get("content")
        and (f.metadata.get("fingerprint_default", True) or getattr(cfg, f.name) != f.default)
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@functools.cache
def field_types(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def choices_of(f: dataclasses.Field[Any]) -> tuple[Any, ...] | None:
    choices = f.metadata.get("choices")
    return tuple(choices()) if callable(choices) else choices


def _is_tuple(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def coerce(name: str, tp: Any, value: Any) -> Any:
    """`value` (a CLI string, a JSON value or already typed) as the field type `tp`; ValueError names the flag."""
    if _is_enum(tp):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            raise ValueError(f"{flag(name)} {value!r}: choose one of {tuple(m.value for m in tp)}") from None
    if _is_tuple(tp):
        item = typing.get_args(tp)[0]
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
        try:
            return tuple(item(v) for v in items)
        except ValueError:
            raise ValueError(f"{flag(name)} {value!r}: expected a comma list of {item.__name__}") from None
    if tp is dict or typing.get_origin(tp) is dict:
        parsed = value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{flag(name)} {value!r} is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"{flag(name)} {value!r}: expected a JSON object of keyword arguments")
        return parsed
    return value


def coerce_fields(cfg: Any) -> None:
    """In a frozen config's `__post_init__`: every field converted to its type, str choices checked."""
    types = field_types(cfg.__class__)
    for f in dataclasses.fields(cfg):
        value = coerce(f.name, types[f.name], getattr(cfg, f.name))
        choices = choices_of(f)
        if choices and value not in choices:
            raise ValueError(f"{flag(f.name)} {value!r}: choose one of {choices}")
        object.__setattr__(cfg, f.name, value)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as JSON values (tuples as lists, enums as their values)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))  # type: ignore[no-any-return]


def from_dict(cls: Any, values: dict[str, Any]) -> Any:
    """A config from a dict (a saved config.json or a checkpoint's), ignoring keys the class does not have."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def cli_spelling(value: Any) -> Any:
    """A typed default as the flag value that means it: (a, b) -> 'a,b', {..} -> JSON, an enum -> its value."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _without_none(tp: Any) -> Any:
    """`X | None` -> X (an option whose default is None); other types as they are."""
    args = typing.get_args(tp)
    if type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return tp


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return cli_spelling(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return cli_spelling(f.default_factory())
    return None  # a required field: the option says `required`, or the command resolves it


def _option(f: dataclasses.Field[Any], tp: Any, spec: dict[str, Any], show_default: bool) -> Callable[[F], F]:
    """The click option of field `f`; `spec` overrides what the field says (see `config_options`)."""
    import click  # here: a config module imports this one, and needs no click

    spec = {**f.metadata.get("cli", {}), **spec}
    callback = spec.get("callback")
    if callback is not None:  # a config's callback raises ValueError: click's usage error names the flag
        callback = _usage_errors(callback)
    name = spec.get("flag", flag(f.name))
    default = spec["default"] if "default" in spec else _field_default(f)
    shown = {"help": spec.get("help", f.metadata.get("help")), "show_default": spec.get("show_default", show_default)}
    tp = spec.get("type", _without_none(tp))
    if tp is bool:
        return click.option(f"{name}/--no-{name[2:]}", f.name, default=default, **shown)
    choices = spec.get("choices") or choices_of(f)
    kind: Any
    if _is_enum(tp):
        kind = click.Choice([m.value for m in tp])
    elif choices:
        kind = click.Choice(list(choices))
    else:  # tuples and dicts travel as their string spelling; the config parses them
        kind = tp if tp in (int, float) else str
    return click.option(
        name,
        f.name,
        type=kind,
        default=default,
        multiple=spec.get("multiple", False),
        required=spec.get("required", False),
        callback=callback,
        **shown,
    )


def _usage_errors(callback: Callable[..., Any]) -> Callable[..., Any]:
    import click

    @functools.wraps(callback)
    def checked(ctx: Any, param: Any, value: Any) -> Any:
        try:
            return callback(ctx, param, value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return checked


def config_options(
    cls: Any, exclude: tuple[str, ...] = (), flags: dict[str, dict[str, Any]] | None = None, show_default: bool = True
) -> Callable[[F], F]:
    """Decorator adding one click option per field of the dataclass `cls`: its flag, default and help.

    `flags` maps a field to what its option says instead of what the field does (its `option(cli=...)`,
    or the field's own defaults): "flag" (e.g. "--size" for `size_px`), "help",
    "choices", "type", "default" (the CLI's spelling: MiB for a byte field, say), "show_default",
    "multiple", "required", "callback" (click's: the flag's value -> the field's, e.g. MiB -> bytes; a
    ValueError it raises is a usage error naming the flag). The options come in the order of `flags`,
    then the other fields; each option passes its value under the field's name.
    """
    types = field_types(cls)
    flags = flags or {}

    def decorate(fn: F) -> F:
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in exclude}
        order = [name for name in flags if name in fields] + [name for name in fields if name not in flags]
        for name in reversed(order):
            fn = _option(fields[name], types[name], flags.get(name, {}), show_default)(fn)
        return fn

    return decorate
