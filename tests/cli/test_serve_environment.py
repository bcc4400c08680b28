"""What `tapeflow serve` hands its worker: paths that hold whatever folder a flow run starts in."""

from __future__ import annotations

import os

from tapeflow.cli.serve import stack_environment
from tapeflow.config import Settings


def test_the_worker_gets_the_users_strategy_files_by_absolute_path(tmp_path, monkeypatch, tapeflow_home):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "one.py").write_text("")
    env = stack_environment(Settings(strategy_path=os.pathsep.join(["mine", "one.py"])), 4999)
    assert env["TAPEFLOW_STRATEGY_PATH"].split(os.pathsep) == [str(tmp_path / "mine"), str(tmp_path / "one.py")]
    assert env["TAPEFLOW_HOME"] == str(tapeflow_home.resolve())


def test_without_strategy_files_nothing_is_added(tapeflow_home):
    assert "TAPEFLOW_STRATEGY_PATH" not in stack_environment(Settings(), 4999)
