from django.conf import settings
from django.core.management.base import BaseCommand

from vehicles import demo


class Command(BaseCommand):
    help = "Load the demo users and cars once; print the URL and the demo logins."

    def handle(self, *args: object, **options: object) -> None:
        if demo.demo_data_exists():
            self.stdout.write("Demo data already loaded; reusing it.")
        else:
            self.stdout.write("Loading demo data ...")
            demo.load_demo_data()
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"carshare is starting at {settings.SITE_URL}/"))
        self.stdout.write(
            f"Admin: {settings.SITE_URL}/admin/   API docs: {settings.SITE_URL}/api/v1/docs"
        )
        self.stdout.write(demo.demo_summary())
        self.stdout.write("Press Ctrl-C to stop everything.\n")
