"""Find a dataset file on this machine.

Resolution order (first hit wins):

1. an explicit path given by the user (it must exist);
2. ``$NEXTBEST_DATA_DIR/<dataset>/<filename>``;
3. ``<repo>/../shared/data/<dataset>/<filename>``, where ``<repo>`` is the folder holding
   ``pyproject.toml`` found by walking up from this file, then the same below ``Path.cwd()/..``;
4. ``~/.cache/nextbest/<dataset>/<filename>``.

Nothing is downloaded: when every place misses, a :class:`DataError` lists the places searched and the
public address the file can be fetched from (this machine may be offline).
"""

from __future__ import annotations

import os
from pathlib import Path

from nextbest.errors import DataError

DATA_DIR_ENV = "NEXTBEST_DATA_DIR"

DOWNLOAD_HINTS: dict[str, str] = {
    "salescrm": "https://github.com/rubchume/ReinforcementLearningUsers (folder data/)",
}


def repo_root() -> Path | None:
    """The nearest folder above this file that holds a ``pyproject.toml``, or None."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


def candidate_paths(dataset: str, filename: str) -> list[Path]:
    """The implicit places searched for ``<dataset>/<filename>``, in order (explicit path excluded)."""
    candidates: list[Path] = []
    env_dir = os.environ.get(DATA_DIR_ENV)
    if env_dir:
        candidates.append(Path(env_dir).expanduser() / dataset / filename)
    root = repo_root()
    if root is not None:
        candidates.append(root.parent / "shared" / "data" / dataset / filename)
    candidates.append(Path.cwd().parent / "shared" / "data" / dataset / filename)
    candidates.append(Path.home() / ".cache" / "nextbest" / dataset / filename)
    unique: list[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def resolve_data_file(dataset: str, filename: str, explicit: str | Path | None = None) -> Path:
    """Return the path of ``<dataset>/<filename>``, searched in the documented order.

    Raises DataError when an explicit path does not exist, or when no place holds the file.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise DataError(f"{path}: {what}")
        return path
    searched = candidate_paths(dataset, filename)
    for path in searched:
        if path.is_file():
            return path
    hint = DOWNLOAD_HINTS.get(dataset, "the dataset's public source")
    places = "; ".join(str(path) for path in searched)
    raise DataError(
        f"{dataset}/{filename} not found (looked in: {places}). Download it from {hint} and put it in "
        f"${DATA_DIR_ENV}/{dataset}/ or ~/.cache/nextbest/{dataset}/, or pass the path explicitly; "
        "this machine may be offline, so nothing was downloaded."
    )
