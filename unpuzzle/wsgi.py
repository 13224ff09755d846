"""WSGI entry point (gunicorn unpuzzle.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "unpuzzle.settings")
application = get_wsgi_application()
