"""A labelled card-transaction history: ordinary customers with their own habits, and fraud mixed in.

Pure standard library (no numpy/pandas) and deterministic for a seed, so the same history can be
regenerated anywhere to train the detection model and tune the rules::

    python -m fraud_pipeline.synthetic --days 90 --per-day 10000 --seed 1 --start 2026-01-05 --out history.csv.gz

(`.gz` means gzip; `--out -` writes to stdout; a summary goes to stderr unless `--quiet`.)

The world
---------
* About ``per_day / 2.5`` customers, each with one card (16-digit, Luhn-valid, starting with 4, unique),
  a ``cust-<letters>`` id, a home city (mostly USA, UK, Canada, France and Germany; a few residents of
  Lagos, Abuja and Tehran), a personal amount scale (log-normal, median 40: some customers spend 5-15,
  some 150-300) and spread, a daily rate (0.5-6 transactions a day), an active-hours profile in UTC
  (most shop between 6 and 23 UTC and never at night; about 8 % are night owls) and a few favourite
  merchants near home plus favourite online shops. Now and then they shop elsewhere in their city or
  online, travel (a trip of 2-10 days: purchases in the destination city, with ``location_mismatch``
  true when it is abroad; rarely a business trip to a high-risk country), make a genuine big purchase
  (electronics or travel, 3-10x their amount scale) and pay small whole-dollar amounts (coffee, transit
  fares, fuel).
* About ``per_day / 4`` merchants (``"Corner Cafe 0123"``) in ten categories: grocery, cafe, fuel,
  transit, restaurant, pharmacy, electronics, travel, online and gift_cards. Physical merchants have a
  city; online ones are at ``"Online, USA"`` (no meaningful location: never a location mismatch).
  Popularity is heavy-tailed, so many merchants see under one transaction a day.
* Each day has exactly ``per_day`` transactions (fraud included); the ordinary ones are drawn across
  customers in proportion to their rates (a Poisson draw per customer, conditioned on the day's total).

Fraud scenarios (``is_fraud`` true; about 0.6-1.0 % of all transactions in all)
-------------------------------------------------------------------------------
Fraud uses the victim's real card number and customer id, so per-card history features work.

``compromised_merchant``
    About one merchant per 5,000 daily transactions becomes compromised each day, for 14-35 days
    (mostly small, little-known merchants with a few regular customers). During the window 40-90 % of
    its transactions are fraud, on the cards of its regular customers, in its city, at ordinary-looking
    amounts (1-1.8x what that customer would pay there).
``account_takeover``
    A few cards a day (about one per 6,500 daily transactions) are taken over for 7-21 days; a third to a
    half of the card's transactions in that period are fraud, at 3-8x the card's typical amount, mostly at
    merchants the customer never used (online, electronics, gift cards), some abroad
    (``location_mismatch`` true). The customer keeps using the card meanwhile.
``card_testing_burst``
    A stolen card: 3-8 tiny whole-dollar amounts (1-9) at one online or gift-card merchant within a few
    minutes, then 0-2 purchases of 100-900 within the next hour.
``velocity_burst``
    6-12 transactions in 10-30 minutes on one card at varied merchants (mostly in the home city, some in
    another city or abroad), at 1-4x the card's typical amount.
``high_amount``
    One very large purchase (at least 5x the card's amount scale and over 2,000, up to about 20,000) at
    an electronics, travel or online merchant.
``high_risk_location``
    1-4 transactions in Lagos, Abuja, Tehran or Pyongyang on a card whose home is elsewhere
    (``location_mismatch`` true) at moderate to high amounts. Residents of Lagos, Abuja and Tehran (and
    rare business travellers) make genuine purchases there too.
``odd_hour``
    1-2 purchases at 0-5 UTC on a card that never shops at night, at 2.5-6x its typical amount.

Columns (`CSV_COLUMNS`): ``timestamp`` is epoch milliseconds, ``hour`` the UTC hour of it,
``velocity_flag`` is always false (producers do not send it), booleans are ``true``/``false`` and
``is_fraud`` is 1/0 in the CSV. Transaction ids are ``syn<seed>-<letters>``, in time order, and
never contain a run of digits a card-number scanner could flag.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import math
import os
import random
import sys
import time
from bisect import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import accumulate
from operator import itemgetter
from typing import IO, cast

__all__ = ["CSV_COLUMNS", "ORDINARY", "SCENARIOS", "Labelled", "history", "main", "read_csv", "summary", "write_csv"]

ORDINARY = "ordinary"
SCENARIOS = (
    "compromised_merchant",
    "account_takeover",
    "card_testing_burst",
    "velocity_burst",
    "high_amount",
    "high_risk_location",
    "odd_hour",
)
CSV_COLUMNS = (
    "transaction_id", "timestamp", "amount", "currency", "merchant", "card_number", "location",
    "customer_id", "hour", "location_mismatch", "velocity_flag", "is_fraud", "scenario",
)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Labelled:
    """One generated transaction with its label (`is_fraud`) and the generator that made it (`scenario`)."""

    transaction_id: str
    timestamp: int          # epoch milliseconds
    amount: float           # 2 decimals
    currency: str
    merchant: str
    card_number: str
    location: str           # "City, Country"
    customer_id: str
    hour: int               # UTC hour of timestamp
    location_mismatch: bool
    velocity_flag: bool     # always False: producers do not send it
    is_fraud: bool
    scenario: str           # "ordinary" or one of SCENARIOS


# --------------------------------------------------------------------------- the world's tables
#: Home cities: (city, country, share of customers).
HOME_CITIES = (
    ("New York", "USA", 10), ("Los Angeles", "USA", 8), ("Chicago", "USA", 6), ("Houston", "USA", 4),
    ("Austin", "USA", 3), ("Seattle", "USA", 4), ("Boston", "USA", 3), ("Miami", "USA", 3),
    ("San Francisco", "USA", 4), ("Denver", "USA", 2), ("Atlanta", "USA", 3), ("Phoenix", "USA", 2),
    ("London", "UK", 9), ("Manchester", "UK", 3), ("Birmingham", "UK", 2), ("Edinburgh", "UK", 1.5),
    ("Toronto", "Canada", 5), ("Vancouver", "Canada", 3), ("Montreal", "Canada", 3),
    ("Paris", "France", 6), ("Lyon", "France", 2), ("Marseille", "France", 1.5), ("Toulouse", "France", 1),
    ("Berlin", "Germany", 4), ("Munich", "Germany", 3), ("Hamburg", "Germany", 2), ("Frankfurt", "Germany", 2),
    ("Dublin", "Ireland", 0.5), ("Amsterdam", "Netherlands", 0.5), ("Madrid", "Spain", 0.5),
)
#: Destinations only (plus every home city of another country): (city, country, weight as a destination).
TRAVEL_CITIES = (
    ("Barcelona", "Spain", 3), ("Rome", "Italy", 3), ("Lisbon", "Portugal", 2), ("Mexico City", "Mexico", 2),
    ("Cancun", "Mexico", 3), ("Tokyo", "Japan", 2), ("Dubai", "United Arab Emirates", 2),
    ("Bangkok", "Thailand", 1.5), ("Reykjavik", "Iceland", 0.5),
)
#: High-risk cities: (city, country, weight as a fraud location, share of genuine residents).
HIGH_RISK_CITIES = (
    ("Lagos", "Nigeria", 4, 0.0020), ("Abuja", "Nigeria", 2, 0.0008), ("Tehran", "Iran", 2, 0.0008),
    ("Pyongyang", "North Korea", 1, 0.0),
)
HIGH_RISK_COUNTRIES = frozenset(country for _, country, _, _ in HIGH_RISK_CITIES)
ONLINE_LOCATION = ("Online", "USA")
CURRENCY = {"USA": "USD", "UK": "GBP", "Canada": "CAD", "France": "EUR", "Germany": "EUR", "Ireland": "EUR",
            "Netherlands": "EUR", "Spain": "EUR", "Italy": "EUR", "Portugal": "EUR"}   # elsewhere USD

#: Category -> (median amount for a customer of scale 40, exponent of the customer's scale, sigma, whole-dollar share).
AMOUNTS = {
    "grocery": (42.0, 0.8, 0.6, 0.0),
    "cafe": (6.5, 0.3, 0.4, 0.3),
    "fuel": (45.0, 0.4, 0.35, 0.4),
    "transit": (16.0, 0.4, 0.6, 0.2),
    "restaurant": (34.0, 0.8, 0.5, 0.05),
    "pharmacy": (19.0, 0.6, 0.6, 0.0),
    "electronics": (110.0, 0.8, 0.9, 0.1),
    "travel": (240.0, 0.8, 0.8, 0.05),
    "online": (32.0, 0.8, 0.85, 0.05),
    "gift_cards": (25.0, 0.5, 0.5, 1.0),
}
FARES = (2.0, 2.5, 2.75, 2.9, 3.0, 3.0, 5.0, 1.0)
GIFT_DENOMINATIONS = (10.0, 15.0, 20.0, 25.0, 25.0, 50.0, 50.0, 100.0, 200.0)
NAMES = {
    "grocery": ("City Grocer", "Green Market", "Fresh Mart", "Family Foods", "Corner Grocery", "Daily Basket"),
    "cafe": ("Corner Cafe", "Bean House", "Morning Brew", "Espresso Bar", "Tea Room", "Bakery Cafe"),
    "fuel": ("Fuel Stop", "Gas and Go", "Highway Fuel", "Quick Petrol"),
    "transit": ("Metro Transit", "City Cabs", "Rail Tickets", "Bus Pass Kiosk", "Ride Share"),
    "restaurant": ("Pizza Place", "Noodle Bar", "Steak House", "Burger Joint", "Bistro", "Taco Stand", "Sushi Bar"),
    "pharmacy": ("Pharma Plus", "Health Drugstore", "Care Pharmacy"),
    "electronics": ("Tech Outlet", "Gadget World", "Phone Shop", "Computer Corner"),
    "travel": ("Sky Airlines", "Grand Hotel", "Travel Agency", "Car Rental", "Rail Europe"),
    "online": ("Web Bazaar", "Shop Online", "Stream Plus", "App Market", "E-Books Store", "Fashion Online",
               "Food Delivery"),
    "gift_cards": ("GiftCard Hub", "eGift Center", "Prepaid Cards", "Game Credits"),
}
#: Category mix of physical and of online merchants.
PHYSICAL_MIX = {"grocery": 20, "cafe": 18, "fuel": 9, "transit": 6, "restaurant": 24, "pharmacy": 8,
                "electronics": 7, "travel": 6, "gift_cards": 1}
ONLINE_MIX = {"online": 78, "gift_cards": 9, "electronics": 7, "travel": 6}
#: How much a customer likes a category among their favourites.
FAVOURITE_WEIGHT = {"grocery": 1.5, "cafe": 1.5, "fuel": 0.8, "transit": 0.8, "restaurant": 1.0, "pharmacy": 0.5,
                    "electronics": 0.08, "travel": 0.04, "gift_cards": 0.05, "online": 1.0}
ONLINE_SHARE = 0.12
BIG_PURCHASE = 0.004             # share of ordinary transactions that are a genuine 3-10x purchase
TRIP_EVERY_DAYS = 250            # a customer starts a trip about once in this many days
NIGHT_OWLS = 0.08
NIGHT_SLIP = 0.004               # chance a "loose" day customer shops at any hour
ALPHABET = "abcdefghijklmnopqrstuvwxyz"

#: Scenario event rates: events a day per this many daily transactions.
RATE_COMPROMISED = 5_000
RATE_TAKEOVER = 6_500
RATE_CARD_TESTING = 9_000
RATE_VELOCITY = 11_000
RATE_HIGH_AMOUNT = 5_000
RATE_HIGH_RISK = 5_000
RATE_ODD_HOUR = 4_000


# --------------------------------------------------------------------------- helpers
def _letters(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 26)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def _luhn_check_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _event_days(rng: random.Random, per_day_rate: float, days: int) -> list[int]:
    """Days on which a scenario's events start: Poisson over the whole range, at least one event."""
    return sorted(rng.randrange(days) for _ in range(max(1, _poisson(rng, per_day_rate * days))))


