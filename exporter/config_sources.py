"""Where configuration values come from: the YAML file, `CTSQS_*` environment variables, flags. Merged
(flags > environment > file), remembering the origin of every key so an error can name it.

Environment variables follow the settings schema: `__` nests (`CTSQS_STATE__PATH`), a number picks a list
item (`CTSQS_SOURCES__0__PATH` sets `sources[0].path` of the file's list; the next free index appends),
lists, mappings and objects take JSON (`CTSQS_SOURCES='[{"type": "file", "path": "/data"}]'`), and lists of
names also take commas. A variable that names no key is warned about and ignored.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Union

from pydantic import BaseModel

PREFIX = "CTSQS_"
# CTSQS_* variables read by the code rather than the configuration (tuning switches)
NOT_CONFIG = frozenset({"NATIVE", "NO_SHA_NI"})
# flags whose name is not `--` + the key with `-` for `_`
FLAG_NAMES = {"state.path": "--state-path", "metrics.principal_granularity": "--principal-granularity"}

Path_ = tuple[str | int, ...]


class SourceError(ValueError):
    """An environment variable that cannot be read (bad JSON, an index past the end of a list)."""


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types behind Annotated / Optional / unions."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [t for a in typing.get_args(tp) for t in _unwrap(a) if t is not type(None)]
    return [tp]


def _step(tp: Any, part: str) -> tuple[Any, str | int] | None:
    """The type one path segment below `tp`, and the segment as a key; None if there is none."""
    for t in _unwrap(tp):
        origin = typing.get_origin(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            if part in t.model_fields:
                return t.model_fields[part].annotation, part
        elif origin is list and part.isdigit():
            return typing.get_args(t)[0], int(part)
        elif origin is dict:
            return typing.get_args(t)[1], part
    return None


def _structured(tp: Any) -> bool:
    for t in _unwrap(tp):
        if typing.get_origin(t) in (list, dict) or (isinstance(t, type) and issubclass(t, BaseModel)):
            return True
    return False


def from_env(model: type[BaseModel], env: Mapping[str, str]) -> tuple[list[tuple[Path_, Any, str]], list[str]]:
    """([(key path, value, variable name)], warnings) from the CTSQS_* variables, shortest paths first so
    a whole list set as JSON comes before the items set one by one."""
    found: list[tuple[Path_, Any, str]] = []
    warnings: list[str] = []
    for name in sorted(env):
        if not name.upper().startswith(PREFIX):
            continue
        rest = name[len(PREFIX) :]
        if rest.upper() in NOT_CONFIG:
            continue
        tp: Any = model
        path: list[str | int] = []
        for part in rest.lower().split("__"):
            step = _step(tp, part) if part else None
            if step is None:
                break
            tp, key = step
            path.append(key)
        else:
            value: Any = env[name]
            if _structured(tp) and value.strip()[:1] in ("[", "{"):
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    raise SourceError(f"environment variable {name} ({dotted(path)}): not valid JSON: {exc}") from None
            found.append((tuple(path), value, name))
            continue
        warnings.append(f"ignoring environment variable {name}: no configuration key {rest.lower().replace('__', '.')}")
    found.sort(key=lambda f: len(f[0]))
    return found, warnings


def dotted(path: Path_ | list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else ("." if out else "") + p
    return out or "(top level)"


class Merged:
    """The merged document and, for every key path in it, the source that set it."""

    def __init__(self, file_doc: dict[str, Any], file_name: str | None) -> None:
        self.doc: dict[str, Any] = _copy(file_doc)
        self.origins: dict[Path_, str] = {}
        if file_name is not None:
            self._record((), self.doc, file_name)

    def _record(self, path: Path_, value: Any, origin: str) -> None:
        if not isinstance(value, dict):  # a list or scalar replaces whatever was there
            for p in [p for p in self.origins if len(p) > len(path) and p[: len(path)] == path]:
                del self.origins[p]
        for p in _node_paths(value, path):
            self.origins[p] = origin

    def set(self, path: Path_, value: Any, origin: str) -> None:
        node: Any = self.doc
        for i, key in enumerate(path):
            last = i == len(path) - 1
            here = path[: i + 1]
            empty: Any = [] if not last and isinstance(path[i + 1], int) else {}
            if isinstance(node, list) and isinstance(key, int):
                if key > len(node):
                    raise SourceError(
                        f"{origin}: {dotted(here)}: the list has {len(node)} item(s); use index {len(node)} to add one"
                    )
                if key == len(node):
                    node.append(empty)
                    self.origins[here] = origin
            elif not isinstance(node, dict):
                raise SourceError(f"{origin}: {dotted(here)}: the value above it is not a mapping or a list")
            current = node[key] if isinstance(node, list) else node.get(key)
            if last:
                if isinstance(current, dict) and isinstance(value, dict):
                    _deep_update(current, _copy(value))  # as pydantic-settings did: keys merge into the file's
                else:
                    node[key] = _copy(value)
                self._record(here, value, origin)
            else:
                if not isinstance(current, dict | list):
                    node[key] = current = empty
                    self.origins[here] = origin
                node = current

    def origin_of(self, loc: Path_) -> str:
        """Who set the value at `loc`, or the nearest enclosing key that was set."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.origins:
                return self.origins[loc[:n]]
        return "the defaults"


def _node_paths(doc: Any, path: Path_) -> list[Path_]:
    out = [path]
    if isinstance(doc, dict):
        out += [p for k, v in doc.items() for p in _node_paths(v, (*path, k))]
    elif isinstance(doc, list):
        out += [p for i, v in enumerate(doc) for p in _node_paths(v, (*path, i))]
    return out


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(base.get(k), dict) and isinstance(v, dict):
            _deep_update(base[k], v)
        else:
            base[k] = v


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def flag_name(key: str) -> str:
    return FLAG_NAMES.get(key, "--" + key.replace("_", "-").replace(".", "-"))


def merge(
    model: type[BaseModel],
    file_doc: dict[str, Any],
    file_name: str | None,
    env: Mapping[str, str],
    flags: Mapping[str, Any],
) -> tuple[Merged, list[str]]:
    """file, then environment, then flags ({dotted key: value}, None = not given)."""
    merged = Merged(file_doc, file_name)
    found, warnings = from_env(model, env)
    for path, value, name in found:
        merged.set(path, value, f"environment variable {name}")
    for key, value in flags.items():
        if value is not None:
            merged.set(tuple(key.split(".")), value, f"flag {flag_name(key)}")
    return merged, warnings
