"""Every string the web pages show, in zh-CN and English, and the language of a request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unioncard.errors import TITLES, DomainError
from unioncard.money import format_yuan

LANGUAGES = ("zh-CN", "en")
LANG_COOKIE = "lang"

# key: (zh-CN, en); `{name}` placeholders are filled by t().
MESSAGES: dict[str, tuple[str, str]] = {
    "app_name": ("工会服务卡", "Union Card"),
    "switch_language": ("English", "中文"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "merchant_backoffice_link": ("商户后台", "Merchant back office"),
    "finance_console_link": ("财务结算台", "Finance console"),
    "federation_overview_link": ("年度概览", "Year overview"),
    "grant_payouts_link": ("慰问金发放", "Grant payments"),
    "review_link": ("申请审核", "Review applications"),
    "loan_review_link": ("贷款贴息审核", "Review loan subsidies"),
    "health_checks_staff_link": ("体检到检登记", "Health-check attendance"),
    # the member's pages: their tabs
    "member_tabs": ("会员导航", "Member pages"),
    "member_tab_card": ("我的卡", "My card"),
    "member_tab_merchants": ("优惠商户", "Shops"),
    "member_tab_benefits": ("福利", "Benefits"),
    "member_tab_applications": ("我的申请", "Applications"),
    # the till
    "till_title": ("收银台", "Till"),
    "till_login_title": ("收银台登录", "Till sign-in"),
    "till_login_help": (
        "请粘贴本店的终端密钥（以 uct_ 开头）。",
        "Paste this shop's terminal key (it starts with uct_).",
    ),
    "terminal_key": ("终端密钥", "Terminal key"),
    "bad_terminal_key": ("终端密钥无效或已被吊销。", "The terminal key is not valid or has been revoked."),
    "terminal_not_active": ("该终端已停用，请联系管理员。", "This terminal is suspended; ask your administrator."),
    "card_or_code": ("卡号或会员动态码", "Card number or member code"),
    "card_or_code_hint": ("16–19 位卡号，或以 MC1- 开头的动态码", "16–19 digit card number, or a code starting MC1-"),
    "amount_yuan": ("消费金额（元）", "Amount (yuan)"),
    "check_discount": ("查询优惠", "Check discount"),
    "confirm_sale": ("确认收款", "Confirm sale"),
    "quote_title": ("优惠明细", "Discount"),
    "quote_empty": ("输入卡号和金额后点“查询优惠”。", "Enter a card and an amount, then press “Check discount”."),
    "card": ("卡号", "Card"),
    "member": ("会员", "Member"),
    "amount": ("消费金额", "Amount"),
    "discount": ("优惠金额", "Discount"),
    "union_funded": ("其中工会补贴", "Funded by the union"),
    "merchant_funded": ("其中商户让利", "Funded by the shop"),
    "pay_amount": ("应收顾客", "Charge the customer"),
    "not_eligible_title": ("本次不享受优惠，请按原价收款", "No discount this time: charge the full amount"),
    "reasons": ("原因", "Why"),
    "receipt_title": ("收款成功", "Sale recorded"),
    "sale_title": ("交易详情", "Sale"),
    "redemption_id": ("交易编号", "Sale ID"),
    "time": ("时间", "Time"),
    "status": ("状态", "Status"),
    "status_recorded": ("已收款", "Recorded"),
    "status_partially_refunded": ("部分退款", "Partly refunded"),
    "status_refunded": ("已退款", "Refunded"),
    "recent_sales": ("最近交易", "Recent sales"),
    "no_sales": ("暂无交易", "No sales yet"),
    "refund": ("退款", "Refund"),
    "refund_amount": ("退款金额（按原价，元）", "Refund at list price (yuan)"),
    "give_back": ("退还顾客", "Give back"),
    "refund_amount_hint": ("留空为全额", "empty = all"),
    "refund_confirm": ("确定退款吗？", "Refund this sale?"),
    "refunds": ("退款记录", "Refunds"),
    "refundable": ("可退金额", "Refundable"),
    "refund_recorded": ("退款成功", "Refund recorded"),
    "next_sale": ("下一笔", "Next sale"),
    "back_to_till": ("返回收银台", "Back to the till"),
    "details": ("详情", "Details"),
    "start_over": ("重新输入", "Start over"),
    "charged": ("实收", "Charged"),
    "how_title": ("操作步骤", "How it works"),
    "how_1": ("扫描或输入会员的卡号、动态码", "Scan or type the member's card number or code"),
    "how_2": ("输入消费金额，点“查询优惠”", "Type the amount and press “Check discount”"),
    "how_3": ("按“应收顾客”金额收款，再点“确认收款”", "Take the amount to charge, then press “Confirm sale”"),
    # form input
    "amount_invalid": (
        "请输入金额，如 123.45（最多两位小数）。",
        "Enter an amount such as 123.45 (at most two decimals).",
    ),
    "amount_not_positive": ("金额必须大于 0。", "The amount must be more than 0."),
    "amount_too_large": ("金额超出上限。", "The amount is above the limit."),
    "card_input_invalid": ("请输入 16–19 位卡号或会员动态码。", "Enter a 16–19 digit card number or a member code."),
    "card_number_invalid": (
        "卡号校验位不对，请核对卡号。",
        "The card number's check digit is wrong; check the number.",
    ),
    # staff
    "staff_login_title": ("工作人员登录", "Staff sign-in"),
    "email": ("邮箱", "Email"),
    "password": ("密码", "Password"),
    "bad_password": ("邮箱或密码错误。", "Wrong email or password."),
    "too_many_attempts": (
        "尝试次数过多，请 {minutes} 分钟后再试。",
        "Too many attempts; try again in {minutes} minutes.",
    ),
    "staff_home_title": ("工作台", "Staff home"),
    "name": ("姓名", "Name"),
    "role": ("角色", "Role"),
    "scope": ("范围", "Scope"),
    "scope_all": ("全部（总工会）", "Everything (federation)"),
    "role_federation_admin": ("总工会管理员", "Federation admin"),
    "role_finance_officer": ("财务人员", "Finance officer"),
    "role_org_reviewer": ("审核人员", "Reviewer"),
    "role_merchant_admin": ("商户管理员", "Merchant admin"),
    "links": ("可用功能", "What you can use"),
    "api_docs": ("API 文档", "API documentation"),
    "till_link": ("网页收银台（需终端密钥）", "The web till (needs a terminal key)"),
    "merchant_sales": ("本商户最近交易", "Your shop's recent sales"),
    # domain errors, friendlier than the API's titles
    "error_card_not_found": ("找不到这张卡，请核对卡号。", "No card with this number; check it."),
    "error_card_inactive": ("这张卡现在不能使用（{status}）。", "This card cannot be used now ({status})."),
    "error_not_eligible": ("本次不享受优惠。", "Not eligible for a discount."),
    "error_currency_mismatch": ("币种与合约不符。", "The currency does not match the shop's contract."),
    "error_member_code_invalid": (
        "动态码无效，请会员刷新后再出示。",
        "The member code is not valid; ask for a fresh one.",
    ),
    "error_member_code_expired": (
        "动态码已过期，请会员刷新后再出示。",
        "The member code has expired; ask for a fresh one.",
    ),
    "error_terminal_suspended": ("本终端已停用。", "This terminal is suspended."),
    "error_merchant_suspended": ("本商户已暂停合作。", "This shop is suspended."),
    "error_unauthorized": ("请重新登录。", "Please sign in again."),
    "error_redemption_not_found": ("找不到这笔交易。", "No such sale."),
    "error_refund_exceeds_remaining": (
        "退款金额超过可退金额（{remaining} 元）。",
        "The refund is more than what remains ({remaining} yuan).",
    ),
    "error_idempotency_key_missing": (
        "页面已过期，请重新查询优惠。",
        "This form has expired; check the discount again.",
    ),
    "error_idempotency_key_reused": (
        "这个表单已用于另一笔交易，请重新查询优惠。",
        "This form was already used for another sale; check the discount again.",
    ),
    "error_idempotency_key_in_use": ("正在处理，请稍候刷新。", "Still being processed; refresh in a moment."),
    # why a card gets no discount (till_price_of's reasons)
    "reason_no_offer_now": ("本店当前没有有效优惠", "The shop has no offer at this time"),
    "reason_tier_not_eligible": ("该卡等级不在优惠范围", "This card's tier is not eligible"),
    "reason_org_not_eligible": ("会员所属工会不在优惠范围", "The member's union is not eligible"),
    "reason_below_minimum_spend": ("未达到最低消费", "Below the minimum spend"),
    "reason_daily_limit_reached": ("该卡今日次数或额度已用完", "This card's limit for today is used up"),
    "reason_monthly_limit_reached": ("该卡本月次数或额度已用完", "This card's limit for this month is used up"),
    "reason_budget_exhausted": ("本月工会补贴预算已用完", "The union's budget for this month is used up"),
    "reason_no_discount": ("优惠金额为 0", "The discount comes to zero"),
    # card states (card_inactive)
    "card_status_frozen": ("已冻结", "frozen"),
    "card_status_lost": ("已挂失", "reported lost"),
    "card_status_cancelled": ("已注销", "cancelled"),
    "card_status_expired": ("已过期", "expired"),
    "card_status_not_issued": ("尚未发卡", "not issued yet"),
}


def extend(messages: dict[str, tuple[str, str]]) -> None:
    """Add a feature's strings (its pages module calls this at import); a key defined twice is a bug."""
    clashes = sorted(set(messages) & set(MESSAGES))
    if clashes:
        raise KeyError(f"i18n keys defined twice: {', '.join(clashes)}")
    MESSAGES.update(messages)


