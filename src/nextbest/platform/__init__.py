"""Experiment platform service: REST API, database and (added on top) web pages.

``create_app(db_url)`` builds the FastAPI application; ``Store`` is the repository the API and pages share.
"""

from nextbest.platform.app import create_app, get_store
from nextbest.platform.store import (
    DesignRejected,
    MetricMismatch,
    PlatformError,
    Store,
    TokenRejected,
    UnknownExperiment,
)

__all__ = ["DesignRejected", "MetricMismatch", "PlatformError", "Store", "TokenRejected", "UnknownExperiment",
           "create_app", "get_store"]
