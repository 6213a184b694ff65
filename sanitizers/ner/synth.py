"""Synthetic chat-style prompts with PERSON / LOCATION / ORGANIZATION spans, for training the NER tiers.

The public corpora are news, Wikipedia, fiction and tweets; what the proxy sees are prompts: letters to
rewrite, CVs, applications, medical notes, tickets. This generator writes such prompts from hand-written
templates (at the end of this module) filled with Faker values from many locales, so names from outside the
Anglosphere, multi-line postal addresses and lower-case or ALL-CAPS text are all seen in training. It
also carries hard negatives (products, weekdays, job titles, e-mails, phone numbers, IDs) that must stay O.

`generate(n, seed)` is deterministic for a given seed (and Faker version).
"""

from __future__ import annotations

import random
import re
from functools import cache

from faker import Faker

from sanitizers.ner.corpus import Example, Span

# (locale, weight): en_US dominates chat traffic, the rest keep names and places diverse.
LOCALES: tuple[tuple[str, float], ...] = (
    ("en_US", 6), ("en_GB", 3), ("en_IN", 3), ("en_AU", 1), ("en_CA", 1), ("en_IE", 1), ("en_NG", 1),
    ("en_PH", 1), ("de_DE", 2), ("fr_FR", 2), ("es_ES", 2), ("es_MX", 1), ("it_IT", 2), ("nl_NL", 1),
    ("pt_BR", 2), ("pl_PL", 1), ("sv_SE", 1), ("tr_TR", 1), ("id_ID", 1), ("vi_VN", 1), ("cs_CZ", 1),
    ("ro_RO", 1), ("da_DK", 1), ("fi_FI", 1), ("hu_HU", 0.5), ("zu_ZA", 0.5), ("sw", 0.5),
)

ENTITY_SLOTS: dict[str, str] = {
    "name": "PERSON", "first": "PERSON", "last": "PERSON", "NAME": "PERSON",
    "city": "LOCATION", "country": "LOCATION", "state": "LOCATION", "address": "LOCATION",
    "street": "LOCATION", "addrline": "LOCATION", "zip": "LOCATION",
    "company": "ORGANIZATION", "org": "ORGANIZATION", "university": "ORGANIZATION",
    "hospital": "ORGANIZATION", "bank": "ORGANIZATION", "school": "ORGANIZATION",
}

_SLOT = re.compile(r"\{([A-Za-z]+)(\d?)\}")
_NAME_OK = re.compile(r"^[^\W\d_][\w'’.\- ]*$")


@cache
def _faker(locale: str) -> Faker:
    return Faker(locale)


