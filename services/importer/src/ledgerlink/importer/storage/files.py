"""Where uploaded ledger files are kept, and which file locations the importer may read."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ledgerlink.importer.domain.import_rules import ImportRequestError

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_HASH_BLOCK = 1024 * 1024


class FileLocationError(ImportRequestError):
    """A file location the importer may not or cannot read."""

    reason_code = "file_location_invalid"


class UploadTooLargeError(ValueError):
    """An upload over the configured size limit."""


class FileArea:
    """The importer's file area (uploads) plus read-only roots import requests may name.

    A location is a path relative to the file area (what uploads get) or a ``file://``
    URI. Anything that resolves outside the allowed roots is refused: an import request
    is not a way to read arbitrary files of the importer's host.
    """

    def __init__(self, root: Path, *, extra_roots: tuple[Path, ...] = ()) -> None:
        self.root = root
        self._roots = (root.resolve(), *(extra.resolve() for extra in extra_roots))

    def resolve(self, location: str) -> Path:
        """The readable file at ``location``; :class:`FileLocationError` otherwise."""
        if location.startswith("file://"):
            path = Path(unquote(urlsplit(location).path))
        elif "://" in location:
            raise FileLocationError(
                f"file location {location!r} uses a scheme the importer cannot read; "
                "use a path in the importer's file area or a file:// URI"
            )
        else:
            path = self.root / location
        resolved = path.resolve()
        if not any(resolved.is_relative_to(root) for root in self._roots):
            raise FileLocationError(
                f"file location {location!r} is outside the importer's file area and "
                "configured file roots"
            )
        if not resolved.is_file():
            raise FileLocationError(f"file location {location!r} does not name a readable file")
        return resolved

    async def save_upload(
        self,
        import_id: uuid.UUID,
        filename: str,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
    ) -> tuple[str, int]:
        """Store an upload; returns its location (relative to the area) and size.

        The partial file is removed when the upload fails or is too large.
        """
        safe = _SAFE_NAME.sub("_", Path(filename).name)[-120:] or "upload"
        relative = Path("uploads") / f"{import_id}-{safe}"
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        try:
            with target.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadTooLargeError(
                            f"the upload is larger than the limit of {max_bytes} bytes"
                        )
                    out.write(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return relative.as_posix(), size


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's content, read in blocks (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()
