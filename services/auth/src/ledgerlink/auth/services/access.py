"""Refusals the environment, organisation and terms services raise; routes map them to
HTTP statuses (``handlers/dependencies.py``)."""

from __future__ import annotations


class AccessRefused(Exception):  # noqa: N818 - a family of refusals, each named
    """A refusal with a message for the person (never a secret, never another tenant's data
    unless the rules allow naming it, like an environment's admins)."""

    status = 400

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class NotFound(AccessRefused):
    """Nothing there, or nothing this person may know exists (non-members get this)."""

    status = 404


class Forbidden(AccessRefused):
    """A member tried something their role does not allow, or a refused claim."""

    status = 403


class Conflict(AccessRefused):
    """The store's state forbids it (taken subdomain, last admin, environment has admins)."""

    status = 409


class BadInput(AccessRefused):
    """Input the rules cannot accept (a business ID with a wrong check digit ...)."""

    status = 400
