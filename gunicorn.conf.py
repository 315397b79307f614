"""gunicorn settings for Handoff; every value can be overridden from the environment.

Run: gunicorn -c gunicorn.conf.py wsgi:app
"""

import os
from pathlib import Path

from gunicorn.glogging import Logger

from app.config import read_environment
from app.logs import Scrubber

SECRET_SETTINGS = ("VAMBE_WEBHOOK_SECRET", "VAMBE_API_KEY", "SECRET_KEY")

bind = os.environ.get("HANDOFF_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
# Threads let a worker keep serving the console while one request waits up to 10 s on Vambe.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Above the 10 s Vambe read timeout plus the connect timeout and our own work.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Recycle workers now and then so that a slow leak cannot grow forever; jitter avoids a stampede.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'

SCRUB = Scrubber([read_environment(Path(__file__).parent).get(name, "") for name in SECRET_SETTINGS])


class RedactingLogger(Logger):
    """The access log never shows a secret (in any letter case or encoding), a webhook token in a URL, or cookies."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = SCRUB(atoms[key])
        return {key: value for key, value in atoms.items() if key not in ("{cookie}i", "{set-cookie}o")}


logger_class = RedactingLogger
