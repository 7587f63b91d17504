"""Translations: real .po files read with Babel, the code's msgids extracted with Babel, real time zones."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.plurals import get_plural

from bot import i18n
from bot.errors import ConfigError
from bot.i18n import (
    LANGUAGES,
    Translator,
    available_languages,
    catalog_problems,
    extract_messages,
    language_of,
    placeholders,
    supported,
    translations,
)

PLURAL = ("and {n} more finding (in the evidence record)", "and {n} more findings (in the evidence record)")


def write_po(root: Path, language: str, body: str, plural_forms: str | None = None) -> Path:
    plural_forms = plural_forms or get_plural(i18n.cldr_locale(language)).plural_forms
    path = root / language / "LC_MESSAGES" / "vigil.po"
    path.parent.mkdir(parents=True)
    header = (
        'msgid ""\nmsgstr ""\n'
        f'"Language: {language}\\n"\n'
        f'"Plural-Forms: {plural_forms}\\n"\n'
        '"Content-Type: text/plain; charset=utf-8\\n"\n\n'
    )
    path.write_text(header + body, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("es", "es"),
        ("es-ES", "es"),
        ("es_MX", "es"),
        ("ES", "es"),
        ("en-GB", "en"),
        ("ja", "en"),
        ("", "en"),
        (None, "en"),
        ("ca-ES", "ca"),
        ("eu", "eu"),
        ("gl-ES", "gl"),
        ("fr-CA", "fr"),
        ("it-CH", "it"),
        ("de-AT", "de"),
        # Telegram sends "pt-br"; European Portuguese and a bare "pt" get the pt catalog
        ("pt-br", "pt_BR"),
        ("pt-BR", "pt_BR"),
        ("pt_BR", "pt_BR"),
        ("pt-PT", "pt"),
        ("pt", "pt"),
        ("pt-AO", "pt"),
    ],
)
def test_language_by_primary_subtag(tag, expected):
    assert language_of(tag) == expected
    assert Translator(tag).language == expected


def test_spanish_translation_and_english_fallback():
    es, en = Translator("es-ES"), Translator("en")
    assert es.gettext("Delete") == "Borrar"
    assert en.gettext("Delete") == "Delete"
    # a msgid the catalog does not have comes back as the English source
    assert es.gettext("A sentence no catalog has.") == "A sentence no catalog has."
    assert es.gettext("Mode set to {mode}.", mode="review") == "Modo cambiado a review."
    # without arguments the template is returned untouched, for callers that format it themselves
    assert es.gettext("Mode set to {mode}.") == "Modo cambiado a {mode}."


def test_unknown_language_gets_english():
    assert Translator("ja").gettext("Delete") == "Delete"


def test_plural_forms():
    es, en = Translator("es"), Translator("en")
    assert en.ngettext(*PLURAL, 1) == "and 1 more finding (in the evidence record)"
    assert en.ngettext(*PLURAL, 3) == "and 3 more findings (in the evidence record)"
    assert es.ngettext(*PLURAL, 1) == "y 1 hallazgo más (en el registro de pruebas)"
    assert es.ngettext(*PLURAL, 3) == "y 3 hallazgos más (en el registro de pruebas)"


def test_broken_or_fuzzy_translation_falls_back_to_english(tmp_path):
    root = write_po(
        tmp_path,
        "es",
        'msgid "Hello {name}"\nmsgstr "Hola {nombre}"\n\n'
        '#, fuzzy\nmsgid "Good night"\nmsgstr "Buenos días"\n\n'
        'msgid "Empty"\nmsgstr ""\n\n'
        'msgid "Fine"\nmsgstr "Bien"\n',
    )
    t = Translator("es", locales_dir=root)
    assert t.gettext("Hello {name}", name="Ana") == "Hello Ana"
    assert t.gettext("Good night") == "Good night"
    assert t.gettext("Empty") == "Empty"
    assert t.gettext("Fine") == "Bien"


def test_missing_catalog_means_english(tmp_path):
    assert Translator("es", locales_dir=tmp_path).gettext("Delete") == "Delete"


def test_catalogs_are_parsed_once_and_shared_between_threads():
    i18n.clear_cache()
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(lambda tag: translations(tag), ["es", "es-ES", "es_MX", "ES"] * 8))
    assert all(t is found[0] for t in found)
    assert found[0] is not translations("en")


def test_dates_in_the_admins_language_and_zone():
    moment = datetime(2024, 3, 5, 14, 4, 5, tzinfo=UTC)
    es = Translator("es", timezone="Europe/Madrid").format_datetime(moment)
    en = Translator("en", timezone="Europe/Madrid").format_datetime(moment)
    assert "mar" in es and "15:04" in es and "Europe/Madrid" in es
    assert "Mar" in en and "3:04" in en and "PM" in en
    utc = Translator("en").format_datetime(moment)
    assert "2:04" in utc and "UTC" in utc
    # a naive time is what Vigil stores: UTC
    assert Translator("en").format_datetime(moment.replace(tzinfo=None)) == utc


def test_percent_in_the_admins_language():
    assert Translator("en").format_percent(0.914) == "91%"
    assert Translator("es").format_percent(0.914).replace("\xa0", " ") == "91 %"


def test_unknown_time_zone_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        Translator("en", timezone="Mars/Olympus")
    assert err.value.key == "timezone"
    assert "Europe/Madrid" in str(err.value)


def test_extraction_finds_the_code_strings():
    messages = extract_messages()
    ids = {m.msgid for m in messages}
    assert "Vigil deleted an image in {group}." in ids  # bot/alerts.py
    assert "exposed breasts" in ids  # marked with N_ in a table
    assert PLURAL in ids
    assert {m.path for m in messages} >= {"alerts.py"}


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_catalog_present_is_complete(language):
    """Every msgid translated, nothing fuzzy, placeholders as in the source, the right plural forms."""
    problems = catalog_problems(language, extract_messages())
    assert problems == [], "\n".join(problems[:20]) + "\nrun: .venv/bin/python -m bot.i18n update, then translate"


def test_the_shipped_languages():
    assert set(LANGUAGES) >= {"en", "es", "ca", "eu", "gl", "pt", "pt_BR", "fr", "it", "de"}


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_every_catalog_entry_is_used_and_keeps_the_source_line_breaks(language):
    """No leftover entry the code no longer asks for, and a translation has as many lines as its source."""
    wanted = {m.msgid if isinstance(m.msgid, str) else m.msgid[0] for m in extract_messages()}
    for message in i18n.read_catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        assert ids[0] in wanted, f"{language}: {ids[0]!r} is not in the code any more"
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            assert text.count("\n") == ids[0].count("\n"), f"{language}: {text!r}"


def test_european_and_brazilian_portuguese_differ_where_usage_does():
    pt, br = Translator("pt-PT"), Translator("pt-BR")
    assert pt.gettext("Evidence record") == "Registo de provas"
    assert br.gettext("Evidence record") == "Registro de provas"
    # plural rules: in Portugal 0 takes the plural, in Brazil the singular (CLDR)
    one, many = "You protect {n} photo:", "You protect {n} photos:"
    assert pt.ngettext(one, many, 0) == "Protege 0 fotos:"
    assert br.ngettext(one, many, 0) == "Você protege 0 foto:"
    assert pt.ngettext(one, many, 1) == "Protege 1 foto:"
    # dates follow the variant too
    moment = datetime(2024, 3, 5, 14, 4, 5, tzinfo=UTC)
    assert "05/03/2024" in Translator("pt", timezone="Europe/Lisbon").format_datetime(moment)
    assert "de mar" in Translator("pt_BR", timezone="America/Sao_Paulo").format_datetime(moment)


def test_a_european_portuguese_catalog_with_the_brazilian_plural_rule_is_reported(tmp_path):
    body = (
        'msgid "One {n}"\nmsgid_plural "Many {n}"\nmsgstr[0] "Um {n}"\nmsgstr[1] "Muitos {n}"\nmsgstr[2] "Muitos {n}"\n'
    )
    root = write_po(tmp_path, "pt", body, plural_forms=get_plural("pt_BR").plural_forms)
    problems = catalog_problems("pt", [i18n.ExtractedMessage(("One {n}", "Many {n}"), "a.py", 1)], root)
    assert len(problems) == 1 and "Plural-Forms" in problems[0]


def test_the_languages_are_the_catalogs_present(tmp_path):
    assert available_languages() == LANGUAGES and {"en", "es"} <= set(LANGUAGES)
    write_po(tmp_path, "ca", 'msgid "Delete"\nmsgstr "Esborra"\n')
    write_po(tmp_path, "pt_BR", 'msgid "Delete"\nmsgstr "Excluir"\n')
    (tmp_path / "de").mkdir()  # a folder without a catalog is no language
    assert available_languages(tmp_path) == ("ca", "en", "pt_BR")
    assert Translator("ca-ES", locales_dir=tmp_path).gettext("Delete") == "Esborra"


@pytest.mark.parametrize(
    "tag, have, expected",
    [
        ("pt-BR", ("en", "pt", "pt_BR"), "pt_BR"),
        ("pt_br", ("en", "pt", "pt_BR"), "pt_BR"),
        ("pt-PT", ("en", "pt", "pt_BR"), "pt"),
        ("pt-PT", ("en", "pt_BR"), None),
        ("ca-ES", ("en", "ca"), "ca"),
        ("eu", ("en", "eu"), "eu"),
        ("GL", ("en", "gl"), "gl"),
        ("zh-Hant-TW", ("en",), None),
        ("../../etc", ("en",), None),
        ("", ("en",), None),
        (None, ("en",), None),
    ],
)
def test_language_tags_are_normalised_in_one_place(tag, have, expected):
    assert supported(tag, have) == expected


def test_a_wrong_plural_forms_header_is_reported(tmp_path):
    root = write_po(tmp_path, "es", 'msgid "Bye"\nmsgstr "Adiós"\n', plural_forms="nplurals=1; plural=0;")
    problems = catalog_problems("es", [i18n.ExtractedMessage("Bye", "a.py", 2)], root)
    assert len(problems) == 1 and "Plural-Forms" in problems[0]


def test_catalog_check_reports_missing_and_mismatched_entries(tmp_path):
    root = write_po(
        tmp_path,
        "es",
        'msgid "Hello {name}"\nmsgstr "Hola {nombre}"\n\n'
        'msgid "Bye"\nmsgstr ""\n\n'
        'msgid "One {n}"\nmsgid_plural "Many {n}"\nmsgstr[0] "Uno"\nmsgstr[1] "Muchos {n}"\nmsgstr[2] "Muchos {n}"\n',
    )
    messages = [
        i18n.ExtractedMessage("Hello {name}", "a.py", 1),
        i18n.ExtractedMessage("Bye", "a.py", 2),
        i18n.ExtractedMessage("Not there", "a.py", 3),
        i18n.ExtractedMessage(("One {n}", "Many {n}"), "a.py", 4),
    ]
    problems = catalog_problems("es", messages, root)
    assert len(problems) == 3
    assert "placeholders differ" in problems[0] and "a.py:1" in problems[0]
    assert "no es translation for 'Bye'" in problems[1]
    assert "'Not there'" in problems[2]


def test_placeholders():
    assert placeholders("Hi {name}, {n} new, {{literal}}") == {"name", "n"}
