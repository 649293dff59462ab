"""Safe YAML for every file a person hands drgsim (policies, column maps, scenarios).

One loader for all of them, so each gets the same limits: the file must be UTF-8, at most
``MAX_BYTES`` long and nested at most ``MAX_DEPTH`` deep, and anchors/aliases are refused
(a "billion laughs" file never expands). The limits are checked on the event stream,
before anything is composed, so a hostile file fails in milliseconds with ``file:line``
instead of exhausting memory or the recursion limit. Documents are then loaded with
ruamel's round-trip loader, so callers keep line numbers (``node.lc``) for their messages.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from drgsim.errors import Problem, ValidationError

MAX_BYTES = 4 * 1024 * 1024  # policies and maps are a few KB; 4 MiB leaves room for scenarios
MAX_DEPTH = 64  # the deepest drgsim schema nests about 6 levels


class YamlError(ValidationError):
    """A YAML file is unreadable, unsafe (aliases, too deep, too big) or not valid YAML."""

    kind = "YAML file"


def read_yaml_bytes(path: str | os.PathLike[str], error: type[ValidationError] = YamlError,
                    max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a YAML file, refusing one larger than ``max_bytes`` before reading it."""
    file = str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise error([Problem(file, None, None, _too_big(size, max_bytes))])
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error([Problem(file, None, None, f"cannot read: {exc.strerror or exc}")]) from None
    if len(data) > max_bytes:  # grew while reading, or a pipe/special file
        raise error([Problem(file, None, None, _too_big(len(data), max_bytes))])
    return data


def _too_big(size: int, limit: int) -> str:
    return f"{size:,} bytes is larger than the {limit:,}-byte limit for YAML files"


def decode_utf8(data: bytes, file: str, error: type[ValidationError] = YamlError) -> str:
    """UTF-8 text (a BOM is dropped); otherwise an error naming the line and byte offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error([Problem(
            file, line, None,
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            f"(save the file as UTF-8; GBK/GB18030 files are not accepted)")]) from None
    return text[1:] if text.startswith("\ufeff") else text


def _check_events(text: str, file: str, error: type[ValidationError], max_depth: int) -> None:
    """Walk the parser's event stream (no composing): refuse aliases, anchors, deep nesting."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.events import (
        AliasEvent,
        CollectionEndEvent,
        CollectionStartEvent,
        NodeEvent,
    )

    depth = 0
    try:
        for ev in YAML(typ="rt").parse(io.StringIO(text)):
            line = ev.start_mark.line + 1 if ev.start_mark is not None else None
            if isinstance(ev, AliasEvent):
                raise error([Problem(file, line, None,
                                     f"YAML alias *{ev.anchor} is not allowed (anchors and "
                                     "aliases are refused: write each value out)")])
            if isinstance(ev, NodeEvent) and ev.anchor:
                raise error([Problem(file, line, None,
                                     f"YAML anchor &{ev.anchor} is not allowed (anchors and "
                                     "aliases are refused: write each value out)")])
            if isinstance(ev, CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    raise error([Problem(file, line, None,
                                         f"nested more than {max_depth} levels deep")])
            elif isinstance(ev, CollectionEndEvent):
                depth -= 1
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error([Problem(file, mark.line + 1 if mark else None, None,
                             f"not valid YAML: {exc.problem or exc.context}")]) from None
    except YAMLError as exc:
        raise error([Problem(file, None, None, f"not valid YAML: {exc}")]) from None
    except RecursionError:  # belt and braces: the parser itself is not recursive
        raise error([Problem(file, None, None, "nested too deeply")]) from None


def load_yaml(source: str | bytes, file: str, error: type[ValidationError] = YamlError,
              max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Load one YAML document safely (see the module docstring); keep ruamel line info.

    Raises ``error`` (a :class:`ValidationError` subclass) with one ``file:line`` problem for
    a file that is too big, not UTF-8, unsafe, not valid YAML or has a duplicate key.
    A ``ValueError`` from a scalar ruamel cannot construct (a bad date) passes through.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    if len(data) > max_bytes:
        raise error([Problem(file, None, None, _too_big(len(data), max_bytes))])
    text = source if isinstance(source, str) else decode_utf8(data, file, error)
    if text.startswith("\ufeff"):
        text = text[1:]
    _check_events(text, file, error, max_depth)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(io.StringIO(text))
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        raise error([Problem(file, mark.line + 1 if mark else None, None,
                             f"duplicate key: {exc.problem}")]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise error([Problem(file, mark.line + 1 if mark else None, None,
                             f"not valid YAML: {exc.problem or exc.context}")]) from None
    except YAMLError as exc:
        raise error([Problem(file, None, None, f"not valid YAML: {exc}")]) from None
    except RecursionError:
        raise error([Problem(file, None, None, "nested too deeply")]) from None


def load_yaml_file(path: str | os.PathLike[str], error: type[ValidationError] = YamlError,
                   max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """:func:`load_yaml` of a file's bytes (size checked before reading)."""
    file = str(Path(path))
    return load_yaml(read_yaml_bytes(path, error, max_bytes), file, error, max_bytes, max_depth)
