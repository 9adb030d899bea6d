"""The one place that wires the app: settings, pool, routes, errors, templates."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from unioncard import db
from unioncard.auth import TerminalCache, current_principal
from unioncard.errors import DomainError
from unioncard.settings import Settings, load_settings
from unioncard.strict import strict_json_body

log = logging.getLogger("unioncard")
PROBLEM = "application/problem+json"
WEB_DIR = Path(__file__).parent / "web"


def _lang(request: Request[Any, Any, Any]) -> str:
    chosen = request.query_params.get("lang") or request.cookies.get("lang")
    if chosen:
        return chosen
    return "en" if request.headers.get("accept-language", "").lower().startswith("en") else "zh-CN"


def _problem(request: Request[Any, Any, Any], error: DomainError) -> Response[bytes]:
    return Response(
        msgspec.json.encode(error.problem(_lang(request))),
        status_code=error.status,
        media_type=PROBLEM,
    )


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    return _problem(request, exc)


def on_validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    return _problem(request, DomainError("malformed_request", exc.detail, errors=errors))


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(exc.status_code)
    if code is None:
        return Response(
            msgspec.json.encode({"title": exc.detail, "status": exc.status_code}),
            status_code=exc.status_code,
            media_type=PROBLEM,
        )
    return _problem(request, DomainError(code, exc.detail))


def on_unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    body = {"type": "about:blank", "title": "Internal error", "status": 500, "code": "internal_error"}
    return Response(msgspec.json.encode(body), status_code=500, media_type=PROBLEM)


@get("/healthz", operation_id="health", tags=["platform"], media_type=MediaType.JSON)
async def healthz(state: State) -> Response[dict[str, Any]]:
    """200 when the database answers, 503 when it does not."""
    try:
        version = await state.pool.fetchval("SELECT max(version) FROM schema_migrations")
    except (OSError, asyncpg.PostgresError) as exc:
        return Response({"status": "unavailable", "error": str(exc)}, status_code=503)
    return Response({"status": "ok", "schema_version": version})


def _templates_for(settings: Settings) -> Any:
    """Templates are read from disk once: checking each file's time on every render costs a page ~3% of its CPU.
    With UNIONCARD_DEBUG they reload when edited."""

    def configure(engine: JinjaTemplateEngine) -> None:
        engine.engine.auto_reload = settings.debug

    return configure


def create_app(settings: Settings | None = None, dsn: str | None = None) -> Litestar:
    """Build the whole app; `dsn` overrides settings.database_url (tests, the CLI)."""
    from cards.api import (
        CardAdminController,
        CatalogAdminController,
        ImportController,
        LedgerController,
        OrgAdminController,
    )
    from cards.application_api import application_routes
    from cards.benefits_api import BenefitsController
    from cards.federation import FederationPages
    from cards.health_check_pages import health_check_routes
    from cards.loan_centre_api import loan_centre_routes
    from cards.member_pages import member_page_routes
    from merchants.api import (
        MerchantAdminController,
        MerchantImportController,
        TerminalAdminController,
        TillController,
    )
    from merchants.backoffice import sales_pages
    from merchants.directory import catalog_offers, directory_routes
    from merchants.lookups import LookupLimiter
    from merchants.pages import till_page_routes
    from settlement.api import ClaimController
    from settlement.backoffice import office_pages
    from settlement.batch_api import BatchController
    from settlement.console import console_routes
    from settlement.grant_payout_api import grant_payout_routes
    from settlement.rails import rail_for
    from settlement.statement_api import StatementController
    from settlement.statement_pages import StatementPages
    from settlement.stripe_api import PayeeController, StripeWebhookController

    settings = settings or load_settings()
    rail_for(settings)  # refuse to start when the payout rail cannot pay the configured currency
    target = dsn or settings.database_url
    if not target:
        raise RuntimeError("create_app needs a database: set DATABASE_URL or use `unioncard serve`")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await db.create_pool(target, settings)
        try:
            yield
        finally:
            await app.state.pool.close()

    import cards
    import merchants
    import settlement

    template_dirs: list[Path | os.PathLike[Any] | str] = [
        WEB_DIR / "templates",
        Path(cards.__file__).parent / "templates",
        Path(merchants.__file__).parent / "templates",
        Path(settlement.__file__).parent / "templates",
    ]
    return Litestar(
        route_handlers=[
            healthz,
            TillController,
            MerchantAdminController,
            TerminalAdminController,
            OrgAdminController,
            CardAdminController,
            CatalogAdminController,
            LedgerController,
            ImportController,
            MerchantImportController,
            ClaimController,
            BatchController,
            BenefitsController,
            PayeeController,
            StripeWebhookController,
            StatementController,
            StatementPages,
            *till_page_routes(),
            *sales_pages(),
            *office_pages(),
            *console_routes(),
            *member_page_routes(),
            *health_check_routes(),
            *directory_routes(),
            *application_routes(),
            *grant_payout_routes(),
            *loan_centre_routes(),
            FederationPages,
            create_static_files_router(path="/static", directories=[WEB_DIR / "static"]),
        ],
        lifespan=[lifespan],
        # Every handler behind a `requires` guard may ask for the caller as `principal`.
        dependencies={"principal": Provide(current_principal)},
        before_request=strict_json_body,
        state=State(
            {
                "settings": settings,
                "terminal_cache": TerminalCache(settings.terminal_cache_ttl_s),
                "lookup_limiter": LookupLimiter(),
                "member_offers": catalog_offers,  # the catalog shows offers from the contracts
            }
        ),
        exception_handlers={
            DomainError: on_domain_error,
            ValidationException: on_validation_error,
            NotFoundException: on_http_error,
            HTTPException: on_http_error,
            Exception: on_unexpected_error,
        },
        openapi_config=OpenAPIConfig(
            title="Union Card",
            version="1",
            path="/schema",
            description="Till API v1 for POS integrators, and the admin API.",
        ),
        template_config=TemplateConfig(
            directory=template_dirs, engine=JinjaTemplateEngine, engine_callback=_templates_for(settings)
        ),
        debug=settings.debug,
    )


def create_app_from_env() -> Litestar:
    """Factory for ASGI servers (granian workers): everything from the environment."""
    return create_app(load_settings())
