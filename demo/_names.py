"""Built-in reference data for the sample-data generator: names, places, streets, products.

Names are listed in ASCII (umlauts and accents transliterated: emails are built from them);
NATIVE_SPELLINGS gives the native spelling of those that have one, which the generator writes in
most record copies (and with accents stripped, or transliterated, in others). Lists are ordered roughly from common to rare; the generator
samples with a skew towards the front of each list.
"""

from __future__ import annotations

# Countries in a fixed order: index 0..4 is the country code used throughout the generator.
COUNTRIES = ("US", "GB", "DE", "FR", "NL")
COUNTRY_WEIGHTS = (0.40, 0.20, 0.15, 0.15, 0.10)
CALLING_CODES = ("1", "44", "49", "33", "31")
CURRENCIES = ("USD", "GBP", "EUR", "EUR", "EUR")
# Name origin per country (index into NAME_ORIGINS); 80% of people carry a name of their country.
NAME_ORIGINS = ("en", "de", "fr", "nl")
COUNTRY_NAME_ORIGIN = (0, 0, 1, 2, 3)

FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "en": (
        "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
        "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
        "Sarah", "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty",
        "Anthony", "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly", "Paul",
        "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda",
        "Brian", "Melissa", "George", "Deborah", "Timothy", "Stephanie", "Ronald", "Rebecca",
        "Edward", "Sharon", "Jason", "Laura", "Jeffrey", "Cynthia", "Ryan", "Kathleen", "Jacob",
        "Amy", "Gary", "Angela", "Nicholas", "Shirley", "Eric", "Anna", "Jonathan", "Brenda",
        "Stephen", "Pamela", "Larry", "Emma", "Justin", "Nicole", "Scott", "Helen", "Brandon",
        "Samantha", "Benjamin", "Katherine", "Samuel", "Christine", "Gregory", "Rachel",
        "Alexander", "Carolyn", "Patrick", "Janet", "Frank", "Catherine", "Raymond", "Maria",
        "Jack", "Heather", "Dennis", "Diane", "Tyler", "Olivia", "Aaron", "Julie", "Henry",
        "Victoria", "Adam", "Lauren", "Nathan", "Kelly", "Oliver", "Hannah", "Harry", "Grace",
        "Charlie", "Chloe", "Oscar", "Amelia", "Leo", "Isla", "Freddie", "Poppy", "Archie",
        "Evie", "Alfie", "Megan", "Ethan", "Abigail",
    ),
    "de": (
        "Lukas", "Mia", "Leon", "Lea", "Finn", "Lena", "Jonas", "Hanna", "Felix", "Leonie",
        "Maximilian", "Lina", "Elias", "Marie", "Noah", "Johanna", "Ben", "Clara", "Luis",
        "Greta", "Tim", "Sabine", "Moritz", "Petra", "Julian", "Ursula", "Niklas", "Monika",
        "Jan", "Katrin", "Tobias", "Anja", "Florian", "Birgit", "Stefan", "Heike", "Juergen",
        "Nina", "Klaus", "Jana", "Wolfgang", "Franziska", "Dieter", "Frieda", "Uwe", "Ida",
        "Matthias", "Emilia", "Sebastian", "Annika", "Markus", "Carla",
    ),
    "fr": (
        "Lucas", "Camille", "Hugo", "Manon", "Louis", "Ines", "Gabriel", "Jade", "Arthur",
        "Louise", "Jules", "Alice", "Raphael", "Juliette", "Theo", "Margaux", "Antoine",
        "Celine", "Pierre", "Nathalie", "Jean", "Isabelle", "Nicolas", "Sylvie", "Julien",
        "Sandrine", "Mathieu", "Valerie", "Guillaume", "Aurelie", "Francois", "Elodie",
        "Olivier", "Amandine", "Philippe", "Pauline", "Alain", "Mathilde", "Bernard", "Elise",
        "Christophe", "Margot", "Sebastien", "Agathe", "Maxime", "Ambre", "Baptiste", "Clemence",
        "Quentin", "Oceane",
    ),
    "nl": (
        "Daan", "Anouk", "Sem", "Sanne", "Lars", "Femke", "Thijs", "Fleur", "Bram", "Lotte",
        "Ruben", "Eva", "Sven", "Iris", "Jesse", "Tess", "Stijn", "Noor", "Jeroen", "Roos",
        "Pieter", "Lieke", "Joost", "Esther", "Bas", "Ingrid", "Koen", "Marieke", "Wouter",
        "Annelies", "Sander", "Yvonne", "Niels", "Mirjam", "Maarten", "Floor", "Willem", "Britt",
        "Henk", "Evi", "Gijs", "Maud",
    ),
}  # fmt: skip

