import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the admin user from DJANGO_SUPERUSER_USERNAME/_EMAIL/_PASSWORD unless it exists."

    def handle(self, *args, **options):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        if not username or not password:
            raise CommandError("set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD")
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"admin user {username!r} already exists")
            return
        User.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(f"created admin user {username!r}")
