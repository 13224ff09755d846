from django.apps import AppConfig


class UnpuzzleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "unpuzzle"
    verbose_name = "Unpuzzle"
