"""Insight: predictive traits computed from the warehouse (CLV, ...); plain functions, no Dagster."""
