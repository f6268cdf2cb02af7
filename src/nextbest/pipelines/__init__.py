"""Multi-step jobs over the whole package (data lake -> models -> agents -> reports)."""
