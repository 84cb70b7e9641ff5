"""The hot-reload and shadow settings: ZONEAPP_POLICY_CANDIDATE, ZONEAPP_POLICY_WATCH_S."""

from __future__ import annotations

import pytest

from zoneapp.settings import Settings, SettingsError


def test_off_by_default() -> None:
    s = Settings.from_env({})
    assert s.policy_candidate is None and s.policy_watch == 0.0


def test_read_from_the_environment() -> None:
    s = Settings.from_env(
        {"ZONEAPP_POLICY_CANDIDATE": "/etc/zoneapp/candidate.yaml", "ZONEAPP_POLICY_WATCH_S": "5"}
    )
    assert s.policy_candidate == "/etc/zoneapp/candidate.yaml" and s.policy_watch == 5.0


@pytest.mark.parametrize("value", ["-1", "3601", "soon"])
def test_a_bad_watch_interval_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="ZONEAPP_POLICY_WATCH_S"):
        Settings.from_env({"ZONEAPP_POLICY_WATCH_S": value})
