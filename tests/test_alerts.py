"""Alert texts: every kind, outcome and language, rendered with the real catalogs and resources."""

from __future__ import annotations

import re
import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from bot.alerts import (
    FIRST_MESSAGE_LINES,
    MAX_CHARS,
    OUTCOMES,
    AlertFacts,
    Finding,
    button_labels,
    details_buttons,
    first_buttons,
    render_alert,
    render_details,
    render_owner_notice,
    render_unreachable_owner_hint,
)
from bot.errors import BadAlertFacts, ConfigError
from bot.guidance.resources import REGIONS, REQUIRED_KINDS, load_resources, region_code
from bot.i18n import LANGUAGES, Translator, extract_messages
from bot.platforms.base import Button, OutgoingMessage
from bot.platforms.matrix_events import render as matrix_render

RESOURCES = load_resources()
EN = Translator("en", timezone="Europe/Madrid")
ES = Translator("es", timezone="Europe/Madrid")
POSTED = datetime(2024, 3, 5, 14, 4, tzinfo=UTC)

FINDINGS = {
    "nudity": Finding("nudity", label="FEMALE_BREAST_EXPOSED", score=0.91),
    "nsfw": Finding("nsfw", score=0.88),
    "hash": Finding("hash", label="group:telegram:-1001234567890:block", distance=12, algorithm="pdq"),
    "derived": Finding("derived", detail="Ana García"),
    "provenance": Finding("provenance", label="c2pa.generative"),
    "unscannable": Finding("unscannable", detail="corrupt"),
}


def facts(**changes) -> AlertFacts:
    base = AlertFacts(
        platform="telegram",
        group_title="3ºB Families",
        group_id="-1001234",
        message_id="42",
        message_link="https://t.me/c/1234/42",
        sender_name="Eve Example",
        sender_username="eve_example",
        sender_id="777",
        posted_at=POSTED,
        findings=(FINDINGS["nudity"],),
        outcome="deleted",
        region="ES",
    )
    return replace(base, **changes)


