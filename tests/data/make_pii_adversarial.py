"""Writes tests/data/pii_adversarial.jsonl: a held-out adversarial privacy corpus.

Written from the leak list of issue 14 (accented, lowercase and all-caps names, JSON name
fields, "the account holder is X", surnames next to first names, dates of birth, addresses
with postcode and city, cards/IBANs/e-mails/SSNs in separator, Unicode and obfuscated
variants) BEFORE the detector was changed, and never used to tune it: tuning used
tests/data/pii_corpus.jsonl and the unit tests. Every value is invented; card numbers and
IBANs have valid checksums (a detector that checks them must still find them).

Run: python tests/data/make_pii_adversarial.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

rng = random.Random(20261130)
NBSP, NNBSP, THIN, ZW, ZWJ, SHY = "\u00a0", "\u202f", "\u2009", "\u200b", "\u200d", "\u00ad"


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


def groups(s: str, sep: str, n: int = 4) -> str:
    return sep.join(s[i:i + n] for i in range(0, len(s), n))


def fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "0" <= c <= "9" else ("\u3000" if c == " " else c) for c in s)


C = [luhn_complete(p, n) for p, n in [("4", 16), ("53", 16), ("4", 16), ("37", 15), ("6011", 16),
                                       ("4", 16), ("22", 16), ("4", 16), ("51", 16), ("4", 16),
                                       ("36", 14), ("4", 16)]]
I = [iban("DE", "500105175407324931"), iban("FR", "30006000011234567890189"), iban("ES", "00491500051234567892"),
     iban("NL", "RABO0123456789"), iban("GB", "BARC20031555555555"), iban("IT", "K0306909606100000012345"),
     iban("BE", "068999999501"), iban("PL", "105000997603123456789123"), iban("AT", "2011100000012345"),
     iban("IE", "AIBK93115212345678")]

CARD_FORMS = {
    "nbsp": groups(C[0], NBSP),
    "double": groups(C[1], "  "),
    "dots": groups(C[2], "."),
    "amex_nnbsp": f"{C[3][:4]}{NNBSP}{C[3][4:10]}{NNBSP}{C[3][10:]}",
    "newline": groups(C[4][:8], " ") + "\n" + groups(C[4][8:], " "),
    "fullwidth": fullwidth(groups(C[5], " ")),
    "zw": groups(C[6], ZW),
    "thin": groups(C[7], THIN),
    "endash": groups(C[8], "\u2013"),
    "crlf": groups(C[9][:12], " ") + "\r\n" + C[9][12:],
    "diners": f"{C[10][:4]} {C[10][4:10]} {C[10][10:]}",
    "slash_space": groups(C[11], " / "),
}
IBAN_FORMS = {
    "lower": groups(I[0], " ").lower(),
    "nbsp": groups(I[1], NBSP),
    "dots": groups(I[2], "."),
    "double": groups(I[3], "  "),
    "newline": groups(I[4][:12], " ") + "\n" + groups(I[4][12:], " "),
    "zw": groups(I[5], ZW),
    "lower_compact": I[6].lower(),
    "dashes": groups(I[7], "-"),
    "thin": groups(I[8], THIN),
    "mixed": groups(I[9], " ")[:14].lower() + groups(I[9], " ")[14:],
}

P, E, PH, CD, IB, AD, ID, IP, DOB = "PERSON", "EMAIL", "PHONE", "CARD", "IBAN", "ADDRESS", "ID", "IP", "DOB"

# (text, [(type, value), ...]); values are exact substrings of the text
CASES: list[tuple[str, list[tuple[str, str]]]] = [
    # --- accented names, with and without the accents -----------------------------------
    ("Hola, soy José Ignacio Fernández y quiero devolver el pedido.", [(P, "José Ignacio Fernández")]),
    ("Please ask Jose Fernandez to call back; José said he is free after 3.", [(P, "Jose Fernandez"), (P, "José")]),
    ("Return label for Zoë Ashworth-Kilbride, order 55120.", [(P, "Zoë Ashworth-Kilbride")]),
    ("Our customer Łukasz Wróblewski reports a broken zip.", [(P, "Łukasz Wróblewski")]),
    ("Ticket opened by Søren Kierkegaard Østergaard yesterday.", [(P, "Søren Kierkegaard Østergaard")]),
    ("The parcel is for Ngọc Anh Trần, not for her brother.", [(P, "Ngọc Anh Trần")]),
    ("Françoise Lévêque wants the blue jacket instead.", [(P, "Françoise Lévêque")]),
    ("Can you check whether Ólafur Guðmundsson paid?", [(P, "Ólafur Guðmundsson")]),
    ("Bitte an Herrn Jürgen Müller-Lüdenscheidt weiterleiten.", [(P, "Jürgen Müller-Lüdenscheidt")]),
    ("İlkay Öztürk wrote twice about the refund.", [(P, "İlkay Öztürk")]),
    ("Antonín Dvořák (no relation) ordered two tents.", [(P, "Antonín Dvořák")]),
    ("The complaint came from Maëlle Le Goff in Brittany.", [(P, "Maëlle Le Goff")]),
    # decomposed accents (e + combining acute)
    ("Message from Rene\u0301e Beaucheminne about sizing.", [(P, "Rene\u0301e Beaucheminne")]),
    # --- lowercase names ----------------------------------------------------------------
    ("hi this is maria gonzález, my order never arrived", [(P, "maria gonzález")]),
    ("my name is tomás ruiz and i need a new invoice", [(P, "tomás ruiz")]),
    ("thanks a lot, kofi boateng", [(P, "kofi boateng")]),
    ("please tell priyanka raghunathan that the tent is back in stock", [(P, "priyanka raghunathan")]),
    ("can dmitri sokolov pick up my order? he has the receipt", [(P, "dmitri sokolov")]),
    ("order for aoife ní bhriain, deliver after 6pm", [(P, "aoife ní bhriain")]),
    ("i spoke to your colleague, her name was bettina krause", [(P, "bettina krause")]),
    ("cheers, hamish", [(P, "hamish")]),
    # --- all-caps names -----------------------------------------------------------------
    ("NAME: ALEKSANDRA NOWAK\nORDER: 77812", [(P, "ALEKSANDRA NOWAK")]),
    ("ATTN: DERMOT KAVANAGH, RETURNS DEPT", [(P, "DERMOT KAVANAGH")]),
    ("PLEASE CALL ME BACK. REGARDS, GUNNAR HALLDÓRSSON", [(P, "GUNNAR HALLDÓRSSON")]),
    ("Shipping label reads MS. CHIAMAKA NWOSU-ADEBAYO", [(P, "CHIAMAKA NWOSU-ADEBAYO")]),
    ("FROM: WIKTORIA ZIELIŃSKA\nSUBJECT: WRONG SIZE", [(P, "WIKTORIA ZIELIŃSKA")]),
    ("I AM VERY ANGRY. THIS IS FENELLA MACRAE AND I WANT A REFUND NOW", [(P, "FENELLA MACRAE")]),
    # --- JSON and form fields ----------------------------------------------------------
    ('{"first_name": "Eulalia", "last_name": "Quintanilla", "order": 1123}', [(P, "Eulalia"), (P, "Quintanilla")]),
    ('{"customer": {"firstName": "Torvald", "lastName": "Brekke", "tier": "gold"}}', [(P, "Torvald"), (P, "Brekke")]),
    ('{"name": "Oyelaran Adewale", "email": "o.adewale@correo.example"}', [(P, "Oyelaran Adewale"), (E, "o.adewale@correo.example")]),
    ('{"given_name":"mirela","family_name":"popescu","phone":"+40 721 555 019"}', [(P, "mirela"), (P, "popescu"), (PH, "+40 721 555 019")]),
    ("first_name=Casimir&last_name=Vandersloot&zip=3012", [(P, "Casimir"), (P, "Vandersloot")]),
    ("full_name: Berenike Achleitner\nsurname: Achleitner\nbirth_date: 1979-08-23", [(P, "Berenike Achleitner"), (DOB, "1979-08-23")]),
    ('[{"holder": "Ingrid Svanholm", "iban": "' + IBAN_FORMS["lower_compact"] + '"}]', [(P, "Ingrid Svanholm"), (IB, IBAN_FORMS["lower_compact"])]),
    # --- "the account holder is X" and other indirect mentions -------------------------------
    ("The account holder is Radomir Petrović.", [(P, "Radomir Petrović")]),
    ("the account holder is wendell okonkwo-barnes, please verify", [(P, "wendell okonkwo-barnes")]),
    ("Account holder name: Seraphina Blackwood-Vance", [(P, "Seraphina Blackwood-Vance")]),
    ("The card belongs to my husband, Thaddeus Pemberton.", [(P, "Thaddeus Pemberton")]),
    ("Deliver to c/o Marisol Etxeberria Urkiza at reception.", [(P, "Marisol Etxeberria Urkiza")]),
    ("Signed for by: Kwabena Asante-Darko", [(P, "Kwabena Asante-Darko")]),
    ("The order was placed in the name of Ulrike Hasselbach.", [(P, "Ulrike Hasselbach")]),
    ("Return authorised by your agent Ximena Colque, ticket 99812.", [(P, "Ximena Colque")]),
    # --- first name plus surname where a finder may only see the first name -----------------
    ("Anna Wintersteiger asked for a call.", [(P, "Anna Wintersteiger")]),
    ("Thank you, Sarah Oyelowo-Finch!", [(P, "Sarah Oyelowo-Finch")]),
    ("Yesterday Peter Vanderhoeven returned the boots.", [(P, "Peter Vanderhoeven")]),
    ("Could Michael Okereke-Lindgren confirm the address?", [(P, "Michael Okereke-Lindgren")]),
    ("Lucas Marchetti-Rinaldi and Emma Fjellström share this account.", [(P, "Lucas Marchetti-Rinaldi"), (P, "Emma Fjellström")]),
    ("Dear Haruto Kobayashi, your return was received.", [(P, "Haruto Kobayashi")]),
    # --- dates of birth -----------------------------------------------------------------
    ("Date of birth: 14/03/1987, customer since 2015.", [(DOB, "14/03/1987")]),
    ("DOB 1992-11-05 for the insurance form", [(DOB, "1992-11-05")]),
    ("I was born on 3 March 1979 and my account is locked.", [(DOB, "3 March 1979")]),
    ("My birthday is July 4th, 1990, please update it.", [(DOB, "July 4th, 1990")]),
    ("geb. 07.08.1965 in Graz", [(DOB, "07.08.1965")]),
    ("d.o.b.: 02-29-1996", [(DOB, "02-29-1996")]),
    ('{"dob": "1984-06-30", "tier": "silver"}', [(DOB, "1984-06-30")]),
    ("born 21st of September 1958, if that helps verify me", [(DOB, "21st of September 1958")]),
    ("Birth date - 1 Jan 2001", [(DOB, "1 Jan 2001")]),
    ("née le 12 février 1975 à Lyon", [(DOB, "12 février 1975")]),
    # --- addresses with postcode and city ------------------------------------------------------
    ("Please send it to Kastanienallee 54, 10119 Berlin.", [(AD, "Kastanienallee 54, 10119 Berlin")]),
    ("New address: 18 Glebe Road, Cheltenham GL52 2LP, United Kingdom", [(AD, "18 Glebe Road, Cheltenham GL52 2LP")]),
    ("ship to 4417 nw thurman st, portland, or 97210", [(AD, "4417 nw thurman st, portland, or 97210")]),
    ("DELIVER TO 77 HIGH STREET, KILKENNY R95 X2Y7", [(AD, "77 HIGH STREET, KILKENNY R95 X2Y7")]),
    ("Adresse : 8 boulevard Saint-Michel, 75006 Paris", [(AD, "8 boulevard Saint-Michel, 75006 Paris")]),
    ("Prinsengracht 263, 1016 GV Amsterdam is where I live now.", [(AD, "Prinsengracht 263, 1016 GV Amsterdam")]),
    ("ul. Marszałkowska 104, 00-017 Warszawa", [(AD, "ul. Marszałkowska 104, 00-017 Warszawa")]),
    ("Calle de Alcalá 92, 3º izq., 28009 Madrid", [(AD, "Calle de Alcalá 92, 3º izq., 28009 Madrid")]),
    ("Mailing address 2250 Maple Avenue, Apt 12, Evanston, IL 60201", [(AD, "2250 Maple Avenue, Apt 12, Evanston, IL 60201")]),
    ("Send the spare part to Via Garibaldi 17, 10122 Torino TO.", [(AD, "Via Garibaldi 17, 10122 Torino")]),
    ("Bahnhofstrasse\u00a07, 6003\u00a0Luzern", [(AD, "Bahnhofstrasse\u00a07, 6003\u00a0Luzern")]),
    ("Drottninggatan 33, 111 51 Stockholm", [(AD, "Drottninggatan 33, 111 51 Stockholm")]),
    ("I live at 9 Rue des Lilas, 1050 Ixelles", [(AD, "9 Rue des Lilas, 1050 Ixelles")]),
    ("Address:\n221 Queen Street West\nToronto, ON M5V 2Z4", [(AD, "221 Queen Street West\nToronto, ON M5V 2Z4")]),
    # --- cards in separator and Unicode variants ------------------------------------------------
    (f"Card {CARD_FORMS['nbsp']} was declined.", [(CD, CARD_FORMS["nbsp"])]),
    (f"card number {CARD_FORMS['double']} expiry 04/29", [(CD, CARD_FORMS["double"])]),
    (f"Paid with {CARD_FORMS['dots']} last week.", [(CD, CARD_FORMS["dots"])]),
    (f"AMEX {CARD_FORMS['amex_nnbsp']}, please refund.", [(CD, CARD_FORMS["amex_nnbsp"])]),
    (f"My card is {CARD_FORMS['newline']} thanks", [(CD, CARD_FORMS["newline"])]),
    (f"カード番号 {CARD_FORMS['fullwidth']} です", [(CD, CARD_FORMS["fullwidth"])]),
    (f"use {CARD_FORMS['zw']} for the deposit", [(CD, CARD_FORMS["zw"])]),
    (f"Visa {CARD_FORMS['thin']} (exp 11/27)", [(CD, CARD_FORMS["thin"])]),
    (f"Mastercard {CARD_FORMS['endash']}", [(CD, CARD_FORMS["endash"])]),
    (f"the number is {CARD_FORMS['crlf']} and the code is on the back", [(CD, CARD_FORMS["crlf"])]),
    (f"Diners Club {CARD_FORMS['diners']} was charged", [(CD, CARD_FORMS["diners"])]),
    (f"cc: {CARD_FORMS['slash_space']}", [(CD, CARD_FORMS["slash_space"])]),
    # --- IBANs in separator, case and Unicode variants ------------------------------------------
    (f"please refund to {IBAN_FORMS['lower']}", [(IB, IBAN_FORMS["lower"])]),
    (f"IBAN: {IBAN_FORMS['nbsp']}", [(IB, IBAN_FORMS["nbsp"])]),
    (f"Mi IBAN es {IBAN_FORMS['dots']}.", [(IB, IBAN_FORMS["dots"])]),
    (f"Rekening {IBAN_FORMS['double']} graag.", [(IB, IBAN_FORMS["double"])]),
    (f"Account:\n{IBAN_FORMS['newline']}\nSort it out please", [(IB, IBAN_FORMS["newline"])]),
    (f"IBAN {IBAN_FORMS['zw']} (conto corrente)", [(IB, IBAN_FORMS["zw"])]),
    (f"transfer it to {IBAN_FORMS['dashes']}", [(IB, IBAN_FORMS["dashes"])]),
    (f"iban {IBAN_FORMS['thin']}", [(IB, IBAN_FORMS["thin"])]),
    (f"my iban is {IBAN_FORMS['mixed']} thx", [(IB, IBAN_FORMS["mixed"])]),
    # --- e-mails, obfuscated and in Unicode variants ----------------------------------------
    ("write me at lotte.vermeulen＠posteo.example", [(E, "lotte.vermeulen＠posteo.example")]),
    (f"my mail: gareth.pryce{ZW}@cymru-post.example", [(E, f"gareth.pryce{ZW}@cymru-post.example")]),
    ("contact: ines.barros[at]correio.example", [(E, "ines.barros[at]correio.example")]),
    ("reach me via h.tanaka (at) mailbox (dot) example", [(E, "h.tanaka (at) mailbox (dot) example")]),
    ("Email: ADEBOLA.OGUNLEYE@EXAMPLE.NG", [(E, "ADEBOLA.OGUNLEYE@EXAMPLE.NG")]),
    ("mail to fiona_mcgregor+returns@highland-mail.example please", [(E, "fiona_mcgregor+returns@highland-mail.example")]),
    ("kontakt: jan.novak{at}seznam.example", [(E, "jan.novak{at}seznam.example")]),
    (f"send the label to r.okoye@mail{SHY}box.example", [(E, f"r.okoye@mail{SHY}box.example")]),
    # --- SSNs and other ids without separators ---------------------------------------------
    ("SSN 219099999 for the tax form", [(ID, "219099999")]),
    ("my social security number is 536 22 8145", [(ID, "536 22 8145")]),
    ("social: 078.05.1120", [(ID, "078.05.1120")]),
    ("ssn:123456780", [(ID, "123456780")]),
    ("NINO qq123456c on the payslip", [(ID, "qq123456c")]),
    ("Passport number: x7Y4412Q9 (expires 2031)", [(ID, "x7Y4412Q9")]),
    # --- phones in Unicode and bracket variants -------------------------------------------------
    ("Rückruf bitte unter ０３０ １２３４ ５６７８", [(PH, "０３０ １２３４ ５６７８")]),
    ("Name (+44 20 7946 0321) called twice.", [(PH, "+44 20 7946 0321")]),
    ("call me on +1\u00a0(415)\u00a0555\u20110192", [(PH, "+1\u00a0(415)\u00a0555\u20110192")]),
    ("tel.+33 6 12 34 56 78 (mobile)", [(PH, "+33 6 12 34 56 78")]),
    # --- mixed, realistic messages ------------------------------------------------------
    ("Hi — this is ROSALIND O'DONNELL-HAYES. born 1971-02-17, IBAN " + IBAN_FORMS["nbsp"].replace(NBSP, " ").lower()
     + ", mail rosalind.odh＠example.ie",
     [(P, "ROSALIND O'DONNELL-HAYES"), (DOB, "1971-02-17"), (IB, IBAN_FORMS["nbsp"].replace(NBSP, " ").lower()),
      (E, "rosalind.odh＠example.ie")]),
    ('{"first_name": "Bogumiła", "last_name": "Wąsowicz", "address": "ul. Piotrkowska 120, 90-006 Łódź"}',
     [(P, "Bogumiła"), (P, "Wąsowicz"), (AD, "ul. Piotrkowska 120, 90-006 Łódź")]),
    ("the account holder is émile durand-rousseau; his card " + CARD_FORMS["double"] + " was stolen",
     [(P, "émile durand-rousseau"), (CD, CARD_FORMS["double"])]),
    ("Kind regards\nTIMOTHEUS VAN DER BERGHE\n14 Mill Lane, Saffron Walden CB10 1AA",
     [(P, "TIMOTHEUS VAN DER BERGHE"), (AD, "14 Mill Lane, Saffron Walden CB10 1AA")]),
]


def main() -> None:
    rows = []
    for n, (text, entities) in enumerate(CASES):
        for kind, value in entities:
            if value not in text:
                raise SystemExit(f"case {n}: {value!r} is not in the text")
        rows.append({"id": f"adv-{n:03d}", "text": text,
                     "entities": [{"type": k, "value": v} for k, v in entities]})
    path = Path(__file__).with_name("pii_adversarial.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts: dict[str, int] = {}
    for r in rows:
        for e in r["entities"]:
            counts[e["type"]] = counts.get(e["type"], 0) + 1
    print(f"{len(rows)} cases -> {path}: {counts}")


if __name__ == "__main__":
    main()
