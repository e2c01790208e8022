"""Output paths are checked before any work: a run never ends in a traceback because of where it writes."""
from __future__ import annotations

import os
from pathlib import Path

from mytrader_tools.cli._errors import UserError


def _existing_ancestor(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent


def check_output_file(path: Path, option: str, example: str) -> None:
    """`path` can be written as a file: not a directory, its directory can be made, and written to."""
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory: give a file name, e.g. {path / example}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path} is not writable")
    _check_parent(path, option)


def check_output_dir(path: Path, option: str) -> None:
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file: give a directory")
    _check_parent(path / "x", option)


def _check_parent(path: Path, option: str) -> None:
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise UserError(f"{option} {path}: {ancestor} is a file, so the directory cannot be made")
    if not os.access(ancestor, os.W_OK):
        raise UserError(f"{option} {path}: {ancestor} is not writable")
