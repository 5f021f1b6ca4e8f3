"""Unity Catalog: the objects and grants an environment on Databricks needs."""
