"""Built-in reference data for the sample-data generator: names, places, streets, products.

Person names (person_names.csv: part, origin, name) and products (products.csv) are data files
beside this module; the smaller lists stand here. Names are listed in ASCII (umlauts and accents
transliterated: emails are built from them); NATIVE_SPELLINGS gives the native spelling of those
that have one, which the generator writes in most record copies (and with accents stripped, or
transliterated, in others). Lists are ordered roughly from common to rare; the generator samples
with a skew towards the front of each list.
"""

from __future__ import annotations

import csv
from pathlib import Path

# Countries in a fixed order: index 0..4 is the country code used throughout the generator.
COUNTRIES = ("US", "GB", "DE", "FR", "NL")
COUNTRY_WEIGHTS = (0.40, 0.20, 0.15, 0.15, 0.10)
CALLING_CODES = ("1", "44", "49", "33", "31")
CURRENCIES = ("USD", "GBP", "EUR", "EUR", "EUR")
# Name origin per country (index into NAME_ORIGINS); 80% of people carry a name of their country.
NAME_ORIGINS = ("en", "de", "fr", "nl")
COUNTRY_NAME_ORIGIN = (0, 0, 1, 2, 3)


def _read_names(part: str) -> dict[str, tuple[str, ...]]:
    """Names of `part` ("first" or "last") by origin, in person_names.csv's order."""
    names: dict[str, list[str]] = {}
    with Path(__file__).with_name("person_names.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["part"] == part:
                names.setdefault(row["origin"], []).append(row["name"])
    return {origin: tuple(listed) for origin, listed in names.items()}


FIRST_NAMES = _read_names("first")
LAST_NAMES = _read_names("last")

# ASCII spelling in person_names.csv → native spelling (accents, umlauts, ß).
NATIVE_SPELLINGS: dict[str, str] = {
    # first names
    "Juergen": "Jürgen", "Ines": "Inès", "Raphael": "Raphaël", "Theo": "Théo",
    "Celine": "Céline", "Valerie": "Valérie", "Aurelie": "Aurélie", "Francois": "François",
    "Elodie": "Élodie", "Sebastien": "Sébastien", "Clemence": "Clémence", "Oceane": "Océane",
    # last names
    "Mueller": "Müller", "Schaefer": "Schäfer", "Schroeder": "Schröder", "Krueger": "Krüger",
    "Koehler": "Köhler", "Koenig": "König", "Moeller": "Möller", "Weiss": "Weiß",
    "Guenther": "Günther", "Boehm": "Böhm", "Andre": "André", "Lefevre": "Lefèvre",
    "Guerin": "Guérin", "Clement": "Clément", "Gerard": "Gérard", "Noel": "Noël",
    "Muller": "Müller", "Garcia": "García", "Rodriguez": "Rodríguez", "Martinez": "Martínez",
    "Hernandez": "Hernández", "Lopez": "López", "Gonzalez": "González", "Perez": "Pérez",
    "Sanchez": "Sánchez", "Ramirez": "Ramírez", "Gomez": "Gómez", "Diaz": "Díaz",
    "Gutierrez": "Gutiérrez", "Jimenez": "Jiménez", "Alvarez": "Álvarez", "Munoz": "Muñoz",
    "Fernandez": "Fernández", "Mendez": "Méndez", "Guzman": "Guzmán",
}  # fmt: skip

# (country index, city, region, IANA time zone, postal seed, landline area code, weight)
# postal seed: US 3-digit ZIP prefix; GB outward letters; DE/FR 2-digit prefix; NL 2-digit prefix.
CITIES: tuple[tuple[int, str, str, str, str, str, float], ...] = (
    (0, "New York", "NY", "America/New_York", "100", "212", 0.20),
    (0, "Los Angeles", "CA", "America/Los_Angeles", "900", "213", 0.12),
    (0, "Chicago", "IL", "America/Chicago", "606", "312", 0.10),
    (0, "Houston", "TX", "America/Chicago", "770", "713", 0.08),
    (0, "Phoenix", "AZ", "America/Phoenix", "850", "602", 0.05),
    (0, "Philadelphia", "PA", "America/New_York", "191", "215", 0.06),
    (0, "San Francisco", "CA", "America/Los_Angeles", "941", "415", 0.06),
    (0, "Seattle", "WA", "America/Los_Angeles", "981", "206", 0.06),
    (0, "Denver", "CO", "America/Denver", "802", "303", 0.05),
    (0, "Boston", "MA", "America/New_York", "021", "617", 0.06),
    (0, "Atlanta", "GA", "America/New_York", "303", "404", 0.05),
    (0, "Miami", "FL", "America/New_York", "331", "305", 0.06),
    (0, "Austin", "TX", "America/Chicago", "787", "512", 0.05),
    (1, "London", "Greater London", "Europe/London", "SW", "20", 0.40),
    (1, "Manchester", "Greater Manchester", "Europe/London", "M", "161", 0.12),
    (1, "Birmingham", "West Midlands", "Europe/London", "B", "121", 0.12),
    (1, "Leeds", "West Yorkshire", "Europe/London", "LS", "113", 0.08),
    (1, "Glasgow", "Scotland", "Europe/London", "G", "141", 0.08),
    (1, "Bristol", "Bristol", "Europe/London", "BS", "117", 0.07),
    (1, "Edinburgh", "Scotland", "Europe/London", "EH", "131", 0.07),
    (1, "Liverpool", "Merseyside", "Europe/London", "L", "151", 0.06),
    (2, "Berlin", "Berlin", "Europe/Berlin", "10", "30", 0.25),
    (2, "Hamburg", "Hamburg", "Europe/Berlin", "20", "40", 0.16),
    (2, "Munich", "Bayern", "Europe/Berlin", "80", "89", 0.16),
    (2, "Cologne", "Nordrhein-Westfalen", "Europe/Berlin", "50", "221", 0.13),
    (2, "Frankfurt am Main", "Hessen", "Europe/Berlin", "60", "69", 0.10),
    (2, "Stuttgart", "Baden-Wuerttemberg", "Europe/Berlin", "70", "711", 0.10),
    (2, "Leipzig", "Sachsen", "Europe/Berlin", "04", "341", 0.10),
    (3, "Paris", "Ile-de-France", "Europe/Paris", "75", "1", 0.35),
    (3, "Lyon", "Auvergne-Rhone-Alpes", "Europe/Paris", "69", "4", 0.13),
    (3, "Marseille", "Provence-Alpes-Cote d'Azur", "Europe/Paris", "13", "4", 0.12),
    (3, "Toulouse", "Occitanie", "Europe/Paris", "31", "5", 0.10),
    (3, "Lille", "Hauts-de-France", "Europe/Paris", "59", "3", 0.10),
    (3, "Nantes", "Pays de la Loire", "Europe/Paris", "44", "2", 0.10),
    (3, "Bordeaux", "Nouvelle-Aquitaine", "Europe/Paris", "33", "5", 0.10),
    (4, "Amsterdam", "Noord-Holland", "Europe/Amsterdam", "10", "20", 0.30),
    (4, "Rotterdam", "Zuid-Holland", "Europe/Amsterdam", "30", "10", 0.20),
    (4, "The Hague", "Zuid-Holland", "Europe/Amsterdam", "25", "70", 0.15),
    (4, "Utrecht", "Utrecht", "Europe/Amsterdam", "35", "30", 0.15),
    (4, "Eindhoven", "Noord-Brabant", "Europe/Amsterdam", "56", "40", 0.10),
    (4, "Groningen", "Groningen", "Europe/Amsterdam", "97", "50", 0.10),
)

# US area codes of mobile numbers; disjoint from the cities' landline codes above.
US_MOBILE_AREA_CODES = (
    "332", "646", "917", "310", "424", "773", "832", "628", "720", "857", "786", "954", "678",
    "737", "480", "267", "425", "339", "323", "818",
)  # fmt: skip
# Area codes of a person's second (shop-only) number; never used for primary numbers.
US_ALT_AREA_CODES = ("347", "929", "747", "872", "281", "669", "253", "719", "781", "470")

STREET_STEMS: dict[int, tuple[str, ...]] = {
    0: ("Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park",
        "Church", "Madison", "Jefferson", "Lincoln", "Franklin", "Highland", "Sunset", "River",
        "Spring", "Walnut", "Chestnut", "Willow", "Broad", "Market"),
    1: ("High", "Station", "Church", "Victoria", "Queens", "Kings", "Park", "Mill", "York",
        "Manor", "London", "Albert", "Grange", "Springfield", "Windsor", "Richmond", "Chapel",
        "North", "Green", "Hawthorn"),
    2: ("Haupt", "Bahnhof", "Schiller", "Goethe", "Garten", "Berg", "Linden", "Kirch", "Schul",
        "Wald", "Dorf", "Ring", "Sonnen", "Rosen", "Birken", "Mozart", "Beethoven", "Friedhof",
        "Wiesen", "Muehlen"),
    3: ("de la Paix", "Victor Hugo", "des Lilas", "du Moulin", "Jean Jaures", "de la Republique",
        "Pasteur", "Gambetta", "de la Gare", "des Ecoles", "du Marche", "Voltaire",
        "de l'Eglise", "des Roses", "Nationale", "du Chateau", "Carnot", "Foch"),
    4: ("Kerk", "Dorp", "Molen", "School", "Linden", "Beuken", "Eiken", "Wilhelmina",
        "Juliana", "Oranje", "Stations", "Nieuwe", "Brink", "Vondel", "Prinsen", "Heren",
        "Keizers", "Zuider"),
}  # fmt: skip
STREET_KINDS: dict[int, tuple[str, ...]] = {
    0: ("St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Street", "Avenue"),
    1: ("Road", "Street", "Lane", "Avenue", "Close", "Gardens", "Way", "Crescent"),
    2: ("strasse", "weg", "allee", "platz", "ring", "gasse"),
    3: ("rue", "avenue", "boulevard", "place", "chemin", "impasse"),
    4: ("straat", "weg", "laan", "plein", "gracht", "singel"),
}  # fmt: skip
ADDRESS_LINE2: dict[int, tuple[str, ...]] = {
    0: ("Apt 1A", "Apt 2B", "Apt 3C", "Apt 4D", "Apt 12", "Suite 200", "Unit 5", "Apt 7F"),
    1: ("Flat 1", "Flat 2", "Flat 3", "Flat 4", "Flat 5A", "Flat 6B", "Ground Floor", "Flat 9"),
    2: ("1. OG", "2. OG", "3. OG", "EG links", "EG rechts", "Hinterhaus", "4. OG", "DG"),
    3: ("Bat. A", "Bat. B", "Apt 12", "Apt 21", "Esc. 2", "3e etage", "Residence Les Pins",
        "Apt 5"),
    4: ("1 hoog", "2 hoog", "3 hoog", "huis", "A", "B", "bis", "4 hoog"),
}  # fmt: skip

# Personal email domains and the work domains of shop-only addresses (disjoint: a work address
# never equals a personal one). All under reserved example domains (RFC 2606).
EMAIL_DOMAINS = (
    "example.com", "example.net", "example.org", "mail.example.com", "post.example.net",
    "inbox.example.org", "mx.example.com", "web.example.net",
)  # fmt: skip
WORK_DOMAINS = ("corp.example.com", "office.example.net", "work.example.org", "firm.example.com")

BUSINESS_NAMES = (
    "Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Proseware", "Adventure Works",
    "Wingtip", "Alpine Ski House", "Coho Vineyard", "Blue Yonder", "Fourth Coffee",
    "Graphic Design Institute", "Humongous Insurance", "Lucerne Publishing", "Margie Travel",
    "Southridge Video", "Trey Research", "Wide World Importers", "Woodgrove",
)  # fmt: skip
BUSINESS_SUFFIX = ("Inc", "Ltd", "GmbH", "SARL", "BV")  # by country index

CATEGORIES = (
    "shoes", "outerwear", "knitwear", "denim", "tops", "dresses", "accessories", "bags",
    "beauty", "home", "sport", "kids",
)  # fmt: skip
# (product name, category index, unit price in cents), from products.csv (category by name);
# product_id is P + 4-digit position + 1.
with (Path(__file__).with_name("products.csv")).open(newline="", encoding="utf-8") as _fh:
    PRODUCTS: tuple[tuple[str, int, int], ...] = tuple(
        (row["product_name"], CATEGORIES.index(row["category"]), int(row["unit_price_cents"]))
        for row in csv.DictReader(_fh)
    )

FEATURES = ("wishlist", "size_guide", "store_locator", "gift_cards", "reviews", "back_in_stock",
            "compare", "click_and_collect")  # fmt: skip
REFERRERS = ("direct", "google", "newsletter", "instagram", "facebook", "affiliate", "bing")
PAGES = ("/", "/sale", "/new-in", "/stores", "/help", "/account", "/cart", "/search")
APP_VERSIONS = ("4.12.0", "4.12.1", "4.13.0", "4.14.2", "5.0.0")
