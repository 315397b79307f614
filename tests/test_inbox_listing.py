"""The inbox list: filters, search, sorting, key-based paging and unread markers, in the domain and
over HTTP."""

import base64
import html as htmllib
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.clock import utcnow
from app.domain.assigning import assign, set_status
from app.domain.conversations import InboxFilters, InvalidCursor, encode_cursor, inbox_page, mark_seen
from app.domain.window import WINDOW_LENGTH, WindowState, window_status
from app.extensions import db
from app.models import Author, Conversation, ConversationStatus, Direction, Role, User
from tests import factories
from tests.conftest import Auth

PARTIAL = {"HX-Request": "true", "HX-Request-Type": "partial"}
NOW = datetime(2025, 3, 10, 15, 0, 0, tzinfo=UTC)
WARNING = timedelta(minutes=60)
LONG_AGO = NOW - timedelta(days=3)
TICK = timedelta(microseconds=1)


# ---------------------------------------------------------------- helpers (domain)


def conversation(name: str, *, inbound_ago: timedelta | None = None, **kwargs) -> Conversation:
    """A conversation created three days before NOW whose customer last wrote ``inbound_ago`` before NOW."""
    last_inbound_at = None if inbound_ago is None else NOW - inbound_ago
    return factories.make_conversation(name=name, last_inbound_at=last_inbound_at, now=LONG_AGO, **kwargs)


def page(viewer: User, *, cursor=None, limit=25, now=NOW, warning=WARNING, **filters):
    return inbox_page(viewer, InboxFilters(**filters), cursor=cursor, now=now, warning=warning, limit=limit)


def names(viewer: User, **kwargs) -> list[str]:
    return [row.conversation.name for row in page(viewer, **kwargs).rows]


def all_pages(viewer: User, *, limit: int, **filters) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        result = page(viewer, cursor=cursor, limit=limit, **filters)
        pages.append([row.conversation.name for row in result.rows])
        cursor = result.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 20, "paging never ends"


@pytest.fixture
def viewer(app_ctx):
    return factories.make_user(name="Camila Agent")


# ---------------------------------------------------------------- scope


class TestScope:
    def test_mine_unassigned_and_all(self, viewer):
        other = factories.make_user(name="Diego Other")
        mine = conversation("Mine", inbound_ago=timedelta(minutes=1))
        assign(mine, viewer, viewer, now=NOW)
        theirs = conversation("Theirs", inbound_ago=timedelta(minutes=2))
        theirs.assignee = other
        db.session.commit()
        conversation("Nobody's", inbound_ago=timedelta(minutes=3))

        assert names(viewer, scope="mine") == ["Mine"]
        assert names(viewer, scope="unassigned") == ["Nobody's"]
        assert names(viewer, scope="all") == ["Mine", "Theirs", "Nobody's"]
        assert names(viewer) == ["Mine", "Theirs", "Nobody's"]  # "all" is the default
        assert names(other, scope="mine") == ["Theirs"]

    def test_unassigning_moves_a_conversation_back_to_unassigned(self, viewer):
        taken = conversation("Taken", inbound_ago=timedelta(minutes=1))
        assign(taken, viewer, viewer, now=NOW)
        assert names(viewer, scope="unassigned") == []
        assign(taken, viewer, None, now=NOW)
        assert names(viewer, scope="unassigned") == ["Taken"]
        assert names(viewer, scope="mine") == []


# ---------------------------------------------------------------- window filter


BOUNDARIES = {
    "clock skew (future)": -timedelta(minutes=5),
    "just now": timedelta(0),
    "23h - 1us": WINDOW_LENGTH - WARNING - TICK,
    "23h exactly": WINDOW_LENGTH - WARNING,
    "23h + 1us": WINDOW_LENGTH - WARNING + TICK,
    "24h - 1us": WINDOW_LENGTH - TICK,
    "24h exactly": WINDOW_LENGTH,
    "24h + 1us": WINDOW_LENGTH + TICK,
    "3 days": timedelta(days=3),
    "never wrote": None,
}