def _money(x: float) -> float:
    return round(max(0.5, x), 2)


class _Merchant:
    __slots__ = ("category", "city", "country", "currency", "fans", "location", "name", "online", "popularity",
                 "volume")

    def __init__(self, name, city, country, category, online, popularity):
        self.name, self.city, self.country, self.category = name, city, country, category
        self.location = f"{city}, {country}"
        self.currency = CURRENCY.get(country, "USD")
        self.online, self.popularity = online, popularity
        self.fans: list[tuple[int, float]] = []      # (customer index, expected visits a day)
        self.volume = 0.0                            # expected genuine transactions a day


class _Customer:
    __slots__ = ("card", "center", "city", "country", "customer_id", "fav_cum", "favs", "medians", "night", "p_fav",
                 "rate", "resident", "scale", "sd", "spread", "strict", "typical")
    # set by _World._customers; declared for the type checker (values live in the slots)
    card: str
    center: float
    city: str
    country: str
    customer_id: str
    fav_cum: list[float]
    favs: list[int]
    medians: dict[str, float]
    night: bool
    p_fav: float
    rate: float
    resident: bool
    scale: float
    sd: float
    spread: float
    strict: bool
    typical: float

    def _hour(self, rng: random.Random) -> int:
        if self.night:
            return math.floor(rng.gauss(self.center, self.sd)) % 24
        if not self.strict and rng.random() < NIGHT_SLIP:
            return rng.randrange(24)
        while True:
            h = math.floor(rng.gauss(self.center, self.sd))
            if 6 <= h <= 23:
                return h


