"""Which US tickers a headline is about, and how each was found.

Evidence:
- vendor:   the vendor's own tags, trusted as given (they may name tickers the table lacks).
- cashtag:  `$AAPL`, `$BRK.B` (a class suffix is written with a dot or a dash).
- exchange: `(NASDAQ: ABCD)`, `NYSE: XYZ`, `NYSE American: ABC`, `(OTCQB: ABCD)`, and a bare
            `(ABCD)` straight after the company's name (a word of its SEC name is among the few
            words before the parenthesis, so "(CEO)" or "(AI)" elsewhere stay silent).
- name:     the company's name in words, matched against the SEC table's names.
Apart from vendor tags, only tickers in the SEC table count.

Name matching. SEC names are normalised (lower case, `&` and `and` alike, state and listing tags
such as `/DE/` or `/ADR` dropped, trailing `Inc`, `Corp`, `Holdings`, `plc`, `Ltd`, `Group`,
`SA` ... dropped), so "Apple Inc." is `apple` and "JPMORGAN CHASE & CO" is `jpmorgan chase`.
A company maps to the first ticker the table gives for its CIK (GOOGL, BRK-B); two companies
with the same normalised name go to the one listed first (the table is ordered by size: "Target"
is TGT, not Target Group Inc.). Shortened names are known too, where only one company can be
meant: a proper prefix of two words or more ("Bristol Myers") and an uncommon first word of four
letters or more ("Goldman", "Infineon"); a prefix shared only with the company's own offshoots
counts as unique ("Goldman" despite Goldman Sachs BDC).

Keeping ordinary words silent:
- every word of a match (but `of`, `&`, `the`, `de`, `for`) is capitalised as written;
- at each position the longest name wins and consumes its words: "Apple Hospitality REIT" is
  APLE and not also AAPL, "Target Hospitality" is TH and not TGT;
- a one-word name that is an ordinary word (`COMMON_WORDS`), a generic word that ends several
  other names ("Bancorp"), or of three letters or fewer needs a sign that a company is meant:
  a possessive ("Target's"), a company word after it ("Shell shares", "Gap Inc", "Visa Q3"),
  its ticker in parentheses, capitals in a headline that is not in capitals ("SAP"), or
  standing alone, capitalised, mid-sentence in a headline written in sentence case ("sales at
  Target fell"). So "price target", "Watch Live:", "Shell Companies In Four Years" stay silent;
- a one-word name that is a person, place, day or index (`PROPER_WORDS`: "Trump", "Brazil",
  "Monday", "Nasdaq") needs a company word after it or its ticker in parentheses;
- a shortened one-word name is dropped when, in a sentence-case headline, another capitalised
  word follows it ("Spirit Realty" is not Spirit Aviation);
- a name in the role of the source of the item, the bank behind a rating ("... upgraded at UBS",
  "Morgan Stanley upgrades NVIDIA") or the outlet quoted at the end ("..., Credit Suisse says"),
  is not a ticker of the item.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl

from tapeflow.config import PROJECT_DATA
from tapeflow.news.common_words import COMMON_WORDS, PROPER_WORDS

TAGGER = "rules-v1"
"""Version of these rules, stored with every tag (news_tags.tagger)."""

EVIDENCE_ORDER = ("vendor", "cashtag", "exchange", "name")

NAME_SUFFIXES = frozenset(
    ["inc", "incorporated", "corp", "corporation", "co", "company", "companies", "ltd", "limited", "plc", "holdings", "holding", "group", "sa", "ag", "nv", "se", "spa", "lp", "llc", "lllp", "adr", "ads", "de", "cv", "sab", "bhd", "tbk", "asa", "ab", "oyj", "kk", "com", "the", "new", "trust", "reit", "pbc", "na"]
)
CONNECTORS = frozenset({"of", "&", "the", "de", "for"})
COMPANY_WORDS_AFTER = frozenset(
    ["stock", "stocks", "shares", "share", "inc", "corp", "corporation", "co", "ltd", "plc", "eps", "ceo", "cfo", "q1", "q2", "q3", "q4", "fy", "earnings"]
)
CONTRACTED = frozenset({"here", "there", "what", "that", "it", "let", "he", "she", "who", "where", "how"})
PERIODS = frozenset({"q1", "q2", "q3", "q4", "1q", "2q", "3q", "4q", "h1", "h2", "1h", "2h", "fy"})
OPENERS = frozenset(
    ["how", "why", "what", "when", "where", "who", "is", "are", "was", "will", "can", "could", "should", "does", "did", "do", "at", "in", "on", "as", "after", "before", "for", "from", "with", "by", "the", "a", "an", "and", "but", "if", "while", "despite", "inside", "behind"]
)
MIN_ALIAS_LETTERS = 4
SHORT_NAMES_FOR = 1500  # only the largest companies (the table's first) are known by a short name
ORDINARY_SHORT_NAMES_FOR = 500  # and of ordinary words ("Live Nation") only for the very largest
MAJOR_EXCHANGES = frozenset({"NYSE", "Nasdaq"})
GENERIC_USES = 3  # a one-word name that is a later word of this many other names is generic
_NO_SHORT_NAME = re.compile(r"\b(?:funds?|trust|etf|etn|depositor|series|portfolio|notes?|municipal|income)\b", re.I)
_CLAUSE_BREAK = re.compile(r"[.!?:;\"“”|(\[]|\s[-–—]\s")

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[&'’][A-Za-z0-9]+)*|&")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:[.\-][A-Za-z]{1,2})?)(?!\w)")
_EXCHANGE = re.compile(
    r"\b(?:NASDAQ|Nasdaq|NYSE\s*American|NYSE\s*Arca|NYSE\s*MKT|NYSEMKT|NYSEAMERICAN|NYSE|AMEX|"
    r"OTC\s*Markets|OTCQX|OTCQB|OTCPK|OTCMKTS|OTC)\s*:\s*\$?([A-Z][A-Z0-9]{0,5}(?:[.\-][A-Z]{1,2})?)\b"
)
_URL = re.compile(r"https?://\S+|www\.\S+")
_BARE = re.compile(r"\(([A-Z]{1,5}(?:[.\-][A-Z]{1,2})?)\)")
_RATING = re.compile(  # the words of a rating action, whose broker is its source
    r"\b(?:upgrade[sd]?|downgrade[sd]?|upped|price target|target price|PT|rating|overweight|"
    r"underweight|outperform|underperform|(?:market|sector|peer) perform|equal[- ]?weight|neutral|"
    r"conviction|initiat\w*|reiterat\w*|coverage|analysts?|(?:cut|raised|lowered|lifted|started|resumed) at)\b",
    re.IGNORECASE,
)
_OPINION = re.compile(r"\b(?:buy|sell|hold|bullish|bearish|constructive|cautious)\b", re.IGNORECASE)
_ROLE_BEFORE = re.compile(r"\b(?:at|by|from)\s+(?:[A-Z][\w.&'’-]*\s+){0,2}$")
_ROLE_AFTER = re.compile(
    r"\s*(?:['’]s\s+\w+\s+)?(?:upgrades?|downgrades?|raises|lifts|cuts|lowers|trims|boosts|slashes|"
    r"ups|initiates|starts|resumes|reiterates|adds|removes|names|says|sees|likes|turns|puts|"
    r"points|target|analysts?|gives|reels|hits|warms|sours|cools|stays|sticks|remains)\b",
    re.IGNORECASE,
)
_ATTRIBUTION = re.compile(r"(?:[,:]|\s[-–—])\s*$")
_TAIL = re.compile(r"\s*(?:says|said|reports?|sources?)?\s*(?:[.…]|https?://\S+|\s)*", re.IGNORECASE)


@dataclass(frozen=True)
class _Name:
    words: tuple[str, ...]
    ticker: str
    strength: str  # strong | alias (a shortened one-word name) | common | proper: see _accepted


@dataclass(frozen=True)
class _Token:
    word: str  # lower case, `and` as `&`, apostrophes and a final 's dropped
    text: str
    start: int
    end: int
    possessive: bool

    @property
    def capitalised(self) -> bool:
        # eBay and iRobot count: a capital among the first two letters.
        return self.text[0].isdigit() or any(c.isupper() for c in self.text[:2])

    @property
    def all_caps(self) -> bool:
        return self.text.isupper() and len(self.text) >= 2


def normalise_name(name: str) -> tuple[str, ...]:
    """An SEC company name as the words a headline would use ("AMAZON COM INC" -> ("amazon",))."""
    name = re.sub(r"\s*/.*$", "", name)  # /DE/, /ADR, /CAN/: state and listing tags
    name = re.sub(r"\([^)]*\)", " ", name)  # FORMULA SYSTEMS (1985) LTD
    name = re.sub(r"(?<=\b[A-Za-z])\.(?=[A-Za-z]\b)", "", name)  # S.A. -> SA, N.V. -> NV
    words = [w for w in (_word(t) for t in _TOKEN.findall(name.replace(".", " "))) if w]
    words = _join_letters(words)
    while len(words) > 1 and (words[-1] in NAME_SUFFIXES or words[-1] == "&" or len(words[-1]) == 1):
        words.pop()
    while len(words) > 1 and words[0] == "the":
        words.pop(0)
    return tuple(words)


def _join_letters(words: list[str]) -> list[str]:
    # SEC spells out initials: "V F CORP" is VF, "O REILLY AUTOMOTIVE" is O'Reilly.
    out: list[str] = []
    for w in words:
        if out and len(w) == 1 and w.isalpha() and len(out[-1]) == 1 and out[-1].isalpha() or out and out[-1] == "o" and w.isalpha() and len(w) > 1:
            out[-1] += w
        else:
            out.append(w)
    return out


def _word(text: str) -> str:
    word = text.lower().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    word = word.replace("'", "")
    return "&" if word == "and" else word


class TickerTable:
    """US listed tickers and their company names, indexed by first word for name matching."""

    def __init__(self, frame: pl.DataFrame):
        self.names: dict[str, str] = {}
        primary: dict[str, tuple[str, bool]] = {}  # cik -> (its first ticker, on NYSE or Nasdaq)
        if "exchange" not in frame.columns:
            frame = frame.with_columns(exchange=pl.lit(None, pl.String))
        for row in frame.select("cik", "ticker", "name", "exchange").iter_rows(named=True):
            ticker = str(row["ticker"] or "").strip().upper()
            if not ticker or ticker in self.names:
                continue
            self.names[ticker] = str(row["name"] or "")
            primary.setdefault(str(row["cik"]), (ticker, row["exchange"] in MAJOR_EXCHANGES))
        self.tickers: frozenset[str] = frozenset(self.names)
        self._index = _build_index([(t, self.names[t], major) for t, major in primary.values()])

    @classmethod
    def load(cls, path: str | Path | None = None) -> TickerTable:
        """The table from a parquet file or a folder of them (default data/tickers/); cached."""
        return _load(Path(path or PROJECT_DATA / "tickers").resolve())

    def __contains__(self, ticker: object) -> bool:
        return ticker in self.tickers

    def __len__(self) -> int:
        return len(self.tickers)

    def candidates(self, word: str) -> tuple[_Name, ...]:
        """Names whose first word is `word`, longest first."""
        return self._index.get(word, ())


@lru_cache(maxsize=8)
def _load(path: Path) -> TickerTable:
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no ticker table (*.parquet) in {path}")
    return TickerTable(pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed"))


def _build_index(companies: list[tuple[str, str, bool]]) -> dict[str, tuple[_Name, ...]]:
    """Index of (ticker, SEC name, listed on NYSE/Nasdaq), one per company, in table order."""
    full: dict[tuple[str, ...], str] = {}
    rank_of: dict[tuple[str, ...], int] = {}
    no_short: set[tuple[str, ...]] = set()
    fundlike: set[tuple[str, ...]] = set()
    # Where two companies share a name, the NYSE/Nasdaq one wins, then the larger (earlier).
    ranked = sorted(enumerate(companies), key=lambda ic: (not ic[1][2], ic[0]))
    for rank, (ticker, name, _) in ranked:
        words = normalise_name(name)
        if not words or (len(words) == 1 and words[0] in PERIODS) or words in full:
            continue
        full[words] = ticker
        rank_of[words] = rank
        if _NO_SHORT_NAME.search(name):
            fundlike.add(words)
        if rank >= SHORT_NAMES_FOR or words in fundlike:
            no_short.add(words)  # small companies, funds and notes: only their full names

    owners: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for words in full:
        for k in range(1, len(words)):
            owners.setdefault(words[:k], set()).add(words)
    later = Counter(w for words in full for w in words[1:])
    # A word inside other known companies' names ("Garden" in Madison Square Garden ...) names
    # no one alone.
    inside = Counter(w for words in full.keys() - no_short for w in words[1:])

    index: dict[str, list[_Name]] = {}
    for words, ticker in full.items():
        index.setdefault(words[0], []).append(_Name(words, ticker, _strength(words, later)))
    for prefix, names in owners.items():
        owner = _sole_owner(names)
        if owner is None or owner in no_short or prefix in full or prefix[-1] in CONNECTORS:
            continue
        if len(prefix) == 1:
            if _distinctive(prefix[0]) and not inside[prefix[0]]:
                index.setdefault(prefix[0], []).append(_Name(prefix, full[owner], "alias"))
            continue
        # Words that are all ordinary or names of places and people ("Main Street", "New York")
        # make a short name only for the very largest companies ("Live Nation", "Philip Morris").
        plain = all(w in COMMON_WORDS or w in PROPER_WORDS or w in CONNECTORS for w in prefix)
        if not plain or rank_of[owner] < ORDINARY_SHORT_NAMES_FOR:
            index.setdefault(prefix[0], []).append(_Name(prefix, full[owner], "strong"))
    return {w: tuple(sorted(names, key=lambda n: -len(n.words))) for w, names in index.items()}


def _strength(words: tuple[str, ...], later: Counter[str]) -> str:
    if len(words) > 1:
        return "strong"
    word = words[0]
    if word in PROPER_WORDS:
        return "proper"
    if word in COMMON_WORDS or len(word) <= 3 or later[word] >= GENERIC_USES:
        return "common"
    return "strong"


def _sole_owner(names: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    # One company, or one whose name begins every other's (its funds and finance arms).
    shortest = min(names, key=len)
    return shortest if all(n[: len(shortest)] == shortest for n in names) else None


def _distinctive(word: str) -> bool:
    return (
        word.isalpha()
        and len(word) >= MIN_ALIAS_LETTERS
        and word not in COMMON_WORDS
        and word not in PROPER_WORDS
    )


def extract_tickers(
    headline: str,
    summary: str = "",
    vendor: Iterable[str] = (),
    table: TickerTable | None = None,
) -> dict[str, tuple[str, ...]]:
    """Each ticker the item is about -> how it was found (in EVIDENCE_ORDER), vendor tags first."""
    table = table or TickerTable.load()
    found: dict[str, set[str]] = {}
    for tag in vendor:
        tag = str(tag).strip().upper()
        if tag:
            found.setdefault(tag, set()).add("vendor")
    for text in (headline or "", summary or ""):
        for ticker, how in _from_text(text, table):
            found.setdefault(ticker, set()).add(how)
    return {t: tuple(e for e in EVIDENCE_ORDER if e in how) for t, how in found.items()}


def _from_text(text: str, table: TickerTable) -> list[tuple[str, str]]:
    text = _URL.sub(lambda m: " " * len(m.group()), text)  # links are no words; offsets kept
    hits: list[tuple[int, str, str]] = []
    for m in _CASHTAG.finditer(text):
        ticker = _known(m.group(1), table)
        if ticker:
            hits.append((m.start(), ticker, "cashtag"))
    for m in _EXCHANGE.finditer(text):
        ticker = _known(m.group(1), table)
        if ticker:
            hits.append((m.start(), ticker, "exchange"))
    for m in _BARE.finditer(text):
        ticker = _known(m.group(1), table)
        if ticker and _named_before(text[: m.start()], ticker, table):
            hits.append((m.start(), ticker, "exchange"))
    tokens = [
        _Token(_word(m.group()), m.group(), m.start(), m.end(), bool(re.search(r"['’]s$", m.group(), re.I)))
        for m in _TOKEN.finditer(text)
    ]
    hits.extend((pos, ticker, "name") for pos, ticker in _names(text, tokens, table))
    hits.sort()
    return [(ticker, how) for _, ticker, how in hits]


def _known(symbol: str, table: TickerTable) -> str | None:
    symbol = symbol.upper().replace(".", "-")
    if symbol in table:
        return symbol
    base = symbol.split("-")[0]  # $WPG.PH: a preferred line the table may not list
    return base if "-" in symbol and base in table else None


def _named_before(before: str, ticker: str, table: TickerTable) -> bool:
    words = {_word(w) for w in _TOKEN.findall(before)[-5:]}
    return bool(words & (set(normalise_name(table.names[ticker])) - CONNECTORS))


class _Headline:
    """One text's tokens and what its capitals are worth."""

    def __init__(self, text: str, tokens: list[_Token]):
        self.text = text
        self.tokens = tokens
        # Capitals carry meaning only when most longer words after the first are lower case.
        words = [t for t in tokens[1:] if t.text.isalpha() and len(t.text) >= 4]
        self.sentence_case = bool(words) and sum(t.capitalised for t in words) / len(words) < 0.5
        self.shouting = sum(t.all_caps for t in tokens) > len(tokens) / 2


