"""The 24-hour customer-care window: pure boundaries, then how ingest anchors it."""

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.window import WindowState, window_status
from app.models import Direction
from tests import factories

INBOUND = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
WARNING = timedelta(minutes=60)


def at(hours: int = 0, minutes: int = 0, seconds: int = 0) -> datetime:
    """A moment this long after INBOUND."""
    return INBOUND + timedelta(hours=hours, minutes=minutes, seconds=seconds)


class TestBoundaries:
    def test_one_second_before_24h_still_allows_free_form_and_is_closing(self):
        status = window_status(INBOUND, at(23, 59, 59), WARNING)

        assert status.state == WindowState.CLOSING
        assert status.allows_free_form
        assert status.remaining == timedelta(seconds=1)
        assert status.expires_at == datetime(2025, 3, 2, 12, 0, 0, tzinfo=UTC)

    def test_one_second_before_24h_is_open_when_there_is_no_warning(self):
        status = window_status(INBOUND, at(23, 59, 59), timedelta(0))

        assert status.state == WindowState.OPEN
        assert status.allows_free_form
        assert status.remaining == timedelta(seconds=1)

    @pytest.mark.parametrize("after", [at(24), at(24, 0, 1), at(72)], ids=["24:00:00", "24:00:01", "72h"])
    def test_closed_from_exactly_24h_on(self, after):
        status = window_status(INBOUND, after, WARNING)

        assert status.state == WindowState.CLOSED
        assert not status.allows_free_form
        assert status.remaining == timedelta(0)
        assert status.expires_at == datetime(2025, 3, 2, 12, 0, 0, tzinfo=UTC)

    def test_remaining_and_expiry_are_exact_midway(self):
        status = window_status(INBOUND, at(10, 15, 30), WARNING)

        assert status.state == WindowState.OPEN
        assert status.remaining == timedelta(hours=13, minutes=44, seconds=30)
        assert status.expires_at == INBOUND + timedelta(hours=24)

    def test_right_at_the_inbound_message_the_full_24h_remain(self):
        status = window_status(INBOUND, INBOUND, WARNING)

        assert status.state == WindowState.OPEN
        assert status.remaining == timedelta(hours=24)


class TestWarning:
    def test_exactly_the_warning_left_is_still_open(self):
        status = window_status(INBOUND, at(23), WARNING)

        assert status.remaining == WARNING
        assert status.state == WindowState.OPEN

    def test_one_second_less_than_the_warning_left_is_closing(self):
        status = window_status(INBOUND, at(23, 0, 1), WARNING)

        assert status.remaining == WARNING - timedelta(seconds=1)
        assert status.state == WindowState.CLOSING
        assert status.allows_free_form

    def test_a_longer_warning_starts_closing_earlier(self):
        assert window_status(INBOUND, at(20, 0, 1), timedelta(hours=4)).state == WindowState.CLOSING
        assert window_status(INBOUND, at(20, 0, 1), WARNING).state == WindowState.OPEN


class TestUnknownAndSkew:
    def test_no_inbound_message_is_unknown_and_does_not_allow_free_form(self):
        status = window_status(None, INBOUND, WARNING)

        assert status.state == WindowState.UNKNOWN
        assert not status.allows_free_form
        assert status.expires_at is None
        assert status.remaining == timedelta(0)

    @pytest.mark.parametrize("ahead", [timedelta(seconds=1), HOUR, timedelta(days=3)])
    def test_inbound_time_in_the_future_never_gives_more_than_24h(self, ahead):
        now = INBOUND
        status = window_status(now + ahead, now, WARNING)

        assert status.state == WindowState.OPEN
        assert status.remaining == timedelta(hours=24)
        assert status.expires_at == now + timedelta(hours=24)


class TestAnchoring:
    """The window is anchored on the newest inbound message, whatever order messages arrive in."""

    def test_an_older_inbound_message_arriving_late_does_not_move_the_window_back(self, app_ctx):
        conversation = factories.make_conversation(last_inbound_at=None, now=INBOUND)
        newer, older = at(5), at(1)

        factories.make_message(conversation, occurred_at=newer)
        factories.make_message(conversation, occurred_at=older)

        assert conversation.last_inbound_at == newer
        assert conversation.last_message_at == newer
        assert window_status(conversation.last_inbound_at, at(28, 59, 59), WARNING).allows_free_form

    def test_an_outbound_message_never_moves_the_window(self, app_ctx):
        conversation = factories.make_conversation(last_inbound_at=None, now=INBOUND)
        factories.make_message(conversation, occurred_at=at(1))

        factories.make_message(conversation, direction=Direction.OUTBOUND, occurred_at=at(3))

        assert conversation.last_inbound_at == at(1)
        assert conversation.last_message_at == at(3)

    def test_an_outbound_message_alone_leaves_the_window_unknown(self, app_ctx):
        conversation = factories.make_conversation(last_inbound_at=None, now=INBOUND)

        factories.make_message(conversation, direction=Direction.OUTBOUND, occurred_at=at(1))

        assert conversation.last_inbound_at is None
        assert window_status(conversation.last_inbound_at, at(2), WARNING).state == WindowState.UNKNOWN
