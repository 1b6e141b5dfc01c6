"""Environments: subdomains, who may do what, and how an activation finds its environment.

Pure rules, no I/O: the services feed them what the store holds and act on the answer.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: Longest DNS label (RFC 1035 2.3.4).
MAX_LABEL: Final = 63
#: Names the product itself serves or that would mislead people (a company called "Admin"
#: must not get ``admin.<domain>``).
RESERVED_SUBDOMAINS: Final = frozenset(
    {
        "admin",
        "api",
        "app",
        "auth",
        "dev",
        "docs",
        "help",
        "login",
        "mail",
        "signin",
        "smtp",
        "static",
        "status",
        "support",
        "www",
    }
)
# Letters Unicode decomposition leaves alone (æ, ø, ß ...) or that Nordic users expect
# spelled a particular way; the rest (é, ü, å ...) lose their marks by NFKD.
_TRANSLITERATIONS: Final = {
    "æ": "ae",
    "ø": "o",
    "œ": "oe",
    "ß": "ss",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "ł": "l",
}
_LABEL: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_FALLBACK: Final = "company"


class SubdomainProblem(StrEnum):
    """Why a subdomain cannot be used."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    INVALID = "invalid"
    RESERVED = "reserved"
    TAKEN = "taken"


SUBDOMAIN_MESSAGES: Final = {
    SubdomainProblem.EMPTY: "Enter a subdomain.",
    SubdomainProblem.TOO_LONG: f"A subdomain can be at most {MAX_LABEL} characters long.",
    SubdomainProblem.INVALID: "A subdomain can contain only lowercase letters a to z, digits "
    "and hyphens, and must start and end with a letter or digit.",
    SubdomainProblem.RESERVED: "This subdomain is reserved by Ledgerlink; choose another.",
    SubdomainProblem.TAKEN: "This subdomain is already used by another company; choose another.",
}


class SubdomainError(ValueError):
    """A subdomain that cannot be used, with the reason in words."""

    def __init__(self, subdomain: str, problem: SubdomainProblem) -> None:
        self.subdomain = subdomain
        self.problem = problem
        self.message = SUBDOMAIN_MESSAGES[problem]
        super().__init__(self.message)


def _ascii_letters(name: str) -> str:
    text = "".join(_TRANSLITERATIONS.get(char, char) for char in name.lower())
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def slugify(name: str) -> str:
    """``name`` as a DNS label: a-z, 0-9 and single inner hyphens, at most 63 characters.

    Empty when nothing usable is left (a name of only punctuation or non-Latin script).
    """
    text = _ascii_letters(name)
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return slug[:MAX_LABEL].rstrip("-")


def subdomain_problem(subdomain: str, taken: Collection[str] = ()) -> SubdomainProblem | None:
    """Why ``subdomain`` cannot be used, or None when it can (it is taken as typed)."""
    if not subdomain:
        return SubdomainProblem.EMPTY
    if len(subdomain) > MAX_LABEL:
        return SubdomainProblem.TOO_LONG
    if not _LABEL.fullmatch(subdomain):
        return SubdomainProblem.INVALID
    if subdomain in RESERVED_SUBDOMAINS:
        return SubdomainProblem.RESERVED
    if subdomain in taken:
        return SubdomainProblem.TAKEN
    return None


def check_subdomain(subdomain: str, taken: Collection[str] = ()) -> str:
    """``subdomain`` (trimmed, lower-cased) if it can be used; SubdomainError otherwise."""
    value = subdomain.strip().lower()
    problem = subdomain_problem(value, taken)
    if problem is not None:
        raise SubdomainError(value, problem)
    return value


def suggest_subdomain(name: str, taken: Collection[str] = ()) -> str:
    """A free subdomain for a company called ``name``.

    The name's slug; ``-2``, ``-3`` ... appended (shortening the slug to stay within 63
    characters) when it is reserved or taken; ``company`` when the name leaves nothing.
    """
    base = slugify(name) or _FALLBACK
    if subdomain_problem(base, taken) is None:
        return base
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = base[: MAX_LABEL - len(suffix)].rstrip("-") + suffix
        if subdomain_problem(candidate, taken) is None:
            return candidate
        number += 1


class Role(StrEnum):
    """A person's role in an environment (or organisation)."""

    ADMIN = "admin"
    MEMBER = "member"


