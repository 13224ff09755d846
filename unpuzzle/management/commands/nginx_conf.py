"""Write the nginx configuration scripts/run.sh starts in front of gunicorn (deploy/nginx.conf.template)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

TEMPLATE = Path(settings.BASE_DIR) / "deploy" / "nginx.conf.template"


def render_nginx_conf(*, listen: str, run_dir: Path, gunicorn_socket: Path) -> str:
    """The template with this deployment's values: where nginx listens, its pid and log folder, the
    gunicorn socket (whose folder also holds nginx's temp files), and the largest upload body
    (``MAX_VIDEO_SIZE_MB``)."""
    values = {
        "LISTEN": listen,
        "RUN_DIR": str(run_dir),
        "GUNICORN_SOCKET": str(gunicorn_socket),
        "TEMP_DIR": str(gunicorn_socket.parent),
        "MAX_BODY_MB": str(int(settings.MAX_VIDEO_SIZE_MB) + 1),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


class Command(BaseCommand):
    help = "Write the nginx configuration that fronts gunicorn; prints the file's path."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--listen", required=True, help="address:port nginx listens on, e.g. 127.0.0.1:8000")
        parser.add_argument("--socket", required=True, help="the unix socket gunicorn binds")

    def handle(self, *args: Any, **options: Any) -> None:
        run_dir = Path(settings.VAR_DIR) / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "nginx.conf"
        path.write_text(
            render_nginx_conf(listen=options["listen"], run_dir=run_dir, gunicorn_socket=Path(options["socket"]))
        )
        self.stdout.write(str(path))
