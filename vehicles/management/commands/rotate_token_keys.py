"""Re-encrypt every stored OAuth token, and every owner's fallback for a car that will not open
remotely, under the first key of CARSHARE_TOKEN_KEYS.

Rotation: put the new key first in CARSHARE_TOKEN_KEYS (keeping the old ones after it), deploy,
run this command, then remove the old keys. Safe to run again, and while workers run.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from vehicles import crypto
from vehicles.models import Car, VehicleConnection


class Command(BaseCommand):
    help = "Re-encrypt all vehicle-cloud tokens under the first key of CARSHARE_TOKEN_KEYS."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = int(options["batch_size"])
        rotated = skipped = unreadable = 0
        last_pk = 0
        while True:
            # Keyset pages by pk: stable while rows change, and no long transaction or cursor.
            batch = list(
                VehicleConnection.objects.filter(pk__gt=last_pk)
                .exclude(access_token_encrypted="", refresh_token_encrypted="")
                .order_by("pk")
                .values_list("pk", "access_token_encrypted", "refresh_token_encrypted")[:batch_size]
            )
            if not batch:
                break
            for pk, access, refresh in batch:
                last_pk = pk
                try:
                    new_access = crypto.rotate_token(access) if access else ""
                    new_refresh = crypto.rotate_token(refresh) if refresh else ""
                except crypto.InvalidToken:
                    unreadable += 1
                    self.stderr.write(f"Connection {pk}: no configured key decrypts its tokens.")
                    continue
                # Conditional on the old ciphertext: a refresh that saved new tokens meanwhile
                # wins (and already used the first key), rather than being overwritten.
                updated = VehicleConnection.objects.filter(
                    pk=pk, access_token_encrypted=access, refresh_token_encrypted=refresh
                ).update(access_token_encrypted=new_access, refresh_token_encrypted=new_refresh)
                if updated:
                    rotated += 1
                else:
                    skipped += 1
        fallbacks, fallbacks_unreadable = self._rotate_fallbacks()
        unreadable += fallbacks_unreadable
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted the tokens of {rotated} connection(s); "
                f"{skipped} changed meanwhile (already under the new key); "
                f"{fallbacks} car fallback(s)."
            )
        )
        if unreadable:
            raise CommandError(
                f"{unreadable} connection(s) could not be decrypted with any configured key."
            )

    def _rotate_fallbacks(self) -> tuple[int, int]:
        rotated = unreadable = 0
        cars = Car.objects.exclude(fallback_encrypted="").values_list("pk", "fallback_encrypted")
        for pk, secret in cars.iterator():
            try:
                new = crypto.rotate_token(secret)
            except crypto.InvalidToken:
                unreadable += 1
                self.stderr.write(f"Car {pk}: no configured key decrypts its fallback.")
                continue
            # Conditional on the old ciphertext: an owner's edit meanwhile wins.
            rotated += Car.objects.filter(pk=pk, fallback_encrypted=secret).update(
                fallback_encrypted=new
            )
        return rotated, unreadable
