"""A long thread opens on its newest messages; earlier ones load on demand, in the inbox and on the timeline."""

import re
from datetime import timedelta

from app.clock import utcnow
from app.models import Role
from tests import factories


def test_the_newest_50_then_50_more_then_the_rest(app, auth):
    auth.login_as(Role.LEAD)
    start = utcnow() - timedelta(hours=5)
    with app.app_context():
        conversation = factories.make_conversation()
        for n in range(120):
            factories.make_message(
                conversation, body=f"mensaje número {n:03d}", occurred_at=start + timedelta(minutes=n)
            )
        conversation_id = conversation.id

    for base in (f"/conversations/{conversation_id}", f"/review/conversations/{conversation_id}"):
        shown, url = [], base
        for expected in (50, 100, 120):
            page = auth.client.get(url).get_data(as_text=True)
            shown = re.findall(r"mensaje número (\d{3})", page)
            assert len(shown) == expected and shown[-1] == "119", (base, expected)
            assert shown == sorted(shown)
            link = re.search(r'href="([^"]+from=\d+)#thread">Show earlier messages', page)
            if expected < 120:
                url = link.group(1)
                assert url.startswith(base)
            else:
                assert link is None
