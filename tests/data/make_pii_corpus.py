"""Writes tests/data/pii_corpus.jsonl: fictional, labelled personal data (deterministic).

Every value is invented: names are made up, phone numbers use fictional ranges where they
exist (555-01xx, Ofcom drama numbers), card numbers and IBANs are random digits with valid
checksums. Run: python tests/data/make_pii_corpus.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

rng = random.Random(20240611)


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    for check in range(10):
        digits = body + str(check)
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError


def iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def spaced(s: str, n: int = 4) -> str:
    return " ".join(s[i:i + n] for i in range(0, len(s), n))


NAMES = [
    "Ana Lima", "Kwame Mensah", "Oluwaseun Adeyemi", "Thandiwe Mokoena", "Siobhan Brennan",
    "Zofia Wiśniewska", "Rhys Llewellyn", "Ingeborg Halvorsen", "Bartholomew Finch",
    "Leilani Kahale", "Ngozi Okafor", "Mateus Carvalho", "Hana Novotná", "Emeka Eze",
    "Tobias Lindqvist", "Marguerite Dufresne", "Rajesh Subramanian", "Yuki Tanabe",
    "Fergus McAllister", "Dolores Etxeberria", "Aurelio Bianchini", "Saoirse Gallagher",
    "Priya Natarajan", "Jonas Wehrli", "Camille Rousseau", "Anneke de Vries", "Luis Ortega",
    "Fatima Zahra Benali", "Piotr Kowalczyk", "Eleanor Whitcombe", "Dmitri Volkov",
    "Grace Achterberg", "Matthias Brandl", "Nia Thompson", "Imogen Ashdown", "Tariq Haddad",
    "Wei Zhang", "Svetlana Orlova", "Jamal Whitaker", "Ottilie Fairweather", "Bjorn Eriksen",
    "Lucia Mendoza", "Henrik Dahl", "Mei Lin Tan", "Cormac O'Sullivan", "Helga Baumgartner",
    "Ruairi Doyle", "Esperanza Villalobos", "Ansel Morgenstern", "Keiko Watanabe",
]
PHONES = [
    "+44 20 7946 0123", "(212) 555-0147", "555-0199", "+1 415 555 0132", "+49 30 12345678",
    "030 1234567", "+33 6 12 34 56 78", "06 12 34 56 78", "+34 612 345 678", "+31 6 1234 5678",
    "020 7946 0991", "+1-202-555-0178", "0161 496 0753", "+39 347 123 4567", "(617) 555-0164",
    "+353 87 123 4567", "0049 89 1234567", "+41 44 668 18 00", "555.201.0187", "+61 2 9876 5432",
]
EMAILS = [
    "ana.lima@example.org", "kmensah@mailbox.example", "o.adeyemi+orders@example.com",
    "thandi_m@example.co.za", "zofia.w@przyklad.pl", "rhys1987@example.net",
    "ingeborg.halvorsen@eksempel.no", "b.finch@finch-family.example", "leilani@example.io",
    "ngozi.okafor@example.ng", "mateus.c@exemplo.com.br", "HANA.NOVOTNA@EXAMPLE.CZ",
]
ADDRESSES = [
    "221B Baker Street, London NW1 6XE", "742 Evergreen Terrace, Springfield, OR 97403",
    "1600 Pennsylvania Avenue NW, Washington, DC 20500", "Hauptstraße 12, 10115 Berlin",
    "12 rue de la Paix, 75002 Paris", "Calle Mayor 45, 28013 Madrid", "Keizersgracht 123, 1015 CJ Amsterdam",
    "55 Oak Lane, Apt 4B, Portland, ME 04101", "9 Rosemary Close, Oxford OX2 7LE",
    "Via Roma 7, 00184 Roma", "48 Willow Drive, Austin, TX 78701", "3 Harbour Road, Dublin",
    "Lindenallee 3a, 50968 Köln", "17 Station Rd, Leeds LS1 4DY", "250 King Street West, Toronto",
    "8 Maple Court, Suite 210, Denver, CO 80202", "Bahnhofstrasse 21, 8001 Zürich",
    "14 avenue Victor Hugo, 69002 Lyon",
]
IDS = [
    ("SSN", "123-45-6789"), ("SSN", "078-05-1120"), ("NINO", "QQ 12 34 56 C"), ("NINO", "AB123456D"),
    ("DNI", "12345678Z"), ("NIE", "X1234567L"), ("CF", "RSSMRA85T10A562S"),
    ("passport", "C01X00T47"), ("passport", "524816731"), ("license", "D1234-56789-01234"),
    ("id card", "L01X00T47"), ("tax id", "DE811907980"),
]
IPS = ["192.168.10.24", "10.0.0.7", "203.0.113.45", "2001:db8:85a3::8a2e:370:7334", "198.51.100.23",
       "fe80::1ff:fe23:4567:890a", "172.16.254.1"]

cards = [luhn_complete(p, n) for p, n in [("4", 16), ("51", 16), ("37", 15), ("6011", 16), ("4", 16),
                                          ("55", 16), ("34", 15), ("4", 16), ("52", 16), ("4", 16)]]
card_formats = [lambda c: spaced(c), lambda c: c, lambda c: "-".join(c[i:i + 4] for i in range(0, len(c), 4))]
ibans = [iban("DE", "370400440532013000"), iban("GB", "NWBK60161331926819"), iban("FR", "20041010050500013M02606"),
         iban("NL", "ABNA0417164300"), iban("ES", "21000418450200051332"), iban("IT", "X0542811101000000123456"),
         iban("BE", "539007547034"), iban("AT", "1904300234573201"), iban("CH", "0076201162385295"),
         iban("PL", "109010140000071219812874")]

TEMPLATES = [
    ("Hi, my name is {PERSON}. Please update my email to {EMAIL}.", ["PERSON", "EMAIL"]),
    ("{PERSON} called about order 88231; call back on {PHONE}.", ["PERSON", "PHONE"]),
    ("Refund the payment to IBAN {IBAN}, account holder {PERSON}.", ["IBAN", "PERSON"]),
    ("Card {CARD} was charged twice, please reverse one charge.", ["CARD"]),
    ("Ship the replacement to {ADDRESS} and text me at {PHONE}.", ["ADDRESS", "PHONE"]),
    ("Dear {PERSON}, we received your request from {EMAIL}.", ["PERSON", "EMAIL"]),
    ("For verification: {IDKIND} {ID}, phone {PHONE}.", ["ID", "PHONE"]),
    ("Login attempts came from {IP} for the account of {PERSON}.", ["IP", "PERSON"]),
    ("Customer: {PERSON}\nEmail: {EMAIL}\nPhone: {PHONE}\nAddress: {ADDRESS}", ["PERSON", "EMAIL", "PHONE", "ADDRESS"]),
    ("Please cancel my subscription. Regards,\n{PERSON}", ["PERSON"]),
    ("My card number is {CARD}, expiry 09/27. Bill it to {ADDRESS}.", ["CARD", "ADDRESS"]),
    ("I moved! New address: {ADDRESS}. Same IBAN {IBAN} for direct debit.", ["ADDRESS", "IBAN"]),
    ("Can {PERSON} pick up the parcel? Her number is {PHONE}.", ["PERSON", "PHONE"]),
    ("Write to {EMAIL} or ring {PHONE} between 9 and 5.", ["EMAIL", "PHONE"]),
    ("The invoice for {PERSON} ({EMAIL}) lists {IDKIND} {ID}.", ["PERSON", "EMAIL", "ID"]),
    ("Server {IP} rejected the upload from {EMAIL}.", ["IP", "EMAIL"]),
    ("Thanks, {PERSON} — paying with {CARD} today.", ["PERSON", "CARD"]),
    ("Hello, this is {PERSON} from {ADDRESS}; my {IDKIND} is {ID}.", ["PERSON", "ADDRESS", "ID"]),
    ("Please send the contract to my colleague {PERSON} and copy me.", ["PERSON"]),
    ("Transfer 120 EUR from {IBAN} to the shop; reference order 4471.", ["IBAN"]),
    ("{PERSON} and {PERSON2} share the account; contact {EMAIL}.", ["PERSON", "PERSON2", "EMAIL"]),
    ("Delivery note: leave at {ADDRESS}, ask for {PERSON}.", ["ADDRESS", "PERSON"]),
    ("mail: {EMAIL} | tel: {PHONE} | ip: {IP}", ["EMAIL", "PHONE", "IP"]),
    ("I am {PERSON}; my {IDKIND} number {ID} was rejected at checkout.", ["PERSON", "ID"]),
]


def main() -> None:
    out = []
    pools = {"PERSON": NAMES, "EMAIL": EMAILS, "PHONE": PHONES, "ADDRESS": ADDRESSES, "IP": IPS}
    idx = {k: 0 for k in ["PERSON", "EMAIL", "PHONE", "ADDRESS", "IP", "CARD", "IBAN", "ID"]}

    def take(kind: str) -> str:
        i = idx[kind]
        idx[kind] += 1
        if kind == "CARD":
            return card_formats[i % 3](cards[i % len(cards)])
        if kind == "IBAN":
            value = ibans[i % len(ibans)]
            return spaced(value) if i % 2 == 0 else value
        return pools[kind][i % len(pools[kind])]

    for n in range(120):
        template, kinds = TEMPLATES[n % len(TEMPLATES)]
        values: dict[str, str] = {}
        entities = []
        for kind in kinds:
            base = "PERSON" if kind == "PERSON2" else kind
            if base == "ID":
                label, value = IDS[idx["ID"] % len(IDS)]
                idx["ID"] += 1
                values["IDKIND"] = label
            else:
                value = take(base)
            values[kind] = value
            entities.append({"type": base, "value": value})
        out.append({"id": f"pii-{n:03d}", "text": template.format(**values), "entities": entities})
    path = Path(__file__).with_name("pii_corpus.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
    counts: dict[str, int] = {}
    for r in out:
        for e in r["entities"]:
            counts[e["type"]] = counts.get(e["type"], 0) + 1
    print(f"{len(out)} samples -> {path}: {counts}")


if __name__ == "__main__":
    main()