class TelegramHtml(HTMLParser):
    """Fails on anything Telegram's HTML mode would refuse: other tags, other attributes, unbalanced tags."""

    ALLOWED = {"b", "i", "a", "code"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.data: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        assert tag in self.ALLOWED, f"tag <{tag}> is not allowed"
        if tag == "a":
            assert [name for name, _ in attrs] == ["href"], attrs
            assert re.match(r"^https?://", attrs[0][1]), attrs
            self.links.append(attrs[0][1])
        else:
            assert attrs == [], attrs
        assert not self.stack or tag != self.stack[-1], "nested tag of the same kind"
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()

    def handle_startendtag(self, tag, attrs):
        raise AssertionError(f"self-closing <{tag}/> is not allowed")

    def handle_data(self, data):
        self.data.append(data)

    def handle_comment(self, data):
        raise AssertionError("comments are not allowed")

    def handle_decl(self, decl):
        raise AssertionError("declarations are not allowed")


def parse_html(markup: str) -> TelegramHtml:
    # Telegram knows only these named entities, plus numeric ones
    stray = re.findall(r"&(?!(?:lt|gt|amp|quot);|#\d+;|#x[0-9a-fA-F]+;)", markup)
    assert not stray, "a bare & would break Telegram's parser"
    parser = TelegramHtml()
    parser.feed(markup)
    parser.close()
    assert parser.stack == [], f"unclosed tags {parser.stack}"
    return parser


def english_fragments() -> list[str]:
    """Literal pieces of the alerts' English msgids long enough to be recognisable in a Spanish text."""
    pieces = set()
    for m in extract_messages():
        if not m.path.startswith("alert"):  # alerts.py and the modules it is made of
            continue
        for msgid in m.msgid if isinstance(m.msgid, tuple) else (m.msgid,):
            for literal, *_ in string.Formatter().parse(msgid):
                pieces.update(p.strip() for p in re.split(r"[.:;()]", literal) if len(p.strip()) >= 14)
    return sorted(pieces)


ENGLISH = english_fragments()


def both(f: AlertFacts, t: Translator = EN) -> str:
    """The first message and the details together: what the admin can read in all."""
    return render_alert(f, t, RESOURCES).text + "\n" + render_details(f, t, RESOURCES).text


def first_screen(f: AlertFacts, t: Translator) -> str:
    """The first message as the admin's app shows it: on Matrix with the choices written out."""
    alert = render_alert(f, t, RESOURCES)
    if f.platform != "matrix":
        return alert.text
    labels = button_labels(t)
    rows = tuple(tuple(Button(labels[k], f"{k}:123456") for k in row) for row in first_buttons(f))
    choose = t.gettext("To choose, react with the number or send the command:")
    return matrix_render(OutgoingMessage(alert.text, alert.html, rows), notice=False, choose_line=choose).content[
        "body"
    ]


# --- every kind × outcome × language ------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [False, True], ids=["live", "dry"])
@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("kind", sorted(FINDINGS))
@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_kind_outcome_and_language_renders(lang, kind, outcome, dry_run):
    t = EN if lang == "en" else ES
    f = facts(
        findings=(FINDINGS[kind],),
        outcome=outcome,
        failure="too_old" if outcome == "delete_failed" else None,
        dry_run=dry_run,
    )
    first, details = render_alert(f, t, RESOURCES), render_details(f, t, RESOURCES)
    for alert in (first, details):
        parser = parse_html(alert.html)
        # the HTML says the same as the text, apart from the link targets
        assert "".join(parser.data).replace("open in the group", "").replace(
            "abrir en el grupo", ""
        ) == alert.text.replace("https://t.me/c/1234/42", "")
        assert len(alert.text.encode("utf-16-le")) // 2 <= MAX_CHARS
    # the first message names the group; ids and the sender are in the details
    assert "3ºB Families" in first.text and "777" not in first.text
    assert "Eve Example" in details.text and "777" in details.text and "-1001234" in details.text
    text = first.text + "\n" + details.text
    if lang == "es":
        leaked = [p for p in ENGLISH if p in text]
        assert leaked == [], f"untranslated English in the Spanish alert: {leaked}"
        assert "Qué hacer ahora" in first.text and "Todos los pasos" in details.text
        assert "No abras, guardes, reenvíes ni hagas captura" in details.text
        assert ("habría" in text) == dry_run
    else:
        # the fragments are real English from this alert, so the Spanish check above can fail
        assert sum(p in text for p in ENGLISH) >= 10
        assert "What to do now" in first.text and "What to do next" in details.text
        assert "Do not open, save, forward or screenshot" in details.text
        assert ("would have" in text) == dry_run
    # the age routes are in the details, with what they can and cannot do
    assert "Take It Down" in details.text and "StopNCII" in details.text
    # an internal list name never shows
    assert "group:telegram" not in text


def _kinds_of_alert():
    """(facts, id) for every alert kind and outcome, with the longest extras each can carry."""
    until = POSTED + timedelta(hours=24)
    for kind in sorted(FINDINGS):
        for outcome in OUTCOMES:
            for dry_run in (False, True):
                for platform in ("telegram", "matrix"):
                    f = facts(
                        platform=platform,
                        findings=(FINDINGS[kind], FINDINGS["nudity"]),
                        outcome=outcome,
                        failure="no_right" if outcome == "delete_failed" else None,
                        dry_run=dry_run,
                        sender_action="muted" if outcome == "deleted" else "none",
                        muted_until=until if outcome == "deleted" else None,
                        media_left=("mxc://example.org/abcdefghijklmnop",)
                        if platform == "matrix" and outcome == "deleted"
                        else (),
                        message_link=None if platform == "matrix" else "https://t.me/c/1234/42",
                        group_title="y" * 500,
                    )
                    yield f, f"{kind}-{outcome}-{'dry' if dry_run else 'live'}-{platform}"


ALERT_KINDS = list(_kinds_of_alert())


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("f", [f for f, _ in ALERT_KINDS], ids=[i for _, i in ALERT_KINDS])
def test_the_first_message_fits_one_phone_screen(f, lang):
    t = Translator(lang, timezone="Europe/Madrid")
    for region in ("ES", "ES-CT", "FR", "OTHER"):
        screen = first_screen(replace(f, region=region), t)
        lines = screen.splitlines()
        assert len(lines) <= FIRST_MESSAGE_LINES, f"{len(lines)} lines in {lang}, {region}:\n{screen}"


def test_the_first_message_says_what_to_do_now_and_the_numbers():
    text = render_alert(facts(region="ES"), EN, RESOURCES).text
    assert "Do not look for the image, ask anyone for it or forward it." in text
    assert "Support the person shown" in text
    assert "112" in text and "017" in text  # the emergency number and the main help line
    assert "Eve Example" not in text and "confidence" not in text  # findings and ids wait for the details
    es = render_alert(facts(region="ES"), ES, RESOURCES).text
    assert "No busques la imagen" in es and "112" in es and "017" in es
    fr = render_alert(facts(region="FR"), EN, RESOURCES).text
    assert "17" in fr and "3018" in fr


def test_first_message_choices_lead_to_the_details():
    assert first_buttons(facts()) == (("details",), ("false_positive",), ("ban",))
    assert first_buttons(facts(outcome="review")) == (("delete", "keep"), ("details",), ("ban",))
    assert ("unrestrict",) in first_buttons(facts(sender_action="muted", muted_until=POSTED))
    assert all("details" not in row for row in details_buttons(facts()))
    assert ("export",) in details_buttons(facts())
    assert max(sum(len(r) for r in first_buttons(f)) for f, _ in ALERT_KINDS) <= 4


@pytest.mark.parametrize(
    "region, names",
    [
        ("ES", ["017", "Canal Prioritario", "Policía Nacional", "091", "Guardia Civil", "ANAR", "116 111", "112"]),
        ("ES-CT", ["Mossos d'Esquadra", "Infància Respon", "Canal Prioritario", "017"]),
        ("ES-PV", ["Ertzaintza", "Zeuk Esan", "Canal Prioritario"]),
        ("ES-GA", ["Xunta", "116 111", "Policía Nacional"]),
        ("GB", ["Report Remove", "Childline", "0800 1111", "CEOP", "999"]),
        ("US", ["CyberTipline", "1-800-843-5678", "Take It Down", "911"]),
        ("EU", ["INHOPE", "116 111", "112"]),
        ("PT", ["Linha Internet Segura", "800 21 90 90", "SOS-Criança"]),
        ("FR", ["Pharos", "3018", "119", "Point de Contact"]),
        ("IT", ["Polizia Postale", "Garante", "19696", "Stop-it"]),
        ("DE", ["110", "116 111", "0800 22 55 530", "internet-beschwerdestelle.de"]),
        ("AT", ["133", "147 Rat auf Draht", "Stopline", "meldestelle@interpol.at"]),
        ("CH", ["117", "Pro Juventute 147", "clickandstop.ch"]),
        ("BE", ["101", "Child Focus", "116 000", "igvm-iefh.belgium.be"]),
        ("IE", ["Garda", "Hotline.ie", "1800 66 66 66"]),
        ("MX", ["911", "088", "Te Protejo México"]),
        ("AR", ["911", "Línea 137", "Línea 102"]),
        ("CO", ["123", "Línea 141", "Te Protejo"]),
        ("CL", ["PDI", "147", "*4242"]),
        ("BR", ["190", "Disque 100", "SaferNet"]),
        ("CA", ["911", "Cybertip.ca", "Kids Help Phone"]),
        ("AU", ["000", "eSafety", "ACCCE", "Kids Helpline"]),
        ("OTHER", ["Take It Down", "StopNCII", "INHOPE", "CyberTipline"]),
    ],
)
@pytest.mark.parametrize("t", [EN, ES], ids=["en", "es"])
def test_the_regions_resources_appear(region, names, t):
    text = render_details(facts(region=region), t, RESOURCES).text
    for name in names:
        assert name in text, f"{name} missing from the {region} alert"


def test_every_region_has_every_kind_of_resource_or_says_why():
    for region in REGIONS:
        assert RESOURCES.missing(region) == (), f"{region} lacks {RESOURCES.missing(region)} and says not why"
        info = RESOURCES.info(region)
        have = {r.role for r in RESOURCES.region(region)}
        for kind in REQUIRED_KINDS:
            assert kind in have or len(info.gaps.get(kind, "")) > 20
        assert RESOURCES.emergency(region) is not None and RESOURCES.lead(region) is not None
        assert {r.id for r in RESOURCES.region(region)} >= {"take_it_down", "stopncii"}
    assert set(REGIONS) >= {
        "PT",
        "FR",
        "IT",
        "DE",
        "AT",
        "CH",
        "BE",
        "IE",
        "MX",
        "AR",
        "CO",
        "CL",
        "BR",
        "CA",
        "AU",
        "ES",
        "ES-CT",
        "ES-PV",
        "ES-GA",
        "GB",
        "US",
        "EU",
        "OTHER",
    }


def test_every_shipped_entry_records_its_source_and_check_date():
    for section, resources in RESOURCES.sections.items():
        for r in resources:
            assert r.sources and all(s.startswith(("https://", "http://")) for s in r.sources), (section, r.id)
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r.checked), (section, r.id)
            assert not r.secondary or r.check, f"{section}.{r.id} is secondary without saying what to check"


