"""The experiment platform's HTTP API (FastAPI). ``create_app(db_url)`` is the only entry point.

Endpoints (OpenAPI at ``/openapi.json``, docs at ``/docs``):

- ``POST /api/experiments`` design -> 201 {id, token, ...}; a body that does not match the schema -> 422
  {detail: [{loc, msg, type}, ...]}, a well-formed but incoherent design -> 422 {detail: "explanation"}. The design
  names its ``metric``: "continuous" (the default: revenue, ``effect`` and ``sd``; ``cuped`` optional), "binary" (a
  conversion: ``baseline`` rate and ``effect``, a difference of rates; see ``schemas.BinaryExperimentIn``) or
  "ratio" (revenue over a per-unit denominator, delta method: ``effect`` and the linearized ``sd``; see
  ``schemas.RatioExperimentIn``). Every design may add ``bayesian``, ``secondary`` metrics with their
  ``correction`` ("holm", "bh", "none") and ``guardrails`` (``harm``, ``max_harm``): see the schemas' docstring.
- ``GET /api/experiments`` list (no tokens); ``GET /api/experiments/{id}`` configuration, progress, result (the
  primary metric's test, the ``recommendation`` "ship" / "do not ship" / "no decision" with its ``summary``, the
  primary's ``bayesian`` posterior when asked for, and every secondary metric and guardrail in ``metrics``).
- ``POST /api/experiments/{id}/decisions``, ``.../outcomes`` (revenue; ``covariate`` for CUPED, ``denominator`` for
  a ratio) and ``.../conversions`` (converted: 0 or 1; binary experiments), each outcome or conversion with the
  ``values`` of the secondary metrics and guardrails by name (``Authorization: Bearer <token>``): one item or a
  list -> 200 {accepted, duplicates}. No token -> 401, a token of another experiment or a wrong one -> 403, unknown
  experiment -> 404, outcomes of the other metric (revenue for a binary experiment, conversions for a continuous or
  ratio one), or a row that lacks what the experiment measures (covariate, denominator, a declared value) or
  carries what it does not (an undeclared value, a covariate or denominator it does not use, a binary value
  other than 0 or 1) -> 409 naming the row and the field, and nothing recorded; malformed body -> 422, body > 8 MB
  or list > 200,000 items -> 413.
- ``GET /api/experiments/{id}/assignment/{uuid}`` -> arm (deterministic, no token); ``POST .../assignments``
  {uuids: [...]} -> the arms of many units at once, in order (same hash); ``GET /healthz`` (its header
  ``X-Nextbest-Worker`` names the process that answered: with ``--workers N`` the workers answer in turn).

The OpenAPI schema is the contract: every status an operation can answer is declared with the body it carries.
Request validation and non-JSON bodies give 422 {detail: [{loc, msg, type}, ...]}; every other 4xx is
{detail: "one line"}. A method a path does not support gets 405 with ``Allow`` listing the methods it does.
A uuid is a text or an integer from 0 to 2**53 - 1, stored as one canonical string (see ``schemas.UnitId``).

Several processes: :func:`app_from_environment` is the factory the worker processes of
``nextbest platform serve --workers N`` import (the database URL in ``$NEXTBEST_PLATFORM_DB``); what keeps them
correct together (idempotency per uuid, counters, completion) is in the database, see ``nextbest.platform.store``.

Extending (web pages): ``app.include_router(router)`` and, inside routes, ``Depends(get_store)`` for the
:class:`~nextbest.platform.store.Store` (also at ``app.state.store``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from nextbest.errors import NextbestError
from nextbest.platform.limits import MAX_BODY_BYTES, BodySizeLimit
from nextbest.platform.pages import pages_router
from nextbest.platform.schemas import (
    AssignmentOut,
    AssignmentsIn,
    AssignmentsOut,
    ConversionIn,
    CreatedOut,
    DecisionIn,
    ErrorOut,
    ExperimentDesign,
    ExperimentOut,
    ExperimentSummary,
    IngestOut,
    OutcomeIn,
    RefusalOut,
    UnitText,
    ValidationErrorOut,
)
from nextbest.platform.store import (
    DesignRejected,
    MetricMismatch,
    PlatformError,
    Store,
    TokenRejected,
    UnknownExperiment,
)

MAX_ITEMS = 200_000
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY")
MAX_ERRORS_SHOWN = 20
#: The environment variable :func:`app_from_environment` reads the database URL from.
DB_ENV = "NEXTBEST_PLATFORM_DB"
#: The response header of GET /healthz naming the answering process (its PID).
WORKER_HEADER = "X-Nextbest-Worker"
log = logging.getLogger("nextbest.platform")

ExperimentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="experiment id")]
PathUnit = Annotated[UnitText, Path(description="a unit's id (an integer uuid is written in decimal)")]
bearer = HTTPBearer(auto_error=False, description="the token returned when the experiment was created")
#: Every 4xx (and 503) an operation can answer, with the body it carries; operations pick theirs with `responses`.
RESPONSES: dict[int, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no bearer token",
          "headers": {"WWW-Authenticate": {"description": "the scheme to use: Bearer", "required": True,
                                           "schema": {"type": "string", "const": "Bearer"}}}},
    403: {"model": ErrorOut, "description": "the token does not open this experiment"},
    404: {"model": ErrorOut, "description": "unknown experiment"},
    409: {"model": ErrorOut, "description": "the request conflicts with recorded data; nothing was recorded"},
    413: {"model": ErrorOut, "description": "body larger than 8 MB or more than 200,000 items"},
    422: {"model": ValidationErrorOut,
          "description": "the request does not match this schema, or its body is not JSON (every issue listed)"},
    503: {"model": ErrorOut, "description": "the database does not answer"},
}  # fmt: skip


#: The 422 of an experiment creation: a body off the schema, or a well-formed design that is incoherent.
DESIGN_REFUSED: dict[str, Any] = {
    "model": RefusalOut,
    "description": "the body does not match this schema (issues listed), or the design is incoherent (one line "
    "says what to change: the sample size it needs, the effect it can detect or the power it reaches)",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The declared error responses ``codes`` of an operation, from RESPONSES."""
    return {code: RESPONSES[code] for code in codes}


