"""Output paths are checked before any work: a run never ends in a traceback because of where it writes."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mytrader_tools.cli._errors import UserError

_SUFFIXES = {".html": (".html", ".htm")}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return a.absolute() == b.absolute()


def _existing_ancestor(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent


def check_output_file(path: Path, option: str, example: str, inputs: Iterable[tuple[str, Path]] = ()) -> None:
    """`path` can be written as a file: not a directory, its directory can be made, and written to; it is none
    of the run's `inputs` (option, path), and an existing file is replaced only when its suffix is `example`'s."""
    if path.is_dir():
        raise UserError(f"{option} {path} is a directory: give a file name, e.g. {path / example}")
    for input_option, input_path in inputs:
        if _same_file(path, input_path):
            raise UserError(f"{option} {path} is the {input_option} file: it would be overwritten; "
                            f"give another file name, e.g. {example}")
    suffixes = _SUFFIXES.get(Path(example).suffix.lower(), (Path(example).suffix.lower(),))
    if path.is_file() and path.suffix.lower() not in suffixes:
        raise UserError(f"{option} {path} exists and is not a {'/'.join(suffixes)} file: refusing to overwrite it; "
                        f"give a name ending in {suffixes[0]}, e.g. {example}")
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
