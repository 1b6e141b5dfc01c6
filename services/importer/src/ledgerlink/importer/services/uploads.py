"""Ledger files received directly (HTTP upload): format, provider, stored file.

The upload route hands the file over as it arrives; this decides what it is (SIE 4 or
SAF-T, from its first bytes), stores it in the file area, and says which provider's
import it becomes. Queuing the import is :meth:`ImportService.file_uploaded`, in the
caller's transaction (the file is stored before that transaction starts, so a large
upload holds no database connection).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from ledgerlink.importer.domain.ledger import LedgerFormat, detect_format
from ledgerlink.importer.storage.files import FileArea
from ledgerlink.shared.events import Provider

_HEAD_BYTES: Final = 4096
_CHUNK: Final = 1024 * 1024


class EmptyUploadError(ValueError):
    """An upload without content."""


@dataclass(frozen=True)
class StoredUpload:
    """An upload kept in the file area, ready to be queued."""

    import_id: uuid.UUID
    provider: Provider
    location: str
    filename: str


def provider_of(fmt: LedgerFormat) -> Provider:
    """The file provider whose imports read files of ``fmt``."""
    return fmt.provider


class UploadService:
    """Receives uploaded ledger files into the file area."""

    def __init__(self, files: FileArea, *, max_bytes: int) -> None:
        self._files = files
        self.max_bytes = max_bytes

    async def receive(
        self, read: Callable[[int], Awaitable[bytes]], filename: str | None
    ) -> StoredUpload:
        """Detect the format from the first bytes, then store the whole upload.

        Raises:
            EmptyUploadError: nothing (or only whitespace) was uploaded.
            UnknownFormatError: neither SIE 4 nor SAF-T.
            UploadTooLargeError: over the size limit (the partial file is removed).
        """
        head = await read(_HEAD_BYTES)
        if not head.strip():
            raise EmptyUploadError("the uploaded file is empty")
        provider = provider_of(detect_format(head))
        import_id = uuid.uuid4()

        async def chunks() -> AsyncIterator[bytes]:
            yield head
            while chunk := await read(_CHUNK):
                yield chunk

        location, _ = await self._files.save_upload(
            import_id, filename or "upload", chunks(), max_bytes=self.max_bytes
        )
        return StoredUpload(import_id, provider, location, filename or location)
