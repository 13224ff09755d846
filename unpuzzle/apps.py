from django.apps import AppConfig


class UnpuzzleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "unpuzzle"
    verbose_name = "Unpuzzle"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from unpuzzle.workers import cluster_beat_on_spawn

        # A worker that starts says so at once: /healthz sees a restarted cluster within seconds.
        post_spawn.connect(cluster_beat_on_spawn, dispatch_uid="unpuzzle-cluster-beat-on-spawn")