class _Filler:
    """Draws slot values for one example; the same slot key (e.g. {name1}) gives the same value."""

    def __init__(self, rng: random.Random, locale: str) -> None:
        self.rng = rng
        self.fk = _faker(locale)
        self.fk.seed_instance(rng.getrandbits(32))
        self.en = _faker("en_US")
        self.en.seed_instance(rng.getrandbits(32))
        self.locale = locale
        self.cache: dict[str, str] = {}

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def loc(self, attr: str) -> str:
        """A value from the example's locale, or from en_US where that locale lacks the provider."""
        try:
            return getattr(self.fk, attr)()
        except AttributeError:
            return getattr(self.en, attr)()

    # --- entities
    def _clean(self, s: str) -> str:
        return s if _NAME_OK.match(s) else self.en.last_name()

    def first(self) -> str:
        return self._clean(self.loc("first_name"))

    def last(self) -> str:
        return self._clean(self.loc("last_name"))

    def name(self) -> str:
        r = self.rng.random()
        if r < 0.12:
            return f"{self.first()} {self.first()} {self.last()}"
        if r < 0.18:
            return f"{self.first()[0]}. {self.last()}"
        if r < 0.22:
            return f"{self.first()} {self.first()[0]}. {self.last()}"
        return f"{self.first()} {self.last()}"

    def NAME(self) -> str:
        return self.name().upper()

    def city(self) -> str:
        return self.pick(CITIES) if self.rng.random() < 0.45 else self.loc("city")

    def country(self) -> str:
        return self.pick(COUNTRIES) if self.rng.random() < 0.5 else self.en.country()

    def state(self) -> str:
        for attr in ("state", "administrative_unit", "region"):
            try:
                return getattr(self.fk, attr)()
            except AttributeError:
                continue
        return self.en.state()

    def address(self) -> str:
        return self.loc("address")

    def addrline(self) -> str:
        return ", ".join(line.strip() for line in self.loc("address").splitlines() if line.strip())

    def street(self) -> str:
        return self.loc("street_address")

    def zip(self) -> str:
        return self.loc("postcode")

    def company(self) -> str:
        return self.loc("company") if self.rng.random() < 0.7 else self.en.company()

    def org(self) -> str:
        return self.pick(REAL_ORGS)

    def university(self) -> str:
        c = self.pick(CITIES) if self.rng.random() < 0.5 else self.loc("city")
        return self.pick((f"University of {c}", f"{c} State University", f"{self.last()} College",
                          f"{c} Institute of Technology", f"Technical University of {c}",
                          f"Universidad de {c}", f"Université de {c}", f"Universität {c}",
                          f"{self.last()} University", f"Università di {c}"))

    def school(self) -> str:
        return self.pick((f"{self.last()} High School", f"{self.city()} Grammar School",
                          f"St. {self.en.first_name()}'s Academy", f"{self.city()} Community College"))

    def hospital(self) -> str:
        c = self.city()
        return self.pick((f"{c} General Hospital", f"St. {self.en.first_name()}'s Hospital",
                          f"{self.last()} Medical Center", f"{c} Children's Hospital", f"Klinikum {c}",
                          f"{c} University Hospital", f"Hôpital {self.last()}", f"{c} Heart Clinic"))

    def bank(self) -> str:
        return self.pick((f"{self.last()} Bank", f"First National Bank of {self.city()}",
                          f"{self.city()} Savings Bank", f"Banco {self.last()}", f"{self.last()} & Co.",
                          f"{self.city()} Credit Union", "Barclays", "HSBC", "Deutsche Bank",
                          "Wells Fargo", "Chase", "Santander", "ING", "BNP Paribas", "ICICI Bank"))

    # --- non-entities (hard negatives, must stay O)
    def email(self) -> str:
        if self.rng.random() < 0.5:
            return self.loc("email")
        return (f"{self.en.first_name().lower()}.{self.en.last_name().lower()}"
                f"@{self.pick(('gmail.com', 'outlook.com', 'yahoo.com', 'company.org'))}")

    def phone(self) -> str:
        return self.loc("phone_number")

    def url(self) -> str:
        return self.en.url() + self.pick(("", "login", "careers/apply", "docs/v2", "?id=42"))

    def date(self) -> str:
        d = self.en.date_object()
        return self.pick((d.strftime("%d/%m/%Y"), d.strftime("%B %d, %Y"), d.isoformat(),
                          d.strftime("%d %B %Y"), d.strftime("%b %d")))

    def year(self) -> str:
        return str(self.rng.randint(1985, 2025))

    def weekday(self) -> str:
        return self.pick(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"))

    def month(self) -> str:
        return self.en.month_name()

    def time(self) -> str:
        return self.pick((f"{self.rng.randint(1, 12)}{self.pick(('am', 'pm', ' PM', ':30'))}",
                          f"{self.rng.randint(7, 20):02d}:{self.pick(('00', '15', '30', '45'))}"))

    def job(self) -> str:
        return self.en.job()

    def product(self) -> str:
        return self.pick(PRODUCTS)

    def capword(self) -> str:
        return self.pick(CAPWORDS)

    def title(self) -> str:
        return self.pick(TITLES)

    def num(self) -> str:
        return str(self.rng.randint(2, 40) if self.rng.random() < 0.8 else self.rng.randint(41, 999))

    def ident(self) -> str:
        return self.pick((f"#{self.rng.randint(1000, 999999)}", self.en.bothify("??-#####").upper(),
                          self.en.bothify("INV-####-###"), self.en.bothify("########"),
                          self.en.bothify("???######").upper(), self.en.bothify("REF/##/####")))

    def money(self) -> str:
        return self.pick((f"${self.rng.randint(20, 9000):,}", f"€{self.rng.randint(20, 9000)}",
                          f"£{self.rng.randint(5, 900)}.{self.rng.randint(0, 99):02d}",
                          f"{self.rng.randint(1, 90)}k", f"Rs. {self.rng.randint(500, 90000)}"))

    def handle(self) -> str:
        return self.en.user_name()

    def value(self, slot: str, idx: str) -> str:
        key = slot + idx
        if key not in self.cache:
            self.cache[key] = getattr(self, slot)()
        return self.cache[key]


def render(template: str, filler: _Filler) -> tuple[str, list[Span]]:
    """Fill the {slot} placeholders; entity slots produce spans (stripped of surrounding spaces)."""
    out: list[str] = []
    spans: list[Span] = []
    pos = 0
    last = 0
    for m in _SLOT.finditer(template):
        lit = template[last:m.start()]
        out.append(lit)
        pos += len(lit)
        val = filler.value(m.group(1), m.group(2)).strip()
        label = ENTITY_SLOTS.get(m.group(1))
        if label and val:
            spans.append((pos, pos + len(val), label))
        out.append(val)
        pos += len(val)
        last = m.end()
    out.append(template[last:])
    return "".join(out), spans


def _compose(rng: random.Random) -> str:
    """Choose a template: a single chat line, a few joined lines, or a document, maybe wrapped in an instruction."""
    r = rng.random()
    if r < 0.35:
        body = rng.choice(SENTENCES)
    elif r < 0.55:
        body = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(2, 4)))
    else:
        body = rng.choice(DOCS)
        if "{signoff}" in body:
            body = body.replace("{signoff}", rng.choice(SIGNOFFS))
    if rng.random() < 0.35:
        inst = rng.choice(INSTRUCTIONS)
        sep = rng.choice((" ", "\n", "\n\n"))
        body = inst.replace("{text}", body) if "{text}" in inst else inst + sep + body
    return body