class TestWindowFilter:
    @pytest.mark.parametrize("warning", [timedelta(minutes=60), timedelta(minutes=15)], ids=["60min", "15min"])
    def test_each_state_lists_exactly_what_window_status_says(self, viewer, warning):
        for name, ago in BOUNDARIES.items():
            # The warning boundary moves with the configured warning: measure from it.
            if ago is not None and name.startswith("23h"):
                ago = ago + WARNING - warning
            conversation(name, inbound_ago=ago)
        conversations = db.session.scalars(select(Conversation)).all()
        for state in WindowState:
            expected = {c.name for c in conversations if window_status(c.last_inbound_at, NOW, warning).state == state}
            assert set(names(viewer, window=str(state), warning=warning)) == expected, state

        # And the states themselves, spelled out at the boundaries.
        by_state = {str(s): set(names(viewer, window=str(s), warning=warning)) for s in WindowState}
        assert by_state["open"] == {"clock skew (future)", "just now", "23h - 1us", "23h exactly"}
        assert by_state["closing"] == {"23h + 1us", "24h - 1us"}
        assert by_state["closed"] == {"24h exactly", "24h + 1us", "3 days"}
        assert by_state["unknown"] == {"never wrote"}

    def test_no_window_filter_lists_every_open_conversation(self, viewer):
        for name, ago in BOUNDARIES.items():
            conversation(name, inbound_ago=ago)
        assert set(names(viewer)) == set(BOUNDARIES)


# ---------------------------------------------------------------- paused, status


class TestPausedAndStatus:
    def test_paused_only_lists_conversations_whose_assistant_is_paused(self, viewer):
        paused = conversation("Paused", inbound_ago=timedelta(minutes=5))
        paused.assistant_paused_at = NOW - timedelta(minutes=4)
        db.session.commit()
        conversation("Active", inbound_ago=timedelta(minutes=1))

        assert names(viewer, paused_only=True) == ["Paused"]
        assert names(viewer, paused_only=False) == ["Active", "Paused"]

    def test_resolved_conversations_are_hidden_by_default_and_listed_on_their_own(self, viewer):
        done = conversation("Done", inbound_ago=timedelta(minutes=5))
        set_status(done, viewer, ConversationStatus.RESOLVED, now=NOW)
        conversation("Pending", inbound_ago=timedelta(minutes=10))

        assert names(viewer) == ["Pending"]
        assert names(viewer, status="open") == ["Pending"]
        assert names(viewer, status="resolved") == ["Done"]

        set_status(done, viewer, ConversationStatus.OPEN, now=NOW)
        assert names(viewer) == ["Done", "Pending"]
        assert names(viewer, status="resolved") == []


# ---------------------------------------------------------------- search


