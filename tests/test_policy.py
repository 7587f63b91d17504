"""The policy is a pure function: a table of cases pins it down."""

import pytest

from bot.policy import ALLOW, ASK, DELETE, REPORT, Evidence, GroupSettings, decide

S = GroupSettings()


@pytest.mark.parametrize(
    "evidence, settings, exempt, verdict, sender_action, dry_run",
    [
        (Evidence("clean"), S, False, ALLOW, "none", False),
        (Evidence("nudity"), S, False, DELETE, "none", False),
        (Evidence("review"), S, False, ASK, "none", False),
        (Evidence("nudity"), GroupSettings(action="mute"), False, DELETE, "mute", False),
        (Evidence("nudity"), GroupSettings(action="ban"), False, DELETE, "ban", False),
        # the review band never sanctions the sender: an admin decides first
        (Evidence("review"), GroupSettings(action="ban"), False, ASK, "none", False),
        (Evidence("nudity"), GroupSettings(mode="review"), False, ASK, "none", False),
        (Evidence("nudity"), GroupSettings(mode="dryrun", action="mute"), False, DELETE, "mute", True),
        (Evidence("nudity"), GroupSettings(mode="off"), False, ALLOW, "none", False),
        (Evidence("clean", block_action="delete"), S, False, DELETE, "none", False),
        (Evidence("clean", block_action="review"), S, False, ASK, "none", False),
        # the allow list wins over everything
        (Evidence("nudity", block_action="delete", allowed=True), S, False, ALLOW, "none", False),
        (Evidence("nudity"), S, True, REPORT, "none", False),
        (Evidence("nudity"), GroupSettings(spare_exempt=False, action="mute"), True, DELETE, "mute", False),
        (Evidence("clean", unscannable=True), S, False, REPORT, "none", False),
        (Evidence("clean", unscannable=True), GroupSettings(mode="dryrun"), False, REPORT, "none", True),
        (Evidence("clean", derived=True), S, False, ASK, "none", False),
        (Evidence("nudity", derived=True), S, False, DELETE, "none", False),
    ],
)
def test_decide(evidence, settings, exempt, verdict, sender_action, dry_run):
    d = decide(evidence, settings, exempt=exempt)
    assert (d.verdict, d.sender_action, d.dry_run) == (verdict, sender_action, dry_run)
    assert d.alert == (verdict != ALLOW)


def test_sensitivity_moves_thresholds():
    assert GroupSettings(sensitivity="high").threshold_shift() < 0 < GroupSettings(sensitivity="low").threshold_shift()
    assert GroupSettings(sensitivity="0.40").threshold_shift() == pytest.approx(-0.1)


def test_stored_settings_override_defaults_and_unknown_keys_are_ignored():
    from bot.config import GroupDefaults

    s = GroupSettings.from_defaults(GroupDefaults(region="ES"), {"mode": "dryrun", "stale_key": 1})
    assert (s.mode, s.region, s.language) == ("dryrun", "ES", "en")
