"""Identity resolution helpers outside dbt: evaluation against a truth file."""