class HealthOut(BaseModel):
    """The service answers and so does its database (``sqlite`` or ``postgresql``)."""

    status: str
    database: str


def get_store(request: Request) -> Store:
    """The application's Store (dependency for routes, the API's and the web pages')."""
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


def authorized(
    experiment_id: ExperimentId,
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> int:
    """The experiment id once the bearer token opens it; 401 without token, 403 wrong token, 404 unknown id."""
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    store.check_token(experiment_id, credentials.credentials)
    return experiment_id


AuthorizedId = Annotated[int, Depends(authorized)]


def _as_list(body: Any) -> list[Any]:
    """One item or a list of items as a list; 413 above MAX_ITEMS."""
    items = body if isinstance(body, list) else [body]
    if len(items) > MAX_ITEMS:
        raise HTTPException(413, f"at most {MAX_ITEMS:,} items per request")
    return items


def build_api_router() -> APIRouter:
    """The JSON API routes under /api."""
    router = APIRouter(prefix="/api", tags=["experiments"])
    writes = responses(401, 403, 404, 409, 413, 422)
    creation = {**responses(413), 422: DESIGN_REFUSED}

    @router.post("/experiments", status_code=201, response_model=CreatedOut, responses=creation)
    def create_experiment(spec: ExperimentDesign, store: StoreDep) -> CreatedOut:
        """Create an experiment from a coherent design (``metric`` "continuous", the default, "binary" or "ratio";
        optionally Bayesian, with CUPED, secondary metrics and guardrails); the token in the answer is shown only
        this once."""
        return store.create_experiment(spec)

    @router.get("/experiments", response_model=list[ExperimentSummary])
    def list_experiments(store: StoreDep) -> list[ExperimentSummary]:
        """Every experiment, newest first (configuration and status; never tokens)."""
        return store.list_experiments()

    @router.get("/experiments/{experiment_id}", response_model=ExperimentOut, responses=responses(404, 422))
    def get_experiment(experiment_id: ExperimentId, store: StoreDep) -> ExperimentOut:
        """Configuration, progress per arm, and the result once both arms reached the designed sample size."""
        return store.get_experiment(experiment_id)

    @router.post("/experiments/{experiment_id}/decisions", response_model=IngestOut, responses=writes)
    def post_decisions(experiment_id: AuthorizedId, body: DecisionIn | list[DecisionIn], store: StoreDep) -> IngestOut:
        """Record the new system's decisions (value 1 = show, 0 = don't); repeated uuids are counted, not stored."""
        return store.add_decisions(experiment_id, _as_list(body))

    @router.post("/experiments/{experiment_id}/outcomes", response_model=IngestOut, responses=writes)
    def post_outcomes(experiment_id: AuthorizedId, body: OutcomeIn | list[OutcomeIn], store: StoreDep) -> IngestOut:
        """Record outcomes (revenue, arm, decision applied; ``covariate``, ``denominator`` and ``values`` as the
        experiment requires); repeated uuids are counted, not stored. A binary experiment takes its outcomes at
        ``.../conversions`` (409 here); a row off the experiment's rules is 409 too, and nothing is recorded."""
        return store.add_outcomes(experiment_id, _as_list(body))

    @router.post("/experiments/{experiment_id}/conversions", response_model=IngestOut, responses=writes)
    def post_conversions(experiment_id: AuthorizedId, body: ConversionIn | list[ConversionIn],
                         store: StoreDep) -> IngestOut:  # fmt: skip
        """Record the conversions of a binary experiment (converted 1 or 0, arm, decision applied, ``values`` as the
        experiment requires); repeated uuids are counted, not stored. A continuous or ratio experiment takes its
        outcomes at ``.../outcomes`` (409 here); a row off the experiment's rules is 409 too, nothing recorded."""
        return store.add_conversions(experiment_id, _as_list(body))

    @router.get("/experiments/{experiment_id}/assignment/{uuid}", response_model=AssignmentOut,
                responses=responses(404, 422))
    def get_assignment(experiment_id: ExperimentId, uuid: PathUnit, store: StoreDep) -> AssignmentOut:
        """The arm of a unit: a deterministic hash of the experiment's salt and the uuid (no token needed).

        In a path every uuid is text: ``.../assignment/404180`` is the unit 404180 posted as an integer."""
        return store.assignment(experiment_id, uuid)

    @router.post("/experiments/{experiment_id}/assignments", response_model=AssignmentsOut,
                 responses=responses(404, 413, 422))
    def post_assignments(experiment_id: ExperimentId, body: AssignmentsIn, store: StoreDep) -> AssignmentsOut:
        """The arms of many units at once, in the order given (the same hash as the single-unit route; no token)."""
        if len(body.uuids) > MAX_ITEMS:
            raise HTTPException(413, f"at most {MAX_ITEMS:,} items per request")
        return store.assignments(experiment_id, body.uuids)

    return router


def build_health_router() -> APIRouter:
    """GET /healthz: 200 when the database answers, 503 otherwise."""
    router = APIRouter(tags=["health"])

    worker = {"description": "the process id (PID) of the server process that answered; with several worker "
                             "processes (serve --workers N) they answer in turn",
              "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}  # fmt: skip

    @router.get("/healthz", response_model=HealthOut,
                responses={200: {"headers": {WORKER_HEADER: worker}}, **responses(503)})  # fmt: skip
    def healthz(store: StoreDep, response: Response) -> HealthOut:
        """Liveness and database reachability."""
        with store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        response.headers[WORKER_HEADER] = str(os.getpid())
        return HealthOut(status="ok", database=store.engine.dialect.name)

    return router


def _json_error(status_code: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first validation errors as plain JSON (location, message, type), without echoing the input."""
    shown = []
    for error in errors[:MAX_ERRORS_SHOWN]:
        location = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        shown.append({"loc": location, "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))})
    return shown


def allowed_methods(request: Request) -> list[str]:
    """The methods some route answers at the request's path, sorted: the ``Allow`` of a 405 (Starlette names only
    the first route's, and a path such as /api/experiments has one route per method)."""
    routes = request.app.router.routes
    return sorted(method for method in HTTP_METHODS
                  if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes))


NOT_JSON = [{"loc": ["body"], "msg": "the body is not valid JSON", "type": "json_invalid"}]


def install_error_handlers(app: FastAPI) -> None:
    """Map refusals to 4xx JSON and anything unexpected to a JSON 5xx without a traceback in the response."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return _json_error(422, _validation_errors(list(error.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and error.detail == "There was an error parsing the body":
            return _json_error(422, NOT_JSON)  # e.g. bytes that are not UTF-8: the shape of a validation error
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:  # Starlette lists only the first matching route's methods
            headers["Allow"] = ", ".join(allowed_methods(request))
        return _json_error(error.status_code, error.detail, headers or None)

    @app.exception_handler(DesignRejected)
    async def design_rejected(_: Request, error: DesignRejected) -> JSONResponse:
        return _json_error(422, str(error))

    @app.exception_handler(UnknownExperiment)
    async def unknown(_: Request, error: UnknownExperiment) -> JSONResponse:
        return _json_error(404, str(error))

    @app.exception_handler(TokenRejected)
    async def forbidden(_: Request, error: TokenRejected) -> JSONResponse:
        return _json_error(403, str(error))

    @app.exception_handler(MetricMismatch)
    async def other_metric(_: Request, error: MetricMismatch) -> JSONResponse:
        return _json_error(409, str(error))

    @app.exception_handler(PlatformError)
    async def refused(_: Request, error: PlatformError) -> JSONResponse:
        return _json_error(400, str(error))

    @app.exception_handler(IntegrityError)
    async def conflict(request: Request, error: IntegrityError) -> JSONResponse:
        log.warning("integrity error on %s %s: %s", request.method, request.url.path, error.orig)
        return _json_error(409, "the request conflicts with recorded data")

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> JSONResponse:
        log.error("database error on %s %s: %s", request.method, request.url.path, error.orig)
        status_code = 503 if error.connection_invalidated or isinstance(error.orig, OSError) else 500
        return _json_error(status_code, "database error; nothing of this request was recorded")

    @app.exception_handler(SQLAlchemyError)
    async def sqlalchemy_error(request: Request, error: SQLAlchemyError) -> JSONResponse:
        log.error("database error on %s %s: %s", request.method, request.url.path, error)
        return _json_error(500, "database error; nothing of this request was recorded")


def create_app(db_url: str, *, store: Store | None = None) -> FastAPI:
    """The platform application on ``db_url`` (migrated at start-up), or on an already open ``store``.

    The Store is ``app.state.store``; its engine is disposed when the application shuts down.
    """
    store = store if store is not None else Store.open(db_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title="nextbest experiment platform",
        version="1.0",
        description="Design A/B experiments, collect decisions and outcomes with a token, read the verdict.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    install_error_handlers(app)
    app.include_router(build_api_router())
    app.include_router(build_health_router())

    app.include_router(pages_router)
    return app


def app_from_environment() -> FastAPI:
    """The application on the database named by ``$NEXTBEST_PLATFORM_DB``: the factory every worker process of
    ``nextbest platform serve --workers N`` builds (``uvicorn.run("nextbest.platform.app:app_from_environment",
    factory=True, workers=N)``). Each worker migrates too, which finds the schema the parent migrated at the newest
    revision (under PostgreSQL's advisory lock: see :func:`nextbest.platform.db.migrate`)."""
    db_url = os.environ.get(DB_ENV)
    if not db_url:
        raise NextbestError(f"set {DB_ENV} to the platform's database URL (sqlite:///FILE or postgresql://...)")
    return create_app(db_url)
