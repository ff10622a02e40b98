"""Load YAML written by people (segments, syncs) as plain data, within limits.

PyYAML's safe_load builds only plain types, but it still expands aliases (a few hundred bytes of
nested aliases become gigabytes: the "billion laughs"), recurses once per nesting level (depth
~400 ends in a RecursionError traceback) and keeps the last of two equal keys silently. These files
need none of that, so `load` refuses, with `file:line: message`:

- a file over `max_bytes` (checked before it is read whole);
- anchors and aliases (`&a`, `*a`, and so `<<: *a` merges);
- nesting deeper than `max_depth` mappings/sequences;
- a key given twice in one mapping;
- text that is not UTF-8 or not YAML (the parser's own message, with its line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 256 * 1024
MAX_DEPTH = 64


class YamlLimitError(ValueError):
    """A YAML file is refused; str() is `file:line: message` (line 1 when it has no position)."""


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that these files may not use (aliases, deep nesting, a repeated key)."""


def _limited_loader(max_depth: int) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _Refused(
                    problem="anchors and aliases (&name, *name) are not allowed",
                    problem_mark=event.start_mark,
                )
            if isinstance(event, yaml.CollectionStartEvent):
                self.depth += 1
                if self.depth > max_depth:
                    raise _Refused(
                        problem=f"nested deeper than {max_depth} levels",
                        problem_mark=event.start_mark,
                    )
            try:
                return super().compose_node(parent, index)
            finally:
                if isinstance(event, yaml.CollectionStartEvent):
                    self.depth -= 1

        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the base class names it
                    break
                if duplicate:
                    raise _Refused(
                        problem=f"key {key!r} is given twice", problem_mark=key_node.start_mark
                    )
            return super().construct_mapping(node, deep=deep)

    return Loader


def _line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 1


def load(
    path: Path, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> tuple[Any, yaml.Node | None]:
    """The document in `path` and its composed node tree (for line numbers); (None, None) when
    the file holds no document. Raises YamlLimitError naming the file and line."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise YamlLimitError(f"{path}:1: cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise YamlLimitError(f"{path}:1: larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlLimitError(f"{path}:{line}: not UTF-8 text") from None
    loader = _limited_loader(max_depth)(text)
    try:
        node = loader.get_single_node()
        doc = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise YamlLimitError(f"{path}:{_line(exc)}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        if context and problem.startswith("but "):  # "expected X" / "but found Y"
            problem = f"{context} {problem}"
        raise YamlLimitError(f"{path}:{_line(exc)}: not valid YAML: {problem}") from None
    except RecursionError:  # defence in depth: max_depth keeps composition far from the limit
        raise YamlLimitError(f"{path}:1: nested too deeply") from None
    finally:
        loader.dispose()
    return doc, node
