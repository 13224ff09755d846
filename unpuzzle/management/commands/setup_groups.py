from django.core.management.base import BaseCommand

from unpuzzle.groups import groups_setup


class Command(BaseCommand):
    help = 'Create or update the "Instructors" and "Finance" admin groups; safe to run repeatedly.'

    def handle(self, *args, **options):
        for name, count in groups_setup().items():
            self.stdout.write(f"group {name!r}: {count} permissions")