def test_region_codes_are_normalised_and_unknown_ones_fall_back():
    assert region_code("es_ct") == "ES-CT" and RESOURCES.code("es-ct") == "ES-CT"
    assert RESOURCES.code("XX") == "OTHER" and RESOURCES.code(None) == "OTHER"


def test_a_sub_region_starts_from_its_country():
    ct = {r.id: r for r in RESOURCES.region("ES-CT")}
    # the regional government runs 116 111 there: one entry for it, not ANAR's
    assert ct["child_helpline"].name("en").startswith("Infància Respon")
    assert "aepd_canal_prioritario" in ct and "incibe_017" in ct
    assert next(iter(ct)) == "mossos"  # the region's own police first
    assert RESOURCES.get("ES", "child_helpline").name("en") == "Child helpline 116 111"
    # an operator's change to the country reaches its regions
    changed = load_resources({"ES": {"incibe_017": {"contact": ["017", "https://example.org/help"]}}})
    assert "example.org/help" in render_details(facts(region="ES-GA"), EN, changed).text


def test_regions_do_not_leak_into_each_other():
    gb = render_details(facts(region="GB"), EN, RESOURCES).text
    es = render_details(facts(region="ES"), EN, RESOURCES).text
    assert "Canal Prioritario" not in gb and "Report Remove" not in es


