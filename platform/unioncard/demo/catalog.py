"""The district's benefits catalog: what its members may have besides the till's discounts.

Amounts and review levels follow DESIGN.md: hospitalization grants were reviewed by the district
until 30 Sep and by the township from 1 Oct; health checks have a yearly quota of 20,000; the
loan subsidy draws on a fund of 10,000,000 yuan; six worker service centres.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from cards.repository import queries

# The day the township took over the review of hospitalization grants.
TOWN_REVIEW_FROM = date(2026, 10, 1)
SINCE = date(2015, 1, 1)

BENEFITS: list[dict[str, Any]] = [
    {
        "code": "hospitalization",
        "kind": "special_protection",
        "name_zh": "住院慰问金",
        "name_en": "Hospitalization grant",
        "summary_zh": "会员住院治疗，凭住院发票申请慰问金，每年最多两次。",
        "summary_en": "A grant when a member is treated in hospital, against the invoice; twice a year at most.",
        "details_zh": "住院满3天可申请，按住院天数给予300–800元慰问金。请填写住院发票的开票单位、号码和金额，"
        "同一张发票只能申请一次。自10月1日起由所在镇（街道）工会审核发放，此前由区总工会审核。",
        "details_en": "For a stay of 3 days or more: 300–800 yuan depending on the days in hospital. Give the "
        "invoice's issuer, number and amount; one invoice can be claimed once. From 1 October the member's "
        "town union reviews and pays it; before, the district federation did.",
        "amount_max_minor": 80_000,
        "per_year_max": 2,
        "needs_invoice": True,
        "sort_order": 10,
        "levels": [(SINCE, "district"), (TOWN_REVIEW_FROM, "town")],
    },
    {
        "code": "serious_illness",
        "kind": "special_protection",
        "name_zh": "大病救助",
        "name_en": "Serious-illness aid",
        "summary_zh": "患重大疾病、自付医疗费用较高的会员，可申请一次性救助。",
        "summary_en": "One-off aid for members with a serious illness and high out-of-pocket medical costs.",
        "details_zh": "凭医疗费用发票申请，最高10,000元，每年一次，由区总工会审核。",
        "details_en": "Against the medical invoices, up to 10,000 yuan once a year; the district reviews it.",
        "amount_max_minor": 1_000_000,
        "per_year_max": 1,
        "needs_invoice": True,
        "sort_order": 20,
        "levels": [(SINCE, "district")],
    },
    {
        "code": "work_injury",
        "kind": "special_protection",
        "name_zh": "工伤救助",
        "name_en": "Work-injury aid",
        "summary_zh": "因工受伤的会员，在工伤保险之外可申请工会救助。",
        "summary_en": "Union aid for members injured at work, on top of work-injury insurance.",
        "details_zh": "凭医疗发票申请，最高5,000元，每年一次，由区总工会审核。",
        "details_en": "Against the medical invoices, up to 5,000 yuan once a year; the district federation reviews it.",
        "amount_max_minor": 500_000,
        "per_year_max": 1,
        "needs_invoice": True,
        "sort_order": 30,
        "levels": [(SINCE, "district")],
    },
    {
        "code": "health_check",
        "kind": "health_check",
        "name_zh": "免费体检",
        "name_en": "Free health check",
        "summary_zh": "每年一次免费体检，全区名额20,000个，先到先得，按镇分配。",
        "summary_en": "A free health check once a year: 20,000 places across the district, shared out by town.",
        "details_zh": "在线预约体检机构的时段，预约后请按时到检；未到检或取消的名额将释放给其他会员。",
        "details_en": "Book a time at a clinic and come on time; a missed or cancelled booking frees the place.",
        "per_year_max": 1,
        "yearly_quota": 20_000,
        "membership_months_min": 6,
        "sort_order": 40,
        "levels": [],
    },
    {
        "code": "loan_subsidy",
        "kind": "loan_subsidy",
        "name_zh": "创业贷款贴息",
        "name_en": "Start-up loan interest subsidy",
        "summary_zh": "创业贷款最高30万元，贴息两年：10万元以内全额贴息，超出部分贴息50%。",
        "summary_en": "Start-up loans up to 300,000 yuan, interest subsidised for two years: "
        "in full up to 100,000, half above.",
        "details_zh": "贴息资金来自1,000万元专项基金，用完即止。可先用贴息计算器估算，再提交申请。",
        "details_en": "The subsidy comes from a 10,000,000 yuan special fund until it runs out. "
        "Try the calculator, then apply.",
        "per_lifetime_max": 1,
        "membership_months_min": 12,
        "sort_order": 50,
        "levels": [(SINCE, "district")],
    },
    {
        "code": "service_centre",
        "kind": "service_centre",
        "name_zh": "职工服务中心",
        "name_en": "Worker service centres",
        "summary_zh": "全区6个职工服务中心，提供培训室、活动室、职工书屋和调解室，可在线预约。",
        "summary_en": "Six worker service centres with a training room, an activity room, a workers' library "
        "and a mediation room, to book online.",
        "sort_order": 60,
        "levels": [],
    },
    {
        "code": "hardship_aid",
        "kind": "custom",
        "name_zh": "困难职工帮扶",
        "name_en": "Hardship support",
        "summary_zh": "建档困难职工可申请生活救助，每年一次。",
        "summary_en": "Living support for registered workers in hardship, once a year.",
        "amount_max_minor": 200_000,
        "eligible_tiers": ["困难职工"],
        "per_year_max": 1,
        "sort_order": 70,
        "levels": [(SINCE, "town")],
    },
    {
        "code": "ticket_home",
        "kind": "custom",
        "name_zh": "农民工返乡车票补贴",
        "name_en": "Train ticket home for migrant workers",
        "summary_zh": "春节返乡的农民工会员，凭车票申请补贴，最高300元。",
        "summary_en": "Migrant workers going home for the Spring Festival: up to 300 yuan against the ticket.",
        "amount_max_minor": 30_000,
        "eligible_tags": ["农民工"],
        "per_year_max": 1,
        "needs_invoice": True,
        "sort_order": 80,
        "levels": [(SINCE, "town")],
    },
    {
        "code": "model_worker_rest",
        "kind": "custom",
        "name_zh": "优秀职工疗休养",
        "name_en": "Rest and recuperation for excellent workers",
        "summary_zh": "优秀职工、劳动模范入会满两年，可申请疗休养补助。",
        "summary_en": "Excellent workers and model workers with two years' membership: a rest and recuperation grant.",
        "amount_minor": 150_000,
        "eligible_tiers": ["优秀职工", "劳动模范"],
        "membership_months_min": 24,
        "per_lifetime_max": 3,
        "sort_order": 90,
        "levels": [(SINCE, "district")],
    },
]


async def seed_catalog(conn: asyncpg.Connection) -> dict[str, int]:
    """The catalog's rows and review levels; {code: benefit id}."""
    ids: dict[str, int] = {}
    for entry in BENEFITS:
        benefit_id = await conn.fetchval(
            queries.benefit_insert,
            entry["code"], entry["kind"], entry["name_zh"], entry["name_en"],
            entry.get("summary_zh", ""), entry.get("summary_en", ""),
            entry.get("details_zh", ""), entry.get("details_en", ""),
            entry.get("amount_minor"), entry.get("amount_max_minor"), "CNY",
            entry.get("eligible_tiers"), entry.get("eligible_tags"), None,
            entry.get("membership_months_min", 0), entry.get("per_year_max"), entry.get("per_lifetime_max"),
            entry.get("yearly_quota"), entry.get("needs_invoice", False), SINCE, None, entry["sort_order"],
        )  # fmt: skip
        for effective_from, org_kind in entry["levels"]:
            await conn.execute(queries.benefit_review_level_insert, benefit_id, effective_from, org_kind)
        ids[entry["code"]] = benefit_id
    return ids
