"""A requests transport that hands Vambe API calls to the in-process sandbox blueprint.

The client keeps its real HTTP semantics (method, headers, JSON body, status codes) without a
socket: a call back to our own server over the network would deadlock a single sync worker.
"""

import json
from datetime import datetime
from urllib.parse import urlsplit

import requests
from flask import Flask
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from werkzeug.test import EnvironBuilder, run_wsgi_app

from app.domain.deliveries import signature_for

# Where the sandbox "Vambe" thinks Handoff lives; requests to it never leave the process.
HANDOFF_ORIGIN = "https://handoff.sandbox.invalid"
WEBHOOK_PATH = "/webhooks/vambe"


class SandboxTransport(BaseAdapter):
    def __init__(self, app: Flask, mount_path: str):
        super().__init__()
        self.app = app
        self.mount_path = mount_path.rstrip("/")

    def send(self, request: requests.PreparedRequest, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        url = urlsplit(request.url)
        body = request.body.encode() if isinstance(request.body, str) else request.body
        environ = EnvironBuilder(
            path=self.mount_path + url.path,
            query_string=url.query,
            method=request.method,
            headers=list(request.headers.items()),
            data=body or b"",
        ).get_environ()
        # A fresh app context gives the sandbox its own database session, so its commits never
        # touch the transaction of the request that is calling it.
        with self.app.app_context():
            app_iter, status, headers = run_wsgi_app(self.app.wsgi_app, environ, buffered=True)
            try:
                content = b"".join(app_iter)
            finally:
                getattr(app_iter, "close", lambda: None)()
        response = requests.Response()
        response.status_code = int(status.split(" ", 1)[0])
        response.reason = status.split(" ", 1)[1] if " " in status else ""
        response.headers = CaseInsensitiveDict(headers.items())
        response.encoding = get_encoding_from_headers(response.headers)
        response._content = content
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


def deliver_webhook(app: Flask, payload: dict, *, secret: str, now: datetime) -> requests.Response:
    """POST ``payload`` to Handoff's webhook endpoint, signed as Vambe signs it."""
    body = json.dumps(payload).encode()
    timestamp = str(int(now.timestamp()))
    with requests.Session() as session:
        session.mount(HANDOFF_ORIGIN, SandboxTransport(app, ""))
        return session.post(
            HANDOFF_ORIGIN + WEBHOOK_PATH,
            data=body,
            headers={
                "content-type": "application/json",
                "user-agent": "Vambe-Sandbox-Webhooks/1.0",
                "x-vambe-timestamp": timestamp,
                "x-vambe-signature": signature_for(secret, timestamp, body),
            },
            timeout=10,
        )
