"""activation.contact_history as an asset of the graph: written by the sync assets (records.py),
read by dbt (source activation.contact_history → marts.campaign_outcomes). Declared here so the
graph shows it with its group, owner and description; it is not materialized by a step of its own
(and depends on no sync asset: that edge would split the dbt build into two steps)."""

from orchestration.asset_args import declared_table

contact_history = declared_table(
    key=["activation", "contact_history"],
    group_name="activation",
    description=(
        "activation.contact_history: one row per (sync, as_of, customer) outcome — append-only "
        "truth of what was sent to whom (ok / rejected / retryable / unknown / held_out / "
        "filtered). Written by every sync; marts.campaign_outcomes joins it to what happened."
    ),
)