def test_spanish_resource_texts_are_spanish():
    text = render_details(facts(region="ES"), ES, RESOURCES).text
    assert "Dónde denunciar y pedir ayuda (España)" in text
    assert "Canal Prioritario de la AEPD" in text
    assert "AEPD Canal Prioritario (Spanish Data Protection Agency)" not in text


def test_platform_reporting_routes():
    telegram = render_details(facts(platform="telegram"), EN, RESOURCES).text
    matrix = render_details(facts(platform="matrix", message_link=None), EN, RESOURCES).text
    assert "abuse@telegram.org" in telegram and "Report button" in telegram
    assert "quarantine" in matrix and "homeserver" in matrix and "abuse@telegram.org" not in matrix
    es = render_details(facts(platform="telegram"), ES, RESOURCES).text
    assert "Reportar en Telegram" in es and "«Reportar»" in es and "Denunciar en Telegram" not in es


def test_matrix_says_the_file_stays_on_the_server_until_its_admin_deletes_it():
    f = facts(platform="matrix", message_link=None, media_left=("mxc://example.org/AbCd",))
    first, details = render_alert(f, EN, RESOURCES).text, render_details(f, EN, RESOURCES).text
    assert "file stays on the Matrix server until its admin deletes it" in first and "mxc://" not in first
    assert "mxc://example.org/AbCd" in details and "quarantine" in details
    quarantined = render_alert(replace(f, media_left=()), EN, RESOURCES).text
    assert "Matrix server" not in quarantined


# --- the guidance is right ------------------------------------------------------------------------------


def test_take_it_down_and_stopncii_say_when_they_apply():
    text = render_details(facts(region="ES"), EN, RESOURCES).text
    assert "taken down" not in text and "gets the image" not in text
    assert "only if the person shown has the image on their own device" in text
    assert "Telegram and Matrix do not" in text and "remove nothing from this group" in text
    tid = RESOURCES.get("ES", "take_it_down").purpose("en")
    assert "encrypted" in tid and "CyberTipline" in tid
    assert "no route for parents" in RESOURCES.get("ES", "stopncii").purpose("en")
    # the route without the image: the police and the hotline
    assert "Report it to the police (Policía Nacional)" in text and "Neither needs the image" in text


def test_regulators_removal_route_is_named_where_it_exists():
    assert (
        "To have it removed quickly: AEPD Canal Prioritario" in render_details(facts(region="ES"), EN, RESOURCES).text
    )
    assert "Garante Privacy" in render_details(facts(region="IT"), EN, RESOURCES).text.split("Where to report")[0]
    assert "eSafety Commissioner" in render_details(facts(region="AU"), EN, RESOURCES).text.split("Where to report")[0]
    assert "To have it removed quickly" not in render_details(facts(region="DE"), EN, RESOURCES).text


@pytest.mark.parametrize(
    "region, crime",
    [
        ("ES", True),
        ("ES-CT", True),
        ("GB", True),
        ("US", True),
        ("FR", False),
        ("DE", False),
        ("EU", False),
        ("OTHER", False),
    ],
)
def test_the_legal_sentence_holds_where_a_source_says_so(region, crime):
    text = render_details(facts(region=region), EN, RESOURCES).text
    assert ("For anyone under 18 that is a crime in itself" in text) == crime
    assert ("that can be a crime in itself" in text) == (not crime)
    assert "Unless you know the person shown is an adult, treat it as an image of someone under 18" in text