def _case_variant(rng: random.Random, text: str) -> str:
    """Chat users write lower case or shout; only case-preserving-length rewrites keep the offsets."""
    r = rng.random()
    new = text.lower() if r < 0.12 else text.upper() if r < 0.16 else text
    return new if len(new) == len(text) else text


def generate(n: int, seed: int = 0) -> list[Example]:
    """`n` synthetic prompts; the same (n, seed) gives the same list."""
    rng = random.Random(seed)
    locales = [loc for loc, _ in LOCALES]
    weights = [w for _, w in LOCALES]
    out: list[Example] = []
    while len(out) < n:
        filler = _Filler(rng, rng.choices(locales, weights)[0])
        text, spans = render(_compose(rng), filler)
        text = _case_variant(rng, text)
        spans = [s for s in spans if text[s[0]:s[1]].strip()]
        out.append(Example(text, tuple(sorted(spans)), "synth"))
    return out


# ---------------------------------------------------------------------------------------------------
# Template data (hand-written for this project). Entity slots: see ENTITY_SLOTS; a digit suffix
# ({name1}) draws a second, independent value. Every other slot is a hard negative and stays O.

SENTENCES: tuple[str, ...] = (
    # introductions
    "my name is {name} and I live in {city}.", "Hi, I'm {first} from {city}, {country}.",
    "Hello! I am {name}, a {job} at {company}.", "{name} here, I work for {org} in {city}.",
    "I'm {first}, 34, currently living in {city} but originally from {country}.",
    "i am {first} and i study at {university}", "This is {name} from {company}, following up on our call.",
    "Myself {name}, working as {job} in {company}, {city}.", "I'm a {job} based in {city}, {state}.",
    "My name's {first} {last}, and I'm applying for the {job} role.",
    "I, {name}, hereby confirm that the information above is correct.",
    "I was born in {city} in {year} and moved to {country} when I was {num}.",
    "We are {name} and {name1}, and we just moved to {addrline}.",
    # about other people
    "My boss {name} keeps scheduling meetings on {weekday} at {time}.",
    "Write a birthday message for my friend {first}.", "Can you write a thank-you note to {title} {last} for the surgery?",
    "My daughter {first} is starting at {school} in {month}.", "{first} and I are getting married in {city} next {month}!",
    "my sister {first} works at {company} as a {job}", "{first} insists he is right, but {first1} disagrees.",
    "How do I tell my coworker {first} that her code broke the build?",
    "Write a reference letter for {name}, who worked with me at {company} for {num} years.",
    "{name} was appointed CEO of {company} last {month}.", "Our landlord, {name}, refuses to fix the heating.",
    "My grandmother {name} passed away in {city} last week.", "{title} {name} will be the keynote speaker.",
    "I had a call with {first} from {org} about the contract.", "Ask {first} to send the slides before {weekday}.",
    "Please forward this to {name} ({email}).", "Contact person: {name}, {phone}",
    "{first} suggested we move the account to {product}, but security wants a review first.",
    "Tell {first} that {first1} already booked the hotel in {city}.",
    "The patient, {name}, was referred to us by {title} {last} of {hospital}.",
    "Write a poem about {first} and the summer we spent in {city}.",
    "Write a short story where {first} travels from {city} to {city1} to find {first1}.",
    "Create a dialogue between {first} and {first1} about moving to {country}.",
    # places
    "I'm in {city} for the conference this week.", "We are flying from {city} to {city1} on {weekday}.",
    "What are the best things to do in {city}, {country}?", "I'm originally from {country}, now in {city}.",
    "Please ship the package to {addrline}.", "My new address is {address}", "The office moved to {street}, {city}.",
    "How much does rent cost near {street} in {city}?", "Send it to {street}, {city} {zip}.",
    "I need a visa to travel from {country} to {country1}.", "Is {city} safe for tourists in {month}?",
    "The restaurant is on {street}, right next to the {product} store.", "My zip code is {zip}.",
    "Plan a 5-day trip to {country}, starting in {city}.", "I live at {addrline} with my partner {first}.",
    "there was a fire near {street} last night", "Our warehouse in {city}, {state} handles all returns.",
    # organisations
    "I work at {company} in the finance team.", "I just got an offer from {org}!",
    "{company} announced a partnership with {company1} in {city}.", "My account at {bank} was frozen.",
    "I graduated from {university} in {year} with a degree in economics.",
    "I have an interview at {org} on {weekday}, any tips?", "Compare the benefits at {company} and {org}.",
    "My insurance is with {company} and they denied the claim.", "She was treated at {hospital} for {num} days.",
    "We are a startup called {company}, based in {city}.", "I transferred {money} from my {bank} account.",
    "He left {org} to join {company} as {job}.", "Our client {company} wants the report by {date}.",
    "Summarize the annual report of {company}.", "I volunteer at {org} on weekends.",
    # lower case / chatty
    "lol just saw {first} at the {city} airport", "omg {first} is coming to {city} tomorrow!!",
    "can u help me write msg to {first} he is angry", "going to {city} with {first} this weekend :)",
    "hey its {first}, call me back at {phone}", "@{handle} {first} said the {product} launch got delayed again",
    "thx {first}!! see u in {city}", "ugh {company} customer service is the worst",
    "just moved to {city} from {country}, any advice?", "{first} pls check ur email",
    # comment-section / social style: single names, often lower case
    "{first} is the best", "love you {first}!!", "hey {first} nice video", "thank you {first} for this",
    "{first} and {first1} should do a collab", "who else is here because of {first}?", "{name} deserves an oscar",
    "rip {first} :(", "i miss {first}'s old videos", "{first}'s voice is amazing", "{first} vs {first1}, who wins?",
    "go {first}!!!", "my mom {first} loves this song", "i think {first} was robbed", "{last} played really well tonight",
    "{first} u r so funny lol", "shoutout to {first} from {city}", "anyone else think {first} looks like {first1}?",
    "{first} should never have left {org}", "{first} is obsessed with {product}", "lmao {first} u crazy",
    "{first} has the best laugh", "nobody: \n{first}: let's go to {city}", "{last} is overrated tbh",
    # lists of people, dialogue and narrative
    "The project was founded by {last}, {last1} and {last2}.", "Attendees: {first}, {first1} and {first2}.",
    "Thanks to {name}, {name1}, and {name2} for their help.", "{first}, {first1} and I went to {city} last summer.",
    "The team includes {last}, {last1}, {last2} and {last3}.", "\"I'm so tired,\" said {first} to {first1}.",
    "She named her daughter {first}.", "They called the baby {first} after his grandfather.",
    "Please change the name on my account to {title} {name}.", "The card should read {name}, not {name1}.",
    "Before joining {company}, {first} was an assistant to {name} in {city}.", "{name}'s new book comes out in {month}.",
    "Schedule a follow-up with {title} {last} next {weekday}.", "I think {name} is the author of that paper.",
    "What would {name} say about this?", "Is {name} still the mayor of {city}?", "{first} told me {first1} quit.",
    "We hired {name} as our new {job}.", "Email from {name}: the shipment is late.", "{NAME} - {job}",
    "Write a speech for {first}'s retirement party at {company}.", "Help me plan a surprise party for {first}.",
    # hard negatives (no entities)
    "The {product} update on {weekday} broke my login.", "Please Review The Attached Document Before {month} {num}.",
    "Call me at {phone} or email {email}.", "Order {ident} was shipped on {date}.", "My password reset link is {url}",
    "Invoice {ident}: amount due {money} by {date}.", "{capword}: the meeting moved to {weekday} {time}.",
    "I'm a {job} with {num} years of experience in {product} and {product1}.", "Reference number {ident}",
    "How do I export a table from {product} to {product1}?", "The Quarterly Report Is Due On {weekday}.",
    "Senior {job} needed, salary {money}.", "My flight {ident} leaves at {time} on {date}.",
    "{capword}! Your subscription to {product} expires in {num} days.", "Meeting at {time}, room {num}.",
    "Please fix the grammar: {capword} is the best way to start.", "My phone number is {phone}.",
    "Send the file to {email} before {weekday}.", "Visit {url} for details.", "Policy number: {ident}",
    "The {month} newsletter covers {product} tips and tricks.", "Date of birth: {date}", "Age: {num}",
)

