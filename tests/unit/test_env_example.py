"""Every C360_* environment variable the code reads is listed in .env.example.

The scan parses orchestration/**/*.py (AST, not grep) and collects the names passed as a string
literal to an environment read:

* `os.environ.get("C360_X")`, `os.environ["C360_X"]`, `os.getenv("C360_X")`,
  `os.environ.setdefault("C360_X", ...)`;
* `env.get("C360_X")` on a mapping called `env` (extract/config.py copies os.environ into one so
  tests can pass their own);
* `dg.EnvVar("C360_X")` (Dagster resources read the variable at launch);
* a module-level constant holding the name (`ENV_VAR = "C360_DBT_VARS"`) passed to any of those.

Excluded on purpose: names built at run time, i.e. f-strings and concatenations such as
`f"{prefix}_URL"` (C360_WEBHOOK_* and C360_PG_DEST_* destinations take a prefix so one can
configure several of them) or `f"C360_{source.upper()}_MODE"`. Their full name is not in the
source; .env.example lists the default-prefix instances by hand.
"""

from __future__ import annotations

import ast
import re

from orchestration.paths import REPO_ROOT

NAME = re.compile(r"^C360_[A-Z0-9_]+$")
ENV_EXAMPLE = REPO_ROOT / ".env.example"
# Attribute calls that read an environment mapping, when their receiver looks like one.
READ_METHODS = {"get", "getenv", "setdefault", "pop"}
ENV_RECEIVERS = {"environ", "os", "env"}


def _receiver(node: ast.expr) -> str:
    """The last name of a call's receiver: `os.environ.get` -> "environ", `env.get` -> "env"."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "C360_..."` assignments (a name kept in a constant is still read)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    out[target.id] = node.value.value
    return out


def env_names_read(source: str) -> set[str]:
    """C360_* names one Python module reads from the environment (literal names only)."""
    tree = ast.parse(source)
    consts = _constants(tree)

    def literal(arg: ast.expr) -> str | None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            value = arg.value
        elif isinstance(arg, ast.Name):
            value = consts.get(arg.id, "")
        else:  # f-string, concatenation, call: built at run time, excluded (module docstring)
            return None
        return value if NAME.match(value) else None

    found: set[str] = set()
    for node in ast.walk(tree):
        arg = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in READ_METHODS:
                if _receiver(func.value) in ENV_RECEIVERS:
                    arg = node.args[0]
            elif isinstance(func, ast.Attribute | ast.Name) and _receiver(func) in (
                "EnvVar",
                "getenv",
            ):
                arg = node.args[0]
        elif isinstance(node, ast.Subscript) and _receiver(node.value) == "environ":
            arg = node.slice
        if arg is not None and (name := literal(arg)):
            found.add(name)
    return found


def _listed() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].strip().removeprefix("export "))
    return names


def test_the_scan_finds_each_kind_of_read_and_skips_built_names():
    """The scanner itself can fail: each read form is found, run-time names are not."""
    source = """
import os
import dagster as dg
ENV_VAR = "C360_FROM_CONSTANT"
a = os.environ.get("C360_A", "x")
b = os.environ["C360_B"]
c = os.getenv("C360_C")
os.environ.setdefault("C360_D", "1")
e = env.get("C360_E")
f = dg.EnvVar("C360_F")
g = os.environ.get(ENV_VAR)
h = os.environ.get(f"{prefix}_URL")
i = os.environ.get("C360_" + source)
j = config.get("C360_NOT_ENV")
k = "C360_JUST_A_STRING"
"""
    assert env_names_read(source) == {
        "C360_A",
        "C360_B",
        "C360_C",
        "C360_D",
        "C360_E",
        "C360_F",
        "C360_FROM_CONSTANT",
    }


def test_every_c360_variable_the_code_reads_is_in_env_example():
    read: dict[str, list[str]] = {}
    code = [*(REPO_ROOT / "orchestration").rglob("*.py"), *(REPO_ROOT / "demo").rglob("*.py")]
    for path in sorted(code):
        for name in env_names_read(path.read_text()):
            read.setdefault(name, []).append(str(path.relative_to(REPO_ROOT)))
    # the scan is real: the paths module's home variable is always read
    assert "C360_HOME" in read and len(read) > 10, read
    missing = sorted(set(read) - _listed())
    assert not missing, "read by the code but not in .env.example: " + ", ".join(
        f"{n} ({', '.join(read[n])})" for n in missing
    )
