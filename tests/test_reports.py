"""Reports on a hand-built data set whose answers are known."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.reporting import build_report, percentile
from app.models import Direction, Outcome, Role
from tests import factories

T0 = datetime(2026, 11, 18, 13, 0, tzinfo=UTC)  # 10:00 in Santiago
SANTIAGO = ZoneInfo("America/Santiago")


@pytest.fixture
def data(app_ctx):
    ana = factories.make_user(email="ana@example.com", name="Ana")
    bea = factories.make_user(email="bea@example.com", name="Bea")
    one, two, three = (factories.make_conversation(name=n) for n in ("One", "Two", "Three"))
    minutes = lambda n: T0 + timedelta(minutes=n)  # noqa: E731
    factories.make_message(one, occurred_at=minutes(0))
    factories.make_message(one, direction=Direction.OUTBOUND, occurred_at=minutes(1))  # the AI: no stop
    factories.make_agent_reply(one, ana, minutes(5))  # waited 5 min
    factories.make_message(one, occurred_at=minutes(10))
    factories.make_message(one, occurred_at=minutes(11))
    factories.make_agent_reply(one, ana, minutes(20))  # waited 10 min, from the first unanswered message
    factories.make_message(two, occurred_at=minutes(0))
    factories.make_agent_reply(two, bea, minutes(2))  # waited 2 min
    factories.make_agent_reply(two, bea, minutes(3))  # nobody was waiting
    factories.make_agent_reply(three, ana, minutes(30), outcome=Outcome.FAILED, override=True)
    factories.make_agent_reply(three, ana, minutes(31), outcome=Outcome.UNKNOWN)
    factories.make_agent_reply(three, ana, T0 + timedelta(days=1), outcome=Outcome.SENT, override=True)  # the next day
    return ana, bea


def test_figures_per_agent(data):
    report = build_report(T0 - timedelta(hours=1), T0 + timedelta(days=2), SANTIAGO)
    totals = {row.agent: row for row in report.totals}
    ana, bea = totals["Ana"], totals["Bea"]
    assert len(ana.conversations) == 2 and ana.messages_sent == 4  # the failed send was not sent
    assert sorted(ana.response_times) == [timedelta(minutes=5), timedelta(minutes=10)]
    assert ana.median_response == timedelta(minutes=5) and ana.p90_response == timedelta(minutes=10)
    assert dict(ana.overrides) == {"failed": 1, "sent": 1}
    assert (ana.failed, ana.unknown) == (1, 1)
    assert len(bea.conversations) == 1 and bea.messages_sent == 2
    assert bea.response_times == [timedelta(minutes=2)] and bea.median_response == timedelta(minutes=2)


def test_rows_split_by_local_day(data):
    report = build_report(T0 - timedelta(hours=1), T0 + timedelta(days=2), SANTIAGO)
    days = [(row.agent, row.day.isoformat(), row.messages_sent) for row in report.rows]
    assert days == [("Ana", "2026-11-18", 3), ("Ana", "2026-11-19", 1), ("Bea", "2026-11-18", 2)]
    assert report.volume_per_day[:2] == [(report.rows[0].day, 5), (report.rows[1].day, 1)]
    assert dict(report.response_distribution) == {
        "< 1 min": 0,
        "1–5 min": 1,
        "5–15 min": 2,
        "15–60 min": 0,
        "1–4 h": 0,
        "> 4 h": 0,
    }


def test_a_failed_send_neither_counts_as_sent_nor_stops_the_customers_wait(app_ctx):
    ana = factories.make_user(name="Ana")
    chat = factories.make_conversation(name="Espera")
    factories.make_message(chat, occurred_at=T0)
    factories.make_agent_reply(chat, ana, T0 + timedelta(minutes=3), outcome=Outcome.FAILED)
    factories.make_agent_reply(chat, ana, T0 + timedelta(minutes=6))
    [row] = build_report(T0 - timedelta(hours=1), T0 + timedelta(hours=1), SANTIAGO).totals
    assert row.messages_sent == 1 and row.failed == 1
    assert row.response_times == [timedelta(minutes=6)]


def test_a_period_over_a_year_names_both_years_and_its_chart_has_no_negative_bar(app, auth):
    auth.login_as(Role.LEAD)
    html = auth.client.get("/review/reports?since=2025-12-01&until=2026-11-30").get_data(as_text=True)
    assert "Per agent, 01 Dec 2025 – 30 Nov 2026" in html
    widths = [float(width) for width in re.findall(r'<rect [^>]*width="([-0-9.e]+)"', html)]
    assert len(widths) >= 365 and min(widths) > 0
    heights = [float(height) for height in re.findall(r'<rect [^>]*height="([-0-9.e]+)"', html)]
    assert min(heights) >= 0


def test_the_period_excludes_later_sends_but_keeps_earlier_waiting_customers(data):
    report = build_report(T0 + timedelta(minutes=4), T0 + timedelta(minutes=21), SANTIAGO)
    [ana] = report.totals
    assert ana.messages_sent == 2 and sorted(ana.response_times) == [timedelta(minutes=5), timedelta(minutes=10)]


def test_percentile_is_nearest_rank():
    values = [timedelta(seconds=s) for s in (50, 10, 40, 20, 30)]
    assert percentile(values, 50) == timedelta(seconds=30)
    assert percentile(values, 90) == timedelta(seconds=50)
    assert percentile([], 50) is None


def test_reports_page_and_csv(app, auth, data):
    with app.app_context():
        lead = factories.make_user(email="lead@example.com", role=Role.LEAD)
        assert lead
    auth.login("lead@example.com")
    auth.client.set_cookie("tz", "America%2FSantiago")
    html = auth.client.get("/review/reports?since=2026-11-18&until=2026-11-19").get_data(as_text=True)
    assert html.count("<svg") == 2 and "Time to first human reply" in html
    assert re.search(
        r'<td>Ana</td><td><a [^>]*data-measure="conversations">2</a></td><td><a [^>]*data-measure="sent">4</a>', html
    )
    response = auth.client.get("/review/reports.csv?since=2026-11-18&until=2026-11-19")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["day"], r["agent"], r["messages_sent"], r["median_response_seconds"]) for r in rows] == [
        ("2026-11-18", "Ana", "3", "300"),
        ("2026-11-19", "Ana", "1", ""),
        ("2026-11-18", "Bea", "2", "120"),
    ]
    empty = auth.client.get("/review/reports.csv?since=2020-01-01&until=2020-01-02").get_data(as_text=True)
    assert empty.strip() == ",".join(
        [
            "day",
            "agent",
            "conversations",
            "messages_sent",
            "median_response_seconds",
            "p90_response_seconds",
            "sends_outside_window",
            "outside_window_accepted",
            "outside_window_failed",
            "failed_sends",
            "unknown_sends",
            "handoffs_answered",
            "median_first_response_seconds",
            "p90_first_response_seconds",
        ]
    )


@pytest.mark.parametrize(
    "query",
    [
        {"since": "2015-01-01", "until": "2026-01-01"},
        {"since": "2025-01-01", "until": "2026-01-02"},
        {"since": "0001-01-01"},
        {"until": "9999-12-31"},
        {"since": "2025-02-30"},
    ],
)
def test_a_period_over_366_days_or_outside_2000_to_2100_is_refused_clearly(app, auth, query):
    auth.login_as(Role.LEAD)
    response = auth.client.get("/review/reports", query_string=query)
    assert response.status_code == 400
    assert "366 days" in response.get_data(as_text=True) or "YYYY-MM-DD" in response.get_data(as_text=True)


def test_a_period_of_366_days_is_taken_and_its_page_stays_small(app, auth):
    auth.login_as(Role.LEAD)
    response = auth.client.get("/review/reports", query_string={"since": "2025-01-01", "until": "2026-01-01"})
    assert response.status_code == 200
    assert len(response.get_data()) < 2_000_000


def test_every_figure_links_to_exactly_the_messages_or_conversations_it_counts(app, auth, data):
    auth.login_as(Role.LEAD)
    auth.client.set_cookie("tz", "America%2FSantiago")
    html = auth.client.get("/review/reports?since=2026-11-18&until=2026-11-19").get_data(as_text=True)
    links = re.findall(r'<a href="(/review/report-items\?[^"]+)" data-measure="(\w+)">([^<]*)</a>', html)
    assert {measure for _, measure, _ in links} == {
        "conversations",
        "sent",
        "responses",
        "overrides",
        "failed",
        "unknown",
    }
    with app.app_context():
        report = build_report(datetime(2026, 11, 18, 3, tzinfo=UTC), datetime(2026, 11, 20, 3, tzinfo=UTC), SANTIAGO)
        responses = {(row.agent_id, row.day.isoformat()): len(row.response_times) for row in report.rows}
        responses |= {(row.agent_id, None): len(row.response_times) for row in report.totals}
    for url, measure, text in links:
        page = auth.client.get(url.replace("&amp;", "&"))
        assert page.status_code == 200, url
        listed = page.get_data(as_text=True)
        rows = re.findall(r'<tr data-message="(\d+)" data-conversation="(\d+)">', listed)
        if measure == "responses":
            agent = int(re.search(r"agent=(\d+)", url).group(1))
            day = re.search(r"day=([\d-]+)", url)
            assert len(rows) == responses[(agent, day.group(1) if day else None)], url
        else:
            assert len(rows) == int(text), (url, measure, text)
        if measure == "conversations":
            assert len({conversation for _, conversation in rows}) == len(rows)


@pytest.mark.parametrize("query", ["measure=sent", "agent=1&measure=everything", "agent=x&measure=sent"])
def test_a_bad_figure_link_is_a_clear_400(app, auth, query):
    auth.login_as(Role.LEAD)
    assert auth.client.get(f"/review/report-items?{query}").status_code == 400
