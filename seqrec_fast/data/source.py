"""The source file of a prepared dataset, pinned by content: `data prepare` records its size and
XXH3-128 digest in the cache's metadata, and every load of the cache compares them with the file
as it is now, so that an edit is noticed even when it keeps the size and puts the mtime back."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import _loader
from .errors import DataFormatError

log = logging.getLogger("seqrec_fast.data")


def file_digest(path: str | Path) -> str:
    """XXH3-128 of the file's bytes, 32 hex digits (streamed in Rust at disk speed)."""
    try:
        return _loader.file_digest(str(path))
    except OSError as error:
        raise DataFormatError(str(error)) from None


def source_record(path: Path, format: str) -> dict[str, Any]:
    """What the cache remembers of its source: where it is, how it was read, what it held."""
    return {"path": str(path.resolve()), "format": format, "size": path.stat().st_size, "digest": file_digest(path)}


def source_change(source: dict[str, Any]) -> str | None:
    """How the recorded source differs from the file now, or None if it is the same (or the
    record predates content digests, or the dataset came from arrays)."""
    if "digest" not in source:
        return None
    path = Path(source["path"])
    if not path.is_file():
        return f"its source {path} no longer exists"
    try:
        changed = path.stat().st_size != source["size"] or file_digest(path) != source["digest"]
    except (OSError, DataFormatError) as error:
        return f"its source cannot be read to check it ({error})"
    return f"its source {path} changed since it was prepared" if changed else None


def warn_if_source_changed(cache: Path, meta: dict[str, Any]) -> None:
    change = source_change(meta.get("source", {}))
    if change is None:
        return
    log.warning("%s: %s; the cache still holds the old data (re-create it with `seqrec-fast data prepare %s "
                "--out %s`)", cache, change, meta["source"]["path"], cache.parent)