class TestSearch:
    def test_name_is_matched_case_insensitively_and_accents_as_stored(self, viewer):
        conversation("Joaquín Pérez", inbound_ago=timedelta(minutes=1))
        conversation("Valentina Rojas", inbound_ago=timedelta(minutes=2))

        assert names(viewer, query="valentina") == ["Valentina Rojas"]
        assert names(viewer, query="ROJAS") == ["Valentina Rojas"]
        assert names(viewer, query="joaquín pé") == ["Joaquín Pérez"]
        assert names(viewer, query="  pérez  ") == ["Joaquín Pérez"]  # surrounding spaces ignored
        assert names(viewer, query="perez") == []  # no accent folding: matched as stored

    def test_phone_is_matched_by_its_digits(self, viewer):
        conversation("Chilean", phone="+56987654321", inbound_ago=timedelta(minutes=1))
        conversation("Argentine", phone="+5491123456789", inbound_ago=timedelta(minutes=2))

        assert names(viewer, query="+56 9 8765") == ["Chilean"]
        assert names(viewer, query="987-654") == ["Chilean"]
        assert names(viewer, query="(11) 2345") == ["Argentine"]
        assert names(viewer, query="+56 9 0000") == []

    def test_message_text_is_searched(self, viewer):
        order = conversation("Order Customer", phone="+56911111111", inbound_ago=timedelta(minutes=10))
        factories.make_message(order, body="Mi pedido no ha llegado todavía", occurred_at=NOW - timedelta(minutes=9))
        factories.make_message(
            order,
            direction=Direction.OUTBOUND,
            body="Lo reviso con bodega",
            occurred_at=NOW - timedelta(minutes=8),
        )
        conversation("Other Customer", phone="+56922222222", inbound_ago=timedelta(minutes=1))

        assert names(viewer, query="PEDIDO NO") == ["Order Customer"]
        assert names(viewer, query="bodega") == ["Order Customer"]  # outbound text counts too
        assert names(viewer, query="factura") == []

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("%", {"Promo 50%"}),
            ("50%", {"Promo 50%"}),
            ("_", {"a_b shop"}),
            ("a_b", {"a_b shop"}),
            ("\\", {"back\\slash"}),
            ("k\\s", {"back\\slash"}),
        ],
    )
    def test_like_wildcards_in_the_query_are_literal(self, viewer, query, expected):
        for minutes, name in enumerate(["Promo 50%", "Promo 500", "a_b shop", "axb shop", "back\\slash", "backslash"]):
            conversation(name, phone=f"+5693000000{minutes}", inbound_ago=timedelta(minutes=minutes + 1))
        with_text = conversation("Message Only", phone="+56940000000", inbound_ago=timedelta(minutes=30))
        factories.make_message(with_text, body="Quiero 30 off", occurred_at=NOW - timedelta(minutes=30))

        assert set(names(viewer, query=query)) == expected

    def test_message_text_is_searched_by_words_through_the_full_text_index(self, viewer):
        percent = conversation("Has Percent", phone="+56950000001", inbound_ago=timedelta(minutes=5))
        factories.make_message(
            percent, body="¿Hay 20% de descuento en la canción?", occurred_at=NOW - timedelta(minutes=5)
        )
        plain = conversation("No Percent", phone="+56950000002", inbound_ago=timedelta(minutes=6))
        factories.make_message(plain, body="¿Hay 20 de descuento?", occurred_at=NOW - timedelta(minutes=6))

        # Words, as the review search has them: punctuation is not searched, accents are folded, a word may be
        # the start of a longer one.
        assert names(viewer, query="20%") == ["Has Percent", "No Percent"]
        assert names(viewer, query="cancion descu") == ["Has Percent"]
        assert names(viewer, query="20 cancion") == ["Has Percent"]

    def test_search_combines_with_the_other_filters(self, viewer):
        mine = conversation("Ana Mine", inbound_ago=timedelta(minutes=1))
        assign(mine, viewer, viewer, now=NOW)
        conversation("Ana Unassigned", inbound_ago=timedelta(minutes=2))
        conversation("Bruno Mine", inbound_ago=timedelta(minutes=3)).assignee = viewer
        db.session.commit()

        assert names(viewer, query="ana", scope="mine") == ["Ana Mine"]
        assert names(viewer, query="ana", scope="unassigned") == ["Ana Unassigned"]


# ---------------------------------------------------------------- sorting


class TestSorting:
    def test_latest_activity_first_and_a_reply_moves_a_conversation_up(self, viewer):
        oldest = conversation("Oldest", inbound_ago=timedelta(hours=3))
        conversation("Middle", inbound_ago=timedelta(hours=2))
        conversation("Newest", inbound_ago=timedelta(hours=1))
        conversation("Never Wrote")  # its activity is its creation, three days ago

        assert names(viewer) == ["Newest", "Middle", "Oldest", "Never Wrote"]

        factories.make_message(
            oldest,
            direction=Direction.OUTBOUND,
            author=Author.AGENT,
            body="Hola, te ayudo yo",
            occurred_at=NOW - timedelta(minutes=5),
        )
        assert names(viewer) == ["Oldest", "Newest", "Middle", "Never Wrote"]
        # A reply is activity, not a customer message: the window does not move.
        [oldest_row] = [row for row in page(viewer).rows if row.conversation.name == "Oldest"]
        assert oldest_row.window.expires_at == NOW - timedelta(hours=3) + WINDOW_LENGTH

    def test_closing_soon_lists_open_windows_soonest_first_then_closed_ones_then_never_written(self, viewer):
        conversation("Fresh", inbound_ago=timedelta(minutes=5))
        conversation("Closing", inbound_ago=timedelta(hours=23, minutes=30))
        conversation("Half", inbound_ago=timedelta(hours=12))
        conversation("Just Closed", inbound_ago=WINDOW_LENGTH)
        conversation("Long Closed", inbound_ago=timedelta(days=2))
        conversation("Never Wrote")

        result = page(viewer, sort="closing_soon")

        # Closed and never-written conversations are not dropped: they come after every open window.
        assert [row.conversation.name for row in result.rows] == [
            "Closing",
            "Half",
            "Fresh",
            "Just Closed",
            "Long Closed",
            "Never Wrote",
        ]
        expiries = [row.window.expires_at for row in result.rows[:3]]
        assert expiries == sorted(expiries)

    def test_closing_soon_respects_the_other_filters(self, viewer):
        conversation("Closing Mine", inbound_ago=timedelta(hours=23, minutes=30)).assignee = viewer
        conversation("Closing Other", inbound_ago=timedelta(hours=23, minutes=40))
        db.session.commit()

        assert names(viewer, sort="closing_soon", scope="mine") == ["Closing Mine"]
        assert names(viewer, sort="closing_soon", window="closing") == ["Closing Other", "Closing Mine"]


