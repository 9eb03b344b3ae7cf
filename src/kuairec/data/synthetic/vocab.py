"""Fixed constants of the synthetic generator: tag frequencies, Chinese names, caption words.

Nothing here reads a file at run time: a fresh clone must generate data without the real
dataset beside it.
"""

from __future__ import annotations

import numpy as np

#: Occurrences of each tag id 0..30 in the real KuaiRec 2.0 ``item_categories.csv``
#: (10,728 videos, 12,693 tag occurrences), counted once from the real copy at
#: ``shared/kuairec/item_categories.csv``. Tag 11 is the most common.
TAG_COUNTS = np.array(
    [24, 463, 216, 104, 164, 964, 912, 503, 1112, 696, 170, 2027, 534, 245, 63, 374,
     214, 350, 131, 686, 265, 29, 20, 39, 12, 468, 490, 31, 1360, 5, 22],
    dtype=np.float64,
)  # fmt: skip
#: Videos with 1, 2, 3 and 4 tags in the same real file.
TAGS_PER_VIDEO_COUNTS = np.array([8970, 1562, 185, 11], dtype=np.float64)

#: One Chinese name per tag id (``video_tag_name`` in item_daily_features).
TAG_NAMES = (
    "颜值", "美食", "游戏", "搞笑", "情感", "宠物", "生活", "音乐", "舞蹈", "影视", "体育",
    "日常", "汽车", "旅游", "时尚", "母婴", "教育", "科技", "三农", "明星", "动漫", "健身",
    "摄影", "读书", "军事", "亲子", "剧情", "手工", "生活技巧", "历史", "数码",
)  # fmt: skip

#: First-level caption categories: (id, name). The real ids are sparse, so are these.
FIRST_LEVEL = (
    (1, "颜值"), (2, "美食"), (3, "游戏"), (4, "搞笑"), (5, "情感"), (6, "宠物"), (7, "生活"),
    (8, "音乐"), (9, "舞蹈"), (10, "影视"), (11, "体育"), (13, "汽车"), (14, "旅游"),
    (17, "时尚"), (19, "母婴"), (20, "教育"), (22, "科技"), (23, "三农"), (27, "明星娱乐"),
    (28, "二次元"), (30, "健康"), (31, "摄影"), (33, "读书"), (36, "军事"), (38, "亲子"),
    (39, "剧情"), (40, "手工"), (42, "才艺"), (44, "历史"), (45, "数码"), (46, "运动"),
)  # fmt: skip

#: Second- and third-level name parts; the level names are "<first><suffix>".
SECOND_SUFFIXES = ("日常", "教程", "合集", "精选", "分享", "测评", "挑战", "现场")
THIRD_SUFFIXES = ("片段", "解说", "记录", "推荐", "技巧", "故事")

#: Caption words (a small vocabulary), hashtags and cover texts.
CAPTION_WORDS = (
    "今天", "我们", "一起", "看看", "这个", "真的", "太", "好看", "好吃", "哈哈哈", "家人们",
    "记录", "生活", "快乐", "宝宝", "小猫", "狗狗", "视频", "喜欢", "关注", "点赞", "评论",
    "分享", "第一次", "终于", "夏天", "晚上", "早上", "周末", "朋友", "妈妈", "爸爸", "老板",
    "厉害", "可爱", "搞笑", "感动", "教程", "学会", "简单", "美味", "回家", "旅行", "风景",
)  # fmt: skip
CAPTION_PUNCT = ("，", "！", "。", "~", "、", "？", "…")
TOPIC_WORDS = (
    "搞笑", "日常", "vlog", "美食", "萌宠", "热门", "音乐", "舞蹈", "游戏", "旅行", "穿搭",
    "健身", "正能量", "情感", "影视剪辑", "三农", "手工", "科普", "亲子", "汽车",
)  # fmt: skip
COVER_TEXTS = ("看到最后", "太好笑了", "第一集", "上集", "下集", "教你一招", "绝了", "必看")

#: user_features categorical ranges (value edges and labels, as in the real file).
FOLLOW_EDGES = (0, 10, 50, 100, 150, 250, 500)
FOLLOW_LABELS = ("0", "(0,10]", "(10,50]", "(50,100]", "(100,150]", "(150,250]",
                 "(250,500]", "500+")  # fmt: skip
FANS_EDGES = (0, 1, 10, 100, 1000, 5000, 10000)
FANS_LABELS = ("0", "[1,10)", "[10,100)", "[100,1k)", "[1k,5k)", "[5k,1w)", "[1w,10w)")
FRIEND_EDGES = (0, 1, 5, 30, 60, 120, 250)
FRIEND_LABELS = ("0", "[1,5)", "[5,30)", "[30,60)", "[60,120)", "[120,250)", "250+")
REGISTER_EDGES = (8, 15, 31, 61, 91, 181, 366, 731)
REGISTER_LABELS = ("8-14", "15-30", "31-60", "61-90", "91-180", "181-365", "366-730",
                   "730+")  # fmt: skip
ACTIVE_DEGREES = ("UNKNOWN", "middle_active", "high_active", "full_active")

#: Cardinalities of onehot_feat0..17 (feat1 is the taste cluster, see world.py).
ONEHOT_CARDINALITY = (2, 8, 50, 1471, 3, 3, 2, 9, 300, 8, 6, 3, 2, 2, 2, 2, 2, 2)

UPLOAD_TYPES = ("ShortImport", "LongImport", "ShortCamera", "LongCamera", "Web", "PhotoCopy",
                "LongPicture", "ShortImportFromDraft")  # fmt: skip
UPLOAD_TYPE_WEIGHTS = (0.52, 0.18, 0.17, 0.05, 0.03, 0.02, 0.02, 0.01)