DOCS: tuple[str, ...] = (
    (
        "Dear {first},\n\nThank you for your email. I will be in {city} on {weekday} and would love to meet."
        "\n\n{signoff}\n{name1}"
    ),
    (
        "Hi {first},\n\nJust a reminder that the invoice {ident} for {money} is overdue. Please transfer the amount to"
        " our account at {bank}.\n\n{signoff}\n{name1}\n{job}, {company}\n{phone}"
    ),
    (
        "Dear {title} {last},\n\nI am writing to apply for the position of {job} at {company}. I recently graduated from"
        " {university} and have worked as an intern at {org} in {city}.\n\nI look forward to hearing from you."
        "\n\n{signoff}\n{name1}\n{email}"
    ),
    (
        "Dear Hiring Manager,\n\nMy name is {name} and I am excited to apply for the {job} role at {company}. During my"
        " {num} years at {company1} in {city}, I led a team of {num1} engineers.\n\n{signoff},\n{name}"
    ),
    (
        "{NAME}\n{address}\n{phone} | {email}\n\nEXPERIENCE\n{job} - {company}, {city} ({year}-{year1})\n"
        "{job1} - {org}, {city1}\n\nEDUCATION\nBSc, {university}, {year2}\n\nSKILLS\n{product}, {product1}, Leadership"
    ),
    (
        "CURRICULUM VITAE\nName: {name}\nAddress: {addrline}\nDate of birth: {date}\nNationality: {country}\n"
        "Email: {email}\n\nWork experience:\n- {company}, {city} - {job}\n- {company1} - {job1}"
    ),
    "Resume of {name}\nContact: {phone}\nSummary: {job} with experience at {org} and {company}.",
    (
        "To the Visa Officer,\n\nI, {name}, born on {date} in {city}, {country}, am applying for a tourist visa to visit"
        " my brother {name1}, who lives at {address}. I am employed by {company} as a {job}.\n\n{signoff}\n{name}"
    ),
    (
        "Visa application\nApplicant: {name}\nPassport no.: {ident}\nAddress in {country}: {addrline}\nEmployer: {company}"
        "\nPurpose of visit: attending a conference at {university}"
    ),
    (
        "Patient: {name}\nDOB: {date}\nReferred by: {title} {last}, {hospital}\n\n{num} y/o presenting with chest pain"
        " since {weekday}. History of hypertension. Plan: ECG, follow up with {title1} {last1} in {num1} weeks."
    ),
    (
        "Medical note - {hospital}\nName: {name}   Age: {num}\nAttending: {title} {name1}\nThe patient was transferred"
        " from {hospital1} on {date}."
    ),
    (
        "Ticket {ident}\nCustomer: {name} ({email})\nIssue: {product} crashes when exporting to PDF.\nAssigned to:"
        " {first1}\nPriority: High"
    ),
    (
        "Hi support team,\n\nmy name is {name} and my order {ident} never arrived at {addrline}. Can you check with the"
        " courier?\n\nThanks,\n{first}"
    ),
    (
        "Dear {name},\n\nI am the tenant at {address} and I am writing about the broken boiler. I reported it on {date}"
        " but nobody came.\n\n{signoff}\n{name1}"
    ),
    (
        "Dear Sir or Madam,\n\nRe: Policy {ident}\n\nI would like to file a claim with {company} for the water damage at"
        " {addrline} on {date}.\n\nYours faithfully,\n{name}"
    ),
    (
        "Meeting notes - {weekday} {date}\nAttendees: {name}, {name1}, {first2}\n- {first} to follow up with {company}"
        " about the contract\n- {first1} to book the venue in {city}\n- Next meeting: {weekday1}"
    ),
    (
        "MINUTES\nPresent: {name}, {name1} ({org}), {name2} ({company})\n1. Budget: approved {money}\n2. Office move to"
        " {street}, {city}\n3. AOB"
    ),
    (
        "Subject: Introduction\n\nHi {first},\n\nI'd like to introduce you to {name1}, who leads partnerships at {org}."
        " {first1}, meet {first} - she runs {company} out of {city}.\n\nCheers,\n{first3}"
    ),
    (
        "From: {name} <{email}>\nTo: {name1}\nSubject: {capword}\n\n{first1}, can you send me the {product} file by"
        " {time}? I'm at the {city} office today.\n\n{first}"
    ),
    (
        "Good morning {first},\n\nPlease find attached the signed contract between {company} and {company1}.\n\n{signoff}"
        "\n\n{name1}\n{job}\n{company}\n{addrline}"
    ),
    (
        "Dear {first} and {first1},\n\nWe are delighted to invite you to our wedding in {city}, {country} on {date}."
        "\n\nWith love,\n{first2} & {first3}"
    ),
    (
        "To whom it may concern,\n\nThis is to certify that {name} has been employed at {company} since {year} as a"
        " {job}.\n\n{signoff}\n{name1}\nHR Manager"
    ),
    (
        "Hey {first}!\nHope you're well. Are you still in {city}? I'll be visiting {country} in {month}, would be great"
        " to catch up.\n{first1}"
    ),
    "Shipping label\n{NAME}\n{address}\n{country}",
    "Bill to:\n{name}\n{company}\n{address}\n\nInvoice {ident}\nTotal: {money}",
    "Emergency contact: {name} ({phone})\nRelationship: mother\nAddress: {addrline}",
    "Job posting: {company} is hiring a {job} in {city}. Apply at {url} or contact {name} at {email}.",
    (
        "Press release - {city}, {date}. {company} today announced that {name} will join as {job}. \"We are thrilled,\""
        " said {name1}, CEO of {company}."
    ),
    "LinkedIn summary: {job} at {company} | Ex-{org} | {university} alumna | Based in {city}",
    "Dear {first},\n\nI'm sorry to hear about your loss. {first1} was a wonderful person.\n\n{signoff}\n{first2}",
    "Reference check\nCandidate: {name}\nReferee: {name1}, {job} at {org}\nPhone: {phone}",
    "Emergency room triage: {name}, {num} years old, brought in by ambulance from {street}.",
    "Landlord: {name}\nProperty: {address}\nRent: {money} per month, due on the {num}th",
    (
        "Statement of purpose\n\nI grew up in {city}, {country}, and studied at {university}. Working at {company}"
        " taught me how much I enjoy research."
    ),
)