def test_eu_list_is_right():
    eu = RESOURCES.region("EU")
    police = next(r for r in eu if r.role == "police")
    assert all(c.shown != "112" for c in police.contact("en"))  # 112 is the emergency number, not "local police"
    assert RESOURCES.emergency("EU").contact("en")[0].shown == "112"
    helpline = next(r for r in eu if r.id == "child_helpline")
    assert "across the EU" not in helpline.purpose("en") and "France" in helpline.purpose("en")


def test_spain_lists_091_and_never_attach_the_image_even_when_shortened():
    many = tuple(FINDINGS.values()) * 3
    f = facts(
        findings=many,
        outcome="review",
        region="ES",
        sender_name="x" * 500,
        group_title="y" * 500,
        sender_action="muted",
        muted_until=POSTED,
    )
    for t, words in ((EN, "never attach the image"), (ES, "nunca adjuntes la imagen")):
        text = render_details(f, t, RESOURCES).text
        assert "091" in text and words in text
        assert "denuncias.pornografia.infantil@policia.es" in text


def test_spanish_wording():
    text = "\n".join(
        render_alert(f, ES, RESOURCES).text + render_details(f, ES, RESOURCES).text
        for f in (facts(), facts(findings=(FINDINGS["derived"],)), facts(outcome="review"))
    )
    text += render_owner_notice(ES, RESOURCES, group_title="Club", region="ES").text
    for wrong in (
        "salga con",
        "salía con",
        "créele",
        "adulto de confianza",
        "responsable de protección",
        "desnuda propia",
        "Denunciar en Telegram",
        "abran ",
        "envíen ",
    ):
        assert wrong not in text, wrong
    assert "coordinador o coordinadora de bienestar y protección" in text
    assert "Reporta al remitente en Telegram" in text


# --- what the alert says per kind and outcome ------------------------------------------------------------


def test_findings_in_plain_words_with_percentages():
    f = facts(
        findings=(FINDINGS["nudity"], FINDINGS["nsfw"], Finding("hash", label="known", algorithm="sha256", distance=0))
    )
    en, es = render_details(f, EN, RESOURCES).text, render_details(f, ES, RESOURCES).text
    assert "exposed breasts (confidence 91%)" in en and "FEMALE_BREAST_EXPOSED" not in en
    assert "88%" in en and "On the shared list known: an exact copy (the same file)" in en
    assert "pechos al descubierto (confianza 91\xa0%)" in es


def test_exact_copy_only_for_the_same_file():
    same = facts(findings=(Finding("hash", label="group:telegram:-1:block", algorithm="sha256", distance=0),))
    recompressed = facts(findings=(Finding("hash", label="group:telegram:-1:block", algorithm="pdq", distance=0),))
    assert "It is an exact copy of an image on this group's block list." in render_alert(same, EN, RESOURCES).text
    first = render_alert(recompressed, EN, RESOURCES).text
    assert "It is a copy of an image on this group's block list." in first and "exact" not in first
    assert "exact" not in render_details(recompressed, EN, RESOURCES).text.split("What to do next")[0]


def test_near_copy_says_how_close_and_never_the_internal_list_name():
    text = both(facts(findings=(FINDINGS["hash"],)))
    assert "12 of 256 points differ" in text
    assert "this group's block list" in text and "group:telegram" not in text and "-1001234567890" not in text
    assert "la lista de bloqueo del grupo" in both(facts(findings=(FINDINGS["hash"],)), ES)


def test_unknown_class_is_shown_as_is():
    text = render_details(facts(findings=(Finding("nudity", label="NEW_CLASS", score=0.5),)), EN, RESOURCES).text
    assert "NEW_CLASS (confidence 50%)" in text


def test_many_findings_are_summarised():
    many = tuple(Finding("nudity", label="BUTTOCKS_EXPOSED", score=0.6) for _ in range(7))
    assert "and 2 more findings" in render_details(facts(findings=many), EN, RESOURCES).text
    assert "y 2 hallazgos más" in render_details(facts(findings=many), ES, RESOURCES).text


def test_who_where_when():
    text = render_details(facts(), ES, RESOURCES).text
    assert "Enviada por: Eve Example (@eve_example, id 777)" in text
    assert "Grupo: 3ºB Families (id -1001234)" in text
    assert "5 mar 2024, 15:04" in text and "Europe/Madrid" in text
    no_username = render_details(facts(sender_username=None), EN, RESOURCES).text
    assert "Sent by: Eve Example (id 777)" in no_username


