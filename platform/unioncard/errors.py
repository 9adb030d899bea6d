"""Domain errors with stable codes, and the one table that maps codes to HTTP status."""

from __future__ import annotations

from typing import Any

STATUS_BY_CODE: dict[str, int] = {
    "malformed_request": 422,
    "validation_failed": 422,
    "unauthorized": 401,
    "forbidden": 403,
    "terminal_suspended": 403,
    "merchant_suspended": 403,
    "not_found": 404,
    "card_not_found": 404,
    "redemption_not_found": 404,
    "card_inactive": 409,
    "not_eligible": 422,
    "currency_mismatch": 422,
    "member_code_invalid": 422,
    "member_code_expired": 422,
    "idempotency_key_missing": 400,
    "idempotency_key_reused": 409,
    "idempotency_key_in_use": 409,
    "refund_exceeds_remaining": 409,
    "conflict": 409,
    "import_rejected": 422,
    "rate_limited": 429,
    "webhook_signature_invalid": 400,
    "rail_unavailable": 502,
}

TITLES: dict[str, tuple[str, str]] = {
    # code: (zh-CN, en)
    "malformed_request": ("请求格式错误", "The request is malformed"),
    "validation_failed": ("输入不合法", "The input is not valid"),
    "unauthorized": ("未认证或密钥无效", "Missing or invalid credentials"),
    "forbidden": ("无权访问", "Not allowed"),
    "terminal_suspended": ("终端已停用", "The terminal is suspended"),
    "merchant_suspended": ("商户已停用", "The merchant is suspended"),
    "not_found": ("未找到", "Not found"),
    "card_not_found": ("卡不存在", "No such card"),
    "redemption_not_found": ("交易不存在", "No such redemption"),
    "card_inactive": ("卡不可用", "The card is not active"),
    "not_eligible": ("不符合优惠条件", "Not eligible for a discount"),
    "currency_mismatch": ("币种不符", "Wrong currency"),
    "member_code_invalid": ("动态码无效", "The member code is not valid"),
    "member_code_expired": ("动态码已过期", "The member code has expired"),
    "idempotency_key_missing": ("缺少幂等键", "Idempotency-Key header is required"),
    "idempotency_key_reused": ("幂等键已用于不同请求", "Idempotency key reused with another body"),
    "idempotency_key_in_use": ("相同请求正在处理", "A request with this key is in progress"),
    "refund_exceeds_remaining": ("退款超过可退金额", "Refund exceeds what remains"),
    "conflict": ("冲突", "Conflict"),
    "import_rejected": ("文件被拒绝", "The file was rejected"),
    "rate_limited": ("请求过于频繁", "Too many requests"),
    "webhook_signature_invalid": ("回调签名无效", "The webhook signature is not valid"),
    "rail_unavailable": ("支付通道暂不可用", "The payout rail did not complete the call"),
}


def extend(codes: dict[str, tuple[int, str, str]]) -> None:
    """Add a feature's codes as {code: (HTTP status, zh-CN title, English title)}; a code defined twice is a bug."""
    clashes = sorted(set(codes) & set(STATUS_BY_CODE))
    if clashes:
        raise KeyError(f"error codes defined twice: {', '.join(clashes)}")
    for code, (status, zh, en) in codes.items():
        STATUS_BY_CODE[code] = status
        TITLES[code] = (zh, en)


class DomainError(Exception):
    """An expected outcome with a stable code; leaves as problem+json."""

    def __init__(self, code: str, detail: str | None = None, **extra: Any) -> None:
        if code not in STATUS_BY_CODE:
            raise KeyError(f"unknown error code {code!r}: add it to STATUS_BY_CODE")
        self.code = code
        self.detail = detail
        self.extra = extra
        super().__init__(f"{code}: {detail}" if detail else code)

    @property
    def status(self) -> int:
        return STATUS_BY_CODE[self.code]

    def problem(self, lang: str = "zh-CN") -> dict[str, Any]:
        zh, en = TITLES.get(self.code, (self.code, self.code))
        body: dict[str, Any] = {
            "type": f"urn:unioncard:problem:{self.code}",
            "title": en if lang.startswith("en") else zh,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        body.update(self.extra)
        return body