LAST_NAMES: dict[str, tuple[str, ...]] = {
    "en": (
        "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
        "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
        "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris",
        "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
        "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson",
        "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez",
        "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes",
        "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz",
        "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim",
        "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett",
        "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel",
        "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell",
        "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Fisher", "Vasquez",
        "Simmons", "Romero", "Jordan", "Patterson", "Hamilton", "Graham", "Reynolds", "Griffin",
        "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis",
        "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens",
        "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas",
        "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson",
        "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon",
        "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Black", "Robertson", "Boyd", "Rose",
        "Stone", "Salazar", "Fox", "Warren", "Mills", "Rice", "Garza", "Daniels", "Ferguson",
        "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn",
        "Spencer", "Hawkins", "Arnold", "Pierce", "Hansen", "Santos", "Hart", "Bradley",
        "Knight", "Elliott", "Cunningham", "Duncan", "Armstrong", "Hudson", "Carroll", "Lane",
        "Riley", "Andrews", "Ray", "Berry", "Perkins", "Johnston", "Matthews", "Richards",
        "Willis", "Carpenter", "Lawrence", "O'Brien", "O'Connor", "Davies", "Walsh", "Byrne",
        "Clarke", "Khan", "Ali", "Begum", "Shah",
    ),
    "de": (
        "Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
        "Schulz", "Hoffmann", "Schaefer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
        "Schroeder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krueger", "Hofmann",
        "Hartmann", "Lange", "Schmitt", "Werner", "Schmitz", "Krause", "Meier", "Lehmann",
        "Schmid", "Schulze", "Maier", "Koehler", "Herrmann", "Koenig", "Walter", "Mayer",
        "Huber", "Kaiser", "Fuchs", "Peters", "Lang", "Scholz", "Moeller", "Weiss", "Jung",
        "Hahn", "Vogel", "Friedrich", "Keller", "Guenther", "Frank", "Berger", "Winkler", "Roth",
        "Beck", "Lorenz", "Baumann", "Franke", "Albrecht", "Schuster", "Simon", "Ludwig",
        "Boehm", "Winter", "Kraus", "Martin", "Schumacher",
    ),
    "fr": (
        "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
        "Laurent", "Lefebvre", "Michel", "David", "Bertrand", "Roux", "Vincent", "Fournier",
        "Morel", "Girard", "Andre", "Lefevre", "Mercier", "Dupont", "Lambert", "Bonnet",
        "Francois", "Legrand", "Garnier", "Faure", "Rousseau", "Blanc", "Guerin", "Muller",
        "Henry", "Roussel", "Nicolas", "Perrin", "Morin", "Mathieu", "Clement", "Gauthier",
        "Dumont", "Fontaine", "Chevalier", "Robin", "Masson", "Gerard", "Boyer", "Denis",
        "Lemaire", "Duval", "Joly", "Gautier", "Roger", "Roche", "Roy", "Noel", "Meyer",
        "Lucas", "Meunier", "Jean", "Perez", "Marchand", "Dufour", "Blanchard", "Barbier",
        "Brun", "Dumas", "Brunet", "Schmitt", "D'Angelo",
    ),
    "nl": (
        "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen",
        "Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters",
        "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits",
        "de Graaf", "van der Meer", "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen",
        "van den Heuvel", "van der Veen", "van den Broek", "de Bruijn", "de Bruin",
        "van der Heijden", "Schouten", "van Beek", "Willems", "van Vliet", "van de Ven",
        "Hoekstra", "Maas", "Verhoeven", "Koster", "van Dam", "van der Wal", "Prins", "Blom",
        "Huisman", "Peeters", "de Leeuw", "Kuipers", "Veenstra", "Kramer", "van den Bosch",
    ),
}  # fmt: skip

