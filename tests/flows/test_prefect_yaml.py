"""prefect.yaml: every deployment points at a real flow, with parameters that flow accepts and
names (strategy and its params, cost preset, sources, objective) that tapeflow really has,
schedules in New York time, and no path of any one machine; its name is unique and documented,
and the run form it gets shows every parameter with a type and a description."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow

from flows.parameters import Unset
from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.metrics import Metrics
from tapeflow.news import NEWS_SOURCE_NAMES
from tapeflow.sources import SOURCE_NAMES, WATCHLIST_SOURCE_NAMES
from tapeflow.strategy.registry import available
from tapeflow.venues.configured import ACTION_SOURCES

PROJECT = Path(__file__).resolve().parents[2]
PREFECT_YAML = PROJECT / "prefect.yaml"
CONFIG = yaml.safe_load(PREFECT_YAML.read_text())
DEPLOYMENTS = CONFIG["deployments"]

# A flow's `source` parameter names a market-data, watchlist or news source depending on the flow.
SOURCES_BY_FLOW: dict[str, tuple[str, ...]] = {
    "flows.ingest:ingest_bars": SOURCE_NAMES,
    "flows.backfill:backfill_bars": SOURCE_NAMES,
    "flows.watchlist:snapshot_watchlist": WATCHLIST_SOURCE_NAMES,
    "flows.backfill:backfill_watchlist": WATCHLIST_SOURCE_NAMES,
    "flows.news:ingest_news": NEWS_SOURCE_NAMES,
    "flows.actions:ingest_actions": tuple(ACTION_SOURCES),
}
OBJECTIVES = {f.name for f in dataclasses.fields(Metrics)}


def flow_of(deployment: dict[str, Any]) -> Flow:
    path, function = deployment["entrypoint"].split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)


def name_problems(deployment: dict[str, Any]) -> list[str]:
    """Every name in the deployment's parameters (or the flow's defaults for them) that tapeflow
    does not know: strategy, its params, cost preset, sources, objective."""
    entrypoint = deployment["entrypoint"]
    defaults = {name: p.default for name, p in inspect.signature(flow_of(deployment).fn).parameters.items()
                if p.default is not inspect.Parameter.empty and not isinstance(p.default, Unset)}
    given = {**defaults, **(deployment.get("parameters") or {})}
    where = f"{deployment['name']} ({entrypoint})"
    problems = []
    strategies = available()
    if given.get("strategy") is not None:
        if given["strategy"] not in strategies:
            problems.append(f"{where}: unknown strategy {given['strategy']!r}; known: {', '.join(strategies)}")
        else:
            try:
                strategies[given["strategy"]](**(given.get("params") or {}))
            except ValueError as exc:
                problems.append(f"{where}: params of {given['strategy']}: {exc}")
    elif given.get("params"):
        problems.append(f"{where}: params without a strategy")
    if given.get("costs") is not None:
        try:
            cost_preset(given["costs"])
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    if given.get("source") is not None:
        known = SOURCES_BY_FLOW.get(entrypoint)
        if known is None:
            problems.append(f"{where}: a source parameter, but no list of source names for this flow in this test")
        elif given["source"] not in known:
            problems.append(f"{where}: unknown source {given['source']!r}; known: {', '.join(known)}")
    if given.get("watchlist_source") is not None and given["watchlist_source"] not in WATCHLIST_SOURCE_NAMES:
        problems.append(f"{where}: unknown watchlist source {given['watchlist_source']!r}")
    if given.get("objective") is not None and given["objective"] not in OBJECTIVES:
        problems.append(f"{where}: unknown objective {given['objective']!r}; known: {', '.join(sorted(OBJECTIVES))}")
    return problems


COMPUTE_FLOWS = {"flows.nlp:train_sentiment", "flows.backtest:backtest", "flows.research:walk_forward", "flows.research:perturbation",
                 "flows.research:param_grid"}


def test_compute_flows_keep_their_results_through_the_hand_back():
    """A compute flow writes the warehouse only through `keep` or `keep_model`, which hand back on a compute machine."""
    writers = ("record(", "store(", "store_runs(", "store_run(", "open_warehouse(", "adopt(", "record_trained(",
               "choose_trained(", "read_new(")
    for entrypoint in COMPUTE_FLOWS:
        source = inspect.getsource(flow_of({"entrypoint": entrypoint}).fn)
        called = [name for name in writers if re.search(rf"(?<![\w.]){re.escape(name)}", source)]
        assert not called, f"{entrypoint} writes the warehouse directly: {called}"
        assert re.search(r"(?<![\w.])keep(_model)?\(", source), f"{entrypoint} keeps nothing"


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_deployment_runs_a_flow_with_valid_parameters(deployment):
    flow = flow_of(deployment)
    assert isinstance(flow, Flow)
    flow.validate_parameters(deployment.get("parameters") or {})
    for schedule in deployment.get("schedules", []):
        assert schedule["timezone"] == "America/New_York"
    # Only flows that hand their results back may leave the machine that owns the warehouse file.
    assert deployment["work_pool"]["name"] == ("compute" if deployment["entrypoint"] in COMPUTE_FLOWS else "warehouse")


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_every_name_a_deployment_uses_exists(deployment):
    assert name_problems(deployment) == []


@pytest.mark.parametrize("old, new, problem", [
    ("strategy: sma_cross", "strategy: sma_crosss", "unknown strategy 'sma_crosss'"),
    ("      strategy: opening_range\n      stop_loss_pct: 0.01", "      strategy: opening_rang\n      stop_loss_pct: 0.01",
     "unknown strategy 'opening_rang'"),
    ("params: {fast: 10, slow: 30}", "params: {fats: 10, slow: 30}", "params of sma_cross: "),
    ("params: {min_score: 80, max_names: 5}", "params: {min_score: 800, max_names: 5}", "min_score must be within"),
    ("costs: retail-default", "costs: retial-default", "unknown cost preset 'retial-default'"),
    ("source: bullalert", "source: bulalert", "unknown source 'bulalert'"),
    ("      source: replay\n      symbols: [SPY]", "      source: replya\n      symbols: [SPY]", "unknown source 'replya'"),
    # A market-data source is no news source.
    ("      source: replay\n      start: \"2010-08-16", "      source: polygonn\n      start: \"2010-08-16",
     "unknown source 'polygonn'"),
    ("      source: replay\n      start: \"2010-08-16", "      source: finnhub\n      start: \"2010-08-16",
     "unknown source 'finnhub'"),
    ("objective: sharpe", "objective: sharp", "unknown objective 'sharp'"),
], ids=["strategy", "trade-strategy", "param-name", "param-range", "costs", "watchlist-source", "bars-source",
        "news-source", "bars-source-for-news", "objective"])
def test_a_misspelled_name_in_a_copy_of_prefect_yaml_is_caught(tmp_path, old, new, problem):
    text = PREFECT_YAML.read_text()
    assert text.count(old) >= 1, f"prefect.yaml no longer holds {old!r}: update this test"
    copy = tmp_path / "prefect.yaml"
    copy.write_text(text.replace(old, new, 1))
    problems = [p for d in yaml.safe_load(copy.read_text())["deployments"] for p in name_problems(d)]
    assert len(problems) == 1 and problem in problems[0], problems


def test_no_machine_paths():
    [step] = CONFIG["pull"]
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $TAPEFLOW_PROJECT_DIR }}"
    assert "/work/" not in PREFECT_YAML.read_text() and "/home/" not in PREFECT_YAML.read_text()


def test_bad_parameters_are_caught():
    from flows.ingest import ingest_bars

    with pytest.raises(Exception, match="timeframe"):
        ingest_bars.validate_parameters({"timeframe": "5m"})


def test_trading_sessions_never_run_twice_at_once_and_start_paused():
    sessions = [d for d in DEPLOYMENTS if d["entrypoint"] == "flows.trade:trade_session" and d.get("schedules")]
    assert {d["parameters"]["strategy"] for d in sessions} >= {"opening_range", "watchlist_momentum"}
    for deployment in sessions:
        assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
        assert [s["active"] for s in deployment["schedules"]] == [False]  # until the strategy is promoted


# The values a run form or an API call could send by mistake, per flow parameter.
BAD_VALUES = [
    ("flows.backtest:backtest", {"strategy": "sma_crossover"}),
    ("flows.backtest:backtest", {"costs": "cheap"}),
    ("flows.backtest:backtest", {"watchlist_source": "scaner"}),
    ("flows.ingest:ingest_bars", {"source": "yahoo"}),
    ("flows.news:ingest_news", {"source": "finnhub"}),  # a market-data source, not a news one
    ("flows.trade:trade_session", {"strategy": "opening-range"}),
    ("flows.backtest:backtest", {"params": {"fats": 10}}),  # no strategy has it
    ("flows.backtest:backtest", {"params": {"fast": 1}}),  # below every strategy's range
    ("flows.backtest:backtest", {"stop_loss_pct": -0.1}),
    ("flows.research:walk_forward", {"grid": {"fats": [8, 10]}}),
]
GOOD_VALUES = {"strategy": "sma_cross", "costs": "none", "watchlist_source": "scanner", "params": {"fast": 12},
               "stop_loss_pct": 0.05, "grid": {"fast": [8, 10]}}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_api_refuses_a_run_with_a_name_tapeflow_does_not_know():
    """A deployment carries its flow's parameter schema; Prefect checks a new run against it and
    refuses it at creation, so a misspelled strategy never starts a run that fails later."""
    from prefect.client.orchestration import get_client
    from prefect.utilities.callables import parameter_schema

    with get_client(sync_client=True) as client:
        for entrypoint, values in BAD_VALUES:
            flow = flow_of({"entrypoint": entrypoint})
            deployment_id = client.create_deployment(
                flow_id=client.create_flow(flow), name=f"refuses-{next(iter(values))}", entrypoint=entrypoint,
                parameter_openapi_schema=parameter_schema(flow).model_dump_for_openapi(), enforce_parameter_schema=True)
            with pytest.raises(Exception, match="(?i)validation|parameters"):
                client.create_flow_run_from_deployment(deployment_id, parameters=values)
            good = {name: GOOD_VALUES.get(name, "replay") for name in values}
            run = client.create_flow_run_from_deployment(deployment_id, parameters=good)
            client.delete_flow_run(run.id)


def full_name(deployment: dict[str, Any]) -> str:
    return f"{flow_of(deployment).name}/{deployment['name']}"


def test_every_deployment_name_is_unique_and_in_the_operations_manual():
    names = [d["name"] for d in DEPLOYMENTS]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    manual = (PROJECT / "docs" / "operations.md").read_text()
    assert [full_name(d) for d in DEPLOYMENTS if f"`{full_name(d)}`" not in manual] == []


def form_problems(entrypoint: str) -> list[str]:
    """What the run form would show badly: a field with no description, with no type, with a
    "None" variant (an anyOf with null, which the form draws as a second choice), or with a
    null default (which the form fills in and then refuses as "None is not of type ...")."""
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(flow_of({"entrypoint": entrypoint}).fn).model_dump()
    problems = []
    for name, field in schema["properties"].items():
        if not field.get("description"):
            problems.append(f"{entrypoint} {name}: no description")
        if not {"type", "enum", "$ref"} & field.keys():
            problems.append(f"{entrypoint} {name}: no type")
        if any(v.get("type") == "null" for v in field.get("anyOf", [])):
            problems.append(f"{entrypoint} {name}: a None variant")
        if "default" in field and field["default"] is None:  # the form's own check refuses null for a typed field
            problems.append(f"{entrypoint} {name}: a null default")
    return problems


@pytest.mark.parametrize("entrypoint", sorted({d["entrypoint"] for d in DEPLOYMENTS}))
def test_every_run_form_field_has_a_type_and_a_description(entrypoint):
    assert form_problems(entrypoint) == []


def test_strategy_parameters_are_fields_with_their_ranges():
    from prefect.utilities.callables import parameter_schema

    from flows.backtest import backtest

    schema = parameter_schema(backtest.fn).model_dump()
    fields = schema["properties"]["params"]["properties"]
    for cls in available().values():
        for param in cls.params:
            field = fields[param.name]
            assert field["minimum"] <= param.low and field["maximum"] >= param.high
            assert f"{cls.name}: {param.doc}" in field["description"]
    assert schema["properties"]["params"]["additionalProperties"] is False
    assert backtest.validate_parameters({"params": {"fast": 5}})["params"].values() == {"fast": 5}
    assert backtest.validate_parameters({"params": None})["params"].values() == {}
