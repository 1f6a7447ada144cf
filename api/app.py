"""create_app(): the FastAPI application. The lifespan opens the database engine and ONE Temporal client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from api.compression import JsonGZipMiddleware
from api.contract import complete_contract, serve_options
from api.deps import AppServices, Authorize, declared_permission, is_read_only
from api.docs import declare_password_sign_in, serve_docs
from api.errors import install_error_handlers
from api.etags import ConditionalGetMiddleware, declare_conditional_gets
from api.middleware import RequestContextMiddleware
from api.operation_ids import check_operation_ids, operation_id
from api.routes import health
from api.routes.attachments import upload_body_limit
from api.trailing_slash import answer_both_slash_forms
from core.authz import Authorizer
from core.db import Database, ReadDatabase
from core.engine import WorkflowEngine
from core.logging import configure_logging
from core.mail import create_transport
from core.settings import Settings, get_settings
from core.storage import create_storage
from domain.fx.books import BooksMismatch, check_until_done
from domain.policies.preview import RoutePermission
from domain.policies.versions import record_at_start, watch_policy_files

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"


def _feature_routers() -> list[APIRouter]:
    """The feature routers, each mounted under /api/v1 (imported here so the list reads as the API's map).

    Order matters where paths overlap: the /users/me/... routers come before /users/{id}.
    """
    routers: list[APIRouter] = []
    # --- entries, approvals, delegation: the busiest routes first, as a request is matched against every route
    # before its own, one at a time (none of these paths overlaps another router's) ---
    from api.routes import approvals, delegation, entries, entry_duplicates

    routers += [entries.expenses_router, entries.revenue_router, approvals.router, delegation.router]
    # --- receipts on expenses ---
    from api.routes import attachments

    routers += [attachments.router]
    routers += [entry_duplicates.router]
    # --- identity: auth, users, admin policies ---
    from api.routes import admin_policies, auth, users

    routers += [auth.router, users.router, admin_policies.router]
    # --- notifications, preferences, audit ---
    from api.routes import admin_audit, notification_preferences, notifications

    routers += [notifications.router, notification_preferences.router, admin_audit.router]
    # --- reports and schedules ---
    from api.routes import reports

    routers += reports.routers  # /reports/schedules before /reports/{id}
    from api.routes import report_templates

    routers += [report_templates.router]
    # --- dashboard ---
    from api.routes import dashboard

    routers += [dashboard.router]
    # --- analytics ---
    from api.routes import analytics

    routers += [analytics.router]
    # --- exchange rates ---
    from api.routes import fx

    routers += [fx.router]
    # --- budgets ---
    from api.routes import budgets

    routers += [budgets.router]
    # --- customers and invoices ---
    from api.routes import customers, invoice_documents, invoice_payments, invoices, recurring_invoices

    routers += [
        customers.router,
        invoices.router,
        invoice_documents.router,
        invoice_payments.router,
        recurring_invoices.router,
    ]
    # --- journal exports ---
    from api.routes import exports

    routers += [exports.router]
    # --- the ledger: accounts and their mapping, periods and journals ---
    from api.routes import accounts, periods

    routers += [accounts.router, periods.router, periods.journals_router]
    # --- backups ---
    from api.routes import admin_backups

    routers += [admin_backups.router]
    return routers


class UndeclaredPermissionError(RuntimeError):
    pass


class WritingReadOnlyRouteError(RuntimeError):
    """A route marked read_only (autocommit, no transaction) that answers a method which may write."""


def api_routes(app: FastAPI) -> Iterator[Any]:
    """Every API route with its full path, methods and resolved dependencies (router-level ones included).

    FastAPI mounts included routers lazily; their effective routes carry the merged dependencies.
    """
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "effective_route_contexts"):
            for context in route.effective_route_contexts():
                if getattr(context, "dependant", None) is not None:
                    yield context


def dependency_calls(dependant: Any) -> Iterator[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from dependency_calls(dependency)


def check_read_only_routes_only_read(app: FastAPI) -> None:
    """A route marked `read_only` runs its statements in autocommit: one that could write must not have it."""
    writing = [
        f"{sorted(route.methods)} {route.path}"
        for route in api_routes(app)
        if is_read_only(route.endpoint) and route.methods - {"GET", "HEAD"}
    ]
    if writing:
        raise WritingReadOnlyRouteError("routes marked read_only that are not reads: " + "; ".join(writing))


def check_every_route_declares_permission(app: FastAPI) -> None:
    """Default deny: a route that declares neither Authorize(...) nor Public(...) stops the app from starting."""
    missing = [
        f"{sorted(route.methods)} {route.path}"
        for route in api_routes(app)
        if declared_permission(list(dependency_calls(route.dependant))) is None
    ]
    if missing:
        raise UndeclaredPermissionError("routes without a declared permission: " + "; ".join(missing))


def route_permissions(app: FastAPI) -> list[RoutePermission]:
    """The route table: each route's methods and path with the permission it declares (Public routes left out).
    Built from the app object alone, without starting it: the policy preview's CLI builds one for this."""
    table: list[RoutePermission] = []
    for route in api_routes(app):
        declared = declared_permission(list(dependency_calls(route.dependant)))
        if not isinstance(declared, Authorize):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            table.append(RoutePermission(method, route.path, declared.resource, declared.action))
    return table


def build_services(settings: Settings, engine: WorkflowEngine | None = None) -> AppServices:
    db = Database.connect(settings.db)
    return AppServices(
        settings=settings,
        db=db,
        authorizer=Authorizer(settings.policy_dir),
        engine=engine or WorkflowEngine(settings.temporal),
        storage=create_storage(settings.storage),
        mail=create_transport(settings.smtp),
        read_database=ReadDatabase.connect(settings.db, db),
    )


def create_app(settings: Settings | None = None, services: AppServices | None = None) -> FastAPI:
    settings = settings or (services.settings if services else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or build_services(settings)
        # Before any request: the books stay in one currency (a changed BASE_CURRENCY stops the start here).
        try:
            await check_until_done(app.state.services.db, settings.approvals.base_currency)
        except BooksMismatch as refused:
            log.critical("%s", refused)
            raise
        running: AppServices = app.state.services
        try:
            await record_at_start(running.db, running.authorizer, applied_by="api")
        except Exception:  # the audit of a policy changed while we were down must not keep the API from serving
            log.exception("could not record the policy version in force")
        watcher = asyncio.create_task(watch_policy_files(running.authorizer, running.db, applied_by="api"))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if services is None:
                await app.state.services.db.dispose()
                await app.state.services.reads.dispose()

    docs = settings.serve_docs
    app = FastAPI(
        title=settings.app_name,
        version="1.0.0",
        description="Finance operations: entries, durable multi-level approvals, reports, audit and backups.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN: api/docs.py serves the same ones from local files
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        generate_unique_id_function=operation_id,  # <resource>-<action>, for generated clients (api/operation_ids.py)
    )
    # Innermost first: ?fields= and ETags on the body the route made, then gzip (api/etags.py, api/compression.py).
    app.add_middleware(ConditionalGetMiddleware)
    app.add_middleware(JsonGZipMiddleware)
    # A receipt's upload may be larger than other bodies: up to its own cap (the route refuses past it, exactly).
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        larger_bodies=[upload_body_limit(settings.attachments.max_bytes)],
    )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=["ETag", "X-Request-ID", "Retry-After"],
        )
    install_error_handlers(app)
    app.include_router(health.router)
    for router in _feature_routers():
        app.include_router(router, prefix=API_PREFIX)
    check_every_route_declares_permission(app)
    check_read_only_routes_only_read(app)
    check_operation_ids(api_routes(app))
    answer_both_slash_forms(app)
    declare_password_sign_in(app, token_url=f"{API_PREFIX}/auth/login")
    declare_conditional_gets(api_routes(app))  # 304 and ETag where If-None-Match is taken (api/etags.py)
    # Statuses, headers, error shape and links derived from each route; OPTIONS and Allow (api/contract.py).
    complete_contract(app, api_routes(app))
    serve_options(app, api_routes(app))
    if docs:
        serve_docs(app)
    return app


def app_factory() -> FastAPI:
    """Entry point for uvicorn (`uvicorn api.app:app_factory --factory`)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file)
    return create_app(settings)
