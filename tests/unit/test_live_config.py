"""Live-mode config from env vars and the text form live rows are landed in."""

import datetime as dt
from decimal import Decimal

import pytest

from orchestration.extract.config import (
    LiveConfigError,
    crm_config,
    shop_config,
    source_mode,
)
from orchestration.extract.text import to_text


def test_modes_default_to_files_and_live_exists_for_crm_and_shop_only():
    assert source_mode("crm", {}) == "files"
    assert source_mode("shop", {"C360_SHOP_MODE": "LIVE"}) == "live"
    with pytest.raises(LiveConfigError, match="C360_WEB_MODE"):
        source_mode("web", {"C360_WEB_MODE": "live"})
    with pytest.raises(LiveConfigError, match="'files' or 'live'"):
        source_mode("crm", {"C360_CRM_MODE": "stream"})


def test_live_config_names_the_missing_or_bad_variable_and_hides_secrets():
    with pytest.raises(LiveConfigError, match="C360_CRM_DSN"):
        crm_config({})
    with pytest.raises(LiveConfigError, match="C360_SHOP_API_URL"):
        shop_config({})
    with pytest.raises(LiveConfigError, match="C360_CRM_LOOKBACK_SECONDS"):
        crm_config({"C360_CRM_DSN": "host=x", "C360_CRM_LOOKBACK_SECONDS": "1h"})
    crm = crm_config({"C360_CRM_DSN": "host=db password=hunter2"})
    assert crm.lookback_seconds == 3600 and "hunter2" not in repr(crm)
    shop = shop_config({"C360_SHOP_API_URL": "http://x/", "C360_SHOP_API_TOKEN": "tok-123"})
    assert shop.api_url == "http://x" and "tok-123" not in repr(shop)


def test_values_land_as_the_text_file_mode_reads():
    assert to_text(None) is None
    assert to_text(True) == "true" and to_text(False) == "false"
    assert to_text(dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)) == "2026-11-21T10:00:00Z"
    plus_one = dt.timezone(dt.timedelta(hours=1))
    assert to_text(dt.datetime(2026, 11, 21, 11, 0, 0, 5, tzinfo=plus_one)) == (
        "2026-11-21T10:00:00.000005Z"
    )
    assert to_text(dt.datetime(2026, 11, 21, 10, 0)) == "2026-11-21T10:00:00Z"  # naive = UTC
    assert to_text(dt.date(1990, 1, 2)) == "1990-01-02"
    assert to_text(Decimal("12.50")) == "12.50" and to_text(3) == "3"
