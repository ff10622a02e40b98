"""YAML written by people loads within limits: an alias bomb, deep nesting, an oversized file, a
repeated key or broken YAML is refused quickly, with `file:line: message`, by the segment, global
rules and sync loaders alike (issue 14: a 387-byte alias bomb took 77 s and 1.56 GB, depth 400
ended in a RecursionError traceback)."""

import time
from pathlib import Path

import pytest

from orchestration.activation.sync_definition import SyncDefinitionError
from orchestration.activation.syncs import load_sync
from orchestration.safe_yaml import MAX_BYTES, YamlLimitError, load
from orchestration.segments.model import SegmentError, load_global, load_segment

# 9 levels of 9 aliases: ~387 million list items when expanded
ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)
SMALL_BOMB = "".join(ALIAS_BOMB.splitlines(keepends=True)[:6])  # ~530k items: safe to expand
SEGMENT = "name: s\ndescription: d\nall:\n  - trait: email\n    is_null: true\n"
SYNC = "name: s\nsegment: vip\ndestination: file_drop\nchannel: email\nfields: {email: email}\n"


def _write(tmp_path: Path, text: str, name: str = "s.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (ALIAS_BOMB, 1, "anchors and aliases (&name, *name) are not allowed"),
        ("x: " + "[" * 400 + "]" * 400 + "\n", 1, "nested deeper than 64 levels"),
        ("".join("  " * i + "k:\n" for i in range(400)), 65, "nested deeper than 64 levels"),
        ("a: 1\nb: 2\na: 3\n", 3, "key 'a' is given twice"),
        ("a: 1\nb: [1, 2\n", 3, "not valid YAML: expected ',' or ']'"),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", 1, "anchors and aliases"),
        ("a: !!python/object/apply:os.system ['touch x']\n", 1, "not valid YAML"),
        ("a: 1\n---\nb: 2\n", 2, "not valid YAML: expected a single document"),
    ],
    # short ids: pytest puts the test id in PYTEST_CURRENT_TEST, and a 400-line YAML id passes
    # the kernel's 128 KiB limit on one env string, so any process a session fixture starts in
    # this test's teardown (pg_ctl stop) failed with "Argument list too long"
    ids=[
        "alias_bomb",
        "deep_flow",
        "deep_block",
        "duplicate_key",
        "unclosed",
        "merge_key",
        "python_tag",
        "two_documents",
    ],
)
def test_hostile_yaml_is_refused_quickly_naming_file_and_line(tmp_path, text, line, message):
    path = _write(tmp_path, text)
    started = time.monotonic()
    with pytest.raises(YamlLimitError) as err:
        load(path)
    assert time.monotonic() - started < 2
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)


def test_oversized_and_non_utf8_files_are_refused_before_parsing(tmp_path):
    big = _write(tmp_path, "a: '" + "x" * MAX_BYTES + "'\n")
    with pytest.raises(YamlLimitError, match=f"^{big}:1: larger than {MAX_BYTES} bytes$"):
        load(big)
    binary = tmp_path / "b.yml"
    binary.write_bytes(b"a: 1\nb: \xff\xfe\n")
    with pytest.raises(YamlLimitError, match=f"^{binary}:2: not UTF-8 text$"):
        load(binary)


def test_plain_yaml_loads_with_its_node_tree(tmp_path):
    doc, node = load(_write(tmp_path, "a: 1\nb: [x, {c: d}]\n"))
    assert doc == {"a": 1, "b": ["x", {"c": "d"}]}
    assert node.value[1][1].start_mark.line == 1
    assert load(_write(tmp_path, "")) == (None, None)


@pytest.mark.parametrize(
    "text",
    [SMALL_BOMB, "all: " + "[" * 400 + "]" * 400 + "\n", "name: s\nname: s\n"],
    ids=["alias bomb", "depth 400", "repeated key"],
)
def test_segment_global_and_sync_loaders_refuse_with_their_own_errors(tmp_path, text):
    started = time.monotonic()
    with pytest.raises(SegmentError, match=f"^{tmp_path / 's.yml'}:[0-9]+: "):
        load_segment(_write(tmp_path, text))
    with pytest.raises(SegmentError, match=f"^{tmp_path / '_global.yml'}:[0-9]+: "):
        load_global(_write(tmp_path, text, "_global.yml").parent)
    with pytest.raises(SyncDefinitionError, match=f"^{tmp_path / 's.yml'}:[0-9]+: "):
        load_sync(_write(tmp_path, text))
    assert time.monotonic() - started < 3


def test_valid_files_still_load(tmp_path):
    assert load_segment(_write(tmp_path, SEGMENT)).name == "s"
    assert load_sync(_write(tmp_path, SYNC)).segment == "vip"
