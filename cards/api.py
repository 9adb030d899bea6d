"""The admin API for the org tree, members and cards, and the ledger's books."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from cards import admin, catalog
from cards.model import BenefitIn, CardStatusIn, MemberIn, OrgIn
from unioncard.auth import Principal, Role, requires

ADMIN = requires(Role.FEDERATION_ADMIN)
TREE_READERS = requires(Role.FEDERATION_ADMIN, Role.FINANCE_OFFICER, Role.ORG_REVIEWER)
FINANCE = requires(Role.FEDERATION_ADMIN, Role.FINANCE_OFFICER)
Limit = Annotated[int, Parameter(ge=1, le=1000)]


class OrgAdminController(Controller):
    path = "/api/admin/v1/orgs"
    tags = ["admin: cards"]

    @post("/", operation_id="createOrg", guards=[ADMIN])
    async def create(self, data: OrgIn, principal: Principal, state: State) -> dict[str, Any]:
        return await admin.create_org(state.pool, principal, data)

    @get("/", operation_id="listOrgs", guards=[TREE_READERS])
    async def list_orgs(self, principal: Principal, state: State, limit: Limit = 1000) -> list[dict[str, Any]]:
        return await admin.list_orgs(state.pool, principal, limit)


class CardAdminController(Controller):
    path = "/api/admin/v1"
    tags = ["admin: cards"]

    @post("/members", operation_id="createMember", guards=[ADMIN])
    async def create_member(self, data: MemberIn, principal: Principal, state: State) -> dict[str, Any]:
        """A member and their card; the national ID is stored only as a keyed hash + last 4."""
        return await admin.create_member(state.pool, state.settings, principal, data)

    @get("/members", operation_id="listMembers", guards=[TREE_READERS])
    async def list_members(
        self, principal: Principal, state: State, after_id: int = 0, limit: Limit = 100
    ) -> list[dict[str, Any]]:
        return await admin.list_members(state.pool, principal, after_id, limit)

    @post("/cards/{card_id:int}/status", operation_id="setCardStatus", guards=[ADMIN], status_code=200)
    async def set_card_status(
        self, card_id: int, data: CardStatusIn, principal: Principal, state: State
    ) -> dict[str, Any]:
        return await admin.set_card_status(state.pool, principal, card_id, data)

    @post("/cards/{card_id:int}/member-code", operation_id="issueMemberCode", guards=[ADMIN], status_code=200)
    async def member_code(self, card_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """A signed dynamic code for the card, valid for a minute."""
        return await admin.issue_code(state.pool, state.settings, principal, card_id)


class CatalogAdminController(Controller):
    path = "/api/admin/v1/benefits"
    tags = ["admin: catalog"]

    @post("/", operation_id="createBenefit", guards=[ADMIN])
    async def create(self, data: BenefitIn, principal: Principal, state: State) -> dict[str, Any]:
        """A catalog entry: text in zh-CN and English, eligibility, amounts, caps, quota, review levels by date."""
        return await catalog.create_benefit(state.pool, principal, data)

    @get("/", operation_id="listBenefits", guards=[TREE_READERS])
    async def list_benefits(self, state: State) -> list[dict[str, Any]]:
        return await catalog.list_benefits(state.pool)


class LedgerController(Controller):
    path = "/api/admin/v1/ledger"
    tags = ["admin: ledger"]
    guards = [FINANCE]

    @get("/balance", operation_id="accountBalance")
    async def balance(self, state: State, account: str, at: datetime | None = None) -> dict[str, Any]:
        """Any account's balance at any moment, recomputed from the postings."""
        return await admin.account_balance(state.pool, account, at)

    @get("/unbalanced", operation_id="unbalancedTransactions")
    async def unbalanced(self, state: State) -> list[dict[str, Any]]:
        """Ledger transactions that do not balance: always empty."""
        return await admin.unbalanced_transactions(state.pool)


class ImportController(Controller):
    path = "/api/admin/v1/imports"
    tags = ["admin: imports"]
    guards = [ADMIN]

    @post("/members", operation_id="importMembers", status_code=201)
    async def members(self, request: Request[Any, Any, Any], state: State) -> dict[str, Any]:
        """Members with their cards from a CSV body (UTF-8, BOM or GBK); all lines or none."""
        from cards.csv_import import import_members_and_cards

        async with state.pool.acquire() as conn:
            return await import_members_and_cards(conn, await request.body(), secret_key=state.settings.secret_key)
