"""The words of merchant statements, in zh-CN and English, for the page and the CSV."""

from __future__ import annotations

from unioncard import i18n

MESSAGES: dict[str, tuple[str, str]] = {
    "statement_title": ("商户对账单", "Merchant statement"),
    "statement_merchant_id": ("商户编号", "Merchant ID"),
    "statement_merchant": ("商户", "Merchant"),
    "statement_period": ("账期", "Period"),
    "statement_currency": ("币种", "Currency"),
    "statement_from": ("期间开始", "From"),
    "statement_to": ("期间结束（不含）", "To (exclusive)"),
    "statement_generated_at": ("生成时间", "Generated at"),
    "statement_item": ("项目", "Item"),
    "statement_count": ("笔数", "Count"),
    "statement_payable": ("待结算（元）", "Payable (yuan)"),
    "statement_in_transit": ("付款在途（元）", "In transit (yuan)"),
    "statement_total": ("应付商户合计（元）", "Owed in total (yuan)"),
    "statement_batch_ids": ("结算批次", "Batches"),
    "statement_opening": ("期初余额", "Opening balance"),
    "statement_closing": ("期末余额", "Closing balance"),
    "statement_kind_sale": ("销售工会补贴", "Union share of sales"),
    "statement_kind_refund": ("退款冲回", "Refunds reversed"),
    "statement_kind_clawback": ("结算后退款扣回", "Clawbacks (refunds after settlement)"),
    "statement_kind_settlement_approved": ("结算批准", "Settlements approved"),
    "statement_kind_payout_paid": ("付款成功", "Payouts paid"),
    "statement_kind_payout_failed": ("付款失败退回", "Payouts failed, returned"),
    "statement_kind_payout_canceled": ("付款撤销退回", "Payouts canceled, returned"),
    "statement_day": ("记账日期", "Booking day"),
    "statement_sales": ("销售笔数", "Sales"),
    "statement_sale_amount": ("消费金额（元）", "Sale amount (yuan)"),
    "statement_discount": ("优惠金额（元）", "Discount (yuan)"),
    "statement_union_share": ("工会补贴（元）", "Union share (yuan)"),
    "statement_merchant_share": ("商户承担（元）", "Merchant share (yuan)"),
    "statement_refunds": ("退款笔数", "Refunds"),
    "statement_refund_amount": ("退款金额（元）", "Refunded (yuan)"),
    "statement_refund_union": ("退回工会补贴（元）", "Union share refunded (yuan)"),
    "statement_clawback_union": ("其中结算后扣回（元）", "Of which clawed back (yuan)"),
    "statement_days_total": ("合计", "Total"),
    "statement_batch": ("批次", "Batch"),
    "statement_claim_period": ("申报账期", "Claim period"),
    "statement_status": ("状态", "Status"),
    "statement_gross": ("应结（元）", "Gross (yuan)"),
    "statement_clawback": ("扣回（元）", "Clawed back (yuan)"),
    "statement_net": ("实付（元）", "Payable (yuan)"),
    "statement_approved_at": ("批准时间", "Approved at"),
    "statement_instruction": ("付款指令", "Payout instruction"),
    "statement_instruction_status": ("指令状态", "Instruction status"),
    "statement_instruction_amount": ("指令金额（元）", "Instruction amount (yuan)"),
    "statement_batch_draft": ("草稿", "Draft"),
    "statement_batch_approved": ("已批准", "Approved"),
    "statement_instruction_approved": ("待付款", "Approved"),
    "statement_instruction_submitting": ("提交中", "Submitting"),
    "statement_instruction_transferred": ("已交银行", "With the bank"),
    "statement_instruction_paid": ("已付款", "Paid"),
    "statement_instruction_failed": ("付款失败", "Failed"),
    "statement_instruction_retried": ("已重新付款", "Retried"),
    "statement_instruction_canceled": ("已撤销", "Canceled"),
    "statement_print": ("打印", "Print"),
    "statement_back_office": ("‹ 全部对账单", "‹ All statements"),
    "statement_back_console": ("‹ 财务结算台", "‹ Finance console"),
    "statement_download_csv": ("下载 CSV", "Download CSV"),
    "statement_previous": ("上月", "Previous month"),
    "statement_next": ("下月", "Next month"),
    "statement_summary": ("余额与变动", "Balances and movements"),
    "statement_daily": ("每日销售与退款", "Sales and refunds by day"),
    "statement_batches": ("本期结算批次与付款", "Batches and payouts of the period"),
    "statement_no_sales": ("本期没有销售或退款。", "No sales or refunds in this period."),
    "statement_no_batches": ("本期没有结算批次。", "No settlement batches in this period."),
    "statement_in_progress": (
        "本期尚未结束，数字截至生成时间。",
        "This period is not over: figures are as of the time generated.",
    ),
    "statement_note": (
        "金额为工会应付商户的补贴：待结算为尚未批准结算的部分，付款在途为已批准、尚未付到的部分。各项按记账时间计入账期（{timezone}）。",
        "Amounts are the union share owed to the merchant: payable is not yet approved for settlement, in transit is"
        " approved and not yet paid. Entries count in the period they were booked in ({timezone}).",
    ),
}
i18n.extend(MESSAGES)

CSV_HEAD = ("statement_merchant_id", "statement_merchant", "statement_period", "statement_currency", "statement_from",
            "statement_to", "statement_generated_at")  # fmt: skip
CSV_SUMMARY = ("statement_item", "statement_count", "statement_payable", "statement_in_transit", "statement_total",
               "statement_batch_ids")  # fmt: skip
CSV_DAYS = ("statement_day", "statement_sales", "statement_sale_amount", "statement_discount", "statement_union_share",
            "statement_merchant_share", "statement_refunds", "statement_refund_amount", "statement_refund_union",
            "statement_clawback_union")  # fmt: skip
CSV_BATCHES = ("statement_batch", "statement_claim_period", "statement_status", "statement_gross",
               "statement_clawback", "statement_net", "statement_approved_at", "statement_instruction",
               "statement_instruction_status", "statement_instruction_amount")  # fmt: skip


def kind_label(lang: str, kind: str) -> str:
    """A movement kind in words; a kind the ledger grew later shows as its code."""
    key = f"statement_kind_{kind}"
    return i18n.t(lang, key) if key in i18n.MESSAGES else kind


def status_label(lang: str, of: str, status: str) -> str:
    """A batch's or an instruction's status in words, or the code when unknown."""
    key = f"statement_{of}_{status}"
    return i18n.t(lang, key) if key in i18n.MESSAGES else status