def test_derived_names_the_owner_and_puts_support_first():
    f = facts(findings=(FINDINGS["derived"],))
    first = render_alert(f, EN, RESOURCES).text
    assert "a fake made from a photo of Ana García" in first and "Support Ana García privately" in first
    text = render_details(f, EN, RESOURCES).text
    steps = text[text.index("What to do next:") :]
    assert steps.index("2. Support Ana García first") < steps.index("You do not need the image")
    plain = render_details(facts(), EN, RESOURCES).text
    steps = plain[plain.index("What to do next:") :]
    assert steps.index("Support the person shown") > steps.index("You do not need the image")


def test_review_explains_the_buttons():
    labels = button_labels(EN)
    first = render_alert(facts(outcome="review"), EN, RESOURCES).text
    assert (
        "Decide with the buttons below" in first and "If in doubt, delete it" in first and "still in the group" in first
    )
    details = render_details(facts(outcome="review", region="US"), EN, RESOURCES).text
    assert (
        f"{labels['delete']}: deletes the message" in details and f"{labels['keep']}: leaves it in the group" in details
    )
    # a live deletion has no decision to make
    assert f"{labels['keep']}:" not in render_details(facts(region="US"), EN, RESOURCES).text
    assert f"{labels['ban']}:" in render_details(facts(region="US"), EN, RESOURCES).text


def test_not_checked_says_why_and_to_look_with_care():
    f = facts(findings=(Finding("unscannable", detail="too_large"),), outcome="not_checked")
    en, es = render_alert(f, EN, RESOURCES).text, render_alert(f, ES, RESOURCES).text
    assert "could not check" in en and "the file is too large to check" in en
    assert "with care" in en and "do not open or enlarge it" in en
    assert "el archivo es demasiado grande" in es
    odd = render_alert(
        facts(findings=(Finding("unscannable", detail="weird"),), outcome="not_checked"), EN, RESOURCES
    ).text
    assert "an error while checking it" in odd


@pytest.mark.parametrize(
    "failure, words",
    [
        ("too_old", "older than 48 hours"),
        ("no_right", "right to delete messages"),
        ("error", "check Vigil's admin rights"),
    ],
)
def test_delete_failed_says_delete_by_hand_now(failure, words):
    text = render_alert(facts(outcome="delete_failed", failure=failure), EN, RESOURCES).text
    assert "Delete the message by hand now" in text.split("What to do now")[0]  # before anything else to do
    assert words in text


def test_too_old_in_spanish():
    text = render_alert(facts(outcome="delete_failed", failure="too_old"), ES, RESOURCES).text
    assert "Borra el mensaje a mano ahora" in text and "48 horas" in text


def test_dry_run_says_would_have_and_that_the_image_is_still_there():
    f = facts(dry_run=True, sender_action="muted", muted_until=POSTED + timedelta(hours=24))
    text = render_alert(f, EN, RESOURCES).text
    assert text.startswith("Test mode: Vigil would have deleted")
    assert "Vigil would have muted the sender until" in text
    assert "The image is still in the group" in text
    assert "Vigil muted" not in text


def test_reported_says_the_image_is_still_there_and_why():
    text = render_alert(facts(outcome="reported"), EN, RESOURCES).text
    assert "The image is still in the group. If it must go" in text.split("What to do now")[0]
    assert "the sender is an admin or exempt" in text
    assert "admin or exempt" not in render_alert(facts(outcome="reported", dry_run=True), EN, RESOURCES).text


def test_sender_actions():
    muted = both(facts(sender_action="muted", muted_until=POSTED + timedelta(hours=24)))
    assert "Vigil muted the sender until Mar 6, 2024" in muted and "the sender is muted" in muted
    banned = both(facts(sender_action="banned"))
    assert "Vigil removed and banned the sender." in banned and "the sender is banned" in banned
    none = both(facts())
    assert "consider restricting the sender" in none


# --- safety of names and links ----------------------------------------------------------------------------


def test_hostile_names_are_escaped():
    f = facts(
        sender_name="<script>alert(1)</script> & Co",
        sender_username="<b>x</b>",
        group_title='Class "A" & <i>B</i>',
        findings=(Finding("hash", label="<a href='x'>list</a>", distance=3, algorithm="phash"),),
    )
    for alert in (render_alert(f, EN, RESOURCES), render_details(f, EN, RESOURCES)):
        assert "<script" not in alert.html and 'Class "A" &amp; &lt;i&gt;B&lt;/i&gt;' in alert.html
        parse_html(alert.html)
    alert = render_details(f, EN, RESOURCES)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in alert.html
    parser = parse_html(alert.html)
    shown = "".join(parser.data)
    assert "<script>alert(1)</script> & Co" in shown and "<a href='x'>list</a>" in shown
    assert parser.links[0] == "https://t.me/c/1234/42" and not any("'" in link for link in parser.links)
    # the plain text shows names as they are
    assert "<script>alert(1)</script> & Co" in alert.text