# ---------------------------------------------------------------- keyset paging


class TestPaging:
    def test_following_next_cursor_visits_each_conversation_once_in_order(self, viewer):
        for minutes in (50, 40, 30, 20, 10):
            conversation(f"C{minutes}", inbound_ago=timedelta(minutes=minutes))

        assert all_pages(viewer, limit=2) == [["C10", "C20"], ["C30", "C40"], ["C50"]]

    def test_ties_on_activity_are_broken_consistently_across_pages(self, viewer):
        created = [conversation(f"Tie {i}", inbound_ago=timedelta(minutes=10)) for i in range(5)]
        expected = [c.name for c in sorted(created, key=lambda c: c.id, reverse=True)]

        pages = all_pages(viewer, limit=2)

        assert [len(p) for p in pages] == [2, 2, 1]
        assert [name for p in pages for name in p] == expected

    def test_an_exact_multiple_of_the_limit_has_no_empty_last_page(self, viewer):
        for minutes in (40, 30, 20, 10):
            conversation(f"C{minutes}", inbound_ago=timedelta(minutes=minutes))
        assert all_pages(viewer, limit=2) == [["C10", "C20"], ["C30", "C40"]]

    def test_closing_soon_pages_in_its_own_order(self, viewer):
        for hours in (1, 5, 9, 13, 23):
            conversation(f"H{hours}", inbound_ago=timedelta(hours=hours))
        conversation("Closed", inbound_ago=timedelta(hours=30))

        conversation("Long Closed", inbound_ago=timedelta(hours=50))
        conversation("Never A")
        conversation("Never B")

        assert all_pages(viewer, limit=2, sort="closing_soon") == [
            ["H23", "H13"],
            ["H9", "H5"],
            ["H1", "Closed"],
            ["Long Closed", "Never A"],
            ["Never B"],
        ]

    def test_activity_between_pages_neither_repeats_nor_skips_older_conversations(self, viewer):
        c = {m: conversation(f"C{m}", inbound_ago=timedelta(minutes=m)) for m in (50, 40, 30, 20, 10)}

        first = page(viewer, limit=2)
        assert [row.conversation.name for row in first.rows] == ["C10", "C20"]

        # Before the agent asks for page 2: the oldest conversation gets a message (moving it to the top),
        # one already shown gets another, and a brand-new conversation arrives.
        factories.make_message(c[50], body="¿Hola?", occurred_at=NOW - timedelta(minutes=1))
        factories.make_message(c[10], body="¿Siguen ahí?", occurred_at=NOW - timedelta(seconds=30))
        conversation("Brand New", inbound_ago=timedelta(seconds=10))

        second = page(viewer, limit=2, cursor=first.next_cursor)
        assert [row.conversation.name for row in second.rows] == ["C30", "C40"]
        assert second.next_cursor is None  # C50 moved above the cursor: it is on the first page now
        assert names(viewer, limit=3) == ["Brand New", "C10", "C50"]

    def test_a_cursor_made_by_hand_is_refused(self, viewer):
        conversation("Someone", inbound_ago=timedelta(minutes=1))
        for cursor in ("garbage!", "e30", base64.urlsafe_b64encode(b'["not a time", 1]').decode()):
            with pytest.raises(InvalidCursor):
                page(viewer, cursor=cursor)

    def test_the_cursor_round_trips_the_last_rows_key(self, viewer):
        for minutes in (30, 20, 10):
            conversation(f"C{minutes}", inbound_ago=timedelta(minutes=minutes))
        first = page(viewer, limit=2)
        last = first.rows[-1].conversation
        assert first.next_cursor == encode_cursor(last.last_message_at, last.id)


# ---------------------------------------------------------------- unread markers


