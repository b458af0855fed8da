from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "Keys"

    def ready(self) -> None:
        # vehicles sits below keys and must not import it (STYLE §2): hand it the checks.
        from keys import selectors, use
        from vehicles import commands
        from vehicles import selectors as vehicle_selectors

        commands.register_command_guard(use.command_guard)
        commands.register_command_observer(use.audit_unkeyed_command)
        vehicle_selectors.register_status_viewer_check(selectors.key_open_for_status)
