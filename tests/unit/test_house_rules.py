"""House rules of the library (layers/core/mytrader, what ships in the Lambda layer), read from the source tree.

1. The library never imports the tools (`mytrader_tools`) or the CDK app (`mytrader_infra`): they depend on it,
   never the other way round, and neither ships in the layer. No exception, not even under TYPE_CHECKING.
2. Outside `mytrader/adapters/`, no module imports boto3, botocore, requests or feedparser: the domain and the
   use cases reach outside systems only through ports, and the adapters are the one place that talks to them.
   What counts is an import statement (or `importlib.import_module` / `__import__` of a constant name) found
   by parsing the module, so names that only appear in strings and docstrings do not: `observability` hands
   "botocore" and "requests" to X-Ray's patcher as strings (patching on import, never importing them itself)
   and `coldstart` names botocore in its docstring. Imports under `if TYPE_CHECKING:` do not count either:
   they never run, so the module does not load the SDK (the composition root, `app/wiring.py`, annotates its
   shared Alpaca session as `requests.Session` that way). No module outside the adapters is exempt: the
   backtest's Bedrock client, for one, is made by the CLI and handed to `run_modes`.
3. At most 20 `# type: ignore` and at most 20 `# noqa` comments in the library, and each one says why on the
   same line: a second `#` comment after the code, of at least three words, e.g.
   `x = f()  # type: ignore[attr-defined]  # moto publishes no stubs`. Comments are read with `tokenize`, so a
   string that mentions either marker is not counted.
"""
from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "layers" / "core" / "mytrader"
ADAPTERS = LIBRARY / "adapters"
TOOLS = {"mytrader_tools", "mytrader_infra"}
SDKS = {"boto3", "botocore", "requests", "feedparser"}
MAX_TYPE_IGNORES = 20
MAX_NOQAS = 20
TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore\b")
NOQA = re.compile(r"#\s*noqa\b", re.IGNORECASE)
# the marker (with its optional codes), then the reason as a second comment
JUSTIFIED = re.compile(r"#\s*(?:type:\s*ignore(?:\[[^\]]*\])?|noqa(?::\s*[A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*)?)"
                       r"\s*#(?P<why>.*)$", re.IGNORECASE)


def library_modules() -> list[Path]:
    files = sorted(p for p in LIBRARY.rglob("*.py") if "__pycache__" not in p.parts)
    assert len(files) > 20, f"the library was not found at {LIBRARY}"
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(node: ast.AST) -> list[str]:
    """Absolute module names a node imports: import statements and import_module/__import__ of a constant."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [node.module] if node.module and node.level == 0 else []
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, top-level package, only under TYPE_CHECKING) for every import in the module."""
    found: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        for name in _imported_names(node):
            found.append((getattr(node, "lineno", 0), name.split(".")[0], typing_only))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                visit(stmt, True)
            for stmt in node.orelse:
                visit(stmt, typing_only)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return found


def comments(path: Path) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(tok.start[0], tok.string) for tok in tokens if tok.type == tokenize.COMMENT]


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(LIBRARY.parent)}:{line}"


def test_the_library_never_imports_the_tools_or_the_cdk_app():
    offenders = [f"{_where(p, line)} imports {top}" for p in library_modules()
                 for line, top, _ in imports(p) if top in TOOLS]
    assert offenders == []


def test_only_the_adapters_import_aws_and_http_sdks():
    offenders = []
    for path in library_modules():
        if ADAPTERS in path.parents:
            continue
        offenders += [f"{_where(path, line)} imports {top}" for line, top, typing_only in imports(path)
                      if top in SDKS and not typing_only]
    assert offenders == [], "move these into mytrader/adapters/ (or behind a port)"


def test_suppressions_are_few_and_each_says_why():
    ignores, noqas, unexplained = [], [], []
    for path in library_modules():
        for line, text in comments(path):
            marked = False
            if TYPE_IGNORE.search(text):
                ignores.append(_where(path, line))
                marked = True
            if NOQA.search(text):
                noqas.append(_where(path, line))
                marked = True
            if marked:
                match = JUSTIFIED.search(text)
                words = [w for w in (match.group("why").split() if match else []) if re.search(r"[A-Za-z]", w)]
                if len(words) < 3:
                    unexplained.append(f"{_where(path, line)}: {text.strip()}")
    assert len(ignores) <= MAX_TYPE_IGNORES, f"{len(ignores)} `type: ignore` in the library: {ignores}"
    assert len(noqas) <= MAX_NOQAS, f"{len(noqas)} `noqa` in the library: {noqas}"
    assert unexplained == [], "each suppression needs a reason: `# noqa: X123  # three or more words`"


def test_the_checks_see_what_they_should(tmp_path):
    """The parsers themselves: strings and docstrings are not imports; TYPE_CHECKING imports are marked."""
    sample = tmp_path / "sample.py"
    sample.write_text(textwrap.dedent('''\
        "import boto3"
        from typing import TYPE_CHECKING
        import importlib
        if TYPE_CHECKING:
            import requests
        else:
            import feedparser
        def f():
            import botocore.session
            return importlib.import_module("mytrader_tools.ops")
        x = "import boto3"  # type: ignore[misc]  # a reason in words
        y = 1  # noqa: E501
        '''))
    assert sorted((top, typing_only) for _, top, typing_only in imports(sample)) == [
        ("botocore", False), ("feedparser", False), ("importlib", False), ("mytrader_tools", False),
        ("requests", True), ("typing", False)]
    found = comments(sample)
    assert [line for line, _ in found] == [11, 12]
    why = [JUSTIFIED.search(text) for _, text in found]
    assert why[0] is not None and why[0].group("why").split() == ["a", "reason", "in", "words"]
    assert why[1] is None