def _names(text: str, tokens: list[_Token], table: TickerTable) -> list[tuple[int, str]]:
    line = _Headline(text, tokens)
    out: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        match = None
        for name in _candidates(table, tokens, i):  # longest first
            n = len(name.words)
            span = tokens[i : i + n]
            if len(span) < n or not all(_same(t, w) for t, w in zip(span, name.words, strict=True)):
                continue
            if any(t.possessive for t in span[:-1]):  # "Apple's Hospitality" is not one name
                continue
            if not span[0].capitalised or not all(
                t.capitalised or t.word in CONNECTORS or _hyphened(line, t) for t in span[1:]
            ):
                continue
            if _accepted(name, i, line):
                match = name
                break
        if match is None:
            i += 1
            continue
        end = i + len(match.words)
        if not _source_role(text, tokens[i].start, tokens[end - 1].end):
            out.append((tokens[i].start, match.ticker))
        i = end
    return out


def _candidates(table: TickerTable, tokens: list[_Token], i: int) -> tuple[_Name, ...]:
    token = tokens[i]
    names = table.candidates(token.word)
    # "McDonald's" may be the SEC's MCDONALDS; "Chesapeake Energy's" is no "Energys".
    if token.possessive and (i == 0 or not tokens[i - 1].capitalised):
        names = tuple(sorted((*names, *table.candidates(token.word + "s")), key=lambda n: -len(n.words)))
    return names