class TestUnread:
    def test_a_customer_message_after_the_viewers_visit_is_unread_for_that_viewer_only(self, viewer):
        other = factories.make_user(name="Diego Other")
        chat = conversation("Chat", inbound_ago=timedelta(minutes=30))

        def unread(user):
            [row] = page(user).rows
            return row.unread

        assert unread(viewer) and unread(other)  # nobody has opened it yet
        mark_seen(chat, viewer, now=NOW - timedelta(minutes=20))
        assert not unread(viewer) and unread(other)

        factories.make_message(chat, body="¿Me ayudan?", occurred_at=NOW - timedelta(minutes=10))
        assert unread(viewer) and unread(other)

        mark_seen(chat, viewer, now=NOW - timedelta(minutes=5))
        assert not unread(viewer) and unread(other)

        # Replies are not unread: only the customer's messages count.
        factories.make_message(chat, direction=Direction.OUTBOUND, body="Hola", occurred_at=NOW - timedelta(minutes=1))
        assert not unread(viewer)

        # A late, older visit (another tab) never moves the read marker back.
        mark_seen(chat, viewer, now=NOW - timedelta(hours=1))
        assert not unread(viewer)

    def test_a_conversation_without_customer_messages_is_never_unread(self, viewer):
        conversation("Silent")
        [row] = page(viewer).rows
        assert row.unread is False


# ---------------------------------------------------------------- over HTTP


@pytest.fixture
def agent(auth):
    return auth.login_as(Role.AGENT)


def row_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'id="row-(\d+)"', html)]


def rows_by_id(html: str) -> dict[int, str]:
    """Each inbox row's markup, by conversation id."""
    return {
        int(found.group(1)): found.group(2)
        for found in re.finditer(r'<a href="/conversations/(\d+)" id="row-\1"(.*?)</a>', html, re.DOTALL)
    }


def text_of(fragment: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


@pytest.fixture
def inbox(app, agent):
    """One conversation for each filter, relative to the app's clock; their ids by label."""
    with app.app_context():
        now = utcnow()
        me = db.session.get(User, agent)
        created = now - timedelta(days=3)

        def make(name, ago, **kwargs):
            return factories.make_conversation(
                name=name, last_inbound_at=None if ago is None else now - ago, now=created, **kwargs
            )

        ids = {}
        mine = make("Mine Fresh", timedelta(minutes=10))
        mine.assignee = me
        paused = make("Paused One", timedelta(hours=1))
        paused.assistant_paused_at = now - timedelta(minutes=50)
        ids["closing"] = make("Closing Soon", timedelta(hours=23, minutes=30)).id
        ids["closed"] = make("Closed Long", timedelta(hours=30)).id
        ids["never"] = make("Never Wrote", None).id
        resolved = make("Resolved One", timedelta(hours=2))
        resolved.status = ConversationStatus.RESOLVED
        db.session.commit()
        ids.update(mine=mine.id, paused=paused.id, resolved=resolved.id)
    return ids


OPEN_BY_ACTIVITY = ["mine", "paused", "closing", "closed", "never"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", OPEN_BY_ACTIVITY),
        ("scope=all", OPEN_BY_ACTIVITY),
        ("scope=mine", ["mine"]),
        ("scope=unassigned", ["paused", "closing", "closed", "never"]),
        ("window=open", ["mine", "paused"]),
        ("window=closing", ["closing"]),
        ("window=closed", ["closed"]),
        ("window=unknown", ["never"]),
        ("status=resolved", ["resolved"]),
        ("status=open", OPEN_BY_ACTIVITY),
        ("paused=y", ["paused"]),
        ("sort=closing_soon", ["closing", "paused", "mine", "closed", "never"]),
        ("sort=recent", OPEN_BY_ACTIVITY),
        ("q=closing", ["closing"]),
        ("q=MINE+fresh", ["mine"]),
        ("scope=unassigned&window=open", ["paused"]),
        ("scope=mine&status=resolved", []),
    ],
)
def test_inbox_filters_over_http(client, inbox, query, expected):
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    assert row_ids(response.get_data(as_text=True)) == [inbox[label] for label in expected]


def test_the_filter_form_shows_the_filters_in_use(client, inbox):
    html = client.get("/?scope=mine&window=closing&sort=closing_soon&paused=y&q=Ana").get_data(as_text=True)
    assert re.search(r'<option selected value="mine">', html)
    assert re.search(r'<option selected value="closing">', html)
    assert re.search(r'<option selected value="closing_soon">', html)
    assert re.search(r'<input checked id="paused"', html)
    assert re.search(r'<input[^>]*name="q"[^>]*value="Ana"', html)


