"""Which recognizers each language enables, and context words in that language.

* Every language gets the recognizers Presidio's registry loads for it by default
  (`RecognizerRegistry.load_predefined_recognizers`), minus the NER one (SpacyRecognizer): for
  presidio-analyzer 2.2.366 that is the language-independent set (CRYPTO, DATE_TIME, EMAIL_ADDRESS,
  IBAN_CODE, IP_ADDRESS, MEDICAL_LICENSE, MAC_ADDRESS, UUID, PHONE_NUMBER, URL) plus CREDIT_CARD, the
  US identifiers and UK_NHS for "en", CREDIT_CARD, ES_NIF and ES_NIE for "es", nothing more for "de"
  and "fr".
* `EXTRA_RECOGNIZERS` adds Presidio recognizers that ship disabled by default but fit the language:
  the German identifiers with check digits or distinctive formats (not postcodes, licence plates or
  doctor numbers, which match ordinary numbers and words), the Spanish passport. French has none in
  Presidio, so `FrNirRecognizer` adds the social security number (NIR) with its mod-97 key.
* `CONTEXT_WORDS` adds each language's words to the (English) context words of the recognizers of
  an entity: "Telefon", "téléphone" and "teléfono" raise a phone number's score like "phone" does.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache
from typing import ClassVar

from presidio_analyzer import (
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
)
from presidio_analyzer import predefined_recognizers as predefined

from sanitizers.recognizers.validators import fr_nir_valid

SUPPORTED_LANGUAGES = ("en", "de", "fr", "es")
NER_RECOGNIZERS = frozenset({"SpacyRecognizer", "StanzaRecognizer", "TransformersRecognizer"})

# Card numbers are the same in every language (Presidio enables them for en/es/it/pl only).
EXTRA_RECOGNIZERS: dict[str, tuple[str, ...]] = {
    "fr": ("CreditCardRecognizer",),
    "de": (
        "CreditCardRecognizer",
        "DeTaxIdRecognizer",
        "DeTaxNumberRecognizer",
        "DePassportRecognizer",
        "DeIdCardRecognizer",
        "DeSocialSecurityRecognizer",
        "DeHealthInsuranceRecognizer",
        "DeVatIdRecognizer",
        "DeFuehrerscheinRecognizer",
        "DeHandelsregisterRecognizer",
    ),
    "es": ("EsPassportRecognizer",),
}


class FrNirRecognizer(PatternRecognizer):
    """French social security number (NIR): sex, birth year and month, department (2A/2B for
    Corsica), commune, order number, and a two-digit key checked by `fr_nir_valid`."""

    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "NIR (medium)",
            r"\b[12478]\s?\d{2}\s?(?:0[1-9]|1[0-2]|[2-9]\d)\s?(?:\d{2}|2[AB])\s?\d{3}\s?\d{3}\s?\d{2}\b",
            0.5,
        ),
    ]
    CONTEXT: ClassVar[list[str]] = ["sécurité sociale", "securite sociale", "sécu", "secu", "nir", "insee", "vitale", "assuré"]

    def __init__(self, supported_language: str = "fr", supported_entity: str = "FR_NIR") -> None:
        super().__init__(
            supported_entity=supported_entity,
            patterns=self.PATTERNS,
            context=self.CONTEXT,
            supported_language=supported_language,
        )

    def validate_result(self, pattern_text: str) -> bool:
        return fr_nir_valid(pattern_text)


OWN_RECOGNIZERS: dict[str, tuple[type[PatternRecognizer], ...]] = {"fr": (FrNirRecognizer,)}

# Context words per language, per entity (lower case; matched as substrings of nearby lemmas, as
# Presidio does, so "telefon" also fits "telefonnummer").
_PHONE = {
    "de": ("telefon", "handy", "mobil", "rufnummer", "festnetz", "anruf", "fax"),
    "fr": ("téléphone", "telephone", "portable", "mobile", "numéro", "numero", "appel", "fax"),
    "es": ("teléfono", "telefono", "móvil", "movil", "celular", "número", "numero", "llamar", "fax"),
}
_ID_CARD = {
    "de": ("ausweis", "personalausweis", "identität"),
    "fr": ("identité", "identite", "cni"),
    "es": ("dni", "identidad", "documento"),
}
_PASSPORT = {"de": ("reisepass", "passnummer"), "fr": ("passeport",), "es": ("pasaporte",)}
_DRIVER = {"de": ("führerschein", "fuehrerschein", "fahrerlaubnis"), "fr": ("permis", "conduire"),
           "es": ("licencia", "conducir", "carnet")}
_SOCIAL = {
    "de": ("sozialversicherung", "versicherungsnummer", "rentenversicherung"),
    "fr": ("sécurité sociale", "securite sociale", "sécu", "secu", "insee"),
    "es": ("seguridad social", "afiliación", "afiliacion"),
}
_TAX = {"de": ("steuer", "finanzamt"), "fr": ("fiscal", "impôt", "impot"), "es": ("fiscal", "impuesto", "hacienda")}
_BANK = {"de": ("konto", "bank", "überweisung", "ueberweisung"), "fr": ("compte", "banque", "rib", "virement"),
         "es": ("cuenta", "banco", "transferencia")}
_CARD = {"de": ("kreditkarte", "karte", "kartennummer"), "fr": ("carte", "crédit", "credit", "bancaire"),
         "es": ("tarjeta", "crédito", "credito", "débito", "debito")}
_DATE = {"de": ("datum", "geboren", "geburt"), "fr": ("date", "naissance", "né", "née"),
         "es": ("fecha", "nacimiento", "nacido", "nacida", "cumpleaños")}
_EMAIL = {"de": ("mail", "adresse"), "fr": ("courriel", "mail", "adresse"), "es": ("correo", "mail")}
_URL = {"de": ("webseite", "internetseite", "link"), "fr": ("site", "lien"), "es": ("sitio", "enlace", "página")}
_CRYPTO = {"de": ("krypto", "wallet"), "fr": ("portefeuille", "crypto"), "es": ("billetera", "cartera", "cripto")}
_MEDICAL = {"de": ("arzt", "approbation"), "fr": ("médecin", "medecin"), "es": ("médico", "medico")}
_HEALTH = {"de": ("krankenkasse", "krankenversicherung", "versichertennummer"), "fr": ("mutuelle", "vitale"),
           "es": ("sanitaria", "seguro médico")}

CONTEXT_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    language: {
        "PHONE_NUMBER": _PHONE[language],
        "EMAIL_ADDRESS": _EMAIL[language],
        "CREDIT_CARD": _CARD[language],
        "IBAN_CODE": _BANK[language],
        "US_BANK_NUMBER": _BANK[language],
        "US_PASSPORT": _PASSPORT[language],
        "DE_PASSPORT": _PASSPORT[language],
        "ES_PASSPORT": _PASSPORT[language],
        "US_DRIVER_LICENSE": _DRIVER[language],
        "DE_FUEHRERSCHEIN": _DRIVER[language],
        "DE_ID_CARD": _ID_CARD[language],
        "ES_NIF": _ID_CARD[language] + _TAX[language],
        "ES_NIE": _ID_CARD[language],
        "US_SSN": _SOCIAL[language],
        "DE_SOCIAL_SECURITY": _SOCIAL[language],
        "FR_NIR": _SOCIAL[language],
        "US_ITIN": _TAX[language],
        "DE_TAX_ID": _TAX[language],
        "DE_TAX_NUMBER": _TAX[language],
        "DE_VAT_ID": _TAX[language],
        "DATE_TIME": _DATE[language],
        "URL": _URL[language],
        "CRYPTO": _CRYPTO[language],
        "MEDICAL_LICENSE": _MEDICAL[language],
        "DE_HEALTH_INSURANCE": _HEALTH[language],
    }
    for language in ("de", "fr", "es")
}


@lru_cache(maxsize=16)
def presidio_recognizers(languages: tuple[str, ...]) -> tuple[EntityRecognizer, ...]:
    """Presidio's default recognizers for `languages` (NER ones excluded), then the extras.

    Cached: the instances are only read (patterns, context) and asked to validate values."""
    unknown = [language for language in languages if language not in SUPPORTED_LANGUAGES]
    if unknown:
        raise ValueError(f"unsupported language(s) {unknown}; supported: {', '.join(SUPPORTED_LANGUAGES)}")
    registry = RecognizerRegistry(supported_languages=list(languages))
    registry.load_predefined_recognizers(languages=list(languages))  # one read of Presidio's YAML
    found = [r for r in registry.recognizers if r.name not in NER_RECOGNIZERS and r.supported_language in languages]
    for language in languages:
        for name in EXTRA_RECOGNIZERS.get(language, ()):
            recognizer = getattr(predefined, name)(supported_language=language)
            recognizer.global_regex_flags = registry.global_regex_flags  # as the registry does for its own
            found.append(recognizer)
        for cls in OWN_RECOGNIZERS.get(language, ()):
            recognizer = cls(supported_language=language)
            recognizer.global_regex_flags = registry.global_regex_flags
            found.append(recognizer)
    return tuple(found)


def context_words(language: str, entity: str) -> tuple[str, ...]:
    return CONTEXT_WORDS.get(language, {}).get(entity, ())


@cache
def coverage(languages: Iterable[str] = SUPPORTED_LANGUAGES) -> dict[str, list[str]]:
    """Language → the entity types its recognizers report (language-independent ones included)."""
    return {
        language: sorted({entity for r in presidio_recognizers((language,)) for entity in r.supported_entities})
        for language in languages
    }
