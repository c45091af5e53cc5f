# ruff: noqa: E501, S608 - HTML and SVG markup reads best unbroken; S608 mistakes the page for SQL
"""GET /reports: the electronic-exchange report as a page a person would rather look at.

Charts are drawn here as inline SVG (no JavaScript, no CDN: the page works offline and prints).
Labels are Vietnamese with English subtitles.

Who may look: the same agencies that may read GET /v1/statistics/report. A browser signs in
with its client id and secret in the form (POST /reports/login, the OAuth2 client-credentials
check behind the API, through the sign-in throttle) and gets the access token as a cookie:
HttpOnly, SameSite=Strict, scoped to /reports, Secure whenever the request came over HTTPS
(directly, or through a proxy trusted by `gateway.forwarded_allow_ips`). Scripts may send
`Authorization: Bearer` instead. A token never travels in a URL (it would end up in history,
logs and Referer headers).

Every POST here (sign-in, sign-out) carries the page's CSRF token, which must match the
`lienthong_csrf` cookie, and is refused when its Origin (or Referer) is another site's. Every
page is sent with a CSP that allows no script, no framing (`frame-ancestors 'none'`,
`X-Frame-Options: DENY`) and no Referer (`Referrer-Policy: no-referrer`).
"""

from __future__ import annotations

import hmac
import html
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from lienthong_gateway.auth import Caller, checked_credentials
from lienthong_gateway.context import caller_dependency, gateway, verify_client_secret
from lienthong_gateway.problems import Problem
from lienthong_gateway.statistics_api import fetch_report

router = APIRouter()

