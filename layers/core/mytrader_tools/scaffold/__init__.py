"""`mytrader strategy new NAME`: a strategy file and its test, from the two templates beside this module.

The templates are real, linted modules; the scaffold renames `my_strategy` / `MyStrategy` in them.
"""
from __future__ import annotations

import keyword
import re
from importlib.util import find_spec
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent
STRATEGY_TEMPLATE, TEST_TEMPLATE = TEMPLATES / "strategy_template.py", TEMPLATES / "strategy_test_template.py"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,39}")


class ScaffoldError(ValueError):
    """A name that cannot be used, or files already there; the message is one line."""


def names(raw: str) -> tuple[str, str]:
    """(module and strategy name in snake_case, class name in CamelCase) for `raw` (snake, kebab or Camel)."""
    if not _NAME.fullmatch(raw):
        raise ScaffoldError(f"{raw!r} is not a strategy name: a letter, then up to 39 letters, digits, _ or -")
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", raw).replace("-", "_").lower()
    snake = re.sub(r"_+", "_", snake).strip("_")
    if keyword.iskeyword(snake) or snake.startswith("test"):
        raise ScaffoldError(f"{raw!r} cannot name a Python module (a keyword, or it starts with 'test')")
    return snake, "".join(part.capitalize() for part in snake.split("_"))


def scaffold_strategy(raw: str, folder: Path) -> list[Path]:
    """Writes NAME.py and test_NAME.py into `folder`; never overwrites a file, never shadows a module (pytest
    puts the folder first on the import path)."""
    snake, camel = names(raw)
    from mytrader.strategies.library import BUILTINS

    if snake in BUILTINS:
        raise ScaffoldError(f"{raw!r} is the name of a bundled strategy: pick another name "
                            f"(bundled: {', '.join(BUILTINS)})")
    targets = {folder / f"{snake}.py": STRATEGY_TEMPLATE, folder / f"test_{snake}.py": TEST_TEMPLATE}
    there = [p.name for p in targets if p.exists()]
    if there:
        raise ScaffoldError(f"{' and '.join(there)} already in {folder}: remove them or pick another name")
    if find_spec(snake) is not None:
        raise ScaffoldError(f"{raw!r} would shadow the installed module {snake!r}: pick another name")
    for path, template in targets.items():
        path.write_text(template.read_text().replace("MyStrategy", camel).replace("my_strategy", snake))
    return list(targets)
