"""The catalyst class of a headline, by transparent ordered rules (labels: docs/nlp.md).

Precedence, and why:
1. A rating action (upgrade, downgrade, price target, initiation, "conviction list") is
   `other`, whatever it mentions: "MPLX cut at Credit Suisse on potential dilution" is about
   the broker's view, not a share sale.
2. `dilution`: a sale of stock or stock-linked paper (follow-on, registered direct, unit or
   rights offering, convertible notes, shelf, at-the-market, share purchase plan). It comes
   before everything else because an offering is often made to pay for something else ("prices
   offering to fund acquisition of ...") and the sale is what moves the stock. Plain debt
   (senior notes, bonds) and an IPO are not dilution: "offering" counts only next to a word
   for shares, and "offering" a product ("Interactive Brokers offering fractional shares")
   does not.
3. `fda`: regulators' steps on drugs and devices and clinical results. Its words ("FDA",
   "Phase 3", "topline") rarely mean anything else, and a trial or study counts only in a
   medical context, so an impeachment trial or an OECD study stays out.
4. The rest, `m&a`, `contract`, `partnership` and `earnings`, are decided by whichever cue
   comes first in the headline, which is how headlines put the main event: "Fiat Chrysler's
   profit rises ahead of Peugeot merger" is earnings, "Edgewell's stock rockets after calling
   off Harry's merger deal, upbeat earnings" is m&a. At the same position the order above wins
   ("IFF Wins DuPont Nutrition Unit ... Deal" is a purchase, not a contract).
5. Anything else is `other`: dividends, buybacks, management changes, lawsuits, products,
   IPOs, macro news.

`classify` reads the headline; the summary is read only when the headline has no cue at all.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["Catalyst", "classify"]


class Catalyst(StrEnum):
    EARNINGS = "earnings"
    FDA = "fda"
    CONTRACT = "contract"
    MA = "m&a"
    PARTNERSHIP = "partnership"
    DILUTION = "dilution"
    OTHER = "other"


def _rx(*parts: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in parts), flags)


# 1. A broker's view: its source is an analyst, whatever the event it cites.
RATING = _rx(
    r"\b(?:upgrade[sd]?|downgrade[sd]?|upped|price target|target price|PT)\b",
    r"\b(?:initiat\w*|reiterat\w*|resumes?|starts?|maintain\w*|assume[sd]?) (?:coverage|at|as)\b",
    r"\b(?:overweight|underweight|outperform|underperform|equal[- ]weight|market perform|sector perform|peer perform)\b",
    r"\bconviction (?:buy|list)\b",
    r"\b(?:cut|raised|lowered|lifted) (?:to \w+ )?at [A-Z]",
    r"\bfair value estimate\b",
)

# 2. Stock or stock-linked paper sold into the market.
_SHARES = r"(?:equity|stock|shares?|unit|underwritten|secondary|follow-on|rights|registered direct|common stock|common share|at[- ]the[- ]market|ATM|public)"
DILUTION = _rx(
    rf"(?<!initial )\b{_SHARES} offerings?\b",
    r"\boffering of (?:\S+ ){0,4}(?:shares|common|stock|units|convertible)",
    r"\bconvertible\b[^.;]{0,40}\b(?:notes?|debt|bonds?|debentures?|securities)\b",
    r"\b(?:notes?|debt|bonds?)\b[^.;]{0,30}\bconversion\b|\bearly conversion\b|\bconversion price\b",
    r"\brights? (?:issue|offering)\b",
    r"\bshelf\b(?: registration| offering)?|\bfiles? for (?:a |mixed )?shelf\b",
    r"\bprivate placement\b(?![^.;]{0,30}\b(?:notes?|debt|bonds?|debentures?)\b)",
    r"\b(?:to offer|offers?|sells?|selling|issue[sd]?)\s+[\d.,]+\s*(?:m|mln|million|k)?\s*(?:new |common |ordinary )?shares\b",
    r"\bshare (?:issue|placement|purchase plan)\b|\bSPP\b",
    r"\b(?:stock|share)[- ]sales?(?: deal| agreement)?\b|\bresales?\b",
    r"\blisting to raise\b|\braise[sd]? [^.;]{0,20}\bin (?:a )?(?:hong kong|secondary) listing\b",
)
IPO = _rx(r"\binitial public offering\b", r"\bIPO\b")

# 3. Regulators on drugs and devices, and clinical results.
FDA_ACRONYMS = _rx(
    r"\bFDA\b|\bEMA\b(?<!\d EMA)|\bCHMP\b|\bPDUFA\b|\bMHRA\b|\bNMPA\b",
    r"\b(?:s?NDA|BLA|sBLA|IND|MAA)\b|\b510\(k\)|\bpre-(?:IND|BLA|NDA)\b",
    flags=0,  # "IND" or "EMA" in lower case are other words (and "8 EMA" is a moving average)
)
FDA_WORDS = _rx(
    r"\bphase (?:1|2|3|4|i|ii|iii|iv|1b|2a|2b|1/2|2/3)\b(?!\s+(?:trade|deal|of)\b)",  # not "Phase 1 trade deal"
    r"\btop[- ]?line (?:results|data)\b",
    r"\b(?:orphan drug|fast track|breakthrough therapy|priority review|accelerated approval|rare pediatric)\b",
    r"\b(?:drug|marketing|regulatory) approval\b|\bnew drug submission\b|\bhealth canada\b[^.;]{0,40}\bapprov",
    r"\bclinical (?:trial|study|data|results|development|hold)\b|\bpreclinical\b",
    r"\b(?:late|early|mid)-stage (?:trial|study|data)\b",
)
FDA_CONTEXT = _rx(  # a trial or study is medical only next to one of these
    r"\b(?:drug|treatment|therapy|therapies|patients?|cancer|tumou?r|disease|syndrome|vaccines?|clinical|efficacy"
    r"|endpoints?|dosing|dose|enrollment|placebo|oncology|lupus|psoriasis|schizophrenia|alzheimer'?s|diabetes"
    r"|melanoma|heart|nash|hepatitis|hiv|covid-19|dengue|pump|late-stage|early-stage|mid-stage)\b",
    r"\b[a-z]{3,}(?:mab|nib|cel|parin|tide|stat|siran|vir|cept|lisib|ciclib)\b",
    r"\bin MS\b",
)
STUDY = _rx(r"\b(?:trials?|study|studies|data|results)\b")
VACCINE = _rx(r"\bvaccine\b[^.;]{0,40}\b(?:candidate|trial|data|approval|advancement|development|study)\b",
              r"\badvancement of [^.;]{0,20}\bvaccine\b")

# 4. Deals, contracts, partnerships and results.
_BUY = (
    r"\b(?:to buy|buys|bought|buying|agreed to buy|agrees to buy|offers? to buy|talks to buy|bid to buy"
    r"|to acquire|to purchase)\b(?![^;]{0,40}\b(?:the dip|stocks|ETFs?|goods|products|calls|puts|back|bonds|"
    r"treasuries|soybeans|farm)\b)"
)
MA = _rx(
    r"\b(?:acquires?|acquired|acquisitions?|merger|mergers|merges?|merging|takeover|take-?private|buyout"
    r"|tender offer|divest\w*|spin-?off|carve-?out|M&A)\b",
    r"\bto merge\b",
    _BUY,
    r"\bbuy (?:a |majority |minority |controlling )?stakes?\b",
    r"\b(?:purchase|sale) of (?:its |the |a )?[^.;]{0,40}\b(?:unit|business|division|subsidiary|brand|stake|assets?|operations|company)\b",
    r"\b(?:to sell|sells|selling|weighing sale|exploring a sale|explores sale|looking to sell)\b(?=[^.;]{0,40}\b(?:unit|business|division|subsidiary|brand|stake|assets?|operations)\b)",
    r"\bwins\b[^.;]{0,40}\b(?:unit|business|division)\b",
    r"\b(?:majority|controlling) (?:control|stake|interest|ownership)\b|\bbid to control\b",
    r"\bstock purchase agreement\b|\b\d+% (?:stake|ownership|interest)\b|\bstakes? in\b(?=[^.;]{0,30}\b(?:blocks?|fields?|assets?)\b)",
    r"\btie-up\b(?=[^.;]{0,30}\$|[^.;]{0,15}\bdeal\b)|\$[\d.]+ ?(?:billion|bn)[^.;]{0,40}\btie-up\b",
    r"\b(?:lose|loses|losing|loss of|win|wins) [^.;]{0,10}\btender\b",
)
MA_NAMED = _rx(  # a company's name after the verb: capitals matter
    r"\b(?:to sell|[Ss]ells|[Tt]o [Ss]ell|agreement to sell|bid for|[Bb]id [Ff]or|[Bb]uys|BUYS|purchase of) (?:its |the )?[A-Z][a-z]\w+",
    flags=0,
)
_NOT_MA = _rx(  # investment advice and fund flows
    r"\b(?:stocks?|what(?: not)?|smart|good stocks?|a good stock|time|reasons?|ways?|funds (?:are|have been)|insiders?|should you)"
    r"\s+(?:to\s+)?(?:buy|buys|buying|sell|selling)\b",
    r"\binsider buys\b|\bhedge funds? (?:are )?(?:buying|selling)\b",
)
CONTRACT = _rx(
    r"\bcontracts?\b(?!\s+(?:[\d.]+\s*%|in the|for the first time))",
    r"\bcontracted\b(?=[^.;]{0,20}\b(?:acre|acreage|capacity|volumes?)\b)",
    r"\bawarded\b[^.;]{0,40}\b(?:contract|deal|order|project|work)\b|\bawarded \$",
    r"\b(?:project|contract|industrial|construction) awards?\b",
    r"\b(?:orders?|ordered)\b(?=\s+(?:for|from)\b)|\b(?:wins?|winning|inks?|gets|receives?|announces|additional|new) orders?\b",
    r"\b(?:wins?|won|lands?|scores?|secures?|receives?)\b[^.;]{0,40}\b(?:deal|tender|order)\b",
    r"\b(?:supply|processing|services?|purchase|offtake|lease|power purchase|EPC)\s+(?:deal|agreement|contract)s?\b",
    r"\bmaster lease\b|\bselected (?:as|to|by)\b|\bselects\b(?!\s+\w+\s+as\s+(?:new\s+)?(?:CEO|CFO|chair\w*|president))",
)
CONTRACT_MODEL = re.compile(r"\b[A-Z0-9]*\d[A-Z0-9]* [Oo]rders?\b")  # "A321XLR Order", "737 MAX order"
_NOT_CONTRACT = _rx(
    r"\b(?:futures|option|employment|labor|labour|call|put) contracts?\b|\bcontract (?:ends|expires)\b",
    r"\b(?:executive|court|stay-at-home|cease trade|interim|self-order|gag|restraining) orders?\b|\border of merit\b",
    r"\b(?:economy|production|output|gdp|revenue|manufacturing|activity|sector)s? contracts?\b",
)
PARTNERSHIP = _rx(
    r"\bpartner(?:s|ed|ing)? (?:with|on|to)\b|\bpartnering\b|\bpartnerships?\b(?! with @)",
    r"\bcollaborat\w+\b|\bco-?operation agreement\b|\bcooperation agreement\b",
    r"\bjoint venture\b|\bJV\b|\bteams? (?:up )?with\b|\bteams? up\b|\bteaming up\b|\bties? up with\b|\btie-up\b",
    r"\bco-develop\w*|\bMoU\b|\bmemorandum of understanding\b",
    r"\blicen[cs](?:e|ing) (?:agreement|deal)s?\b|\b(?:distribution|development|research|co-promotion|marketing) (?:deal|agreement)s?\b",
    r"\bdistributor partnerships?\b|\binks? (?:a |an )?deal with\b|\bsigns? (?:a |an )?deal with\b",
)
_LOWER_PARTNERSHIP = re.compile(r"(?<!capital )\bventure\b(?! capital)|\balliance\b")  # lower case only
_NOT_PARTNERSHIP = _rx(r"\(in partnership with")
EARNINGS = _rx(
    r"\bEPS\b|\bearnings\b|\bFFO\b|\bEBITDA\b",
    r"\b(?:financial|quarterly|annual|interim|preliminary|full[- ]year|half[- ]year|fiscal|Q[1-4]|[1-4]Q|FY|H[12]|1H|2H)\s+(?:\d{4}\s+)?results\b",
    r"\breports? (?:\w+ ){0,3}results\b|\bresults (?:miss|beat|top)\b|\bafter (?:\w+ ){0,2}results\b|\b(?:post|ahead of|disappointing) (?:Q[1-4] )?results\b",
    r"\b(?:raises?|cuts?|lowers?|withdraws?|withdrew|reaffirms?|maintains?|boosts?|trims?|narrows?|sees|provides)\b"
    r"[^.;]{0,30}\b(?:guidance|outlook|forecast|view)\b",
    r"\b(?:FY|Q[1-4]|20\d\d|full[- ]year|annual|revenue|EPS|FFO|EBITDA|profit|sales)\b[^.;]{0,15}\b(?:guidance|outlook|forecast)\b",
    r"\bguides (?:light|higher|lower|above|below|in-line|ahead)\b",
    r"\b(?:record|latest|fourth|third|second|first|weak|strong) quarter\b",
    r"\bQ[1-4]\b[^.;]{0,25}\b(?:sales|revenue|EPS|profit|loss|beat|miss|performance)\b",
    r"\b(?:sales|revenue|profit|profits)\b[^.;]{0,20}\b(?:beat|beats|miss|misses|tops?|disappoint\w*|update|fell|fall|rose|rise|rises|jump\w*|drop\w*|slump\w*|evaporate|doubled|surge\w*)\b",
    r"\b(?:beat|beats|miss|misses|topper|tops)\b[^.;]{0,15}\b(?:estimates|consensus|expectations|revenue)\b",
    r"\bsame-store sales\b|\bcomparable sales\b|\bconference call\b|\bcall transcript\b",
    r"\bprofit (?:drop|warning|forecast|rises?|falls?|jumps?)\b|\bdoubled profits\b",
)
_NOT_EARNINGS = _rx(  # the economy's numbers, not a company's
    r"\b(?:GDP|economy|economic|central bank|retail sales|jobs report|payrolls|inflation|trade outlook|government revenue|oil revenue)\b"
)


def classify(headline: str, summary: str = "") -> Catalyst:
    """The catalyst class of a news item (see the module docstring for the rules)."""
    found = _classify(headline or "")
    if found is None and summary:
        found = _classify(summary[:300])
    return found or Catalyst.OTHER


def _classify(text: str) -> Catalyst | None:
    text = re.sub(r"https?://\S+", " ", text)
    if RATING.search(text):
        return Catalyst.OTHER
    if DILUTION.search(text):
        return Catalyst.DILUTION
    if _fda(text):
        return Catalyst.FDA
    if IPO.search(text):  # an IPO is a new listing, not a catalyst of a listed stock
        return Catalyst.OTHER
    # Blank out phrases that look like deal words but are not ("stocks to buy", "futures
    # contracts", "executive order"), keeping offsets, so that only deal words are left.
    not_ma = _blank(_NOT_MA, text)
    not_contract = _blank(_NOT_CONTRACT, text)
    cues = [
        (Catalyst.MA, _min(_first(MA, not_ma), _first(MA_NAMED, not_ma))),
        (Catalyst.CONTRACT, _min(_first(CONTRACT, not_contract), _first(CONTRACT_MODEL, not_contract))),
        (
            Catalyst.PARTNERSHIP,
            None if _NOT_PARTNERSHIP.search(text) else _min(_first(PARTNERSHIP, text), _first(_LOWER_PARTNERSHIP, text)),
        ),
        (Catalyst.EARNINGS, None if _NOT_EARNINGS.search(text) else _first(EARNINGS, text)),
    ]
    found = [(position, order, catalyst) for order, (catalyst, position) in enumerate(cues) if position is not None]
    if found:
        return min(found)[2]
    return None


def _blank(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: " " * len(m.group()), text)


def _fda(text: str) -> bool:
    if FDA_ACRONYMS.search(text) or FDA_WORDS.search(text) or VACCINE.search(text):
        return True
    return bool(STUDY.search(text) and FDA_CONTEXT.search(text) and re.search(r"\b(?:trials?|study|studies)\b", text, re.I))


def _first(pattern: re.Pattern[str], text: str) -> int | None:
    m = pattern.search(text)
    return m.start() if m else None


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
