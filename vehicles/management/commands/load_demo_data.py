from django.conf import settings
from django.core.management.base import BaseCommand

from vehicles import demo


class Command(BaseCommand):
    help = (
        "Load the demo users and cars once, connect the demo cars to the vehicle-cloud "
        "simulator, and print the URL and the demo logins."
    )

    def handle(self, *args: object, **options: object) -> None:
        if demo.demo_data_exists():
            self.stdout.write("Demo data already loaded; reusing it.")
        else:
            self.stdout.write("Loading demo data ...")
            demo.load_demo_data()
        # Every run: connects only the cars without a live connection (or whose simulator
        # vehicle is gone), so a second `make run` connects nothing new.
        connected = demo.demo_connect_cars(say=self.stdout.write)
        if connected:
            self.stdout.write(f"Connected {connected} demo cars to the vehicle-cloud simulator.")
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS(f"carshare is starting at {settings.SITE_URL}/"))
        self.stdout.write(
            f"Admin: {settings.SITE_URL}/admin/   API docs: {settings.SITE_URL}/api/v1/docs"
        )
        self.stdout.write(demo.demo_summary())
        self.stdout.write("Press Ctrl-C to stop everything.\n")
