"""Writes national.json and haiphong.json (run: python data/directory/generate.py).

The output is checked in; this script records how it was made, so a fix to the facts is made
here and the files regenerated. Facts and their sources: SOURCES.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BASELINE = "2019-01-01"  # the four-tier shape as of 2019
DEPARTMENT_MERGE = "2025-03-01"
REORGANISATION = "2025-07-01"

# The 63 provinces and centrally-run cities before 1 July 2025, alphabetical (Vietnamese order,
# diacritics ignored). Codes H01..H63 follow that order, except that DESIGN.md fixes H49 as
# Quảng Ninh, which therefore swaps numbers with the province that would have had H49.
PROVINCES = [
    ("An Giang", "tỉnh"), ("Bà Rịa - Vũng Tàu", "tỉnh"), ("Bắc Giang", "tỉnh"),
    ("Bắc Kạn", "tỉnh"), ("Bạc Liêu", "tỉnh"), ("Bắc Ninh", "tỉnh"), ("Bến Tre", "tỉnh"),
    ("Bình Định", "tỉnh"), ("Bình Dương", "tỉnh"), ("Bình Phước", "tỉnh"),
    ("Bình Thuận", "tỉnh"), ("Cà Mau", "tỉnh"), ("Cần Thơ", "thành phố"), ("Cao Bằng", "tỉnh"),
    ("Đà Nẵng", "thành phố"), ("Đắk Lắk", "tỉnh"), ("Đắk Nông", "tỉnh"), ("Điện Biên", "tỉnh"),
    ("Đồng Nai", "tỉnh"), ("Đồng Tháp", "tỉnh"), ("Gia Lai", "tỉnh"), ("Hà Giang", "tỉnh"),
    ("Hà Nam", "tỉnh"), ("Hà Nội", "thành phố"), ("Hà Tĩnh", "tỉnh"), ("Hải Dương", "tỉnh"),
    ("Hải Phòng", "thành phố"), ("Hậu Giang", "tỉnh"), ("Hòa Bình", "tỉnh"),
    ("Hồ Chí Minh", "thành phố"), ("Hưng Yên", "tỉnh"), ("Khánh Hòa", "tỉnh"),
    ("Kiên Giang", "tỉnh"), ("Kon Tum", "tỉnh"), ("Lai Châu", "tỉnh"), ("Lâm Đồng", "tỉnh"),
    ("Lạng Sơn", "tỉnh"), ("Lào Cai", "tỉnh"), ("Long An", "tỉnh"), ("Nam Định", "tỉnh"),
    ("Nghệ An", "tỉnh"), ("Ninh Bình", "tỉnh"), ("Ninh Thuận", "tỉnh"), ("Phú Thọ", "tỉnh"),
    ("Phú Yên", "tỉnh"), ("Quảng Bình", "tỉnh"), ("Quảng Nam", "tỉnh"), ("Quảng Ngãi", "tỉnh"),
    ("Quảng Trị", "tỉnh"), ("Sóc Trăng", "tỉnh"), ("Sơn La", "tỉnh"), ("Tây Ninh", "tỉnh"),
    ("Thái Bình", "tỉnh"), ("Thái Nguyên", "tỉnh"), ("Thanh Hóa", "tỉnh"),
    ("Thừa Thiên Huế", "tỉnh"), ("Tiền Giang", "tỉnh"), ("Trà Vinh", "tỉnh"),
    ("Tuyên Quang", "tỉnh"), ("Vĩnh Long", "tỉnh"), ("Vĩnh Phúc", "tỉnh"), ("Yên Bái", "tỉnh"),
    ("Quảng Ninh", "tỉnh"),
]

# 1 July 2025 (Nghị quyết 202/2025/QH15): the province kept, then those merged into it.
PROVINCE_MERGES = [
    ("Tuyên Quang", ["Hà Giang"]), ("Lào Cai", ["Yên Bái"]), ("Thái Nguyên", ["Bắc Kạn"]),
    ("Phú Thọ", ["Vĩnh Phúc", "Hòa Bình"]), ("Bắc Ninh", ["Bắc Giang"]),
    ("Hưng Yên", ["Thái Bình"]), ("Hải Phòng", ["Hải Dương"]),
    ("Ninh Bình", ["Hà Nam", "Nam Định"]), ("Quảng Trị", ["Quảng Bình"]),
    ("Đà Nẵng", ["Quảng Nam"]), ("Quảng Ngãi", ["Kon Tum"]), ("Gia Lai", ["Bình Định"]),
    ("Khánh Hòa", ["Ninh Thuận"]), ("Lâm Đồng", ["Đắk Nông", "Bình Thuận"]),
    ("Đắk Lắk", ["Phú Yên"]), ("Hồ Chí Minh", ["Bình Dương", "Bà Rịa - Vũng Tàu"]),
    ("Đồng Nai", ["Bình Phước"]), ("Tây Ninh", ["Long An"]),
    ("Cần Thơ", ["Sóc Trăng", "Hậu Giang"]), ("Vĩnh Long", ["Bến Tre", "Trà Vinh"]),
    ("Đồng Tháp", ["Tiền Giang"]), ("Cà Mau", ["Bạc Liêu"]), ("An Giang", ["Kiên Giang"]),
]


def province_codes() -> dict[str, str]:
    names = [name for name, _ in PROVINCES if name != "Quảng Ninh"]
    names.insert(48, "Quảng Ninh")  # H49
    return {name: f"H{index:02d}" for index, name in enumerate(names, 1)}


CODES = province_codes()
HP = CODES["Hải Phòng"]


def root(name: str) -> str:
    return f"000.00.00.{CODES[name]}"


def committee_name(name: str) -> str:
    kind = dict(PROVINCES)[name]
    shown = "Thành phố Hồ Chí Minh" if name == "Hồ Chí Minh" else f"{kind} {name}"
    return f"Ủy ban nhân dân {shown}"


def national() -> dict[str, Any]:
    agencies: list[dict[str, Any]] = [
        {"code": "000.00.00.G22", "name": "Văn phòng Chính phủ", "tier": 1,
         "kind": "government_office", "website": "https://vpcp.chinhphu.vn",
         "illustrative": False, "effective_from": BASELINE},
        {"code": "000.00.00.G09", "name": "Bộ Nội vụ", "tier": 1, "kind": "ministry",
         "website": "https://moha.gov.vn", "illustrative": False, "effective_from": BASELINE},
    ]
    for name, _ in sorted(PROVINCES, key=lambda p: CODES[p[0]]):
        agencies.append(
            {"code": root(name), "name": committee_name(name), "tier": 2,
             "kind": "provincial_peoples_committee",
             "illustrative": CODES[name] != "H49", "effective_from": BASELINE}
        )
    reorganizations = [
        {"kind": "merge", "effective_from": REORGANISATION,
         "note": f"Nghị quyết 202/2025/QH15: {', '.join(sources)} merged into {kept}",
         "source_codes": [root(s) for s in sources], "into": {"code": root(kept)}}
        for kept, sources in PROVINCE_MERGES
    ]
    return {
        "note": "Central bodies named in DESIGN.md and the 63 provinces as tier-2 agencies, with "
        "the 1 July 2025 province merges (63 to 34). Codes other than G22, G09 and H49 are "
        "illustrative (see SOURCES.md). Load before haiphong.json.",
        "agencies": agencies,
        "reorganizations": reorganizations,
    }


# Hải Phòng's departments and boards in its 2019 shape (code 01 is the city's office).
DEPARTMENTS = [
    ("Văn phòng Ủy ban nhân dân thành phố Hải Phòng", "provincial_office", 2),
    ("Sở Nội vụ", "department", 3), ("Sở Tư pháp", "department", 3),
    ("Sở Kế hoạch và Đầu tư", "department", 3), ("Sở Tài chính", "department", 3),
    ("Sở Công Thương", "department", 3),
    ("Sở Nông nghiệp và Phát triển nông thôn", "department", 3),
    ("Sở Giao thông vận tải", "department", 3), ("Sở Xây dựng", "department", 3),
    ("Sở Tài nguyên và Môi trường", "department", 3),
    ("Sở Thông tin và Truyền thông", "department", 3),
    ("Sở Lao động - Thương binh và Xã hội", "department", 3),
    ("Sở Văn hóa và Thể thao", "department", 3), ("Sở Du lịch", "department", 3),
    ("Sở Khoa học và Công nghệ", "department", 3),
    ("Sở Giáo dục và Đào tạo", "department", 3), ("Sở Y tế", "department", 3),
    ("Sở Ngoại vụ", "department", 3), ("Thanh tra thành phố", "department", 3),
    ("Ban Quản lý Khu kinh tế Hải Phòng", "board", 3),
    ("Ban Quản lý dự án đầu tư xây dựng các công trình giao thông", "board", 3),
    ("Ban Quản lý dự án đầu tư xây dựng các công trình dân dụng và công nghiệp", "board", 3),
    ("Ban Quản lý dự án đầu tư xây dựng các công trình nông nghiệp và phát triển nông thôn",
     "board", 3),
    ("Đài Phát thanh và Truyền hình Hải Phòng", "public_unit", 3),
    ("Ban Quản lý các khu di tích", "board", 3),
]

# 1 March 2025: departments merged in the Government's restructuring (kept, absorbed, new name).
DEPARTMENT_MERGES = [
    ("Sở Tài chính", ["Sở Kế hoạch và Đầu tư"], "Sở Tài chính"),
    ("Sở Nông nghiệp và Phát triển nông thôn", ["Sở Tài nguyên và Môi trường"],
     "Sở Nông nghiệp và Môi trường"),
    ("Sở Xây dựng", ["Sở Giao thông vận tải"], "Sở Xây dựng"),
    ("Sở Khoa học và Công nghệ", ["Sở Thông tin và Truyền thông"], "Sở Khoa học và Công nghệ"),
    ("Sở Nội vụ", ["Sở Lao động - Thương binh và Xã hội"], "Sở Nội vụ"),
    ("Sở Văn hóa và Thể thao", ["Sở Du lịch"], "Sở Văn hóa, Thể thao và Du lịch"),
]

# The 15 district-level units (7 urban districts, then 8 rural) and how many communes/wards
# each had; Bạch Long Vĩ has no commune-level unit.
DISTRICTS = [
    ("quận", "Hồng Bàng", 11), ("quận", "Ngô Quyền", 13), ("quận", "Lê Chân", 15),
    ("quận", "Hải An", 8), ("quận", "Kiến An", 10), ("quận", "Đồ Sơn", 7),
    ("quận", "Dương Kinh", 6),
    ("huyện", "Thủy Nguyên", 37), ("huyện", "An Dương", 16), ("huyện", "An Lão", 17),
    ("huyện", "Kiến Thụy", 18), ("huyện", "Tiên Lãng", 23), ("huyện", "Vĩnh Bảo", 30),
    ("huyện", "Cát Hải", 12), ("huyện", "Bạch Long Vĩ", 0),
]
GROUP_SIZE = 5


def code(level3: int, level2: int) -> str:
    return f"000.{level3:02d}.{level2:02d}.{HP}"


def haiphong() -> dict[str, Any]:
    city = root("Hải Phòng")
    agencies: list[dict[str, Any]] = []
    department_codes: dict[str, str] = {}
    for number, (name, kind, tier) in enumerate(DEPARTMENTS, 1):
        full = name if "Hải Phòng" in name else f"{name} thành phố Hải Phòng"
        department_codes[name] = code(0, number)
        agencies.append({"code": code(0, number), "name": full, "tier": tier, "kind": kind,
                         "illustrative": True, "effective_from": BASELINE})
    reorganizations: list[dict[str, Any]] = []
    for kept, absorbed, new_name in DEPARTMENT_MERGES:
        reorganizations.append(
            {"kind": "merge", "effective_from": DEPARTMENT_MERGE,
             "note": "departments merged in the 2025 restructuring of provincial departments",
             "source_codes": [department_codes[kept]] + [department_codes[a] for a in absorbed],
             "into": {"code": department_codes[kept], "name": f"{new_name} thành phố Hải Phòng",
                      "tier": 3, "kind": "department", "illustrative": True}}
        )
    new_number = 50
    district_dissolutions = []
    for index, (kind, name, communes) in enumerate(DISTRICTS):
        district = code(0, 31 + index)
        agencies.append({"code": district, "name": f"Ủy ban nhân dân {kind} {name}", "tier": 3,
                         "kind": "district_peoples_committee", "illustrative": True,
                         "effective_from": BASELINE})
        unit = "phường" if kind == "quận" else "xã"
        old = []
        for number in range(1, communes + 1):
            old.append(code(number, 31 + index))
            agencies.append(
                {"code": old[-1],
                 "name": f"Ủy ban nhân dân {unit} {number:02d}, {kind} {name} (tên tạo tự động)",
                 "tier": 4, "kind": "commune_peoples_committee", "illustrative": True,
                 "name_generated": True, "effective_from": BASELINE})
        if name in ("Cát Hải", "Bạch Long Vĩ"):
            groups = [old] if old else []
            zone = code(0, 98 if name == "Bạch Long Vĩ" else 99)
            into = {"code": zone, "name": f"Ủy ban nhân dân đặc khu {name}", "tier": 4,
                    "kind": "special_zone_peoples_committee", "illustrative": True}
            if groups:
                reorganizations.append(
                    {"kind": "merge", "effective_from": REORGANISATION,
                     "note": f"the communes of {name} became the special zone {name}",
                     "source_codes": old, "into": into})
                successor = zone
            else:
                reorganizations.append(
                    {"kind": "split", "effective_from": REORGANISATION,
                     "note": f"district {name} became the special zone {name}",
                     "source_code": district, "into": [into], "successor_code": zone})
                continue
        else:
            groups = [old[i : i + GROUP_SIZE] for i in range(0, len(old), GROUP_SIZE)]
            if len(groups) > 1 and len(groups[-1]) < 3:
                groups[-2].extend(groups.pop())
            for serial, members in enumerate(groups, 1):
                into = {"code": code(0, new_number),
                        "name": f"Ủy ban nhân dân {unit} {name} {serial} (tên tạo tự động)",
                        "tier": 4, "kind": "commune_peoples_committee", "illustrative": True,
                        "name_generated": True}
                new_number += 1
                reorganizations.append(
                    {"kind": "merge", "effective_from": REORGANISATION,
                     "note": f"communes of {kind} {name} merged", "source_codes": members,
                     "into": into})
            successor = city
        district_dissolutions.append(
            {"kind": "dissolve", "effective_from": REORGANISATION,
             "note": "district tier abolished", "code": district, "successor_code": successor})
    reorganizations.extend(district_dissolutions)
    assert new_number <= 98, new_number
    groups_defined = [
        {"code": "000.00.01.X00", "name": "Mọi xã, phường, đặc khu thuộc Hải Phòng",
         "rule": "tier4_under", "base_code": city},
        {"code": "000.00.02.X00", "name": "Các sở, ban thuộc UBND thành phố Hải Phòng",
         "rule": "departments_of", "base_code": HP},
    ]
    return {
        "note": f"Hải Phòng ({HP}, illustrative) in its 2019 four-tier shape, the 1 March 2025 "
        "department merges and the 1 July 2025 reorganisation (district tier dissolved, communes "
        "merged, Hải Dương merged in: see national.json). Load after national.json. Codes and "
        "generated names are illustrative (see SOURCES.md).",
        "agencies": agencies,
        "reorganizations": reorganizations,
        "groups": groups_defined,
    }


def write(path: Path, document: dict[str, Any]) -> None:
    lines = [json.dumps(item, ensure_ascii=False) for item in document["agencies"]]
    body = {k: v for k, v in document.items()}
    text = json.dumps(body, ensure_ascii=False, indent=1)
    path.write_text(text + "\n", encoding="utf-8")
    print(f"{path.name}: {len(lines)} agencies, {len(document.get('reorganizations', []))} changes")


if __name__ == "__main__":
    write(HERE / "national.json", national())
    write(HERE / "haiphong.json", haiphong())