class Action(StrEnum):
    """What a person may try to do with an environment."""

    VIEW = "view"
    VIEW_CONNECTIONS = "view_connections"
    EDIT = "edit"
    MANAGE_MEMBERS = "manage_members"
    #: Attach an environment to an organisation (it then sees the company's data).
    ADD_TO_ORGANISATION = "add_to_organisation"
    #: Revoke one of its connections (secrets wiped, revoked at the vendor).
    REVOKE_CONNECTION = "revoke_connection"


_ALLOWED: Final[Mapping[Role, frozenset[Action]]] = {
    Role.ADMIN: frozenset(Action),
    Role.MEMBER: frozenset({Action.VIEW, Action.VIEW_CONNECTIONS}),
}


def may(role: Role | None, action: Action) -> bool:
    """Whether someone with ``role`` (None: not a member) may do ``action``."""
    return role is not None and action in _ALLOWED[role]


class LastAdminError(ValueError):
    """The change would leave the environment without an admin."""

    message = (
        "An environment must keep at least one admin: make someone else an admin before "
        "removing or demoting this one."
    )

    def __init__(self) -> None:
        super().__init__(self.message)


def check_member_change(
    roles: Mapping[uuid.UUID, Role], target: uuid.UUID, new_role: Role | None
) -> None:
    """Refuse a role change (``new_role``) or removal (None) that leaves no admin.

    ``roles`` are the environment's members now; ``target`` must be one of them.
    """
    if roles.get(target) is not Role.ADMIN or new_role is Role.ADMIN:
        return
    if sum(1 for role in roles.values() if role is Role.ADMIN) <= 1:
        raise LastAdminError


@dataclass(frozen=True)
class Contact:
    """Whom to ask: an admin's name and e-mail."""

    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


def ask_admins(contacts: Collection[Contact]) -> str:
    """The sentence that tells a person whom to ask."""
    if not contacts:
        return "This environment has no admin yet."
    return "Ask an admin of this environment: " + ", ".join(str(c) for c in contacts) + "."


class Match(StrEnum):
    """What an activation by a signed-in person does with a business ID's environment."""

    #: The person is an admin of the environment: the activation joins it.
    JOIN = "join"
    #: The environment has admins and the person is not one: refused, naming them.
    REFUSE = "refuse"
    #: No environment for this business ID: it is created with the person as its admin.
    CREATE = "create"
    #: The environment exists but has no members (made by a file activation before
    #: anyone signed in): only an explicit claim by a person the activation names.
    CLAIM_REQUIRED = "claim_required"
    #: An explicit claim by a person the environment's activations name: they become admin.
    CLAIM = "claim"
    #: An explicit claim by anyone else: refused (no silent take-over).
    CLAIM_REFUSED = "claim_refused"


@dataclass(frozen=True)
class MatchDecision:
    """The decision and, for a refusal, the sentence to show."""

    outcome: Match
    message: str = ""


def decide_match(
    *,
    exists: bool,
    role: Role | None,
    admins: Collection[Contact],
    has_members: bool,
    claim: bool,
    named_by_activation: bool,
) -> MatchDecision:
    """How an activation by a signed-in person meets the business ID's environment.

    ``role`` is the person's role there (None: not a member); ``named_by_activation``
    whether the person's verified e-mail is the requester of one of the environment's
    activations (the only people who may claim an unclaimed environment); ``claim``
    whether the person explicitly asked to claim it.
    """
    if not exists:
        return MatchDecision(Match.CREATE)
    if role is Role.ADMIN:
        return MatchDecision(Match.JOIN)
    if has_members:
        return MatchDecision(
            Match.REFUSE,
            "This company already has a Ledgerlink environment and only its admins can "
            "connect it. " + ask_admins(admins),
        )
    if not claim:
        return MatchDecision(
            Match.CLAIM_REQUIRED,
            "This company's environment was created by an earlier activation and has no "
            "admin yet. Claim it to become its first admin (only the person who requested "
            "that activation can).",
        )
    if named_by_activation:
        return MatchDecision(Match.CLAIM)
    return MatchDecision(
        Match.CLAIM_REFUSED,
        "Only the person who requested this company's activation can claim its "
        "environment. Ask them to sign in and claim it, or contact Ledgerlink support.",
    )
