"""The real MLflow client against ratchet server (see conftest.py)."""
