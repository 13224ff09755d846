from django.core.management.base import BaseCommand
from django_q.models import Schedule

from unpuzzle.schedules import SCHEDULES


class Command(BaseCommand):
    help = "Create or update the product's django-q2 schedules; safe to run repeatedly."

    def handle(self, *args, **options):
        for spec in SCHEDULES:
            _, created = Schedule.objects.update_or_create(
                name=spec.name,
                defaults={"func": spec.func, "schedule_type": Schedule.MINUTES, "minutes": spec.minutes, "repeats": -1},
            )
            self.stdout.write(f"{'created' if created else 'updated'} schedule {spec.name} ({spec.func} every {spec.minutes} min)")
        self.stdout.write(f"{len(SCHEDULES)} schedules in place")
