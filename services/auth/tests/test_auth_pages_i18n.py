"""Every message the pages use has a Finnish translation, and the template is current.

Messages are extracted from the sources exactly as the README's ``pybabel extract``
command does (Python: ``_``, ``gettext``, ``N_`` ...; the page templates with Jinja2's
i18n extension).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from ledgerlink.auth.domain.activation_pages import LANGUAGES, negotiate_language
from ledgerlink.auth.handlers.pages.common import _translations, gettext, load_catalogs

SERVICE = Path(__file__).resolve().parents[1]
LOCALE = SERVICE / "src" / "ledgerlink" / "auth" / "web" / "locale"


def _extracted() -> set[str]:
    method_map = [
        ("src/ledgerlink/auth/**.py", "python"),
        ("src/ledgerlink/auth/web/templates/pages/**.html", "jinja2"),
    ]
    options_map = {
        "src/ledgerlink/auth/web/templates/pages/**.html": {
            "extensions": "jinja2.ext.i18n",
            "trimmed": "true",
        }
    }
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found: set[str] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(SERVICE), method_map, options_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.fixture(scope="module")
def extracted() -> set[str]:
    messages = _extracted()
    assert len(messages) > 40  # the extraction found the pages at all
    return messages


def _catalog(language: str) -> dict[str, Message]:
    with (LOCALE / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=language)
    return {
        (message.id if isinstance(message.id, str) else message.id[0]): message
        for message in catalog
        if message.id
    }


def test_every_message_has_a_finnish_translation(extracted: set[str]) -> None:
    finnish = _catalog("fi")
    missing = sorted(message for message in extracted if message not in finnish)
    untranslated = sorted(
        message
        for message in extracted
        if message in finnish and (not finnish[message].string or finnish[message].fuzzy)
    )
    assert missing == [], "run the README's pybabel extract/update commands"
    assert untranslated == []


def test_the_template_and_catalogs_hold_exactly_the_messages_in_use(extracted: set[str]) -> None:
    with (LOCALE / "messages.pot").open("rb") as pot:
        template = {
            message.id if isinstance(message.id, str) else message.id[0]
            for message in read_po(pot)
            if message.id
        }
    assert template == extracted
    for language in LANGUAGES:
        assert set(_catalog(language)) == extracted


def test_catalogs_load_from_the_po_files_and_translate() -> None:
    catalogs = load_catalogs()
    token = _translations.set(catalogs["fi"])
    try:
        assert gettext("Check again") == "Tarkista uudelleen"
        assert gettext(
            "Activation links work for %(hours)s hours. Start the activation "
            "again from the store and use the new link you get.",
            hours="72",
        ).startswith("Aktivointilinkit toimivat 72 tuntia")
    finally:
        _translations.reset(token)
    assert gettext("Check again") == "Check again"


@pytest.mark.parametrize(
    ("header", "cookie", "expected"),
    [
        ("fi-FI,fi;q=0.9,en;q=0.8", None, "fi"),
        ("en-GB,en;q=0.9,fi;q=0.8", None, "en"),
        ("sv-SE,fi;q=0.5", None, "fi"),
        ("de-DE", None, "en"),
        (None, None, "en"),
        ("fi;q=0, en;q=0.1", None, "en"),
        ("en", "fi", "fi"),
        ("fi", "xx", "fi"),
    ],
)
def test_the_language_comes_from_the_switch_then_the_browser(
    header: str | None, cookie: str | None, expected: str
) -> None:
    assert negotiate_language(header, cookie) == expected
