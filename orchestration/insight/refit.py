"""When an insight model is fitted again, and which earlier fit a night scores with.

CLV, lead score and send time learn from months of history: one more day barely moves their
parameters, while fitting them (with the backtest or held-out evaluation that goes with each fit)
is most of each step's time. Like identity's model (`retrain_after_days`), they are fitted when
due and score every customer every night with the fit in use. A fit is due when:

- the model has no usable fit yet, or its settings changed since (each fit table keeps a hash of
  the settings it was fitted with, `fit_settings`);
- the newest usable fit is `refit_after_days` old or older (dbt_project/insight/refit.yml;
  0 fits every night);

and usable for a night's as_of only when it was fitted at an earlier as_of: a backfill never
scores with a fit that saw its future, and a rerun of a night that fitted fits again (on the data
as it is now). Each night's fit row says which as_of its parameters were
fitted at (`fitted_as_of`); a night that re-uses a fit copies its parameters and evaluation. A
due fit that fails (CLV's optimiser does not converge) leaves the last accepted fit in use,
however old, with the failure in the night's message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestration.engine import Connection, table_exists
from orchestration.paths import dbt_project_dir

# the columns each fit table adds (ensure_columns): as_of of the parameters, settings hash
COLUMNS = (("fitted_as_of", "date"), ("fit_settings", "varchar"))


class RefitConfig(BaseModel):
    """dbt_project/insight/refit.yml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    refit_after_days: int = Field(default=7, ge=0, le=366)


def config_path() -> Path:
    return dbt_project_dir() / "insight" / "refit.yml"


def load_config(path: Path | None = None) -> RefitConfig:
    """The refit settings; defaults for a missing file. A bad value is refused naming the file
    and the field."""
    path = config_path() if path is None else Path(path)
    if not path.exists():
        return RefitConfig()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return RefitConfig(**raw)
    except (yaml.YAMLError, TypeError, ValidationError) as exc:
        raise ValueError(f"{path}: invalid insight refit settings: {exc}") from exc


def settings_key(settings: Any) -> str:
    """sha256 of the model's settings (anything JSON can write): a changed setting means a new
    fit."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_columns(con: Connection, table: str) -> None:
    """Add the refit columns to a fit table created before they existed (its rows: no usable
    fit, so the next night fits)."""
    for name, kind in COLUMNS:
        con.execute(f"alter table {table} add column if not exists {name} {kind}")


def reusable_fit(
    con: Connection,
    table: str,
    as_of: dt.date,
    key: str,
    usable: str,
    config: RefitConfig | None = None,
    any_age: bool = False,
) -> dict[str, Any] | None:
    """The newest row of `table` whose parameters the night at `as_of` may score with, as
    {column: value}; None when a fit is due. `usable` is SQL over the table's columns saying a
    row's fit was accepted (e.g. `status = 'ok'`). `any_age`: the newest accepted fit however
    old — what a night whose due fit failed scores with rather than nothing."""
    cfg = load_config() if config is None else config
    if (cfg.refit_after_days == 0 and not any_age) or not table_exists(con, *table.split(".")):
        return None
    oldest = dt.date.min if any_age else as_of - dt.timedelta(days=cfg.refit_after_days)
    cursor = con.execute(
        f"""
        select * from {table}
        where fit_settings = ?
            and fitted_as_of < cast(? as date)
            and fitted_as_of > cast(? as date)
            and ({usable})
        order by fitted_as_of desc, as_of desc
        limit 1
        """,
        [key, as_of, oldest],
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))
