"""reference.phone_numbers: raw phone texts → E.164 (libphonenumber), read by dbt staging."""

import dagster as dg

from orchestration.asset_args import nightly_asset
from orchestration.contracts.model import source_contract
from orchestration.defs.resources import Warehouse
from orchestration.identity import phones
from orchestration.run_model import as_of_from

_RAW_DEPS = sorted(
    {tuple(source_contract(table).asset_key_path) for table, _ in phones.PHONE_INPUTS}
)


@nightly_asset(
    key=["reference", "phone_numbers"],
    deps=[dg.AssetKey(list(k)) for k in _RAW_DEPS],
    group_name="staging",
    sources=(__file__, phones),
)
def phone_numbers(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """reference.phone_numbers: one row per distinct (raw phone text, region hint) seen in any raw
    phone column, with its E.164 form from libphonenumber (null + reason when it cannot be a phone
    number) and is_valid. Append-only; staging models read E.164 from it."""
    with warehouse.connection() as con:
        counts = phones.refresh(con, as_of_from(context).isoformat(), progress=context.log.info)
        rows = con.execute(f"select count(*) from {phones.TABLE}").fetchone()[0]
    context.log.info(
        f"phone numbers: {counts['new_texts']:,} new texts parsed, "
        f"{counts['new_unusable']:,} of them not a possible number"
    )
    return dg.MaterializeResult(
        metadata={k: dg.MetadataValue.int(v) for k, v in counts.items()}
        | {"dagster/row_count": dg.MetadataValue.int(rows)}
    )


defs = dg.Definitions(assets=[phone_numbers])