def test_direction_overrides_and_line_breaks_are_removed_from_names():
    alert = render_details(facts(sender_name="Eve\u202egpj.exe\nAdmin: trust me"), EN, RESOURCES)
    assert "\u202e" not in alert.text
    assert "Eve gpj.exe Admin: trust me" not in alert.text  # no injected line
    assert "Evegpj.exe Admin: trust me" in alert.text


def test_only_web_links_become_links():
    bad = render_details(facts(message_link="javascript:alert(1)"), EN, RESOURCES)
    assert "javascript" not in bad.html and "javascript" not in bad.text
    good = parse_html(render_details(facts(), EN, RESOURCES).html)
    assert good.links[0] == "https://t.me/c/1234/42"
    assert "https://takeitdown.ncmec.org" in good.links


def test_long_names_are_cut():
    text = render_details(facts(sender_name="A" * 500), EN, RESOURCES).text
    assert "A" * 63 + "…" in text and "A" * 65 not in text


def test_worst_case_fits_one_message():
    many = tuple(FINDINGS.values()) * 3
    for region in REGIONS:
        for lang in LANGUAGES:
            t = Translator(lang, timezone="Europe/Madrid")
            f = facts(
                findings=many,
                outcome="review",
                region=region,
                sender_name="x" * 500,
                group_title="y" * 500,
                sender_action="muted",
                muted_until=POSTED,
                platform="matrix",
                media_left=tuple(f"mxc://example.org/{'m' * 40}{i}" for i in range(4)),
            )
            for alert in (render_alert(f, t, RESOURCES), render_details(f, t, RESOURCES)):
                assert len(alert.text.encode("utf-16-le")) // 2 <= MAX_CHARS
                parse_html(alert.html)
            assert "Take It Down" in render_details(f, t, RESOURCES).text  # the help list is kept, shorter


# --- bad facts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"outcome": "vanished"}, "AlertFacts.outcome"),
        ({"platform": "irc"}, "AlertFacts.platform"),
        ({"sender_action": "kicked"}, "AlertFacts.sender_action"),
        ({"failure": "tired"}, "AlertFacts.failure"),
        ({"region": "XX"}, "AlertFacts.region"),
        ({"posted_at": datetime(2024, 3, 5, 14, 4)}, "AlertFacts.posted_at"),
    ],
)
def test_bad_facts_are_refused(changes, field):
    with pytest.raises(BadAlertFacts) as err:
        facts(**changes)
    assert err.value.field == field


def test_bad_findings_are_refused():
    with pytest.raises(BadAlertFacts, match="Finding.kind"):
        Finding("rumour")
    with pytest.raises(BadAlertFacts, match="Finding.score"):
        Finding("nudity", score=1.5)


# --- buttons, owner notice, owner hint ----------------------------------------------------------------------


def test_button_labels_in_both_languages():
    en, es = button_labels(EN), button_labels(ES)
    keys = {"ban", "unrestrict", "false_positive", "export", "delete", "keep", "details"}
    assert set(en) == set(es) == keys
    assert all(en[k] != es[k] for k in keys)
    assert es["delete"] == "Borrar" and es["details"] == "Detalles y ayuda"


def test_owner_notice():
    en = render_owner_notice(EN, RESOURCES, group_title="Club <Tennis>", region="GB")
    assert "Club <Tennis>" in en.text and "Club &lt;Tennis&gt;" in en.html
    assert "not your fault" in en.text and "does not show the image" in en.text
    assert "Report Remove" in en.text and "Childline" in en.text and "StopNCII" in en.text
    # no false promise of removal; the police and the emergency number, which work without the image
    assert "taken down" not in en.text and "get it removed" not in en.text
    assert "They do not remove it from Telegram or Matrix" in en.text
    assert "call 999" in en.text and "report it to the police without having the image" in en.text
    assert "Eve" not in en.text  # it never names the sender
    parse_html(en.html)
    es = render_owner_notice(ES, RESOURCES, group_title="Club", region="ES")
    assert "No es culpa tuya" in es.text and "017" in es.text and "112" in es.text and "Policía Nacional" in es.text
    assert not [p for p in ENGLISH if p in es.text]