class _World:
    """Merchants, customers, trips and the lookup tables the generators share."""

    def __init__(self, rng: random.Random, per_day: int, days: int):
        self.per_day, self.days = per_day, days
        self._cities(rng)
        self._merchants(rng, max(per_day // 4, 150))
        self._customers(rng, max(round(per_day / 2.5), 40))
        self._volumes()
        self._trips(rng)

    # ---- places
    def _cities(self, rng: random.Random) -> None:
        self.city_country: dict[str, str] = {}
        for city, country, _ in HOME_CITIES + TRAVEL_CITIES:
            self.city_country[city] = country
        for city, country, _, _ in HIGH_RISK_CITIES:
            self.city_country[city] = country
        self.home_cities = [c for c, _, _ in HOME_CITIES]
        self.home_weights = [w for _, _, w in HOME_CITIES]
        self.travel_cities = [c for c, _, _ in TRAVEL_CITIES]

    def _merchants(self, rng: random.Random, n: int) -> None:
        n_online = max(12, round(n * ONLINE_SHARE))
        n_physical = max(n - n_online, 3 * len(self.city_country))
        width = max(4, len(str(n_online + n_physical)) + 1)
        numbers = iter(rng.sample(range(10 ** width), n_online + n_physical))
        place_weight = {c: w for c, _, w in HOME_CITIES}
        place_weight.update({c: 0.5 * w for c, _, w in TRAVEL_CITIES})
        place_weight.update({c: 0.35 for c, _, _, _ in HIGH_RISK_CITIES})
        cities = list(place_weight)
        placed = [c for c in cities for _ in range(3)]          # every city has a few merchants
        placed += rng.choices(cities, weights=[place_weight[c] for c in cities], k=n_physical - len(placed))
        merchants: list[_Merchant] = []

        def make(city: str, country: str, mix: Mapping[str, float], online: bool) -> None:
            category = rng.choices(list(mix), weights=list(mix.values()))[0]
            name = f"{rng.choice(NAMES[category])} {next(numbers):0{width}d}"
            merchants.append(_Merchant(name, city, country, category, online, rng.lognormvariate(0, 1.1)))

        for city in placed:
            make(city, self.city_country[city], PHYSICAL_MIX, False)
        for _ in range(n_online):
            make(*ONLINE_LOCATION, ONLINE_MIX, True)
        self.merchants = merchants
        self.by_city: dict[str, list[int]] = {}
        for i, m in enumerate(merchants):
            if not m.online:
                self.by_city.setdefault(m.city, []).append(i)
        self.city_cum = {c: list(accumulate(merchants[i].popularity for i in idx)) for c, idx in self.by_city.items()}
        self.online = [i for i, m in enumerate(merchants) if m.online]
        self.online_cum = list(accumulate(merchants[i].popularity for i in self.online))
        self.online_risky = [i for i in self.online if merchants[i].category in ("online", "gift_cards", "electronics")]
        self.online_testing = [i for i in self.online if merchants[i].category in ("online", "gift_cards")]
        self.big_online = [i for i in self.online if merchants[i].category in ("electronics", "travel")] or self.online
        self.big_by_city = {c: [i for i in idx if merchants[i].category in ("electronics", "travel")]
                            for c, idx in self.by_city.items()}

    def pick_in_city(self, rng: random.Random, city: str) -> int:
        idx, cum = self.by_city[city], self.city_cum[city]
        return idx[bisect(cum, rng.random() * cum[-1])]

    def pick_online(self, rng: random.Random) -> int:
        return self.online[bisect(self.online_cum, rng.random() * self.online_cum[-1])]

    def pick_big(self, rng: random.Random, city: str) -> int:
        local = self.big_by_city.get(city)
        if local and rng.random() < 0.6:
            return rng.choice(local)
        return rng.choice(self.big_online)

    # ---- people
    def _customers(self, rng: random.Random, n: int) -> None:
        customers: list[_Customer] = []
        cards: set[str] = set()
        offset = rng.randrange(26 ** 6)
        residents = [(city, share) for city, _, _, share in HIGH_RISK_CITIES if share > 0]
        merchants = self.merchants
        for i in range(n):
            c = _Customer()
            c.customer_id = f"cust-{_letters((i * 7919 + offset) % 26 ** 6, 6)}"
            while True:
                partial = "4" + "".join(rng.choices("0123456789", k=14))
                card = partial + _luhn_check_digit(partial)
                if card not in cards:
                    cards.add(card)
                    break
            c.card = card
            r, c.resident = rng.random(), False
            for city, share in residents:
                if r < share:
                    c.city, c.resident = city, True
                    break
                r -= share
            else:
                c.city = rng.choices(self.home_cities, weights=self.home_weights)[0]
            c.country = self.city_country[c.city]
            c.scale = min(400.0, max(4.0, rng.lognormvariate(math.log(40), 0.85)))
            c.spread = rng.uniform(0.7, 1.3)
            c.rate = min(6.0, max(0.5, rng.lognormvariate(math.log(2.1), 0.6)))
            c.night = rng.random() < NIGHT_OWLS
            c.strict = rng.random() < 0.7
            if c.night:
                c.center, c.sd = rng.uniform(21.0, 27.0), rng.uniform(2.0, 3.5)
            else:
                c.center, c.sd = rng.uniform(11.5, 17.5), rng.uniform(2.0, 3.5)
            c.p_fav = rng.uniform(0.72, 0.92)
            scale = c.scale / 40.0
            c.medians = {cat: med * scale ** expo for cat, (med, expo, _, _) in AMOUNTS.items()}
            # favourites: a few merchants near home and an online shop or two, by popularity and taste
            local = self.by_city[c.city]
            weights = [merchants[j].popularity * FAVOURITE_WEIGHT[merchants[j].category] for j in local]
            favs = set(rng.choices(local, weights=weights, k=rng.randint(3, 8)))
            online_w = [merchants[j].popularity * FAVOURITE_WEIGHT[merchants[j].category] for j in self.online]
            favs.update(rng.choices(self.online, weights=online_w, k=rng.randint(1, 3)))
            c.favs = sorted(favs)
            c.fav_cum = list(accumulate(rng.lognormvariate(0.0, 1.0) for _ in c.favs))
            customers.append(c)
        self.customers = customers
        total_rate = sum(c.rate for c in customers)
        self.rate_cum = list(accumulate(c.rate for c in customers))
        self.daily = [c.rate * self.per_day / total_rate for c in customers]   # expected transactions a day
        # each card's typical amount (median of its own habits): the "normal" fraud is measured against
        sim = random.Random(rng.random())
        for c in customers:
            c.typical = sorted(self.habit(sim, c, self.habit_merchant(sim, c)) for _ in range(31))[15]

    def _volumes(self) -> None:
        for ci, c in enumerate(self.customers):
            prev = 0.0
            for j, cum in zip(c.favs, c.fav_cum):
                visits = self.daily[ci] * c.p_fav * (cum - prev) / c.fav_cum[-1]
                prev = cum
                m = self.merchants[j]
                m.fans.append((ci, visits))
                m.volume += visits
        # occasional shopping spread over the city's (and the online) merchants by popularity
        other: dict[str, float] = {}
        online = 0.0
        for ci, c in enumerate(self.customers):
            rest = self.daily[ci] * (1 - c.p_fav)
            online += 0.4 * rest
            other[c.city] = other.get(c.city, 0.0) + 0.6 * rest
        for city, visits in other.items():
            total = self.city_cum[city][-1]
            for j in self.by_city[city]:
                self.merchants[j].volume += visits * self.merchants[j].popularity / total
        for j in self.online:
            self.merchants[j].volume += online * self.merchants[j].popularity / self.online_cum[-1]

    def _trips(self, rng: random.Random) -> None:
        self.trips: list[dict[int, str]] = [{} for _ in range(self.days)]
        abroad_for: dict[str, tuple[list[str], list[float]]] = {}
        everywhere = [(c, k, w) for c, k, w in HOME_CITIES] + [(c, k, w) for c, k, w in TRAVEL_CITIES]
        for ci, c in enumerate(self.customers):
            for _ in range(_poisson(rng, self.days / TRIP_EVERY_DAYS)):
                r = rng.random()
                if r < 0.012 and not c.resident:
                    dest = rng.choice(("Lagos", "Lagos", "Abuja", "Tehran"))        # business trip
                elif r < 0.25:
                    same = [k for k, country, _ in HOME_CITIES if country == c.country and k != c.city]
                    dest = rng.choice(same) if same else rng.choice(self.home_cities)
                else:
                    if c.country not in abroad_for:
                        options = [(k, w) for k, country, w in everywhere if country != c.country]
                        abroad_for[c.country] = ([k for k, _ in options], [w for _, w in options])
                    names, weights = abroad_for[c.country]
                    dest = rng.choices(names, weights=weights)[0]
                first = rng.randrange(-5, self.days)
                for d in range(max(0, first), min(self.days, first + rng.randint(2, 10))):
                    self.trips[d][ci] = dest

    # ---- habits
    def habit_merchant(self, rng: random.Random, c: _Customer) -> int:
        if rng.random() < c.p_fav:
            return c.favs[bisect(c.fav_cum, rng.random() * c.fav_cum[-1])]
        if rng.random() < 0.4:
            return self.pick_online(rng)
        return self.pick_in_city(rng, c.city)

    def habit(self, rng: random.Random, c: _Customer, j: int) -> float:
        """What customer `c` would ordinarily pay at merchant `j`."""
        category = self.merchants[j].category
        _, _, sigma, whole = AMOUNTS[category]
        if category == "transit" and rng.random() < 0.55:
            return rng.choice(FARES)
        if category == "gift_cards":
            return rng.choice(GIFT_DENOMINATIONS)
        x = c.medians[category] * math.exp(rng.gauss(0.0, sigma * c.spread))
        if category == "online" and rng.random() < 0.03:
            return rng.choice((0.99, 1.99, 2.99, 4.99, 1.0, 5.0, 9.99))          # apps, subscriptions
        if rng.random() < whole:
            return float(max(1, round(x)))
        return _money(x)

    def mismatch(self, c: _Customer, j: int) -> bool:
        m = self.merchants[j]
        return not m.online and m.country != c.country


# --------------------------------------------------------------------------- generators
# Each returns raw rows: (timestamp ms, amount, merchant index, customer index, location_mismatch, is_fraud, scenario)

def _ordinary(world: _World, rng: random.Random, base_ms: int, counts: list[int]) -> list[tuple]:
    customers, merchants = world.customers, world.merchants
    index = range(len(customers))
    rows: list[tuple] = []
    append = rows.append
    for d, n in enumerate(counts):
        if n <= 0:
            continue
        trips = world.trips[d]
        day_ms = base_ms + d * DAY_MS
        for ci in rng.choices(index, cum_weights=world.rate_cum, k=n):
            c = customers[ci]
            dest = trips.get(ci)
            if rng.random() < BIG_PURCHASE:
                j = world.pick_big(rng, dest or c.city)
                amount = _money(c.scale * rng.uniform(3.0, 10.0))
            else:
                if dest is None:
                    j = world.habit_merchant(rng, c)
                elif rng.random() < 0.85:
                    j = world.pick_in_city(rng, dest)
                else:
                    j = world.pick_online(rng)
                amount = world.habit(rng, c, j)
            m = merchants[j]
            mismatch = not m.online and m.country != c.country
            append((day_ms + c._hour(rng) * HOUR_MS + rng.randrange(HOUR_MS), amount, j, ci, mismatch, False, ORDINARY))
    return rows


def _compromised_merchant(world: _World, rng: random.Random, base_ms: int) -> list[tuple]:
    """Small merchants with regular customers are compromised for 14-35 days; 40-90 % of their sales are fraud."""
    merchants = world.merchants
    candidates = [j for j, m in enumerate(merchants) if not m.online and len(m.fans) >= 2
                  and m.country not in HIGH_RISK_COUNTRIES]
    weights = [1.0 / (merchants[j].volume + 0.1) ** 3 for j in candidates]
    rows: list[tuple] = []
    taken: set[int] = set()
    for start in _event_days(rng, world.per_day / RATE_COMPROMISED, world.days):
        j = rng.choices(candidates, weights=weights)[0]
        if j in taken:
            continue
        taken.add(j)
        m = merchants[j]
        share = rng.uniform(0.4, 0.9)
        fans = [ci for ci, _ in m.fans]
        fan_cum = list(accumulate(v for _, v in m.fans))
        lift = rng.uniform(1.0, 1.5)
        for d in range(start, min(world.days, start + rng.randint(14, 35))):
            for _ in range(_poisson(rng, m.volume * share / (1 - share))):
                ci = fans[bisect(fan_cum, rng.random() * fan_cum[-1])]
                c = world.customers[ci]
                ts = base_ms + d * DAY_MS + c._hour(rng) * HOUR_MS + rng.randrange(HOUR_MS)
                amount = _money(world.habit(rng, c, j) * lift * rng.uniform(1.0, 1.2))
                rows.append((ts, amount, j, ci, world.mismatch(c, j), True, "compromised_merchant"))
    return rows


def _account_takeover(world: _World, rng: random.Random, base_ms: int) -> list[tuple]:
    """A card is taken over for 7-21 days: a third to a half of its transactions are fraud at 3-8x its normal."""
    rows: list[tuple] = []
    customers = world.customers
    far = {country: [k for k in world.by_city if world.city_country[k] != country
                     and world.city_country[k] not in HIGH_RISK_COUNTRIES] for country in set(world.city_country.values())}
    for start in _event_days(rng, world.per_day / RATE_TAKEOVER, world.days):
        ci = rng.randrange(len(customers))
        c = customers[ci]
        duration = rng.randint(7, 21)
        share = rng.uniform(1 / 3, 1 / 2)
        n = max(2, _poisson(rng, world.daily[ci] * duration * share / (1 - share)))
        own = set(c.favs)
        # the fraudster's own handful of merchants: online shops, electronics, gift cards; a few abroad
        haunts = []
        for _ in range(rng.randint(2, 5)):
            r = rng.random()
            if r < 0.6:
                haunts.append(rng.choice(world.online_risky))
            elif r < 0.8:
                haunts.append(world.pick_big(rng, c.city))
            else:
                haunts.append(world.pick_in_city(rng, rng.choice(far[c.country])))
        haunts = [j for j in haunts if j not in own] or [rng.choice(world.online_risky)]
        for _ in range(n):
            d = start + rng.randrange(duration)
            if d >= world.days:
                continue
            j = rng.choice(c.favs) if rng.random() < 0.2 else rng.choice(haunts)
            hour = c._hour(rng) if rng.random() < 0.5 else rng.randrange(24)
            ts = base_ms + d * DAY_MS + hour * HOUR_MS + rng.randrange(HOUR_MS)
            amount = _money(c.typical * rng.uniform(3.0, 8.0))
            rows.append((ts, amount, j, ci, world.mismatch(c, j), True, "account_takeover"))
    return rows


def _card_testing_burst(world: _World, rng: random.Random, base_ms: int) -> list[tuple]:
    """3-8 tiny whole-dollar tests at one online/gift-card merchant in minutes, then 0-2 purchases of 100-900."""
    rows: list[tuple] = []
    for d in _event_days(rng, world.per_day / RATE_CARD_TESTING, world.days):
        ci = rng.randrange(len(world.customers))
        c = world.customers[ci]
        j = rng.choice(world.online_testing)
        t = base_ms + d * DAY_MS + rng.randrange(DAY_MS)
        for _ in range(rng.randint(3, 8)):
            t += rng.randint(5, 75) * 1000
            rows.append((t, float(rng.randint(1, 9)), j, ci, world.mismatch(c, j), True, "card_testing_burst"))
        for _ in range(rng.randint(0, 2)):
            t += rng.randint(2, 30) * MINUTE_MS
            k = j if rng.random() < 0.4 else rng.choice(world.online_risky)
            rows.append((t, _money(rng.uniform(100, 900)), k, ci, world.mismatch(c, k), True, "card_testing_burst"))
    return rows


def _velocity_burst(world: _World, rng: random.Random, base_ms: int) -> list[tuple]:
    """6-12 transactions in 10-30 minutes on one card at varied merchants."""
    rows: list[tuple] = []
    for d in _event_days(rng, world.per_day / RATE_VELOCITY, world.days):
        ci = rng.randrange(len(world.customers))
        c = world.customers[ci]
        r = rng.random()
        city = c.city if r < 0.65 else rng.choice(world.home_cities) if r < 0.9 else rng.choice(world.travel_cities)
        t0 = base_ms + d * DAY_MS + rng.randrange(DAY_MS)
        window = rng.randint(10, 30) * MINUTE_MS
        for t in sorted(t0 + rng.randrange(window) for _ in range(rng.randint(6, 12))):
            j = world.pick_in_city(rng, city) if rng.random() < 0.75 else rng.choice(world.online_risky)
            amount = _money(max(world.habit(rng, c, j), c.typical) * rng.uniform(1.0, 4.0))
            rows.append((t, amount, j, ci, world.mismatch(c, j), True, "velocity_burst"))
    return rows


def _high_amount(world: _World, rng: random.Random, base_ms: int) -> list[tuple]:
    """One very large purchase: >= 5x the card's scale and > 2,000, up to about 20,000."""
    rows: list[tuple] = []
    for d in _event_days(rng, world.per_day / RATE_HIGH_AMOUNT, world.days):
        ci = rng.randrange(len(world.customers))
        c = world.customers[ci]
        amount = math.exp(rng.uniform(math.log(2100), math.log(20000)))
        amount = min(20000.0, max(amount, 5 * max(c.scale, c.typical) * rng.uniform(1.05, 1.5), 2001.0))
        r = rng.random()
        j = world.pick_big(rng, c.city) if r < 0.75 else rng.choice(world.online_risky)
        hour = c._hour(rng) if rng.random() < 0.5 else rng.randrange(24)
        ts = base_ms + d * DAY_MS + hour * HOUR_MS + rng.randrange(HOUR_MS)
        rows.append((ts, _money(amount), j, ci, world.mismatch(c, j), True, "high_amount"))
    return rows


def _high_risk_location(world: _World, rng: random.Random, base_ms: int) -> list[tuple]:
    """1-4 purchases in a high-risk country on a card whose home is elsewhere."""
    rows: list[tuple] = []
    cities = [city for city, _, _, _ in HIGH_RISK_CITIES]
    weights = [w for _, _, w, _ in HIGH_RISK_CITIES]
    victims = [i for i, c in enumerate(world.customers) if c.country not in HIGH_RISK_COUNTRIES]
    for d in _event_days(rng, world.per_day / RATE_HIGH_RISK, world.days):
        ci = rng.choice(victims)
        c = world.customers[ci]
        city = rng.choices(cities, weights=weights)[0]
        t = base_ms + d * DAY_MS + (math.floor(rng.gauss(12, 4)) % 24) * HOUR_MS + rng.randrange(HOUR_MS)
        for _ in range(rng.randint(1, 4)):
            j = world.pick_in_city(rng, city)
            amount = max(c.typical * rng.uniform(2.0, 6.0), rng.lognormvariate(math.log(350), 0.7))
            rows.append((t, _money(amount), j, ci, True, True, "high_risk_location"))
            t += rng.randint(3, 120) * MINUTE_MS
    return rows


def _odd_hour(world: _World, rng: random.Random, base_ms: int) -> list[tuple]:
    """1-2 purchases at 0-5 UTC on a card that never shops at night."""
    rows: list[tuple] = []
    victims = [i for i, c in enumerate(world.customers) if c.strict and not c.night]
    for d in _event_days(rng, world.per_day / RATE_ODD_HOUR, world.days):
        ci = rng.choice(victims)
        c = world.customers[ci]
        t = base_ms + d * DAY_MS + rng.randrange(6 * HOUR_MS - 70 * MINUTE_MS)
        for _ in range(rng.randint(1, 2)):
            j = rng.choice(world.online_risky) if rng.random() < 0.6 else world.pick_in_city(rng, c.city)
            rows.append((t, _money(c.typical * rng.uniform(2.5, 6.0)), j, ci, world.mismatch(c, j), True, "odd_hour"))
            t += rng.randint(2, 60) * MINUTE_MS
    return rows


GENERATORS = {
    "compromised_merchant": _compromised_merchant,
    "account_takeover": _account_takeover,
    "card_testing_burst": _card_testing_burst,
    "velocity_burst": _velocity_burst,
    "high_amount": _high_amount,
    "high_risk_location": _high_risk_location,
    "odd_hour": _odd_hour,
}


# --------------------------------------------------------------------------- public API
def history(days: int, per_day: int, seed: int = 1, start: date = date(2026, 1, 5)) -> list[Labelled]:
    """`days` x `per_day` labelled transactions from `start` (UTC midnight), sorted by timestamp.

    Each day has exactly `per_day` rows (unless fraud alone exceeds it, at tiny sizes), fraud included.
    """
    if days < 1 or per_day < 1:
        raise ValueError("days and per_day must be at least 1")
    base_ms = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()) * 1000
    end_ms = base_ms + days * DAY_MS
    world = _World(random.Random(f"{seed}:world"), per_day, days)
    fraud: list[tuple] = []
    for name in SCENARIOS:
        rows = GENERATORS[name](world, random.Random(f"{seed}:{name}"), base_ms)
        fraud.extend(row for row in rows if row[0] < end_ms)
    counts = [per_day] * days
    for row in fraud:
        counts[(row[0] - base_ms) // DAY_MS] -= 1
    rows = _ordinary(world, random.Random(f"{seed}:ordinary"), base_ms, counts)
    rows.extend(fraud)
    rows.sort(key=itemgetter(0))

    prefix = f"syn{seed}-" if 0 <= seed < 1_000_000 else f"syn{_letters(abs(seed) % 26 ** 10, 10)}-"
    width = max(7, math.ceil(math.log(len(rows) + 1, 26)))
    customers, merchants = world.customers, world.merchants
    out: list[Labelled] = []
    append = out.append
    for i, (ts, amount, j, ci, mismatch, is_fraud, scenario) in enumerate(rows):
        c, m = customers[ci], merchants[j]
        append(Labelled(prefix + _letters(i, width), ts, amount, m.currency, m.name, c.card, m.location,
                        c.customer_id, (ts // HOUR_MS) % 24, mismatch, False, is_fraud, scenario))
    return out


def _csv_row(t: Labelled) -> tuple:
    return (t.transaction_id, t.timestamp, f"{t.amount:.2f}", t.currency, t.merchant, t.card_number, t.location,
            t.customer_id, t.hour, "true" if t.location_mismatch else "false",
            "true" if t.velocity_flag else "false", 1 if t.is_fraud else 0, t.scenario)


def write_csv(rows: Iterable[Labelled], path_or_file: str | os.PathLike[str] | IO[str] | IO[bytes]) -> int:
    """Write `rows` as CSV (header `CSV_COLUMNS`) to a path (`.gz` = gzip; `-` = stdout) or an open file.

    Returns the number of rows written.
    """
    if isinstance(path_or_file, (str, os.PathLike)) and os.fspath(path_or_file) == "-":
        return write_csv(rows, sys.stdout)
    if isinstance(path_or_file, (str, os.PathLike)):
        path = os.fspath(path_or_file)
        if path.endswith(".gz"):        # mtime 0 and no name in the header: the same seed gives the same bytes
            with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", compresslevel=6,
                                                       mtime=0) as packed:
                return _write_binary(rows, packed)
        with open(path, "w", encoding="utf-8", newline="") as f:
            return _write_text(rows, f)
    stream = path_or_file
    mode = getattr(stream, "mode", "")
    # a binary stream is told apart at run time (its class or its mode), which the type checker cannot follow
    if isinstance(stream, (io.RawIOBase, io.BufferedIOBase)) or (isinstance(mode, str) and "b" in mode):
        return _write_binary(rows, cast("IO[bytes]", stream))
    return _write_text(rows, cast("IO[str]", stream))


def _write_binary(rows: Iterable[Labelled], raw: IO[bytes] | gzip.GzipFile) -> int:
    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    try:
        return _write_text(rows, text)
    finally:
        text.flush()
        text.detach()


def _write_text(rows: Iterable[Labelled], f: IO[str]) -> int:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n = 0
    for t in rows:
        writer.writerow(_csv_row(t))
        n += 1
    return n


def read_csv(path_or_file: str | os.PathLike | IO[str]) -> list[Labelled]:
    """Read a file written by `write_csv` back into `Labelled` rows."""
    if isinstance(path_or_file, (str, os.PathLike)):
        path = os.fspath(path_or_file)
        if path.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
                return read_csv(f)
        with open(path, encoding="utf-8", newline="") as f:
            return read_csv(f)
    reader = csv.DictReader(path_or_file)
    if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
        raise ValueError(f"unexpected header {reader.fieldnames!r}; expected {CSV_COLUMNS!r}")
    return [Labelled(r["transaction_id"], int(r["timestamp"]), float(r["amount"]), r["currency"], r["merchant"],
                     r["card_number"], r["location"], r["customer_id"], int(r["hour"]),
                     r["location_mismatch"] == "true", r["velocity_flag"] == "true", r["is_fraud"] == "1",
                     r["scenario"]) for r in reader]


def summary(rows: list[Labelled]) -> dict:
    """Row count, fraud count and rate, and rows per scenario."""
    per = {name: 0 for name in (ORDINARY, *SCENARIOS)}
    fraud = 0
    for t in rows:
        per[t.scenario] += 1
        fraud += t.is_fraud
    return {"rows": len(rows), "fraud": fraud, "fraud_rate": fraud / len(rows) if rows else 0.0, "scenarios": per}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraud_pipeline.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    parser.add_argument("--per-day", type=int, default=10000, help="transactions a day (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 5),
                        help="first day, YYYY-MM-DD, UTC (default 2026-01-05)")
    parser.add_argument("--out", default="-", help="output CSV path; .gz means gzip; - is stdout (default)")
    parser.add_argument("--quiet", action="store_true", help="no summary on stderr")
    args = parser.parse_args(argv)
    if args.days < 1 or args.per_day < 1:
        parser.error("--days and --per-day must be at least 1")
    began = time.perf_counter()
    rows = history(args.days, args.per_day, seed=args.seed, start=args.start)
    generated = time.perf_counter()
    write_csv(rows, args.out)
    done = time.perf_counter()
    if not args.quiet:
        s = summary(rows)
        print(f"{s['rows']} rows, {s['fraud']} fraud ({100 * s['fraud_rate']:.2f} %); generated in "
              f"{generated - began:.1f} s, written in {done - generated:.1f} s", file=sys.stderr)
        for name, count in s["scenarios"].items():
            print(f"  {name:22} {count}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
