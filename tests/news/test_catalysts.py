"""Catalyst classes: one hand-made headline per rule and per trap, the precedence between
rules, the labelled-set loader, and the measured scores on data/news/catalysts.csv."""

from __future__ import annotations

import pytest

from tapeflow.news.catalysts import Catalyst, classify
from tapeflow.news.labelled import LabelError, catalyst_examples
from tapeflow.news.metrics import classification_report

C = Catalyst


def test_the_seven_classes():
    assert [c.value for c in Catalyst] == ["earnings", "fda", "contract", "m&a", "partnership", "dilution", "other"]
    assert Catalyst("m&a") is C.MA and C.MA == "m&a"


@pytest.mark.parametrize(
    ("headline", "expected"),
    [
        # earnings: results, calls, guidance, reactions to a quarter
        ("Acme EPS beats by $0.05, beats on revenue", C.EARNINGS),
        ("Acme Reports Fourth Quarter and Full Year 2019 Results", C.EARNINGS),
        ("Acme raises 2020 revenue guidance", C.EARNINGS),
        ("Acme Q4 2019 Earnings Call Transcript", C.EARNINGS),
        ("Acme shares plunge on profit, sales miss", C.EARNINGS),
        # fda: regulators and clinical results
        ("FDA approves Acme's drug for ALS", C.FDA),
        ("Acme announces positive topline results from Phase 3 study", C.FDA),
        ("Acme halts clinical development of its lead candidate", C.FDA),
        ("Acme shares fall 40% on failed trial of its cancer drug", C.FDA),
        # contract: a customer buys
        ("Acme wins $23.7M contract", C.CONTRACT),
        ("Acme awarded $3.3B to support satcom network", C.CONTRACT),
        ("Emirates announces $16 billion order for 50 Airbus planes", C.CONTRACT),
        ("Acme signs supply agreement with Beta", C.CONTRACT),
        # m&a: buying and selling companies, units and control
        ("Acme to buy Beta in $1.1 bln stock deal", C.MA),
        ("Acme to sell its consumer unit", C.MA),
        ("Beta rejects Acme's unsolicited buyout offer", C.MA),
        ("Acme explores a sale of its drug delivery systems unit", C.MA),
        # partnership: working together
        ("Acme partners with Beta on 5G laptops", C.PARTNERSHIP),
        ("Acme and Beta form joint venture in Ohio", C.PARTNERSHIP),
        ("Acme inks licence agreement with Beta", C.PARTNERSHIP),
        # dilution: stock and stock-linked paper
        ("Acme prices $50M underwritten public offering", C.DILUTION),
        ("Acme down 12% after pricing equity offering", C.DILUTION),
        ("Acme announces $600M convertible senior notes offering", C.DILUTION),
        ("Acme files for mixed shelf", C.DILUTION),
        ("Acme starts rights offering", C.DILUTION),
        # other
        ("Acme declares $0.25 dividend", C.OTHER),
        ("Acme announces new $100M share buyback program", C.OTHER),
        ("Acme names new CFO", C.OTHER),
        ("Fed holds rates steady", C.OTHER),
    ],
)
def test_each_rule(headline, expected):
    assert classify(headline) is expected


@pytest.mark.parametrize(
    ("headline", "expected"),
    [
        # "offering" of a product, debt offerings and IPOs are not dilution
        ("Interactive Brokers : Offering Fractional Share Trading", C.OTHER),
        ("Acme expands eCOA offering and wins contract with top pharma", C.CONTRACT),
        ("Acme prices $1.05B senior notes offering", C.OTHER),
        ("Acme prices $100M initial public offering", C.OTHER),
        ("Software Acquisition Corp prices IPO at $10", C.OTHER),
        # a trial or study outside medicine
        ("Senate impeachment trial continues", C.OTHER),
        ("Phase 1 trade deal boosts stocks", C.OTHER),
        ("China's schoolchildren top OECD study", C.OTHER),
        # buying and selling that is not a deal
        ("Three stocks to buy during the crash", C.OTHER),
        ("Hedge Funds Are Buying Acme Corp (ACME)", C.OTHER),
        ("China to buy additional $32 billion in U.S. farm goods", C.OTHER),
        # order, contract, partner in other senses
        ("Trump signs executive order on drug prices", C.OTHER),
        ("Industrial production contracts 3.8% in October", C.OTHER),
        ("Acme Partners declares $0.14 dividend", C.OTHER),
        ("Preferred stocks explained (In partnership with @acorns.)", C.OTHER),
        # a rating action is other, whatever it cites
        ("Acme cut at Credit Suisse on potential dilution from merger", C.OTHER),
        ("Acme upgraded to buy at BofA on contract wins", C.OTHER),
        ("Acme stock price target raised to $90 from $85 at SunTrust", C.OTHER),
    ],
)
def test_traps(headline, expected):
    assert classify(headline) is expected


def test_precedence():
    # dilution before m&a: the sale of shares is what moves the stock
    assert classify("Acme prices $200M stock offering to fund acquisition of Beta") is C.DILUTION
    # fda before earnings: "results" of a study are clinical
    assert classify("Acme reports positive results from Phase 3 trial") is C.FDA
    # otherwise the first cue in the headline
    assert classify("Fiat Chrysler's profit rises ahead of Peugeot merger") is C.EARNINGS
    assert classify("Edgewell's stock rockets after calling off merger deal, upbeat earnings") is C.MA
    # at the same position m&a comes before contract
    assert classify("IFF Wins DuPont Nutrition Unit Over Kerry in $26.2 Billion Deal") is C.MA


def test_summary_only_when_the_headline_says_nothing():
    assert classify("Acme: a statement", "Acme Corp announced a $50M registered direct offering.") is C.DILUTION
    assert classify("Acme wins $10M contract", "The company also reported Q3 results.") is C.CONTRACT
    assert classify("", "") is C.OTHER


def test_loader_reads_both_splits():
    dev, test = catalyst_examples("dev"), catalyst_examples("test")
    both = catalyst_examples()
    assert len(both) == len(dev) + len(test) >= 350
    assert all(isinstance(c, Catalyst) for _, c in both)
    for c in Catalyst:  # every class has at least 25 examples
        assert sum(1 for _, label in both if label is c) >= 25, c
    with pytest.raises(ValueError, match="unknown split"):
        catalyst_examples("train")


def test_a_bad_label_is_a_clear_error(tmp_path):
    (tmp_path / "news").mkdir()
    path = tmp_path / "news" / "catalysts.csv"
    path.write_text('text,catalyst,split,origin\n"Acme wins contract",contracts,dev,x:1\n')
    with pytest.raises(LabelError, match=r"catalysts.csv:2: catalyst 'contracts' is not one of"):
        catalyst_examples(data_dir=tmp_path)
    path.write_text('text,catalyst,split,origin\n"Acme wins contract",contract,train,x:1\n')
    with pytest.raises(LabelError, match="split 'train'"):
        catalyst_examples(data_dir=tmp_path)


def _report(split: str):
    examples = catalyst_examples(split)
    return classification_report([c for _, c in examples], [classify(t) for t, _ in examples], list(Catalyst))


def test_test_split_scores_stay_above_their_floors():
    # Measured on the test split, never used to tune the rules: accuracy 0.932, macro-F1 0.934.
    report = _report("test")
    assert report.accuracy >= 0.90
    assert report.macro_f1 >= 0.90


def test_dev_split_scores_stay_above_their_floors():
    # The rules were tuned on dev: accuracy 0.985, macro-F1 0.981.
    report = _report("dev")
    assert report.accuracy >= 0.96
    assert report.macro_f1 >= 0.95