SIGNOFFS: tuple[str, ...] = (
    "Best regards,", "Kind regards,", "Regards,", "Best,", "Thanks,", "Many thanks,", "Sincerely,",
    "Yours sincerely,", "Cheers,", "Warm regards,", "Thank you,", "All the best,", "Respectfully,", "Love,",
)

INSTRUCTIONS: tuple[str, ...] = (
    "Rewrite this email to sound more professional:", "Please proofread the following:", "Translate to German:",
    "translate into french", "Fix the grammar:", "Make this shorter:", "Can you improve this?",
    "Summarize this in two sentences:", "Reply politely to this message:\n\n\"{text}\"",
    "Write a response to:\n{text}\n\nKeep it friendly.", "Check this for spelling mistakes: {text}",
    "Paraphrase: \"{text}\"", "Is this letter ok?\n\n{text}", "help me reword this", "Rephrase formally:",
    "Correct my English please:", "Write a reply to the following message.", "{text}\n\nCan you make it better?",
    "{text}\n\nplease translate to spanish", "Extract the key points from the text below.\n\n{text}",
)

TITLES = ("Dr.", "Mr.", "Mrs.", "Ms.", "Prof.", "Dr", "Mr", "Ms", "Miss")
CAPWORDS = (
    "Urgent", "Important", "Reminder", "Update", "Welcome", "Congratulations", "Attention", "Notice", "Hello",
    "Agenda", "Summary", "Action Items", "Re", "Fwd", "Note", "Overview", "Invoice", "Feedback", "Thanks",
)
PRODUCTS = (
    "iPhone", "Excel", "Word", "PowerPoint", "Photoshop", "PlayStation 5", "Windows 11", "ChatGPT", "Python",
    "JavaScript", "Kubernetes", "Docker", "Jira", "Confluence", "Slack", "Zoom", "Outlook", "Chrome", "Android",
    "MacBook Pro", "Kindle", "Xbox", "WordPress", "Salesforce CRM", "SAP", "Tableau", "Figma", "Notion", "Teams",
    "AutoCAD", "Galaxy S23", "Airwatch", "Intune", "Power BI", "Linux", "React", "PostgreSQL", "Bluetooth",
)
CITIES = (
    "London", "Paris", "Berlin", "Madrid", "Rome", "Amsterdam", "Vienna", "Prague", "Warsaw", "Lisbon", "Dublin",
    "Brussels", "Zurich", "Geneva", "Munich", "Hamburg", "Frankfurt", "Cologne", "Milan", "Naples", "Barcelona",
    "Seville", "Valencia", "Porto", "Lyon", "Marseille", "Toulouse", "Copenhagen", "Stockholm", "Oslo", "Helsinki",
    "Athens", "Istanbul", "Ankara", "Budapest", "Bucharest", "Sofia", "Kyiv", "Krakow", "Manchester", "Birmingham",
    "Leeds", "Glasgow", "Edinburgh", "Cardiff", "Belfast", "Bristol", "Liverpool", "New York", "Los Angeles",
    "Chicago", "Houston", "Phoenix", "Philadelphia", "San Antonio", "San Diego", "Dallas", "Austin", "Seattle",
    "Boston", "Denver", "Atlanta", "Miami", "Portland", "San Francisco", "Las Vegas", "Detroit", "Nashville",
    "Toronto", "Montreal", "Vancouver", "Calgary", "Ottawa", "Mexico City", "Guadalajara", "Bogotá", "Lima",
    "Santiago", "Buenos Aires", "São Paulo", "Rio de Janeiro", "Caracas", "Quito", "Havana", "Mumbai", "Delhi",
    "New Delhi", "Bangalore", "Bengaluru", "Chennai", "Hyderabad", "Kolkata", "Pune", "Ahmedabad", "Karachi",
    "Lahore", "Dhaka", "Colombo", "Kathmandu", "Beijing", "Shanghai", "Shenzhen", "Hong Kong", "Taipei", "Tokyo",
    "Osaka", "Seoul", "Busan", "Manila", "Jakarta", "Bangkok", "Hanoi", "Ho Chi Minh City", "Kuala Lumpur",
    "Singapore", "Sydney", "Melbourne", "Brisbane", "Perth", "Auckland", "Wellington", "Cairo", "Lagos", "Abuja",
    "Nairobi", "Accra", "Addis Ababa", "Johannesburg", "Cape Town", "Casablanca", "Tunis", "Dubai", "Abu Dhabi",
    "Doha", "Riyadh", "Tehran", "Tel Aviv", "Beirut", "Amman", "Moscow", "Saint Petersburg", "Tbilisi", "Baku",
)
COUNTRIES = (
    "United States", "USA", "US", "United Kingdom", "UK", "England", "Scotland", "Ireland", "Germany", "France",
    "Spain", "Italy", "Portugal", "Netherlands", "Belgium", "Switzerland", "Austria", "Poland", "Sweden", "Norway",
    "Denmark", "Finland", "Greece", "Turkey", "Romania", "Ukraine", "Russia", "India", "Pakistan", "Bangladesh",
    "Sri Lanka", "Nepal", "China", "Japan", "South Korea", "Vietnam", "Thailand", "Indonesia", "Malaysia",
    "Philippines", "Australia", "New Zealand", "Canada", "Mexico", "Brazil", "Argentina", "Colombia", "Chile", "Peru",
    "Nigeria", "Kenya", "Ghana", "Ethiopia", "South Africa", "Egypt", "Morocco", "UAE", "Saudi Arabia", "Qatar",
    "Iran", "Israel", "Lebanon", "Jordan", "Texas", "California", "Bavaria", "Ontario", "Quebec", "Kerala",
)
REAL_ORGS = (
    "Google", "Microsoft", "Amazon", "Apple", "Meta", "Netflix", "IBM", "Oracle", "Intel", "Nvidia", "Samsung",
    "Siemens", "Bosch", "SAP SE", "Volkswagen", "BMW", "Toyota", "Honda", "Tesla", "Infosys", "Tata Consultancy Services",
    "Wipro", "Accenture", "Deloitte", "PwC", "KPMG", "EY", "McKinsey", "Goldman Sachs", "JPMorgan", "Morgan Stanley",
    "NHS", "NHS England", "United Nations", "UNICEF", "World Bank", "IMF", "European Commission",
    "Red Cross", "Doctors Without Borders", "FBI", "Home Office", "USCIS", "IRS", "HMRC", "Harvard",
    "MIT", "Stanford", "Oxford University", "Cambridge University", "ETH Zurich", "Mayo Clinic", "Kaiser Permanente",
    "Allianz", "AXA", "State Farm", "Unilever", "Nestlé", "Procter & Gamble", "Coca-Cola", "Walmart", "Target",
    "IKEA", "Airbus", "Boeing", "Lufthansa", "Emirates", "Uber", "Airbnb", "Spotify", "OpenAI", "Reuters", "BBC",
    "New York Times", "Greenpeace", "Amnesty International", "Vodafone", "Deutsche Telekom", "Optum",
)
