"""The pure rules of environments and terms: subdomains, roles, matching, versions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ledgerlink.auth.domain.environments import (
    Action,
    Contact,
    LastAdminError,
    Match,
    Role,
    SubdomainError,
    SubdomainProblem,
    check_member_change,
    check_subdomain,
    decide_match,
    may,
    slugify,
    suggest_subdomain,
)
from ledgerlink.auth.domain.terms import (
    NotCurrentError,
    Published,
    TermsKind,
    check_acceptable,
    current_versions,
    outstanding,
)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Virtanen Oy", "virtanen-oy"),
        ("Åkerlund & Rausing AB", "akerlund-rausing-ab"),
        ("Bäckström Överlöv", "backstrom-overlov"),
        ("Ærø Økologi ApS", "aero-okologi-aps"),
        ("Müller Café", "muller-cafe"),
        ("Łódź Straße", "lodz-strasse"),
        ("  --Fabrikam__ (Sverige)--  ", "fabrikam-sverige"),
        ("Москва Ltd", "ltd"),
        ("!!!", ""),
    ],
)
def test_slug_of_a_company_name(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_a_long_name_is_trimmed_to_a_dns_label_that_ends_alphanumeric() -> None:
    slug = slugify("a" * 62 + " b c")
    assert slug == "a" * 62
    assert slugify("a" * 62 + "-bc") == "a" * 62


def test_suggestion_suffixes_against_taken_and_reserved_names() -> None:
    assert suggest_subdomain("Virtanen Oy") == "virtanen-oy"
    assert suggest_subdomain("Virtanen Oy", {"virtanen-oy"}) == "virtanen-oy-2"
    assert suggest_subdomain("Virtanen Oy", {"virtanen-oy", "virtanen-oy-2"}) == "virtanen-oy-3"
    assert suggest_subdomain("Admin", ()) == "admin-2"
    assert suggest_subdomain("WWW") == "www-2"
    assert suggest_subdomain("Москва") == "company"
    long = "x" * 63
    assert suggest_subdomain(long, {long}) == "x" * 61 + "-2"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", SubdomainProblem.EMPTY),
        ("a" * 64, SubdomainProblem.TOO_LONG),
        ("-virtanen", SubdomainProblem.INVALID),
        ("virtanen-", SubdomainProblem.INVALID),
        ("virtanen.oy", SubdomainProblem.INVALID),
        ("väinö", SubdomainProblem.INVALID),
        ("api", SubdomainProblem.RESERVED),
        ("auth", SubdomainProblem.RESERVED),
        ("app", SubdomainProblem.RESERVED),
        ("taken", SubdomainProblem.TAKEN),
    ],
)
def test_a_subdomain_that_cannot_be_used_says_why(value: str, problem: SubdomainProblem) -> None:
    with pytest.raises(SubdomainError) as raised:
        check_subdomain(value, {"taken"})
    assert raised.value.problem is problem
    assert raised.value.message


def test_a_typed_subdomain_is_trimmed_and_lowercased() -> None:
    assert check_subdomain("  Virtanen-Oy ") == "virtanen-oy"


def test_who_may_do_what() -> None:
    assert all(may(Role.ADMIN, action) for action in Action)
    assert may(Role.MEMBER, Action.VIEW)
    assert may(Role.MEMBER, Action.VIEW_CONNECTIONS)
    assert not may(Role.MEMBER, Action.EDIT)
    assert not may(Role.MEMBER, Action.MANAGE_MEMBERS)
    assert not may(Role.MEMBER, Action.ADD_TO_ORGANISATION)
    assert not any(may(None, action) for action in Action)


def test_the_last_admin_can_be_neither_removed_nor_demoted() -> None:
    anna, erik, maja = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    one_admin = {anna: Role.ADMIN, erik: Role.MEMBER}
    with pytest.raises(LastAdminError):
        check_member_change(one_admin, anna, None)
    with pytest.raises(LastAdminError):
        check_member_change(one_admin, anna, Role.MEMBER)
    check_member_change(one_admin, anna, Role.ADMIN)
    check_member_change(one_admin, erik, None)
    check_member_change(one_admin, erik, Role.ADMIN)
    two_admins = {**one_admin, maja: Role.ADMIN}
    check_member_change(two_admins, anna, None)
    check_member_change(two_admins, anna, Role.MEMBER)


ADMINS = [Contact("Anna Virtanen", "anna@virtanen.fi"), Contact("", "ops@virtanen.fi")]


def _decide(**changes: object) -> tuple[Match, str]:
    facts: dict[str, object] = {
        "exists": True,
        "role": None,
        "admins": ADMINS,
        "has_members": True,
        "claim": False,
        "named_by_activation": False,
    }
    facts.update(changes)
    decision = decide_match(**facts)  # type: ignore[arg-type]
    return decision.outcome, decision.message


def test_a_new_business_id_creates_the_environment() -> None:
    assert _decide(exists=False, admins=[], has_members=False)[0] is Match.CREATE


def test_an_admin_joins() -> None:
    assert _decide(role=Role.ADMIN)[0] is Match.JOIN


@pytest.mark.parametrize("role", [Role.MEMBER, None])
def test_a_member_or_stranger_is_refused_with_the_admins_named(role: Role | None) -> None:
    outcome, message = _decide(role=role)
    assert outcome is Match.REFUSE
    assert "Anna Virtanen <anna@virtanen.fi>" in message
    assert "ops@virtanen.fi" in message


def test_an_unclaimed_environment_needs_an_explicit_claim_by_its_requester() -> None:
    unclaimed = {"admins": [], "has_members": False}
    assert _decide(**unclaimed)[0] is Match.CLAIM_REQUIRED
    # Even the requester does not take it over without asking to.
    assert _decide(**unclaimed, named_by_activation=True)[0] is Match.CLAIM_REQUIRED
    assert _decide(**unclaimed, claim=True, named_by_activation=True)[0] is Match.CLAIM
    assert _decide(**unclaimed, claim=True)[0] is Match.CLAIM_REFUSED
    # A claim of an environment that has admins is an ordinary refusal.
    assert _decide(claim=True, named_by_activation=True)[0] is Match.REFUSE


T0 = datetime(2027, 1, 1, tzinfo=UTC)


def _published(kind: TermsKind, version: int, days: int = 0) -> Published:
    return Published(uuid.uuid4(), kind, version, T0 + timedelta(days=days))


def test_the_latest_published_version_of_each_kind_is_current() -> None:
    terms_1 = _published(TermsKind.TERMS, 1)
    terms_2 = _published(TermsKind.TERMS, 2, days=10)
    terms_3 = _published(TermsKind.TERMS, 3, days=40)  # scheduled: not yet
    privacy_1 = _published(TermsKind.PRIVACY, 1)
    current = current_versions([terms_3, terms_1, privacy_1, terms_2], now=T0 + timedelta(days=20))
    assert current == {TermsKind.TERMS: terms_2, TermsKind.PRIVACY: privacy_1}

    # Accepting version 1 does not count once version 2 is out.
    assert outstanding(current, {terms_1.id, privacy_1.id}) == [terms_2]
    assert outstanding(current, {terms_2.id, privacy_1.id}) == []
    check_acceptable(current, [terms_2.id])
    with pytest.raises(NotCurrentError):
        check_acceptable(current, [terms_1.id])