COOKIE = "lienthong_report_token"
CSRF_COOKIE = "lienthong_csrf"
CSRF_FIELD = "csrf"
# No script at all; inline styles only (the page's own <style> and legend swatches); forms post
# to this origin only; no framing, no base, no plugins.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
TIER_NAMES = {
    0: ("Chưa xác định", "Not in the directory"),
    1: ("Trung ương", "Central bodies"),
    2: ("Cấp tỉnh", "Provincial People's Committee"),
    3: ("Sở, ngành, cấp huyện", "Departments and districts"),
    4: ("Cấp xã", "Communes and wards"),
}
SENT_COLOUR, RECEIVED_COLOUR = "#1d4ed8", "#0f766e"
RATE_COLOURS = {"send_rate": "#1d4ed8", "receive_rate": "#0f766e", "electronic_share": "#b45309"}
RATE_LABELS = {
    "send_rate": ("gửi điện tử", "send rate"),
    "receive_rate": ("nhận điện tử", "receive rate"),
    "electronic_share": ("VB điện tử", "e-share of issued"),
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def percent(value: float | None) -> str:
    """26 %, 98 %, 26,3 % (Vietnamese decimal comma); — when there is nothing to divide."""
    if value is None:
        return "—"
    scaled = value * 100
    if abs(scaled - round(scaled)) < 1e-9:
        return f"{round(scaled)} %"
    return f"{scaled:.1f} %".replace(".", ",")


def number(value: int) -> str:
    """1.234.567 (Vietnamese thousands separator)."""
    return f"{value:,}".replace(",", ".")


# -- charts ----------------------------------------------------------------------------------
def bars_per_month(months: Sequence[str], rows: dict[str, dict[str, Any]]) -> str:
    """Grouped vertical bars: sent and received electronically, month by month."""
    width, height, left, bottom, top = 760, 300, 56, 40, 20
    plot_w, plot_h = width - left - 16, height - bottom - top
    peak = max(
        [1]
        + [int(rows.get(m, {}).get(k, 0)) for m in months for k in ("documents_sent", "documents_received")]
    )
    step = plot_w / max(1, len(months))
    bar = min(28.0, step * 0.36)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        'aria-label="Documents sent and received electronically per month">'
    ]
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - 16}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" class="axis" text-anchor="end">{number(round(value))}</text>'
        )
    for index, month in enumerate(months):
        row = rows.get(month, {})
        x0 = left + step * index + step / 2 - bar
        for offset, key, colour in (
            (0, "documents_sent", SENT_COLOUR),
            (bar, "documents_received", RECEIVED_COLOUR),
        ):
            value = int(row.get(key, 0))
            h = plot_h * value / peak
            y = top + plot_h - h
            parts.append(
                f'<rect x="{x0 + offset:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="{colour}" '
                f'data-month="{esc(month)}" data-measure="{key}" data-value="{value}"><title>{esc(month)}: {value}</title></rect>'
            )
            if value:
                parts.append(
                    f'<text x="{x0 + offset + (bar - 2) / 2:.1f}" y="{y - 4:.1f}" class="value" '
                    f'text-anchor="middle">{number(value)}</text>'
                )
        parts.append(
            f'<text x="{left + step * index + step / 2:.1f}" y="{height - bottom + 18}" class="axis" '
            f'text-anchor="middle">{esc(month[5:])}/{esc(month[:4])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(items: Sequence[tuple[str, str, float | None, str, str]]) -> str:
    """One bar per item: (label, sublabel, fraction or None, colour, text shown at the end)."""
    width, row_h, left = 760, 34, 300
    plot_w = width - left - 90
    height = row_h * len(items) + 10
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%">']
    for index, (label, sub, fraction, colour, text) in enumerate(items):
        y = 6 + index * row_h
        parts.append(
            f'<text x="{left - 10}" y="{y + 13}" class="label" text-anchor="end">{esc(label)}</text>'
        )
        parts.append(f'<text x="{left - 10}" y="{y + 26}" class="sub" text-anchor="end">{esc(sub)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 4}" width="{plot_w}" height="20" class="track"/>')
        if fraction is not None:
            parts.append(
                f'<rect x="{left}" y="{y + 4}" width="{plot_w * max(0.0, min(1.0, fraction)):.1f}" height="20" fill="{colour}"/>'
            )
        parts.append(f'<text x="{left + plot_w + 8}" y="{y + 19}" class="value">{esc(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# -- the page --------------------------------------------------------------------------------
STYLE = """
body{font-family:"Noto Sans","DejaVu Sans",system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1f2937}
header{background:#a61b1b;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:24px} header p{margin:4px 0 0;opacity:.85}
main{max-width:1100px;margin:0 auto;padding:20px 32px}
section{background:#fff;border-radius:10px;padding:18px 22px;margin:16px 0;box-shadow:0 1px 3px #0002}
h2{margin:0;font-size:18px} h2 small{display:block;font-weight:normal;color:#6b7280;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{flex:1 1 150px;background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px #0002}
.card b{display:block;font-size:26px;margin-top:4px} .card span{color:#6b7280;font-size:12px}
.chart .grid{stroke:#e5e7eb} .chart .axis{font-size:11px;fill:#6b7280}
.chart .value{font-size:12px;fill:#111827;font-weight:600} .chart .label{font-size:13px;fill:#111827}
.chart .sub{font-size:10px;fill:#6b7280} .chart .track{fill:#eef0f3}
.legend span{display:inline-block;margin-right:16px;font-size:13px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-size:13px} th,td{padding:6px 8px;border-bottom:1px solid #e5e7eb}
th{text-align:left;color:#374151} td.n{text-align:right;font-variant-numeric:tabular-nums}
form.filters{display:flex;gap:10px;align-items:end;flex-wrap:wrap;margin-top:8px}
form.filters label{font-size:12px;color:#fff} form.filters input,form.filters select{display:block}
footer{color:#6b7280;font-size:12px;text-align:center;padding:20px}
"""


def tier_label(tier: int) -> tuple[str, str]:
    return TIER_NAMES.get(tier, (f"Cấp {tier}", f"tier {tier}"))


def render_page(
    data: dict[str, Any],
    *,
    province: str,
    provinces: list[str],
    from_: str,
    to: str,
    caller: str,
    csrf: str = "",
) -> str:
    months: list[str] = data["months"]
    whole = {r["month"]: r for r in data["provinces"] if r["province_code"] == province}
    tiers = [r for r in data["rows"] if r["province_code"] == province and r["month"] == "cumulative"]
    total = whole.get("cumulative", {})
    period = f"{months[0]} → {months[-1]}" if months else ""

    cards = [
        (
            "Cơ quan kết nối",
            "agencies connected",
            f"{total.get('agencies_connected', 0)}/{total.get('agencies', 0)}",
            "connected",
        ),
        (
            "Văn bản gửi điện tử",
            "sent electronically",
            number(int(total.get("documents_sent", 0))),
            "documents_sent",
        ),
        (
            "Văn bản nhận điện tử",
            "received electronically",
            number(int(total.get("documents_received", 0))),
            "documents_received",
        ),
        ("Tỷ lệ gửi điện tử", "electronic send rate", percent(total.get("send_rate")), "send_rate"),
        ("Tỷ lệ nhận điện tử", "electronic receive rate", percent(total.get("receive_rate")), "receive_rate"),
        (
            "Văn bản điện tử",
            "electronic share of issued",
            percent(total.get("electronic_share")),
            "electronic_share",
        ),
    ]
    card_html = "".join(
        f'<div class="card" data-measure="{key}"><span>{esc(vi)}<br>{esc(en)}</span><b>{esc(value)}</b></div>'
        for vi, en, value, key in cards
    )
    rate_items = []
    for row in tiers:
        vi, en = tier_label(int(row["tier"]))
        for key, (rate_vi, rate_en) in RATE_LABELS.items():
            rate_items.append(
                (
                    f"{vi} — {rate_vi}",
                    f"{en}: {rate_en}",
                    row.get(key),
                    RATE_COLOURS[key],
                    percent(row.get(key)),
                )
            )
    connected_items = [
        (
            tier_label(int(r["tier"]))[0],
            tier_label(int(r["tier"]))[1],
            r.get("connected_share"),
            "#a61b1b",
            f"{percent(r.get('connected_share'))} ({r['agencies_connected']}/{r['agencies']})",
        )
        for r in tiers
    ]
    table_rows = "".join(
        f'<tr data-tier="{r["tier"]}"><td>{esc(tier_label(int(r["tier"]))[0])}<br><small>{esc(tier_label(int(r["tier"]))[1])}</small></td>'
        f'<td class="n" data-measure="connected">{r["agencies_connected"]}/{r["agencies"]}</td>'
        f'<td class="n" data-measure="documents_sent">{number(int(r["documents_sent"]))}</td>'
        f'<td class="n" data-measure="paper_issued">{number(int(r["paper_issued"]))}</td>'
        f'<td class="n" data-measure="send_rate">{percent(r.get("send_rate"))}</td>'
        f'<td class="n" data-measure="documents_received">{number(int(r["documents_received"]))}</td>'
        f'<td class="n" data-measure="paper_received">{number(int(r["paper_received"]))}</td>'
        f'<td class="n" data-measure="receive_rate">{percent(r.get("receive_rate"))}</td>'
        f'<td class="n" data-measure="electronic_share">{percent(r.get("electronic_share"))}</td></tr>'
        for r in tiers
    )
    options = "".join(
        f'<option value="{esc(p)}"{" selected" if p == province else ""}>{esc(p)}</option>' for p in provinces
    )
    legend = (
        f'<div class="legend"><span><i style="background:{SENT_COLOUR}"></i>Gửi / sent</span>'
        f'<span><i style="background:{RECEIVED_COLOUR}"></i>Nhận / received</span></div>'
    )
    no_data = (
        ""
        if tiers
        else "<section><p>Chưa có số liệu — no data for this province and period yet.</p></section>"
    )
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Báo cáo liên thông văn bản điện tử — {esc(province)}</title><style>{STYLE}</style></head>
<body><header>
<h1>Báo cáo gửi, nhận văn bản điện tử — tỉnh/đơn vị {esc(province)}</h1>
<p>Electronic document exchange report · {esc(period)} · xem với tư cách / viewing as {esc(caller)}</p>
<form class="filters" method="get" action="/reports">
<label>Tỉnh / province<select name="province">{options}</select></label>
<label>Từ tháng / from<input name="from" value="{esc(from_)}" placeholder="YYYY-MM"></label>
<label>Đến tháng / to<input name="to" value="{esc(to)}" placeholder="YYYY-MM"></label>
<button type="submit">Xem / show</button>
<a style="color:#fff" href="/v1/statistics/report?{esc(urlencode({"province": province, "from": from_, "to": to, "format": "csv"}))}">CSV</a>
</form>
<form class="filters" method="post" action="/reports/logout"><input type="hidden" name="{CSRF_FIELD}" value="{esc(csrf)}">
<button type="submit">Đăng xuất / sign out</button></form></header>
<main>
<div class="cards" id="summary">{card_html}</div>
{no_data}
<section id="per-month"><h2>Văn bản gửi, nhận điện tử theo tháng<small>Documents sent and received electronically, per month</small></h2>
{legend}{bars_per_month(months, whole)}</section>
<section id="rates"><h2>Tỷ lệ điện tử theo cấp<small>Electronic rates per tier: electronic ÷ (electronic + paper)</small></h2>
{horizontal_bars(rate_items)}</section>
<section id="connected"><h2>Tỷ lệ cơ quan kết nối theo cấp<small>Share of agencies connected, per tier</small></h2>
{horizontal_bars(connected_items)}</section>
<section id="table"><h2>Số liệu theo cấp (lũy kế)<small>Figures per tier, cumulative over the period</small></h2>
<table><thead><tr><th>Cấp / tier</th><th>Kết nối<br><small>connected</small></th><th>Gửi điện tử<br><small>sent</small></th>
<th>Phát hành giấy<br><small>paper issued</small></th><th>Tỷ lệ gửi<br><small>send rate</small></th>
<th>Nhận điện tử<br><small>received</small></th><th>Nhận giấy<br><small>paper received</small></th>
<th>Tỷ lệ nhận<br><small>receive rate</small></th><th>VB điện tử<br><small>e-share</small></th></tr></thead>
<tbody>{table_rows}</tbody></table></section>
</main><footer>Trục liên thông văn bản · lienthong · số liệu từ sự kiện trên trục và báo cáo văn bản giấy của các cơ quan
/ figures from the axis' events and the agencies' paper reports</footer></body></html>"""


LOGIN_PAGE = """<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Đăng nhập — báo cáo</title>
<style>body{{font-family:system-ui,sans-serif;background:#f5f6f8;display:flex;justify-content:center;padding-top:80px}}
form{{background:#fff;padding:24px 28px;border-radius:10px;box-shadow:0 1px 3px #0003;width:320px}}
input{{display:block;width:100%;margin:4px 0 12px;padding:6px}} p.e{{color:#a61b1b}}</style></head>
<body><form method="post" action="/reports/login"><h2>Báo cáo liên thông<br><small>Exchange report — sign in</small></h2>
{message}<input type="hidden" name="csrf" value="{csrf}"><label>Mã cơ quan / client id<input name="client_id" autocomplete="username"></label>
<label>Mật khẩu / client secret<input name="client_secret" type="password" autocomplete="current-password"></label>
<button type="submit">Đăng nhập / sign in</button></form></body></html>"""


def csrf_token(request: Request) -> str:
    """The browser's CSRF token: its cookie's, or a new one (set by `with_security`)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if 32 <= len(current) <= 64 and current.isalnum() else secrets.token_hex(16)


def https(request: Request) -> bool:
    """Whether the request came over HTTPS; behind a TLS-terminating proxy, uvicorn sets the
    scheme from X-Forwarded-Proto when the proxy is in gateway.forwarded_allow_ips."""
    return request.url.scheme == "https"


def with_security(response: Response, request: Request, csrf: str = "") -> Response:
    """The page headers (CSP, no framing, no Referer, no caching) and, if given, the CSRF cookie."""
    response.headers.update(SECURITY_HEADERS)
    if csrf and request.cookies.get(CSRF_COOKIE) != csrf:
        response.set_cookie(
            CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/reports", secure=https(request)
        )
    return response


def login_page(request: Request, message: str = "", status: int = 401) -> Response:
    shown = f'<p class="e">{esc(message)}</p>' if message else ""
    csrf = csrf_token(request)
    page = HTMLResponse(LOGIN_PAGE.format(message=shown, csrf=esc(csrf)), status_code=status)
    return with_security(page, request, csrf)


def same_origin_post(request: Request, form_csrf: str) -> None:
    """403 unless the POST carries the CSRF cookie's token and, when the browser names where it
    comes from (Origin, else Referer), comes from this host. The host, not the scheme, is
    compared: behind a TLS-terminating proxy the gateway may see http where the browser says https."""
    own = request.url.netloc.lower()
    origin = request.headers.get("origin")
    referer = request.headers.get("referer")
    if origin is not None:
        came_from = urlsplit(origin.strip()).netloc.lower()  # "null" (sandboxed, file:) has none
    elif referer:
        came_from = urlsplit(referer.strip()).netloc.lower()
    else:
        came_from = own
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if came_from != own or not cookie or not hmac.compare_digest(cookie, form_csrf):
        raise Problem(
            403,
            "the form did not come from this site's sign-in page (CSRF token or origin mismatch); "
            "reload /reports and sign in again",
            kind="csrf-refused",
        )


def _with_bearer(request: Request, token: str) -> Request:
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"authorization"]
    headers.append((b"authorization", f"Bearer {token}".encode()))
    return Request({**request.scope, "headers": headers}, request.receive)


def _caller(request: Request) -> Caller | None:
    if not request.headers.get("authorization", "").lower().startswith("bearer "):
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        request = _with_bearer(request, token)
    try:
        return caller_dependency(request)
    except Problem as problem:
        if problem.status == 401:
            return None
        raise


def _set_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        path="/reports",
        secure=https(request),
    )


# Pages for people, not API operations: kept out of the OpenAPI document.
@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
def reports(
    request: Request,
    province: str = Query(default=""),
    from_: str = Query(default="", alias="from"),
    to: str = Query(default=""),
) -> Response:
    ctx = gateway(request)
    caller = _caller(request)
    if caller is None:
        if "text/html" not in request.headers.get("accept", ""):
            raise Problem(
                401, "sign in at /reports with a browser, or send a bearer token", kind="missing-credentials"
            )
        return login_page(request)
    data = fetch_report(ctx, caller, from_month=from_, to_month=to)
    provinces = sorted({r["province_code"] for r in data["provinces"]})
    own = caller.code.rpartition(".")[2]
    chosen = province or (own if own in provinces else (provinces[0] if provinces else own))
    csrf = csrf_token(request)
    page = render_page(
        data,
        province=chosen,
        provinces=provinces or [chosen],
        from_=from_,
        to=to,
        caller=caller.code,
        csrf=csrf,
    )
    return with_security(HTMLResponse(page), request, csrf)


@router.post("/reports/login", response_class=HTMLResponse, include_in_schema=False)
async def login(request: Request) -> Response:
    form = await request.form()
    same_origin_post(request, str(form.get(CSRF_FIELD, "")))
    client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
    wrong = "Sai mã cơ quan hoặc mật khẩu / wrong client id or secret"
    if not client_id or not secret:
        return login_page(request, wrong)
    ctx = gateway(request)
    try:
        checked_credentials(client_id, secret)
        reply = await verify_client_secret(ctx, request, client_id, secret)
    except Problem as problem:
        if problem.status not in (401, 429):
            raise
        page = login_page(request, wrong if problem.status == 401 else problem.detail, problem.status)
        page.headers.update(problem.headers)
        return page
    if not reply.valid:
        return login_page(request, wrong)
    token, ttl = ctx.issuer.issue(
        subject=reply.agency_code or client_id, roles=list(reply.roles), version=reply.version
    )
    response = RedirectResponse("/reports", status_code=303)
    _set_cookie(response, request, token, ttl)
    return with_security(response, request)


@router.post("/reports/logout", response_class=HTMLResponse, include_in_schema=False)
async def logout(request: Request) -> Response:
    form = await request.form()
    same_origin_post(request, str(form.get(CSRF_FIELD, "")))
    response = RedirectResponse("/reports", status_code=303)
    response.delete_cookie(COOKIE, path="/reports", secure=https(request), httponly=True, samesite="strict")
    return with_security(response, request)
