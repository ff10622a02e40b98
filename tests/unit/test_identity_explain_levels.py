"""`c360 identity explain` shows each probabilistic link's comparison levels and match weights
(the prior first, then one row per comparison; they sum to the link's match weight), read from
identity.probabilistic_links.comparison_levels; a deterministic link shows none."""

from __future__ import annotations

import datetime as dt
import json

from orchestration.identity.explain import (
    CustomerExplanation,
    Explanation,
    Link,
    format_explanation,
)

EVIDENCE = [
    {"comparison": "prior", "level": "p=0.000245", "weight": -11.99},
    {"comparison": "first_name", "level": "Match on reversed cols: first_name and last_name",
     "weight": 10.05},
    {"comparison": "last_name", "level": "null or neutral (no evidence)", "weight": 0.0},
    {"comparison": "date_of_birth", "level": "Exact match on date_of_birth", "weight": 12.04},
    {"comparison": "address", "level": "Exact match on postal_code", "weight": 5.41},
]  # fmt: skip


def test_explain_prints_a_probabilistic_links_levels_and_weights():
    links = (
        Link("r|crm:contacts:1", "r|loyalty:members:1", "probabilistic", "probabilistic",
             "p=0.999981", 1, 0.999981, json.dumps(EVIDENCE)),
        Link("r|crm:contacts:1", "v|email:x@example.org", "shared_email", "email",
             "x@example.org", 1, None, None),
    )  # fmt: skip
    customer = CustomerExplanation(
        "C1", dt.date(2026, 11, 21), (), links, (), (), (), has_probability=True
    )
    text = format_explanation(
        Explanation("C1", "customer_id", dt.date(2026, 11, 21), (customer,), model="model v2")
    )
    assert "probabilistic link r|crm:contacts:1 — r|loyalty:members:1" in text
    assert "Match on reversed cols: first_name and last_name" in text
    assert "+10.05" in text and "-11.99" in text and "+12.04" in text
    assert text.count("comparison levels and match weights") == 1, "the email link has none"
