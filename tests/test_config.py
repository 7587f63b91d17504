from pathlib import Path

import pytest

from bot.config import Config, load_config, parse_duration
from bot.errors import ConfigError
from detectors.settings import DEFAULT_CLASS_THRESHOLDS

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abc"


def write(tmp_path, text):
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_example_config_is_valid_and_equals_the_defaults():
    cfg = load_config(ROOT / "config.example.toml", env={})
    default = Config()
    assert cfg.detectors == default.detectors
    assert cfg.groups == default.groups
    assert cfg.pipeline == default.pipeline
    assert cfg.data_dir == ROOT / "data"  # relative to the file


@pytest.mark.parametrize(
    "text, key",
    [
        ("[detectors.limits]\nmax_bytes = 'big'\n", "detectors.limits.max_bytes"),
        ("[detectors.limits]\nmax_bytes = -1\n", "detectors.limits.max_bytes"),
        ("[detectors]\nreview_band = 2.0\n", "detectors.review_band"),
        ("[detectors.thresholds]\nNOT_A_CLASS = 0.5\n", "detectors.thresholds.NOT_A_CLASS"),
        ("[groups]\nmode = 'explode'\n", "groups.mode"),
        ("[groups]\nmute_duration = 'forever'\n", "groups.mute_duration"),
        ("[groups]\nmdoe = 'delete'\n", "groups.mdoe"),
        ("[models.nudity]\nsha256 = 'abc'\n", "models.nudity.sha256"),
        ("[telegram]\nenabled = true\n", "telegram.token"),
        ("[vigil]\nlog_format = 'xml'\n", "vigil.log_format"),
        ("[vigil]\ntimezone = 'Mars/Olympus'\n", "vigil.timezone"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env={})
    assert err.value.key == key
    assert "Fix:" in str(err.value)


def test_not_toml(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[vigil\n"), env={})


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_thresholds_can_be_changed_added_and_turned_off(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "[detectors.thresholds]\nBUTTOCKS_EXPOSED = 'off'\nMALE_BREAST_EXPOSED = 0.7\nFEMALE_BREAST_EXPOSED = "
            "0.6\n",
        ),
        env={},
    )
    t = cfg.detectors.class_thresholds
    assert "BUTTOCKS_EXPOSED" not in t
    assert t["MALE_BREAST_EXPOSED"] == 0.7 and t["FEMALE_BREAST_EXPOSED"] == 0.6
    assert t["ANUS_EXPOSED"] == DEFAULT_CLASS_THRESHOLDS["ANUS_EXPOSED"]


def test_token_from_environment_turns_telegram_on(tmp_path):
    cfg = load_config(
        write(tmp_path, "[telegram]\nbase_url = 'http://127.0.0.1:1/bot'\n"), env={"VIGIL_TELEGRAM_TOKEN": TOKEN}
    )
    assert cfg.telegram.enabled and cfg.telegram.token == TOKEN
    assert cfg.telegram.base_url == "http://127.0.0.1:1/bot"


def test_durations():
    assert parse_duration("90m").total_seconds() == 5400
    assert parse_duration("2w").days == 14
    with pytest.raises(ValueError):
        parse_duration("1y")
