"""The insight refit cadence's settings (orchestration/insight/refit.py): the shipped file, and
bad values refused naming the file and the field. What the cadence does to each model is tested
with the model (test_clv, test_send_time, integration/test_lead_score)."""

import pytest

from orchestration.insight import refit


def test_the_shipped_cadence_is_weekly():
    assert refit.config_path().is_file()
    assert refit.load_config() == refit.RefitConfig(refit_after_days=7)


@pytest.mark.parametrize(
    ("text", "field"),
    [("refit_after_days: -1", "refit_after_days"), ("refit_after_days: weekly", "refit_after_days"),
     ("refit_every: 7", "refit_every")],
)  # fmt: skip
def test_a_bad_setting_is_refused_naming_the_file_and_the_field(tmp_path, text, field):
    path = tmp_path / "refit.yml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=r"refit\.yml") as raised:
        refit.load_config(path)
    assert field in str(raised.value)


def test_a_missing_file_means_the_default_and_a_settings_change_changes_the_key(tmp_path):
    assert refit.load_config(tmp_path / "absent.yml").refit_after_days == 7
    assert refit.settings_key({"a": 1, "b": 2}) == refit.settings_key({"b": 2, "a": 1})
    assert refit.settings_key({"a": 1}) != refit.settings_key({"a": 2})
