"""The district's figures (DESIGN.md), its names and places, and the merchant categories."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

# The district's figures (DESIGN.md) at scale 1.
CARDS = 225_159
TOWNS = 15
GRASSROOTS = 300
MERCHANTS = 1_000
SALES = 300_000
WINDOW_DAYS = 30
BIG_VILLAGE_WORKERS = 3_300
CURRENCY = "CNY"

DISTRICT_NAME = "临江区总工会"
DISTRICT_PLACE = "临江区"
TOWN_NAMES = (
    "青山镇",
    "城东街道",
    "城西街道",
    "城南街道",
    "城北街道",
    "湖滨街道",
    "新塘镇",
    "白沙镇",
    "石桥镇",
    "龙泉镇",
    "柳溪镇",
    "桃源镇",
    "江口镇",
    "凤凰街道",
    "金沙镇",
)
VILLAGE_STEMS = (
    "东山 西岭 南湖 北塘 上林 下沙 前进 红星 长丰 双桥 三河 大溪 小港 杨柳 梅园 竹林 荷塘 "
    "永安 太平 光明 团结 联合 五星 金星 东升 新建 民主 高桥 马家 林场"
).split()
FIRM_CHARACTERS = "华恒永鑫宏盛泰富锦瑞嘉隆达佳德昌顺兴安康"
INDUSTRIES = ("精密机械 纺织 电子科技 食品 建材 物流 服装 新材料 汽车配件 印染 化纤 家具 包装 医药 光电").split()
# Roughly by frequency, so the first ones weigh more.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴"
)
GIVEN_CHARACTERS = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红建文辉鹏飞斌宇浩凯俊峰晨欣怡婷"
    "雪琳颖慧晶倩丹蕾燕玲梅莉凤洁琴云莹佳子涵梓轩博思雨嘉海波志国庆春晓东立新永小德振卫爱"
)
ROADS = (
    "解放路 人民路 中山路 建设路 文化路 湖滨路 新华路 振兴路 学院路 工业路 江滨路 青年路 和平路 健康路 "
    "幸福路 东风路 胜利路 迎宾路 府前街 南大街"
).split()
MERCHANT_BRANDS = (
    "惠民 好邻居 百姓 金桥 万家 乐活 同心 康宁 福满 明亮 星光 麦香 老街 阳光 和顺 兴隆 友谊 平安 "
    "大众 东方 春风 如意 开心 吉祥 永和 家家 益民 仁和 德信 鸿运"
).split()
BANKS = ("中国工商银行", "中国农业银行", "中国银行", "中国建设银行", "交通银行", "农商银行", "招商银行")
# ID-card region codes: the district itself and the provinces its migrant workers come from.
REGION_CODES = (
    "330106",
    "330106",
    "330106",
    "330108",
    "330110",
    "341125",
    "412726",
    "522121",
    "511622",
    "360124",
    "431021",
    "452123",
)
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

TIERS = (("普通职工", 0.915), ("优秀职工", 0.965), ("劳动模范", 0.970), ("困难职工", 1.0))
STATUSES = (("active", 0.92), ("frozen", 0.95), ("lost", 0.97), ("cancelled", 0.98), ("expired", 1.0))
MODEL_TIERS = ("优秀职工", "劳动模范")
CARD_YEARS = timedelta(days=1826)
SAMPLE_PER_STATUS = 2_000
REFUND_SHARE = 0.03


@dataclass(frozen=True)
class Category:
    slug: str
    merchant_weight: int
    traffic: float  # sales per merchant, relative
    nouns: tuple[str, ...]
    median_minor: int
    sigma: float
    min_minor: int
    max_minor: int
    step_minor: int
    hours: str  # 24 digits: how busy each local hour is
    rate_bps: tuple[int, int]
    fixed_share: float

    @property
    def mean_minor(self) -> float:
        return self.median_minor * math.exp(self.sigma**2 / 2)


SHOP_HOURS = "000000001355445555554200"
# slug, share of merchants, sales per merchant, shop nouns, sale amounts in fen (median, lognormal
# sigma, min, max, step), busy hours, percent rate range, share of fixed-amount offers.
CATEGORIES = (
    Category(
        "supermarket",
        20,
        1.6,
        ("超市", "生活超市", "便利店"),
        6800,
        0.8,
        500,
        80_000,
        1,
        "000000013466544457886310",
        (300, 800),
        0.15,
    ),
    Category(
        "restaurant",
        30,
        1.0,
        ("餐厅", "面馆", "小吃", "酒家", "食府", "火锅"),
        9800,
        0.7,
        1500,
        80_000,
        100,
        "000000011139952115985310",
        (800, 2000),
        0.10,
    ),
    Category(
        "pharmacy", 10, 0.8, ("大药房", "药店", "医药"), 5600, 0.8, 800, 60_000, 10, SHOP_HOURS, (500, 1000), 0.10
    ),
    Category("bookshop", 4, 0.5, ("书店", "书城", "图书"), 6800, 0.6, 1500, 50_000, 10, SHOP_HOURS, (1000, 2000), 0.10),
    Category("fuel", 5, 1.2, ("加油站",), 26_000, 0.4, 5000, 80_000, 100, "000001256433333346643211", (300, 500), 0.30),
    Category(
        "cinema",
        3,
        0.9,
        ("影城", "电影院"),
        9000,
        0.45,
        3000,
        30_000,
        500,
        "000000000022234433589631",
        (1000, 2000),
        0.60,
    ),
    Category(
        "fitness",
        6,
        0.5,
        ("健身", "健身中心", "游泳馆"),
        12_000,
        1.0,
        2000,
        300_000,
        100,
        "000000453222322235897410",
        (1000, 2000),
        0.10,
    ),
    Category(
        "barber", 10, 0.6, ("理发店", "美发", "发型设计"), 5800, 0.6, 1500, 50_000, 100, SHOP_HOURS, (1000, 2000), 0.10
    ),
    Category(
        "optician",
        4,
        0.2,
        ("眼镜", "眼镜店", "视光中心"),
        58_000,
        0.6,
        9900,
        300_000,
        100,
        SHOP_HOURS,
        (1000, 2000),
        0.10,
    ),
    Category(
        "bakery",
        8,
        0.9,
        ("烘焙", "面包房", "蛋糕店"),
        3200,
        0.6,
        500,
        30_000,
        10,
        "000000057433333467642100",
        (500, 1500),
        0.10,
    ),
)


class DemoError(Exception):
    """The demo could not be loaded: the database is not empty, or a check after the load failed."""
