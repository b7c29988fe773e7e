"""Repository-root conftest: makes `python -m pytest` import the packages from the repo root."""
