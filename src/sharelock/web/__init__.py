"""HTTP layer: thin FastAPI routes over the broker's packages."""
