from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def cache_table_create(*, using: str, **kwargs) -> None:
    """The database cache's table (the cache without REDIS_URL): every ``migrate`` makes it, so no way of starting misses it."""
    call_command("createcachetable", database=using, verbosity=0)


class UnpuzzleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "unpuzzle"
    verbose_name = "Unpuzzle"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from unpuzzle.workers import cluster_beat_on_spawn

        # A worker that starts says so at once: /healthz sees a restarted cluster within seconds.
        post_spawn.connect(cluster_beat_on_spawn, dispatch_uid="unpuzzle-cluster-beat-on-spawn")
        post_migrate.connect(cache_table_create, sender=self, dispatch_uid="unpuzzle-cache-table")
