"""Where a person goes after signing in: only somewhere on auth itself (no open redirect).

An attacker who can make ``/signin?next=https://evil.example`` send a freshly signed-in person
to their site has a phishing page that looks like a step of ours (OWASP "Unvalidated
Redirects and Forwards"). ``next`` must therefore be a path on this host: it starts with one
``/``, has no scheme or host, and none of the forms browsers read as another host
(``//evil``, ``/\\evil``, control characters and backslashes anywhere).
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_NEXT = "/signin"
MAX_LENGTH = 2000


class UnsafeNextUrl(ValueError):  # noqa: N818 - a rule's refusal, named for what it refuses
    """``next`` is not a path on auth itself."""


def check_next(value: str | None) -> str:
    """``value`` when it is a safe path on auth, :data:`DEFAULT_NEXT` when absent.

    Raises :class:`UnsafeNextUrl` for anything else.
    """
    if value is None or value == "":
        return DEFAULT_NEXT
    if len(value) > MAX_LENGTH:
        raise UnsafeNextUrl("the return address is too long")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in value) or "\\" in value:
        raise UnsafeNextUrl("the return address has characters a path may not have")
    if not value.startswith("/") or value.startswith("//"):
        raise UnsafeNextUrl("the return address must be a path on this site, such as /signin")
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        raise UnsafeNextUrl("the return address must be a path on this site, such as /signin")
    return value
