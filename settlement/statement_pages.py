"""The printable merchant statement page: a merchant's admin sees its own, finance any merchant's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.response import Template

from settlement import statement_text, statements
from settlement.rules import add_months
from unioncard.auth import Principal, Role, requires
from unioncard.errors import DomainError
from unioncard.pages import lang_of, page, page_error

READERS = requires(Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN, Role.MERCHANT_ADMIN)


class StatementPages(Controller):
    path = "/statements"
    include_in_schema = False
    guards = [READERS]
    exception_handlers = {DomainError: page_error("/login", "/staff")}

    @get("/{merchant_id:int}/{period:str}")
    async def statement(
        self, request: Request[Any, Any, Any], merchant_id: int, period: str, principal: Principal, state: State
    ) -> Template:
        """The statement of one merchant and month, ready to print, with its CSV a click away."""
        settings = state.settings
        async with state.pool.acquire() as conn:
            found = await statements.merchant_statement(
                conn, principal, merchant_id, period, currency=settings.currency, timezone=settings.timezone
            )
        lang = lang_of(request)
        month = statements.statement_period(found["period"], settings.timezone).month
        here = f"/statements/{merchant_id}/{found['period']}"
        zone = settings.timezone
        # the way back, and the batches as links, for whoever reads it: the merchant or finance
        if principal.role == Role.MERCHANT_ADMIN:
            back = ("/merchant/statements", "statement_back_office")
            batch_href: Callable[[int], str] | None = None
        else:
            back = (f"/finance/?period={found['period']}", "statement_back_console")
            batch_href = "/finance/batches/{}".format
        return page(
            request,
            "statements/statement.html",
            here=here,
            principal=principal,
            home="/staff",
            s=found,
            csv_href=f"/api/settlement/v1/statements/{merchant_id}/{found['period']}.csv?lang={lang}",
            previous_href=f"/statements/{merchant_id}/{add_months(month, -1):%Y-%m}",
            next_href=f"/statements/{merchant_id}/{add_months(month, 1):%Y-%m}",
            local=lambda value: statements.local_time(value, zone),
            kind_label=lambda kind: statement_text.kind_label(lang, kind),
            status_label=lambda of, status: statement_text.status_label(lang, of, status),
            back_href=back[0],
            back_label=back[1],
            batch_href=batch_href,
        )
