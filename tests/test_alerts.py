"""Alert texts: every kind, outcome and language, rendered with the real catalogs and resources."""

from __future__ import annotations

import re
import string
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from bot.alerts import (
    MAX_CHARS,
    OUTCOMES,
    AlertFacts,
    Finding,
    button_labels,
    render_alert,
    render_owner_notice,
    render_unreachable_owner_hint,
)
from bot.guidance.resources import REGIONS, load_resources
from bot.i18n import Translator, extract_messages
from detectors.errors import BadAlertFacts, ConfigError

RESOURCES = load_resources()
EN = Translator("en", timezone="Europe/Madrid")
ES = Translator("es", timezone="Europe/Madrid")
POSTED = datetime(2024, 3, 5, 14, 4, tzinfo=timezone.utc)

FINDINGS = {
    "nudity": Finding("nudity", label="FEMALE_BREAST_EXPOSED", score=0.91),
    "nsfw": Finding("nsfw", score=0.88),
    "hash": Finding("hash", label="school-reported", distance=12, algorithm="pdq"),
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
    """Literal pieces of alerts.py's English msgids long enough to be recognisable in a Spanish text."""
    pieces = set()
    for m in extract_messages():
        if m.path != "alerts.py":
            continue
        for msgid in m.msgid if isinstance(m.msgid, tuple) else (m.msgid,):
            for literal, *_ in string.Formatter().parse(msgid):
                pieces.update(p.strip() for p in re.split(r"[.:;()]", literal) if len(p.strip()) >= 14)
    return sorted(pieces)


ENGLISH = english_fragments()


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
    alert = render_alert(f, t, RESOURCES)
    parser = parse_html(alert.html)
    # the HTML says the same as the text, apart from the link targets
    assert "".join(parser.data).replace("open in the group", "").replace("abrir en el grupo", "") == alert.text.replace(
        "https://t.me/c/1234/42", ""
    )
    assert "Eve Example" in alert.text and "777" in alert.text and "3ºB Families" in alert.text
    assert len(alert.text.encode("utf-16-le")) // 2 <= MAX_CHARS
    if lang == "es":
        leaked = [p for p in ENGLISH if p in alert.text]
        assert leaked == [], f"untranslated English in the Spanish alert: {leaked}"
        assert "Qué hacer ahora" in alert.text
        assert "No abras, guardes, reenvíes ni hagas captura" in alert.text
        assert ("habría" in alert.text) == dry_run
    else:
        # the fragments are real English from this alert, so the Spanish check above can fail
        assert sum(p in alert.text for p in ENGLISH) >= 10
        assert "What to do next" in alert.text
        assert "Do not open, save, forward or screenshot" in alert.text
        assert ("would have" in alert.text) == dry_run
    # the age routes are always there, for anyone under 18 and for adults
    assert "Take It Down" in alert.text and "StopNCII" in alert.text


@pytest.mark.parametrize(
    "region, names",
    [
        ("ES", ["017", "Canal Prioritario", "Policía Nacional", "Guardia Civil", "ANAR", "112"]),
        ("GB", ["Report Remove", "Childline", "0800 1111", "CEOP"]),
        ("US", ["CyberTipline", "1-800-843-5678", "Take It Down"]),
        ("EU", ["INHOPE", "116 111"]),
        ("OTHER", ["Take It Down", "StopNCII"]),
    ],
)
@pytest.mark.parametrize("t", [EN, ES], ids=["en", "es"])
def test_the_regions_resources_appear(region, names, t):
    text = render_alert(facts(region=region), t, RESOURCES).text
    for name in names:
        assert name in text, f"{name} missing from the {region} alert"


def test_regions_do_not_leak_into_each_other():
    gb = render_alert(facts(region="GB"), EN, RESOURCES).text
    es = render_alert(facts(region="ES"), EN, RESOURCES).text
    assert "Canal Prioritario" not in gb and "Report Remove" not in es


def test_spanish_resource_texts_are_spanish():
    text = render_alert(facts(region="ES"), ES, RESOURCES).text
    assert "Dónde denunciar y pedir ayuda (España)" in text
    assert "Canal Prioritario de la AEPD" in text
    assert "AEPD Canal Prioritario (Spanish Data Protection Agency)" not in text


def test_platform_reporting_routes():
    telegram = render_alert(facts(platform="telegram"), EN, RESOURCES).text
    matrix = render_alert(facts(platform="matrix", message_link=None), EN, RESOURCES).text
    assert "abuse@telegram.org" in telegram and "Report button" in telegram
    assert "quarantine" in matrix and "homeserver" in matrix and "abuse@telegram.org" not in matrix


# --- what the alert says per kind and outcome ------------------------------------------------------------


def test_findings_in_plain_words_with_percentages():
    f = facts(findings=(FINDINGS["nudity"], FINDINGS["nsfw"], Finding("hash", label="known", algorithm="sha256", distance=0)))
    en, es = render_alert(f, EN, RESOURCES).text, render_alert(f, ES, RESOURCES).text
    assert "exposed breasts (confidence 91%)" in en and "FEMALE_BREAST_EXPOSED" not in en
    assert "88%" in en and "On the list known: an exact copy" in en
    assert "pechos al descubierto (confianza 91\xa0%)" in es


def test_near_copy_says_how_close():
    text = render_alert(facts(findings=(FINDINGS["hash"],)), EN, RESOURCES).text
    assert "12 of 256 points differ" in text
    assert "known image posted again" in text and "school-reported" in text


def test_unknown_class_is_shown_as_is():
    text = render_alert(facts(findings=(Finding("nudity", label="NEW_CLASS", score=0.5),)), EN, RESOURCES).text
    assert "NEW_CLASS (confidence 50%)" in text


def test_many_findings_are_summarised():
    many = tuple(Finding("nudity", label="BUTTOCKS_EXPOSED", score=0.6) for _ in range(7))
    assert "and 2 more findings" in render_alert(facts(findings=many), EN, RESOURCES).text
    assert "y 2 hallazgos más" in render_alert(facts(findings=many), ES, RESOURCES).text


def test_who_where_when():
    text = render_alert(facts(), ES, RESOURCES).text
    assert "Enviada por: Eve Example (@eve_example, id 777)" in text
    assert "Grupo: 3ºB Families (id -1001234)" in text
    assert "5 mar 2024, 15:04" in text and "Europe/Madrid" in text
    no_username = render_alert(facts(sender_username=None), EN, RESOURCES).text
    assert "Sent by: Eve Example (id 777)" in no_username


def test_derived_names_the_owner_and_puts_support_first():
    text = render_alert(facts(findings=(FINDINGS["derived"],)), EN, RESOURCES).text
    assert "a photo of Ana García" in text and "fake image of a real person" in text
    steps = text[text.index("What to do next:"):]
    assert steps.index("2. Support Ana García first") < steps.index("You do not need the image")
    plain = render_alert(facts(), EN, RESOURCES).text
    steps = plain[plain.index("What to do next:"):]
    assert steps.index("Support the person shown") > steps.index("You do not need the image")


def test_review_explains_the_buttons():
    labels = button_labels(EN)
    text = render_alert(facts(outcome="review"), EN, RESOURCES).text
    assert "Decide with the buttons below" in text and "if in doubt, delete it" in text
    assert f"{labels['delete']}: deletes the message" in text and f"{labels['keep']}: leaves it in the group" in text
    assert "still in the group" in text
    # a live deletion has no decision to make
    assert f"{labels['keep']}:" not in render_alert(facts(), EN, RESOURCES).text


def test_not_checked_says_why_and_to_look_with_care():
    f = facts(findings=(Finding("unscannable", detail="too_large"),), outcome="not_checked")
    en, es = render_alert(f, EN, RESOURCES).text, render_alert(f, ES, RESOURCES).text
    assert "could not check" in en and "the file is too large to check" in en
    assert "with care" in en and "do not open or enlarge it" in en
    assert "el archivo es demasiado grande" in es
    odd = render_alert(facts(findings=(Finding("unscannable", detail="weird"),), outcome="not_checked"), EN, RESOURCES).text
    assert "an error while checking it" in odd


@pytest.mark.parametrize(
    "failure, words",
    [("too_old", "older than 48 hours"), ("no_right", "right to delete messages"), ("error", "check Vigil's admin rights")],
)
def test_delete_failed_says_delete_by_hand_now(failure, words):
    text = render_alert(facts(outcome="delete_failed", failure=failure), EN, RESOURCES).text
    assert "Delete the message by hand now" in text.splitlines()[1]  # the first instruction
    assert words in text


def test_too_old_in_spanish():
    text = render_alert(facts(outcome="delete_failed", failure="too_old"), ES, RESOURCES).text
    assert "Borra el mensaje a mano ahora" in text and "48 horas" in text


def test_dry_run_says_would_have_and_that_the_image_is_still_there():
    f = facts(dry_run=True, sender_action="muted", muted_until=POSTED + timedelta(hours=24))
    text = render_alert(f, EN, RESOURCES).text
    assert text.startswith("Test mode: Vigil would have deleted")
    assert "Would have deleted the message." in text and "Would have muted the sender until" in text
    assert "The image is still in the group" in text
    assert "Deleted the message." not in text.replace("Would have deleted the message.", "")


def test_reported_says_the_image_is_still_there():
    text = render_alert(facts(outcome="reported"), EN, RESOURCES).text
    assert text.splitlines()[1].startswith("The image is still in the group")
    assert "sender is an admin or exempt" in text
    assert "Do not look for the image" not in render_alert(facts(outcome="reported"), EN, RESOURCES).text


def test_sender_actions():
    muted = render_alert(facts(sender_action="muted", muted_until=POSTED + timedelta(hours=24)), EN, RESOURCES).text
    assert "Muted the sender until Mar 6, 2024" in muted and "the sender is muted" in muted
    banned = render_alert(facts(sender_action="banned"), EN, RESOURCES).text
    assert "Removed and banned the sender." in banned and "the sender is banned" in banned
    none = render_alert(facts(), EN, RESOURCES).text
    assert "consider restricting the sender" in none


# --- safety of names and links ----------------------------------------------------------------------------


def test_hostile_names_are_escaped():
    f = facts(
        sender_name="<script>alert(1)</script> & Co",
        sender_username="<b>x</b>",
        group_title='Class "A" & <i>B</i>',
        findings=(Finding("hash", label="<a href='x'>list</a>", distance=3, algorithm="phash"),),
    )
    alert = render_alert(f, EN, RESOURCES)
    assert "<script" not in alert.html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in alert.html
    assert "Class \"A\" &amp; &lt;i&gt;B&lt;/i&gt;" in alert.html
    parser = parse_html(alert.html)
    shown = "".join(parser.data)
    assert "<script>alert(1)</script> & Co" in shown and "<a href='x'>list</a>" in shown
    assert parser.links[0] == "https://t.me/c/1234/42" and not any("'" in link for link in parser.links)
    # the plain text shows names as they are
    assert "<script>alert(1)</script> & Co" in alert.text


def test_direction_overrides_and_line_breaks_are_removed_from_names():
    alert = render_alert(facts(sender_name="Eve\u202egpj.exe\nAdmin: trust me"), EN, RESOURCES)
    assert "\u202e" not in alert.text
    assert "Eve gpj.exe Admin: trust me" not in alert.text  # no injected line
    assert "Evegpj.exe Admin: trust me" in alert.text


def test_only_web_links_become_links():
    bad = render_alert(facts(message_link="javascript:alert(1)"), EN, RESOURCES)
    assert "javascript" not in bad.html and "javascript" not in bad.text
    good = parse_html(render_alert(facts(), EN, RESOURCES).html)
    assert good.links[0] == "https://t.me/c/1234/42"
    assert "https://takeitdown.ncmec.org" in good.links


def test_long_names_are_cut():
    text = render_alert(facts(sender_name="A" * 500), EN, RESOURCES).text
    assert "A" * 63 + "…" in text and "A" * 65 not in text


def test_worst_case_fits_one_message():
    many = tuple(FINDINGS.values()) * 3
    for region in REGIONS:
        for t in (EN, ES):
            f = facts(findings=many, outcome="review", region=region, sender_name="x" * 500, group_title="y" * 500,
                      sender_action="muted", muted_until=POSTED)
            alert = render_alert(f, t, RESOURCES)
            assert len(alert.text.encode("utf-16-le")) // 2 <= MAX_CHARS
            assert "Take It Down" in alert.text  # the help list is kept, shorter
            parse_html(alert.html)


# --- bad facts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"outcome": "vanished"}, "AlertFacts.outcome"),
        ({"platform": "irc"}, "AlertFacts.platform"),
        ({"sender_action": "kicked"}, "AlertFacts.sender_action"),
        ({"failure": "tired"}, "AlertFacts.failure"),
        ({"region": "FR"}, "AlertFacts.region"),
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
    keys = {"ban", "unrestrict", "false_positive", "export", "delete", "keep"}
    assert set(en) == set(es) == keys
    assert all(en[k] != es[k] for k in keys)
    assert es["delete"] == "Borrar"


def test_owner_notice():
    en = render_owner_notice(EN, RESOURCES, group_title="Club <Tennis>", region="GB")
    assert "Club <Tennis>" in en.text and "Club &lt;Tennis&gt;" in en.html
    assert "not your fault" in en.text and "does not show the image" in en.text
    assert "Report Remove" in en.text and "Childline" in en.text and "StopNCII" in en.text
    assert "Eve" not in en.text  # it never names the sender
    parse_html(en.html)
    es = render_owner_notice(ES, RESOURCES, group_title="Club", region="ES")
    assert "No es culpa tuya" in es.text and "017" in es.text
    assert not [p for p in ENGLISH if p in es.text]


def test_unreachable_owner_hint():
    en = render_unreachable_owner_hint(EN, "VigilBot")
    assert "@VigilBot" in en and "/start" in en
    es = render_unreachable_owner_hint(ES, "@vigil:example.org")
    assert "@vigil:example.org" in es and "/start" in es and "administradores" in es
    # every member can read it: nothing about an image
    assert "image" not in en.lower() and "imagen" not in es.lower()


# --- operator overrides -------------------------------------------------------------------------------------


def test_override_changes_a_contact():
    resources = load_resources({"ES": {"incibe_017": {"contact": ["017", "https://example.org/help"]}}})
    text = render_alert(facts(), EN, resources).text
    assert "example.org/help" in text and "incibe.es/menores" not in text


def test_override_disables_a_resource_and_adds_one():
    resources = load_resources({
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
    })
    en, es = render_alert(facts(), EN, resources).text, render_alert(facts(), ES, resources).text
    assert "Canal Prioritario" not in en and "School counsellor" in en and "+34 600 000 000" in en
    assert "La orientadora del colegio." in es


def test_worldwide_resource_changed_for_one_region_only():
    resources = load_resources({"GB": {"stopncii": {"enabled": False}}})
    assert resources.get("GB", "stopncii") is None
    assert resources.get("ES", "stopncii") is not None


def test_config_shaped_overrides_are_unwrapped():
    resources = load_resources({"resources": {"US": {"cybertipline": {"contact": "1-800-843-5678"}}}})
    assert [c.shown for c in resources.get("US", "cybertipline").contact("en")] == ["1-800-843-5678"]


def test_secondary_entries_are_marked_for_the_operator():
    secondary = RESOURCES.secondary()
    assert [r.id for r in secondary] == ["incibe_017_chat"]
    assert secondary[0].check
    assert any(n.secondary for n in RESOURCES.notes)
    confirmed = load_resources({"ES": {"incibe_017_chat": {"secondary": False}}})
    assert confirmed.secondary() == ()


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"FR": {"x": {"contact": "1"}}}, "resources.FR"),
        ({"ES": {"incibe_017": {"phone": "017"}}}, "resources.ES.incibe_017.phone"),
        ({"ES": {"incibe_017": {"audience": "kids"}}}, "resources.ES.incibe_017.audience"),
        ({"ES": {"incibe_017": {"kind": "gossip"}}}, "resources.ES.incibe_017.kind"),
        ({"ES": {"incibe_017": {"contact": ""}}}, "resources.ES.incibe_017.contact"),
        ({"ES": {"incibe_017": {"contact": 17}}}, "resources.ES.incibe_017.contact"),
        ({"ES": {"incibe_017": {"name": {"fr": "x", "en": "y"}}}}, "resources.ES.incibe_017.name.fr"),
        ({"ES": {"incibe_017": {"enabled": "no"}}}, "resources.ES.incibe_017.enabled"),
        ({"ES": {"incibe_017": "017"}}, "resources.ES.incibe_017"),
        ({"ES": {"new_line": {"contact": "123"}}}, "resources.ES.new_line.name"),
        ({"ES": {"not_there": {"enabled": False}}}, "resources.ES.not_there.enabled"),
        ({"ES": {"Bad Id": {"contact": "1"}}}, "resources.ES.Bad Id"),
        ({"worldwide": {"take_it_down": {"regions": ["MARS"]}}}, "resources.worldwide.take_it_down.regions"),
        ({"ES": ["incibe_017"]}, "resources.ES"),
    ],
)
def test_bad_overrides_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        load_resources(overrides)
    assert err.value.key == key
    assert "Fix:" in str(err.value)
