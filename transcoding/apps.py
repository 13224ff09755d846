from django.apps import AppConfig


class TranscodingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "transcoding"
    verbose_name = "Transcoding and costs"

    def ready(self) -> None:
        from transcoding import checks  # noqa: F401  (registers the settings check)
