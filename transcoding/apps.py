from django.apps import AppConfig


class TranscodingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "transcoding"
    verbose_name = "Transcoding and costs"