def normalize(lang: str | None) -> str:
    return "en" if (lang or "").lower().startswith("en") else "zh-CN"


def lang_of(query_lang: str | None, cookie_lang: str | None) -> str:
    """zh-CN unless the query or the remembered cookie asks for English."""
    return normalize(query_lang or cookie_lang)


def t(lang: str, key: str, **values: Any) -> str:
    """The text of `key` in `lang`; a missing key is a bug and raises KeyError."""
    zh, en = MESSAGES[key]
    text = en if lang == "en" else zh
    return text.format(**values) if values else text


def translator(lang: str) -> Callable[..., str]:
    """t() bound to one language, for templates."""

    def bound(key: str, **values: Any) -> str:
        return t(lang, key, **values)

    return bound


def reason_text(lang: str, reason: str) -> str:
    key = f"reason_{reason}"
    return t(lang, key) if key in MESSAGES else reason


def error_text(lang: str, error: DomainError) -> str:
    """A friendly sentence for a domain error; the API's title when there is none."""
    key = f"error_{error.code}"
    if key not in MESSAGES:
        zh, en = TITLES.get(error.code, (error.code, error.code))
        return en if lang == "en" else zh
    if error.code == "card_inactive":
        status = str(error.extra.get("card_status", ""))
        label = f"card_status_{status}"
        return t(lang, key, status=t(lang, label) if label in MESSAGES else status)
    if error.code == "refund_exceeds_remaining":
        return t(lang, key, remaining=format_yuan(int(error.extra.get("remaining_amount", 0))))
    return t(lang, key)