def _same(token: _Token, word: str) -> bool:
    # "McDonald's" is the SEC's MCDONALDS as well as a possessive.
    return token.word == word or (token.possessive and token.word + "s" == word)


def _hyphened(line: _Headline, token: _Token) -> bool:
    # "Snap-on", "Coca-Cola": the capital is on the first part only.
    return token.start > 0 and line.text[token.start - 1] == "-" and token.start > 1 and line.text[token.start - 2].isalnum()


def _accepted(name: _Name, i: int, line: _Headline) -> bool:
    if name.strength == "strong":
        return True
    tokens = line.tokens
    token = tokens[i]
    before = tokens[i - 1] if i > 0 else None
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    if after is not None and after.word in COMPANY_WORDS_AFTER:
        return True
    if re.match(rf"\s*\((?:[A-Za-z ]+:\s*)?\$?{re.escape(name.ticker)}\)", line.text[token.end :]):
        return True
    if name.strength == "proper":
        return False
    if name.strength == "alias":
        return not (line.sentence_case and after is not None and after.capitalised)
    if token.possessive and token.word not in CONTRACTED:  # "Target's", not "Here's"
        return True
    if token.all_caps and not line.shouting and token.word not in COMMON_WORDS:  # "SAP", "HP"
        return True
    # Alone and capitalised mid-sentence where capitals mean something: "sales at Target fell".
    # Beside another capitalised word it is part of some other name ("Superior Gold"); after a
    # full stop, colon or dash it starts a sentence ("... stocks. Here are the rest").
    if not line.sentence_case or before is None or len(token.word) <= 3:
        return False
    if _CLAUSE_BREAK.search(line.text[before.end : token.start]):
        return False
    opener = i == 1 and before.word in OPENERS  # "How Target ...", not "Superior Gold ..."
    return (opener or not before.capitalised) and (after is None or not after.capitalised)


def _source_role(text: str, start: int, end: int) -> bool:
    before, after = text[:start], text[end:]
    if _ATTRIBUTION.search(before) and _TAIL.fullmatch(after):  # "..., Credit Suisse says"
        return True
    if _ROLE_BEFORE.search(before) and _RATING.search(text):  # "... upgraded at UBS"
        return True
    # "Morgan Stanley upgrades NVIDIA", "Bank of America says buy pot stock Canopy"
    return bool(_ROLE_AFTER.match(after)) and bool(_RATING.search(text) or _OPINION.search(text))
