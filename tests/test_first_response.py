"""First-response times: from entering the handoff queue to the first human reply, per agent and per local day,
median and 90th percentile (nearest rank), each figure linking to exactly the handoffs it counts."""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.reporting import build_report
from app.extensions import db
from app.models import Handoff, HandoffReason, Role
from tests import factories

SANTIAGO = ZoneInfo("America/Santiago")  # UTC-3 in November
T0 = datetime(2026, 11, 18, 13, 0, tzinfo=UTC)  # 10:00 in Santiago
PERIOD = (datetime(2026, 11, 18, 3, 0, tzinfo=UTC), datetime(2026, 11, 20, 3, 0, tzinfo=UTC))  # 18–19 Nov, Santiago


def handoff(agent, *, queued_at: datetime, answered_after: timedelta | None) -> Handoff:
    conversation = factories.make_conversation(name=f"Cliente {queued_at:%d %H%M} {answered_after}")
    answered = queued_at + answered_after if answered_after is not None else None
    made = Handoff(
        conversation_id=conversation.id,
        reason=HandoffReason.PHRASE,
        detail="hablar con una persona",
        requested_at=queued_at,
        answered_at=answered,
        answered_by_id=agent.id if answered else None,
        ended_at=answered,
    )
    db.session.add(made)
    db.session.commit()
    return made


@pytest.fixture
def timeline(app_ctx):
    """Ana answers five handoffs on the 18th (2, 4, 6, 8 and 30 minutes) and one at 23:50 Santiago time, which
    is already the 19th in UTC; Bea answers one on the 19th in a minute; one handoff waits unanswered."""
    ana = factories.make_user(name="Ana", role=Role.AGENT)
    bea = factories.make_user(name="Bea", role=Role.AGENT)
    ana_18 = [
        handoff(ana, queued_at=T0 + timedelta(hours=i), answered_after=timedelta(minutes=m))
        for i, m in enumerate((2, 4, 6, 8, 30))
    ]
    late = handoff(ana, queued_at=datetime(2026, 11, 19, 2, 40, tzinfo=UTC), answered_after=timedelta(minutes=10))
    bea_19 = [handoff(bea, queued_at=T0 + timedelta(days=1), answered_after=timedelta(minutes=1))]
    handoff(ana, queued_at=T0, answered_after=None)
    return {"ana": ana, "bea": bea, "ana_18": ana_18 + [late], "bea_19": bea_19}


def row(report, agent, day=None):
    rows = report.rows if day else report.totals
    [found] = [r for r in rows if r.agent_id == agent.id and (day is None or r.day.day == day)]
    return found


def test_median_and_p90_per_agent_and_day(timeline):
    report = build_report(*PERIOD, SANTIAGO)
    ana_18 = row(report, timeline["ana"], 18)
    # 2, 4, 6, 8, 10 (the one at 23:50, still the 18th in Santiago) and 30 minutes.
    assert sorted(ana_18.first_responses) == [timedelta(minutes=m) for m in (2, 4, 6, 8, 10, 30)]
    assert ana_18.median_first_response == timedelta(minutes=6)  # nearest rank: the 3rd of 6
    assert ana_18.p90_first_response == timedelta(minutes=30)  # the 6th of 6
    bea_19 = row(report, timeline["bea"], 19)
    assert bea_19.first_responses == [timedelta(minutes=1)]
    assert bea_19.median_first_response == bea_19.p90_first_response == timedelta(minutes=1)


def test_totals_count_every_answered_handoff_and_nothing_unanswered(timeline):
    report = build_report(*PERIOD, SANTIAGO)
    assert len(row(report, timeline["ana"]).first_responses) == 6
    assert len(row(report, timeline["bea"]).first_responses) == 1


def test_the_local_day_decides_near_midnight(timeline):
    utc_report = build_report(datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC), ZoneInfo("UTC"))
    assert len(row(utc_report, timeline["ana"], 18).first_responses) == 5
    assert len(row(utc_report, timeline["ana"], 19).first_responses) == 1


def listed_handoffs(client, url: str) -> list[int]:
    response = client.get(url.replace("&amp;", "&"))
    assert response.status_code == 200
    return [int(found) for found in re.findall(r'data-handoff="(\d+)"', response.get_data(as_text=True))]


def test_every_figure_links_to_exactly_the_handoffs_it_counts(app, client, auth, timeline):
    auth.login_as(Role.LEAD)
    client.set_cookie("tz", "America%2FSantiago")
    html = client.get("/review/reports?since=2026-11-18&until=2026-11-19").get_data(as_text=True)
    links = re.findall(r'<a href="(/review/handoffs\?[^"]+)" data-first-response="(\w+)">([^<]+)</a>', html)
    by_target = {}
    for url, figure, text in links:
        by_target.setdefault(url, {})[figure] = text.strip()
    ana, bea = timeline["ana"].id, timeline["bea"].id
    ana_total = next(url for url in by_target if f"agent={ana}" in url and "day=" not in url)
    ana_18 = next(url for url in by_target if f"agent={ana}" in url and "day=2026-11-18" in url)
    bea_19 = next(url for url in by_target if f"agent={bea}" in url and "day=2026-11-19" in url)
    expected_ana = sorted(h.id for h in timeline["ana_18"])
    assert sorted(listed_handoffs(client, ana_total)) == expected_ana
    assert sorted(listed_handoffs(client, ana_18)) == expected_ana
    assert listed_handoffs(client, bea_19) == [h.id for h in timeline["bea_19"]]
    assert by_target[ana_18] == {"count": "6", "median": "6 m", "p90": "30 m"}


def test_agents_cannot_see_the_drill_down(app, client, auth, timeline):
    auth.login_as(Role.AGENT)
    assert client.get(f"/review/handoffs?agent={timeline['ana'].id}").status_code == 403


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("agent=abc", 400),
        ("agent=999999", 404),
        ("agent={ana}&day=2026-02-30", 400),
        ("agent={ana}&since=x", 400),
    ],
)
def test_a_bad_drill_down_link_is_a_clear_4xx(app, client, auth, timeline, query, status):
    auth.login_as(Role.LEAD)
    response = client.get("/review/handoffs?" + query.format(ana=timeline["ana"].id))
    assert response.status_code == status