@pytest.mark.parametrize(
    "query",
    [
        "scope=everyone",
        "window=ajar",
        "status=deleted",
        "sort=random",
        "scope=mine&sort=alphabetical",
        "window=",
    ],
)
def test_unknown_filter_values_fall_back_to_the_defaults(client, inbox, query):
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    assert row_ids(response.get_data(as_text=True)) == [inbox[label] for label in OPEN_BY_ACTIVITY]


def test_a_search_with_no_match_offers_to_clear_the_filters(client, inbox):
    html = client.get("/?q=nadie+se+llama+asi").get_data(as_text=True)
    assert row_ids(html) == []
    assert "No conversations match." in html and "Clear the filters" in html


def test_every_row_shows_name_phone_snippet_window_assistant_and_assignee(app, client, agent):
    with app.app_context():
        now = utcnow()
        helper = factories.make_user(name="Bernardita Núñez")
        worked = factories.make_conversation(name="Valentina Rojas", phone="+56987654321", now=now - timedelta(days=1))
        factories.make_message(worked, body="¿Dónde está mi pedido?", occurred_at=now - timedelta(minutes=10))
        factories.make_message(
            worked,
            direction=Direction.OUTBOUND,
            author=Author.ASSISTANT,
            body="Estoy revisando tu pedido <48213> & te aviso",
            occurred_at=now - timedelta(minutes=9),
        )
        worked.assignee = helper
        worked.assistant_paused_at = now - timedelta(minutes=8)
        idle = factories.make_conversation(
            name="Camila Soto",
            phone="+56911112222",
            last_inbound_at=now - timedelta(hours=30),
            now=now - timedelta(days=2),
        )
        factories.make_message(idle, body="Gracias", occurred_at=now - timedelta(hours=30))
        silent = factories.make_conversation(name="", phone="+56933334444", now=now - timedelta(days=3))
        ids = worked.id, idle.id, silent.id
        db.session.commit()

    html = client.get("/").get_data(as_text=True)
    rows = rows_by_id(html)
    assert list(rows) == list(ids)

    worked_row = text_of(rows[ids[0]])
    assert "Valentina Rojas" in worked_row and "+56987654321" in worked_row
    assert "AI assistant: Estoy revisando tu pedido <48213> & te aviso" in worked_row
    assert re.search(r"Window open · 23 h (49|50) m left", worked_row)
    assert "Assistant paused" in worked_row and "Bernardita Núñez" in worked_row
    assert "&lt;48213&gt; &amp; te aviso" in rows[ids[0]]  # escaped, never markup

    idle_row = text_of(rows[ids[1]])
    assert "Camila Soto" in idle_row and "+56911112222" in idle_row
    assert "Gracias" in idle_row and "Window closed" in idle_row
    assert "Assistant active" in idle_row and "Unassigned" in idle_row

    silent_row = text_of(rows[ids[2]])
    assert "+56933334444" in silent_row  # no name: the phone stands in
    assert "No messages" in silent_row and "No inbound message yet" in silent_row


def test_a_long_last_message_is_cut_in_the_row(app, client, agent):
    with app.app_context():
        chat = factories.make_conversation(name="Verbose")
        factories.make_message(chat, body="palabra " * 40, occurred_at=utcnow())
        chat_id = chat.id
    row = text_of(rows_by_id(client.get("/").get_data(as_text=True))[chat_id])
    assert "palabra palabra" in row and "..." in row
    assert row.count("palabra") < 40


def test_the_partial_list_is_only_the_list_and_its_poll_keeps_the_filters(client, inbox):
    response = client.get("/?scope=unassigned&window=closing&q=Closing", headers=PARTIAL)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="conversation-list"')
    assert "<html" not in html and "inbox-filters" not in html
    assert row_ids(html) == [inbox["closing"]]
    poll = re.search(r'<div id="conversation-list" hx-get="([^"]+)"', html).group(1)
    url = urlsplit(htmllib.unescape(poll))
    assert url.path == "/"
    query = parse_qs(url.query)
    assert query.pop("v")  # the version of what it shows, sent back by the next poll
    assert query == {"scope": ["unassigned"], "window": ["closing"], "q": ["Closing"]}
    assert {"HX-Request", "HX-Request-Type"} <= set(response.vary)


