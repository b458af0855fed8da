"""The makes carshare supports: the one list every form, filter and API validates against.

Identifiers are Smartcar's make ids (upper case, as the vehicle cloud reports them); the second
element is how people write the brand. Adding a make here is all it takes to offer it.
"""

SUPPORTED_MAKES: list[tuple[str, str]] = [
    ("ACURA", "Acura"),
    ("ALFA_ROMEO", "Alfa Romeo"),
    ("AUDI", "Audi"),
    ("BMW", "BMW"),
    ("BUICK", "Buick"),
    ("CADILLAC", "Cadillac"),
    ("CHEVROLET", "Chevrolet"),
    ("CHRYSLER", "Chrysler"),
    ("CITROEN", "Citroën"),
    ("CUPRA", "Cupra"),
    ("DACIA", "Dacia"),
    ("DODGE", "Dodge"),
    ("DS", "DS Automobiles"),
    ("FIAT", "Fiat"),
    ("FORD", "Ford"),
    ("GMC", "GMC"),
    ("HONDA", "Honda"),
    ("HYUNDAI", "Hyundai"),
    ("INFINITI", "Infiniti"),
    ("JAGUAR", "Jaguar"),
    ("JEEP", "Jeep"),
    ("KIA", "Kia"),
    ("LAND_ROVER", "Land Rover"),
    ("LEXUS", "Lexus"),
    ("LINCOLN", "Lincoln"),
    ("MAZDA", "Mazda"),
    ("MERCEDES_BENZ", "Mercedes-Benz"),
    ("MINI", "MINI"),
    ("MITSUBISHI", "Mitsubishi"),
    ("NISSAN", "Nissan"),
    ("OPEL", "Opel"),
    ("PEUGEOT", "Peugeot"),
    ("POLESTAR", "Polestar"),
    ("PORSCHE", "Porsche"),
    ("RAM", "Ram"),
    ("RENAULT", "Renault"),
    ("RIVIAN", "Rivian"),
    ("SEAT", "SEAT"),
    ("SKODA", "Škoda"),
    ("SUBARU", "Subaru"),
    ("TESLA", "Tesla"),
    ("TOYOTA", "Toyota"),
    ("VAUXHALL", "Vauxhall"),
    ("VOLKSWAGEN", "Volkswagen"),
    ("VOLVO", "Volvo"),
]

MAKE_IDS: frozenset[str] = frozenset(make for make, _ in SUPPORTED_MAKES)
MAKE_NAMES: dict[str, str] = dict(SUPPORTED_MAKES)

# Makes whose cars the vehicle cloud cannot lock and unlock remotely (Smartcar offers them no
# `control_security`). Owners may list them, but they are never public: carshare could not
# open one for a renter (vehicles.models.CarQuerySet.public).
NO_REMOTE_LOCK: frozenset[str] = frozenset({"MAZDA", "SKODA", "TOYOTA"})


def can_lock_remotely(make: str) -> bool:
    return make not in NO_REMOTE_LOCK


# The least time between two commands to one car, by make, in seconds: the vehicle cloud and the
# car makers throttle commands per car (about ten a minute for most; Hyundai and Kia limit lock
# and unlock harder), and a car woken too often drains its 12 V battery. Retries in a trip's
# start window never come faster than this (vehicles.cloud.sending).
COMMAND_MIN_INTERVAL_S = 6.0
COMMAND_MIN_INTERVAL_BY_MAKE: dict[str, float] = {"HYUNDAI": 60.0, "KIA": 60.0}


def command_min_interval(make: str) -> float:
    return COMMAND_MIN_INTERVAL_BY_MAKE.get(make, COMMAND_MIN_INTERVAL_S)