def test_unreachable_owner_hint():
    en = render_unreachable_owner_hint(EN, "VigilBot")
    assert "@VigilBot" in en and "/start" in en
    es = render_unreachable_owner_hint(ES, "@vigil:example.org")
    assert "@vigil:example.org" in es and "/start" in es and "Si administras el grupo" in es
    # every member can read it: nothing about an image
    assert "image" not in en.lower() and "imagen" not in es.lower()


# --- operator overrides -------------------------------------------------------------------------------------


def test_override_changes_a_contact():
    resources = load_resources({"ES": {"incibe_017": {"contact": ["017", "https://example.org/help"]}}})
    text = render_details(facts(), EN, resources).text
    assert "example.org/help" in text and "incibe.es/menores" not in text


def test_override_disables_a_resource_and_adds_one():
    resources = load_resources(
        {
            "ES": {
                "aepd_canal_prioritario": {"enabled": False},
                "school_line": {
                    "name": "School counsellor",
                    "purpose": {"en": "Our school's counsellor.", "es": "La orientadora del colegio."},
                    "contact": "+34 600 000 000",
                    "audience": "minor",
                    "kind": "helpline",
                },
            }
        }
    )
    en, es = render_details(facts(), EN, resources).text, render_details(facts(), ES, resources).text
    assert "Canal Prioritario" not in en and "School counsellor" in en and "+34 600 000 000" in en
    assert "La orientadora del colegio." in es


def test_override_may_name_the_old_kind_removal():
    resources = load_resources(
        {
            "FR": {
                "cnil": {
                    "name": "CNIL",
                    "purpose": "Complaints.",
                    "contact": "https://www.cnil.fr",
                    "audience": "all",
                    "kind": "removal",
                }
            }
        }
    )
    assert resources.get("FR", "cnil").role == "regulator"
    assert "To have it removed quickly: CNIL" in render_details(facts(region="FR"), EN, resources).text


def test_worldwide_resource_changed_for_one_region_only():
    resources = load_resources({"GB": {"stopncii": {"enabled": False}}})
    assert resources.get("GB", "stopncii") is None
    assert resources.get("ES", "stopncii") is not None


def test_config_shaped_overrides_are_unwrapped():
    resources = load_resources({"resources": {"US": {"cybertipline": {"contact": "1-800-843-5678"}}}})
    assert [c.shown for c in resources.get("US", "cybertipline").contact("en")] == ["1-800-843-5678"]


def test_secondary_entries_are_marked_for_the_operator():
    secondary = RESOURCES.secondary()
    assert "incibe_017_chat" in [r.id for r in secondary]
    assert all(r.check for r in secondary)
    assert any(n.secondary for n in RESOURCES.notes)
    confirmed = load_resources({"ES": {"incibe_017_chat": {"secondary": False}}})
    assert "incibe_017_chat" not in [r.id for r in confirmed.secondary()]


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"XX": {"x": {"contact": "1"}}}, "resources.XX"),
        ({"ES": {"incibe_017": {"phone": "017"}}}, "resources.ES.incibe_017.phone"),
        ({"ES": {"incibe_017": {"audience": "kids"}}}, "resources.ES.incibe_017.audience"),
        ({"ES": {"incibe_017": {"kind": "gossip"}}}, "resources.ES.incibe_017.kind"),
        ({"ES": {"incibe_017": {"contact": ""}}}, "resources.ES.incibe_017.contact"),
        ({"ES": {"incibe_017": {"contact": 17}}}, "resources.ES.incibe_017.contact"),
        ({"ES": {"incibe_017": {"name": {"French": "x", "en": "y"}}}}, "resources.ES.incibe_017.name.French"),
        ({"ES": {"incibe_017": {"enabled": "no"}}}, "resources.ES.incibe_017.enabled"),
        ({"ES": {"incibe_017": "017"}}, "resources.ES.incibe_017"),
        ({"ES": {"new_line": {"contact": "123"}}}, "resources.ES.new_line.name"),
        ({"ES": {"not_there": {"enabled": False}}}, "resources.ES.not_there.enabled"),
        ({"ES": {"Bad Id": {"contact": "1"}}}, "resources.ES.Bad Id"),
        ({"ES": {"incibe_017": {"checked": "yesterday"}}}, "resources.ES.incibe_017.checked"),
        ({"ES": {"incibe_017": {"source": ["not a url"]}}}, "resources.ES.incibe_017.source"),
        ({"worldwide": {"take_it_down": {"regions": ["MARS"]}}}, "resources.worldwide.take_it_down.regions"),
        ({"ES": ["incibe_017"]}, "resources.ES"),
    ],
)
def test_bad_overrides_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        load_resources(overrides)
    assert err.value.key == key
    assert "Fix:" in str(err.value)
