"""Batch-level expectations generated from a contract, run with GX 1.x on the pandas edge.

Row-level rules are enforced once, in quarantine SQL (rules_sql.py); this suite checks what only a
whole batch can show: the published columns, and primary keys present and unique after dedup.
GX is imported lazily: importing the code location must stay free of side effects and fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from orchestration.contracts.model import Contract
from orchestration.contracts.rules_sql import quote_ident
from orchestration.engine import Connection


@dataclass(frozen=True)
class SuiteOutcome:
    success: bool
    failed_expectations: list[str]
    evaluated: int


def _schema_expectations(contract: Contract) -> list:
    import great_expectations as gx

    return [
        gx.expectations.ExpectTableColumnsToMatchSet(
            column_set=list(contract.column_names), exact_match=False
        )
    ]


def _key_expectations(contract: Contract) -> list:
    import great_expectations as gx

    found: list = [
        gx.expectations.ExpectColumnValuesToNotBeNull(column=col) for col in contract.primary_key
    ]
    if len(contract.primary_key) == 1:
        found.append(gx.expectations.ExpectColumnValuesToBeUnique(column=contract.primary_key[0]))
    else:
        found.append(
            gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(contract.primary_key))
        )
    return found


def build_suite(contract: Contract):  # -> gx.ExpectationSuite
    """The whole batch suite: the published columns, and primary keys present and unique."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"{contract.id}__batch")
    for expectation in [*_schema_expectations(contract), *_key_expectations(contract)]:
        suite.add_expectation(expectation)
    return suite


def _validate(contract: Contract, parts: list[tuple[str, list, pd.DataFrame]]) -> SuiteOutcome:
    """Run each (name, expectations, frame) as a suite on its own batch; one outcome."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Progress bars would flood Dagster's captured logs with one line per metric.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas(name=f"{contract.id}_source")
    failed: list[str] = []
    evaluated, success = 0, True
    for name, expectations, frame in parts:
        asset = source.add_dataframe_asset(name=f"{contract.id}__{name}")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{contract.id}__{name}"))
        for expectation in expectations:
            suite.add_expectation(expectation)
        # A validation definition loads the batch once; get_batch() then Batch.validate() loaded
        # it twice, and each load fingerprints (hashes) the whole frame. Same expectations,
        # same results.
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"{contract.id}__{name}",
                data=asset.add_batch_definition_whole_dataframe("batch"),
                suite=suite,
            )
        )
        result = validation.run(batch_parameters={"dataframe": frame})
        success = success and bool(result.success)
        evaluated += len(result.results)
        failed += [
            f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column', '')})"
            for r in result.results
            if not r.success
        ]
    return SuiteOutcome(success, failed, evaluated)


def validate_frame(contract: Contract, frame: pd.DataFrame) -> SuiteOutcome:
    """Validate one clean, deduplicated batch (one row per record); an empty batch passes."""
    if frame.empty:
        return SuiteOutcome(True, [], 0)
    return _validate(
        contract,
        [
            ("schema", _schema_expectations(contract), frame),
            ("keys", _key_expectations(contract), frame),
        ],
    )


def validate_table(con: Connection, contract: Contract, relation: str) -> SuiteOutcome:
    """validate_frame for a batch held in the warehouse (one row per record), without bringing
    all of it into pandas: the column set is checked on the relation's columns (a frame with no
    rows), the keys on a frame of the key columns alone — at 6.8M events, one column instead of
    eight. Same expectations, same verdicts; an empty batch passes. A single-column key comes
    as its dense rank (see _keys_sql)."""
    cursor = con.execute(f"select * from {relation} limit 0")
    columns = [d[0] for d in cursor.description if d[0] != "_source_file"]
    cursor.fetchall()
    keys = con.execute(_keys_sql(contract, relation)).df()
    if keys.empty:
        return SuiteOutcome(True, [], 0)
    return _validate(
        contract,
        [
            ("schema", _schema_expectations(contract), pd.DataFrame(columns=columns)),
            ("keys", _key_expectations(contract), keys),
        ],
    )


def _keys_sql(contract: Contract, relation: str) -> str:
    """The key frame's query, one row per row of `relation`. A single-column key is replaced by
    its dense rank among the non-null keys (null stays null): equal ranks exactly where keys
    are equal, so the not-null and unique expectations give the key's own verdicts, while
    pandas and GX work on integers — at 6.8M event ids, fetching the strings, GX's fingerprint
    (a hash of the whole frame) and the uniqueness check on them took ~10 s; DuckDB ranks them
    on every thread in ~2 s. A compound key comes as it is."""
    if len(contract.primary_key) != 1:
        return f"select {', '.join(quote_ident(c) for c in contract.primary_key)} from {relation}"
    key = quote_ident(contract.primary_key[0])
    return (
        f"select case when {key} is not null then dense_rank() over (order by {key} nulls last) "
        f"end as {key} from {relation}"
    )
