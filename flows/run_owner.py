"""Who runs a flow run: a tag naming this host and process (`tapeflow-owner:HOST:PID`) on
every run started under `owned_runs`, read back with `owner_of`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prefect import tags

from tapeflow.live.owner import Owner

TAG_PREFIX = "tapeflow-owner:"


def owner_tag(owner: Owner) -> str:
    return f"{TAG_PREFIX}{owner}"


def owner_of(run_tags: Iterable[str]) -> Owner | None:
    """The owner a run's tags name; None for a run tapeflow did not start in-process."""
    for tag in run_tags:
        if tag.startswith(TAG_PREFIX) and (owner := Owner.parse(tag.removeprefix(TAG_PREFIX))) is not None:
            return owner
    return None


@contextmanager
def owned_runs() -> Iterator[Owner]:
    """Tag every flow run and task run created inside (subflows too) with this process."""
    owner = Owner.here()
    # Tags are sent with the create call, so even a run killed while Pending names its owner.
    with tags(owner_tag(owner)):
        yield owner
