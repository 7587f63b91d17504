"""The [ops] and [retention] config sections, and the environment overrides containers use."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import OpsConfig, RetentionConfig, load_config, parse_listen
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_defaults_listen_on_loopback_and_keep_records_for_bounded_times():
    cfg = load_config(None, env={})
    assert cfg.ops == OpsConfig(listen="127.0.0.1:9464")
    assert cfg.ops.enabled and cfg.ops.address == ("127.0.0.1", 9464)
    assert cfg.retention == RetentionConfig(audit_days=180, fingerprint_days=90, work_days=7)


def test_example_config_documents_both_sections_with_the_defaults():
    text = (ROOT / "config.example.toml").read_text()
    for key in ("[ops]", "listen", "[retention]", "audit_days", "fingerprint_days", "work_days"):
        assert key in text
    cfg = load_config(ROOT / "config.example.toml", env={})
    assert cfg.ops == OpsConfig() and cfg.retention == RetentionConfig()


@pytest.mark.parametrize(
    "listen, address",
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9100", ("::1", 9100)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_listen_forms(tmp_path, listen, address):
    cfg = load_config(write(tmp_path, f'[ops]\nlisten = "{listen}"\n'), env={})
    assert cfg.ops.address == address


def test_empty_listen_turns_the_endpoint_off(tmp_path):
    cfg = load_config(write(tmp_path, '[ops]\nlisten = ""\n'), env={})
    assert not cfg.ops.enabled


@pytest.mark.parametrize(
    "text, key",
    [
        ('[ops]\nlisten = "9464"\n', "ops.listen"),
        ('[ops]\nlisten = "127.0.0.1"\n', "ops.listen"),
        ('[ops]\nlisten = "127.0.0.1:70000"\n', "ops.listen"),
        ('[ops]\nlisten = "http://127.0.0.1:9464"\n', "ops.listen"),
        ("[ops]\nlisten = 9464\n", "ops.listen"),
        ("[ops]\nport = 9464\n", "ops.port"),
        ("[retention]\naudit_days = -1\n", "retention.audit_days"),
        ('[retention]\nfingerprint_days = "90d"\n', "retention.fingerprint_days"),
        ("[retention]\nwork_days = 1.5\n", "retention.work_days"),
        ("[retention]\nwork_days = 100000\n", "retention.work_days"),
        ("[retention]\naudit_day = 30\n", "retention.audit_day"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env={})
    assert err.value.key == key
    assert "Fix:" in str(err.value)


def test_zero_days_means_keep(tmp_path):
    cfg = load_config(write(tmp_path, "[retention]\naudit_days = 0\nfingerprint_days = 0\nwork_days = 30\n"), env={})
    assert cfg.retention == RetentionConfig(audit_days=0, fingerprint_days=0, work_days=30)


def test_environment_overrides_listen_and_data_dir(tmp_path):
    path = write(tmp_path, '[vigil]\ndata_dir = "here"\n[ops]\nlisten = "127.0.0.1:9464"\n')
    cfg = load_config(path, env={"VIGIL_OPS_LISTEN": "0.0.0.0:9464", "VIGIL_DATA_DIR": "/data"})
    assert cfg.ops.address == ("0.0.0.0", 9464)
    assert cfg.data_dir == Path("/data")
    off = load_config(path, env={"VIGIL_OPS_LISTEN": ""})
    assert not off.ops.enabled
    assert off.data_dir == tmp_path / "here"  # without the override: relative to the file


def test_a_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, env={"VIGIL_OPS_LISTEN": "everywhere"})
    assert err.value.key == "VIGIL_OPS_LISTEN"


def test_parse_listen_says_the_accepted_form():
    with pytest.raises(ValueError, match="127.0.0.1:9464"):
        parse_listen("nope")