def test_a_full_page_includes_the_filters_and_the_same_list(client, inbox):
    html = client.get("/?scope=unassigned").get_data(as_text=True)
    assert "<html" in html and 'class="inbox-filters"' in html
    assert '<div id="conversation-list"' in html


def test_paging_over_http_follows_the_older_link_and_keeps_the_filters(app, client, agent):
    with app.app_context():
        now = utcnow()
        ids = [
            factories.make_conversation(name=f"Paged {i:02d}", last_inbound_at=now - timedelta(minutes=i)).id
            for i in range(1, 28)
        ]
        factories.make_conversation(name="Someone Else", last_inbound_at=now)

    first = client.get("/?q=paged").get_data(as_text=True)
    assert row_ids(first) == ids[:25]
    link = re.search(r'<a href="([^"]+)">Older conversations →</a>', first).group(1)
    url = urlsplit(htmllib.unescape(link))
    assert parse_qs(url.query)["q"] == ["paged"] and "after" in parse_qs(url.query)

    second = client.get(htmllib.unescape(link)).get_data(as_text=True)
    assert row_ids(second) == ids[25:]
    assert "Older conversations" not in second


def naive_cursor() -> str:
    return base64.urlsafe_b64encode(json.dumps(["2025-03-10T15:00:00", 1]).encode()).decode().rstrip("=")


def huge_id_cursor() -> str:
    return base64.urlsafe_b64encode(json.dumps(["2025-03-10T15:00:00+00:00", 10**30]).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "W10",  # []
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b"[null, 1]").decode(),
        base64.urlsafe_b64encode(b'["yesterday", 1]').decode(),
        base64.urlsafe_b64encode(b'["2025-03-10T15:00:00+00:00", "x"]').decode(),
        naive_cursor(),
        huge_id_cursor(),
    ],
    ids=["garbage", "empty-list", "object", "null-time", "not-a-time", "not-an-id", "naive-time", "huge-id"],
)
def test_a_tampered_cursor_is_a_400_not_a_500(client, inbox, cursor):
    response = client.get("/", query_string={"after": cursor})
    assert response.status_code == 400
    assert "That page link is broken" in response.get_data(as_text=True)


def test_a_valid_cursor_over_http_continues_after_its_row(client, inbox, app):
    with app.app_context():
        paused = db.session.get(Conversation, inbox["paused"])
        cursor = encode_cursor(paused.last_message_at, paused.id)
    html = client.get("/", query_string={"after": cursor}).get_data(as_text=True)
    assert row_ids(html) == [inbox[label] for label in ["closing", "closed", "never"]]


def row_is_unread(html: str, conversation_id: int) -> bool:
    tag = re.search(rf'<a href="/conversations/{conversation_id}" id="row-{conversation_id}"\s+class="([^"]*)"', html)
    assert tag, f"no row for conversation {conversation_id}"
    return "unread" in tag.group(1).split()


def test_the_unread_marker_is_per_viewer_and_opening_the_conversation_clears_it(app, client, agent):
    with app.app_context():
        chat = factories.make_conversation(name="Marker", last_inbound_at=utcnow() - timedelta(minutes=5))
        chat_id = chat.id
    colleague = Auth(app, app.test_client())
    colleague.login_as(Role.AGENT)

    assert row_is_unread(client.get("/").get_data(as_text=True), chat_id)
    # Not colour or weight alone: screen readers are told too.
    row = rows_by_id(client.get("/").get_data(as_text=True))[chat_id]
    assert re.search(r'class="visually-hidden">[^<]*unread', row, re.IGNORECASE)

    assert client.get(f"/conversations/{chat_id}").status_code == 200
    assert not row_is_unread(client.get("/").get_data(as_text=True), chat_id)
    assert row_is_unread(colleague.client.get("/").get_data(as_text=True), chat_id)

    with app.app_context():
        factories.make_message(db.session.get(Conversation, chat_id), body="¿Hola? ¿Alguien?", occurred_at=utcnow())
    assert row_is_unread(client.get("/").get_data(as_text=True), chat_id)

    colleague.client.get(f"/conversations/{chat_id}")
    assert not row_is_unread(colleague.client.get("/").get_data(as_text=True), chat_id)
    assert row_is_unread(client.get("/").get_data(as_text=True), chat_id)  # the colleague's visit is theirs

    client.get(f"/conversations/{chat_id}/live", headers=PARTIAL)  # the open page's poll also reads it
    assert not row_is_unread(client.get("/").get_data(as_text=True), chat_id)
