"""The SQL that builds silver and gold, written once in DuckDB's dialect.

DuckDB runs these statements as they are; the Databricks engine runs their Databricks SQL
translation (`dialect.to_databricks`), generated from the same text and pinned by a snapshot test.
"""
