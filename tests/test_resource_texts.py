"""The resources' texts in more languages: bot/guidance/resource_texts/<language>.toml overlays on resources.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.guidance.resources import CATALOG, PLATFORMS, REGIONS, TEXTS_DIR, WORLDWIDE, load_resources

# the sections each language's overlay must cover in full: the regions where it is spoken, and everyone's
SPOKEN_IN = {
    "ca": ("ES", "ES-CT", "ES-PV", "ES-GA"),
    "eu": ("ES", "ES-CT", "ES-PV", "ES-GA"),
    "gl": ("ES", "ES-CT", "ES-PV", "ES-GA"),
    "pt": ("PT", "BR"),
    "pt_BR": ("BR",),
    "fr": ("FR", "BE", "CH", "CA"),
    "it": ("IT", "CH"),
    "de": ("DE", "AT", "CH"),
}
SHIPPED = load_resources()
RAW = tomllib.loads(CATALOG.read_text(encoding="utf-8"))


def test_an_overlay_for_each_new_language():
    assert {p.stem for p in TEXTS_DIR.glob("*.toml")} == set(SPOKEN_IN)


@pytest.mark.parametrize("lang", sorted(SPOKEN_IN))
def test_each_overlay_covers_its_regions_the_platforms_and_the_worldwide_tools(lang):
    sections = SPOKEN_IN[lang] + PLATFORMS
    missing = []
    for section in sections:
        for r in SHIPPED.sections[section]:
            worded = RAW["resources"].get(r.section, {}).get(r.id) or RAW["resources"][WORLDWIDE].get(r.id) or {}
            if lang not in r.purposes and lang.split("_")[0] not in r.purposes:
                missing.append(f"{section}.{r.id}.purpose")
            # a name or contact the catalog words per language is worded in every language it is shown in
            for name, texts in (("name", r.names), ("contact", r.contacts)):
                if isinstance(worded.get(name), dict) and lang not in texts and lang.split("_")[0] not in texts:
                    missing.append(f"{section}.{r.id}.{name}")
    assert missing == []
    unnamed = [code for code in REGIONS if not {lang, lang.split("_")[0]} & set(SHIPPED.regions[code].names)]
    assert unnamed == []


def test_texts_in_the_admins_language_with_fallbacks():
    mossos = SHIPPED.get("ES-CT", "mossos")
    assert mossos.purpose("ca").startswith("Denuncia-ho a qualsevol comissaria dels Mossos")
    assert mossos.purpose("es").startswith("Denuncia en cualquier comisaría de los Mossos")
    assert mossos.purpose("ja") == mossos.purpose("en")  # no text in that language: English
    # a sub-region inherits the country's entries with their texts, and the worldwide tools come with them
    assert SHIPPED.get("ES-GA", "incibe_017").purpose("gl").startswith("Axuda gratuíta e confidencial")
    assert "Só para unha imaxe" in SHIPPED.get("ES-GA", "take_it_down").purpose("gl")
    # Brazilian wording where it differs, European Portuguese where pt_BR has none, then English
    assert "anônima" in SHIPPED.get("BR", "disque_100").purpose("pt_BR")
    assert "anónima" in SHIPPED.get("BR", "disque_100").purpose("pt")
    assert SHIPPED.get("PT", "sos_crianca").purpose("pt_BR") == SHIPPED.get("PT", "sos_crianca").purpose("pt")
    # the platform's own word for its Report button
    assert SHIPPED.get("telegram", "report_button").contact("fr")[0].value == "Signaler (dans l'application)"
    assert SHIPPED.get("telegram", "report_button").contact("it")[0].value == "Segnala (nell'app)"
    assert SHIPPED.get("telegram", "report_button").contact("de")[0].value == "Melden (in der App)"
    assert SHIPPED.info("AT").name("de") == "Österreich" and SHIPPED.info("CH").name("it") == "Svizzera"
    # proper names stay as they are where no overlay renames them
    assert SHIPPED.get("FR", "pharos").name("fr") == "Pharos"


def test_the_operators_text_wins_over_the_shipped_translations():
    changed = load_resources({"ES-CT": {"mossos": {"purpose": "Truqueu a la comissaria del barri."}}})
    assert changed.get("ES-CT", "mossos").purpose("ca") == "Truqueu a la comissaria del barri."
    assert changed.get("ES-CT", "mossos").purpose("en") == "Truqueu a la comissaria del barri."


def catalog_with(tmp_path: Path, overlay: str, name: str = "ca.toml") -> Path:
    texts = tmp_path / "texts"
    texts.mkdir(exist_ok=True)
    (texts / name).write_text(overlay, encoding="utf-8")
    return texts


@pytest.mark.parametrize(
    "overlay, key",
    [
        ('[resources.ES.no_such_line]\npurpose = "x"\n', "resources.ES.no_such_line"),
        ('[resources.XX.incibe_017]\npurpose = "x"\n', "resources.XX"),
        ('[regions.XX]\nname = "x"\n', "regions.XX"),
        ("[resources.ES.incibe_017]\nsecondary = false\n", "resources.ES.incibe_017.secondary"),
        ('[resources.ES.incibe_017]\ncontact = "x"\n', "resources.ES.incibe_017.contact"),  # phone numbers: no words
        ('[resources.ES.incibe_017]\npurpose = { en = "x" }\n', "resources.ES.incibe_017.purpose"),
        ('[resources.ES.incibe_017]\npurpose = ""\n', "resources.ES.incibe_017.purpose"),
        ('[notes.x]\ntext = "x"\n', "notes"),
    ],
)
def test_an_overlay_names_only_what_the_catalog_has(tmp_path, overlay, key):
    with pytest.raises(ConfigError) as err:
        load_resources(texts_dir=catalog_with(tmp_path, overlay))
    assert key in err.value.key and "ca.toml" in err.value.key


def test_an_overlay_is_named_after_a_language(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_resources(texts_dir=catalog_with(tmp_path, '[regions.ES]\nname = "Espanya"\n', name="catalan.toml"))
    assert "catalan.toml" in err.value.key


def test_the_catalogs_own_text_wins_and_an_overlay_adds_a_language(tmp_path):
    texts = catalog_with(tmp_path, '[resources.ES.incibe_017]\npurpose = "Hilfe."\n', name="de.toml")
    (texts / "es.toml").write_text('[resources.ES.incibe_017]\npurpose = "Otra cosa."\n', encoding="utf-8")
    loaded = load_resources(texts_dir=texts)
    assert loaded.get("ES", "incibe_017").purpose("de") == "Hilfe."
    assert loaded.get("ES", "incibe_017").purpose("es").startswith("Ayuda gratuita y confidencial")
