from django.apps import AppConfig


class SandboxesConfig(AppConfig):
    """No models: the app only carries `manage.py simulate`, which drives a running
    `make run` over HTTP (the sandboxes' control routes and Chairside's API)."""

    name = "sandboxes"
    verbose_name = "Partner sandboxes"
