"""What every sync asset runs after: the marts an audience is built from and the identity graph's
over-merge circuit breaker."""

from orchestration.asset_args import keys

AUDIENCE_DEPS = keys(
    "marts/segment_membership",
    "marts/next_best_action",  # audiences of `action:` syncs
    "marts/customer_360",
    "marts/consent_state",
    # blocked by its over-merge circuit breaker (a blocking check)
    "identity_state/graph_health",
)
