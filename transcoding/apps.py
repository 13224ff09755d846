from django.apps import AppConfig


class TranscodingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "transcoding"
    verbose_name = "Transcoding and costs"

    def ready(self) -> None:
        from transcoding import checks  # noqa: F401  (registers the settings check)
        from transcoding.costs.budget import budget_requeue_register
        from transcoding.services.jobs import transcode_requeue_blocked

        # The budget sits below the jobs service: releasing the kill switch requeues blocked videos through it.
        budget_requeue_register(requeue=transcode_requeue_blocked)
