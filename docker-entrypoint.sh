#!/bin/sh
# The container's start-up: bring the schema to the newest migration, then serve.
set -eu
flask --app wsgi db upgrade
exec gunicorn -c gunicorn.conf.py wsgi:app
