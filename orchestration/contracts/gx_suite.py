"""Batch-level expectations generated from a contract, run with GX 1.x on the pandas edge.

Row-level rules are enforced once, in quarantine SQL (rules_sql.py); this suite checks what only a
whole batch can show: the published columns, and primary keys present and unique after dedup.
GX is imported lazily: importing the code location must stay free of side effects and fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from orchestration.contracts.model import Contract


@dataclass(frozen=True)
class SuiteOutcome:
    success: bool
    failed_expectations: list[str]
    evaluated: int


def build_suite(contract: Contract):  # -> gx.ExpectationSuite
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"{contract.id}__batch")
    suite.add_expectation(
        gx.expectations.ExpectTableColumnsToMatchSet(
            column_set=list(contract.column_names), exact_match=False
        )
    )
    for col in contract.primary_key:
        suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=col))
    if len(contract.primary_key) == 1:
        suite.add_expectation(
            gx.expectations.ExpectColumnValuesToBeUnique(column=contract.primary_key[0])
        )
    else:
        suite.add_expectation(
            gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(contract.primary_key))
        )
    return suite


def validate_frame(contract: Contract, frame: pd.DataFrame) -> SuiteOutcome:
    """Validate one clean, deduplicated batch; an empty batch trivially passes."""
    if frame.empty:
        return SuiteOutcome(True, [], 0)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Progress bars would flood Dagster's captured logs with one line per metric.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas(name=f"{contract.id}_source")
    asset = source.add_dataframe_asset(name=contract.id)
    batch = asset.add_batch_definition_whole_dataframe("batch").get_batch(
        batch_parameters={"dataframe": frame}
    )
    result = batch.validate(build_suite(contract))
    failed = [
        f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column', '')})"
        for r in result.results
        if not r.success
    ]
    return SuiteOutcome(bool(result.success), failed, len(result.results))
