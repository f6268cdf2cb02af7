"""The data lake: raw inputs in, clean Parquet tables out, in a local folder or an S3-compatible bucket (fsspec).

    lake = Lake("runs/lake")                                   # local folder (the embedded default)
    lake = Lake("s3://bucket/prefix", endpoint_url="http://127.0.0.1:8333", key="…", secret="…")
    lake.write_table("pages", frame)                           # -> <root>/processed/pages.parquet
    frame = lake.read_table("pages")

S3 settings come from the arguments or, when absent, from the environment (``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``). Table names are plain identifiers, so a name
can never escape the lake's root.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nextbest.errors import DataError

PROCESSED = "processed"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass
class Lake:
    """A lake rooted at a local folder or at ``s3://bucket[/prefix]``."""

    root: str
    endpoint_url: str | None = None
    key: str | None = None
    secret: str | None = None
    _fs: Any = field(default=None, repr=False)

    @property
    def is_s3(self) -> bool:
        return str(self.root).startswith("s3://")

    @property
    def fs(self) -> Any:
        """The fsspec filesystem of the lake (s3fs for ``s3://``, the local one otherwise)."""
        if self._fs is None:
            self._fs = self._s3() if self.is_s3 else _local()
        return self._fs

    def _s3(self) -> Any:
        try:
            import s3fs
        except ImportError as error:
            raise DataError("an s3:// lake needs s3fs: pip install 'nextbest[lake]'") from error
        settings = self.s3_settings()
        endpoint = settings["endpoint_url"]
        return s3fs.S3FileSystem(
            key=settings["key"], secret=settings["secret"], client_kwargs={"endpoint_url": endpoint} if endpoint else {}
        )

    def s3_settings(self) -> dict[str, str | None]:
        """The S3 endpoint and keys in use: the arguments, else the environment (see the module docstring)."""
        return {
            "endpoint_url": self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT"),
            "key": self.key or os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret": self.secret or os.environ.get("AWS_SECRET_ACCESS_KEY"),
        }

    def path(self, name: str, area: str = PROCESSED) -> str:
        """Where table ``name`` lives: ``<root>/<area>/<name>.parquet``."""
        if not _NAME.match(name) or not _NAME.match(area):
            raise DataError(f"table name {name!r} / area {area!r}: use letters, digits, '_' or '-'")
        root = str(self.root).rstrip("/")
        return f"{root}/{area}/{name}.parquet" if self.is_s3 else str(Path(root) / area / f"{name}.parquet")

    def write_table(self, name: str, frame: pd.DataFrame, area: str = PROCESSED) -> str:
        """Write ``frame`` as Parquet (zstd); returns the table's path."""
        target = self.path(name, area)
        try:
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(target, "wb") as handle:
                frame.to_parquet(handle, index=False, compression="zstd")
        except OSError as error:
            raise DataError(f"cannot write {target}: {error}") from error
        return target

    def put_table(self, name: str, local: str | Path, area: str = PROCESSED) -> str:
        """Upload a Parquet file written elsewhere (e.g. by DuckDB) as table ``name``; returns its path."""
        target = self.path(name, area)
        try:
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(local), target)
        except OSError as error:
            raise DataError(f"cannot write {target}: {error}") from error
        return target

    def read_table(self, name: str, area: str = PROCESSED, columns: list[str] | None = None) -> pd.DataFrame:
        """Read table ``name``; a missing table is a DataError naming its path."""
        source = self.path(name, area)
        try:
            if not self.fs.exists(source):
                raise DataError(f"table {name!r} not found at {source}")
            with self.fs.open(source, "rb") as handle:
                return pd.read_parquet(handle, columns=columns)
        except OSError as error:
            raise DataError(f"cannot read {source}: {error}") from error

    def checksum(self, name: str, area: str = PROCESSED) -> str | None:
        """SHA-256 of table ``name``'s bytes (None when the table does not exist)."""
        source = self.path(name, area)
        try:
            if not self.fs.exists(source):
                return None
            digest = hashlib.sha256()
            with self.fs.open(source, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as error:
            raise DataError(f"cannot read {source}: {error}") from error
        return digest.hexdigest()

    def tables(self, area: str = PROCESSED) -> list[str]:
        """Names of the tables in ``area``."""
        folder = self.path("x", area).rsplit("/", 1)[0] if self.is_s3 else str(Path(self.path("x", area)).parent)
        if not self.fs.exists(folder):
            return []
        return sorted(Path(p).stem for p in self.fs.ls(folder, detail=False) if str(p).endswith(".parquet"))


def _local() -> Any:
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem(auto_mkdir=True)