# ASCII spelling in the lists above → native spelling (accents, umlauts, ß).
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
# (product name, category index, unit price in cents); product_id is P + 4-digit position + 1.
PRODUCTS: tuple[tuple[str, int, int], ...] = (
    ("Classic Leather Sneaker", 0, 8900), ("Canvas Low Top", 0, 4500),
    ("Chelsea Boot", 0, 14900), ("Trail Runner", 0, 11000), ("Suede Loafer", 0, 9500),
    ("Summer Sandal", 0, 3900),
    ("Quilted Jacket", 1, 12900), ("Wool Overcoat", 1, 24900), ("Rain Parka", 1, 15900),
    ("Denim Jacket", 1, 7900), ("Down Vest", 1, 8900), ("Trench Coat", 1, 19900),
    ("Merino Crewneck", 2, 6900), ("Cable Knit Cardigan", 2, 7900), ("Cashmere Scarf", 2, 5900),
    ("Roll Neck Sweater", 2, 6500), ("Knitted Beanie", 2, 1900),
    ("Slim Fit Jeans", 3, 6900), ("Straight Leg Jeans", 3, 6500), ("Relaxed Jeans", 3, 6900),
    ("Denim Shorts", 3, 3900), ("Black Skinny Jeans", 3, 5900),
    ("Cotton T-Shirt", 4, 1500), ("Oxford Shirt", 4, 4500), ("Linen Shirt", 4, 4900),
    ("Striped Breton Top", 4, 3500), ("Polo Shirt", 4, 2900), ("Hooded Sweatshirt", 4, 4900),
    ("Wrap Dress", 5, 7900), ("Shirt Dress", 5, 6900), ("Knit Midi Dress", 5, 8900),
    ("Summer Maxi Dress", 5, 7500), ("Little Black Dress", 5, 9900),
    ("Leather Belt", 6, 3500), ("Aviator Sunglasses", 6, 8900), ("Silk Tie", 6, 4500),
    ("Wool Gloves", 6, 2900), ("Analog Watch", 6, 14900), ("Silver Earrings", 6, 3900),
    ("Canvas Tote", 7, 2900), ("Leather Backpack", 7, 12900), ("Crossbody Bag", 7, 8900),
    ("Weekender Duffel", 7, 10900), ("Card Holder", 7, 2500),
    ("Hand Cream", 8, 1200), ("Eau de Parfum 50ml", 8, 6900), ("Lip Balm Set", 8, 900),
    ("Face Serum", 8, 3900), ("Shampoo Bar", 8, 1100),
    ("Scented Candle", 9, 2400), ("Linen Cushion Cover", 9, 2900), ("Ceramic Mug Set", 9, 3200),
    ("Cotton Throw", 9, 5900), ("Bath Towel Set", 9, 4900),
    ("Running Tights", 10, 4900), ("Yoga Mat", 10, 3900), ("Sports Bra", 10, 3500),
    ("Training Shorts", 10, 2900), ("Water Bottle", 10, 1500), ("Cycling Jersey", 10, 6900),
    ("Kids Rain Boots", 11, 2900), ("Kids Puffer Jacket", 11, 5900), ("Kids Pyjamas", 11, 2500),
    ("Baby Bodysuit 3-Pack", 11, 1900), ("Kids Sneakers", 11, 3900), ("School Backpack", 11, 3500),
)  # fmt: skip

FEATURES = ("wishlist", "size_guide", "store_locator", "gift_cards", "reviews", "back_in_stock",
            "compare", "click_and_collect")  # fmt: skip
REFERRERS = ("direct", "google", "newsletter", "instagram", "facebook", "affiliate", "bing")
PAGES = ("/", "/sale", "/new-in", "/stores", "/help", "/account", "/cart", "/search")
APP_VERSIONS = ("4.12.0", "4.12.1", "4.13.0", "4.14.2", "5.0.0")
