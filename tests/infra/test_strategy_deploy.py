"""A strategy of the user's, deployed: written by `mytrader strategy new` in a folder outside the repository and
named by a config file there, the synthesized decision cycle and executor carry the file in their code and load it
from there; what the Lambda layer cannot import, or a strategy that does not load, fails the synth in one line
(cdk/mytrader_infra/strategy_asset.py). One synth for the module; the import check is pure and needs none."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mytrader.app.settings import PipelineSettings
from mytrader.strategies import load_strategy
from mytrader_infra.strategy_asset import StrategyDeployError, check_imports, layer_modules, package_strategy
from mytrader_tools.scaffold import scaffold_strategy
from tests.infra.conftest import resources, synth

CONFIG = '[strategy]\nname = "my_edge.py"  # next to this file\n\n[llm]\nenabled = false\n'
PACKAGED = "user_strategy/my_edge.py"


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory) -> Path:
    """A folder outside the repository with the scaffolded strategy and a config file naming it."""
    folder = tmp_path_factory.mktemp("my-bot")
    scaffold_strategy("my_edge", folder)
    (folder / "mytrader.toml").write_text(CONFIG)
    return folder


@pytest.fixture(scope="module")
def deployed(user_folder) -> tuple[dict, Path]:
    """The stack synthesized once with that config (-c config=PATH): its template and cloud assembly."""
    out = user_folder / "cdk.out"
    return synth(out, {"config": str(user_folder / "mytrader.toml")}, nag=False), out


def _function(template: dict, key: str) -> dict:
    found = [r["Properties"] for name, r in resources(template, "AWS::Lambda::Function").items()
             if name.startswith(key)]
    assert len(found) == 1, key
    return found[0]


def _code_folder(out: Path, fn: dict) -> Path:
    return out / f"asset.{fn['Code']['S3Key'].removesuffix('.zip')}"


def _trading_json(fn: dict) -> str:
    return fn["Environment"]["Variables"]["TRADING_JSON"]


def test_the_user_strategy_is_packaged_into_the_functions_that_load_it_and_loads_there(deployed, user_folder,
                                                                                       tmp_path, monkeypatch):
    """One test on the synthesized stack: under pytest-xdist, a second one could synthesize it again elsewhere."""
    # Given a scaffolded strategy outside the repository, named by the config next to it
    template, out = deployed
    written = (user_folder / "my_edge.py").read_bytes()
    # When the stack is synthesized / Then the decision cycle and the executor carry the file beside their handler
    for key in ("decisionsdecisioncyclefn", "executionexecutorfn"):
        fn = _function(template, key)
        code = _code_folder(out, fn)
        assert (code / "handler.py").is_file() and (code / PACKAGED).read_bytes() == written
        # and their TRADING_JSON names it where it is packaged, with the config's parameters
        assert json.loads(_trading_json(fn))["strategy"] == {"name": PACKAGED, "params": {}}
    # and the other functions only share that TRADING_JSON (one config version across the stack)
    outcomes = _function(template, "executionoutcomesfn")
    assert not (_code_folder(out, outcomes) / PACKAGED).exists()
    functions = resources(template, "AWS::Lambda::Function").values()
    assert {_trading_json(fn["Properties"]) for fn in functions} == {_trading_json(outcomes)}

    # Given the decision cycle's code as Lambda's /var/task, and a working folder without the strategy
    cycle = _function(template, "decisionsdecisioncyclefn")
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(_code_folder(out, cycle)))
    monkeypatch.chdir(tmp_path)
    # When the function reads its settings from the stack's environment and loads the configured strategy
    cfg = PipelineSettings.from_env({"TRADE_LOG_TABLE": "t", "TRADING_JSON": _trading_json(cycle)}).trading_config(
        "baseline", "none")
    loaded = load_strategy(cfg.strategy.name, cfg.strategy.params)
    # Then it is the user's strategy, the same as loaded from the user's own file
    assert loaded.label == "my_edge v1"
    assert loaded.fingerprint() == load_strategy(str(user_folder / "my_edge.py")).fingerprint()


def test_the_synth_refuses_a_strategy_that_imports_what_the_layer_lacks(user_folder, tmp_path):
    # Given the scaffolded strategy importing scikit-learn inside a method, named by a config
    from app import build_app

    method = "    def fit(self):\n        from sklearn.linear_model import Ridge\n        return Ridge\n\n"
    signals = "    def signals(self"
    source = (user_folder / "my_edge.py").read_text().replace(signals, method + signals, 1)
    assert "sklearn" in source
    (tmp_path / "my_edge.py").write_text(source)
    (tmp_path / "mytrader.toml").write_text(CONFIG)
    # When the CDK app is built with it / Then the synth stops on one line naming the file, the module and its line
    with pytest.raises(StrategyDeployError) as refused:
        build_app(context={"aws:cdk:bundling-stacks": [], "config": str(tmp_path / "mytrader.toml")}, nag=False)
    message = str(refused.value)
    line = source.splitlines().index("        from sklearn.linear_model import Ridge") + 1
    assert message.startswith(f"strategy file {tmp_path / 'my_edge.py'}: imports sklearn (line {line}), not in the "
                              "Lambda layer") and "\n" not in message


def test_the_import_check_reads_every_import_that_runs(tmp_path):
    path = tmp_path / "s.py"
    # Given imports of the layer (stdlib, mytrader, pinned requirements), and imports that never run or are guarded
    fine = ("from __future__ import annotations\nimport json, numpy as np\nimport talib\nfrom pydantic import Field\n"
            "from mytrader.strategies import Strategy\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    import pandas\ntry:\n    import scipy\nexcept ImportError:\n    scipy = None\n"
            "def f():\n    import statistics\n")
    # When checked / Then they pass
    check_imports(path, fine, layer_modules())
    # Given a module next to the file, a relative import, and a package the layer lacks imported in a function
    (tmp_path / "helpers.py").write_text("")
    bad = "import helpers\nfrom .other import x\ndef f():\n    import torch.nn\n"
    # When checked / Then one line gives each with its line and why
    with pytest.raises(StrategyDeployError, match=r"^strategy file .*s\.py: imports torch \(line 4\), not in the "
                       r"Lambda layer .*; imports helpers \(line 1\) from its folder, but only the strategy file is "
                       r"deployed .*; relative import from \.other \(line 2\) is not supported"):
        check_imports(path, bad, layer_modules())
    # and a file that does not parse is one line too
    with pytest.raises(StrategyDeployError, match=r"s\.py: line 1: "):
        check_imports(path, "def (:\n", layer_modules())


def test_a_strategy_that_does_not_load_is_refused_naming_the_file_and_the_reason(user_folder):
    # Given the user's strategy with a parameter out of its range
    trading_json = json.dumps({"strategy": {"name": "my_edge.py", "params": {"fast": 1}}})
    # When it is checked for deployment / Then the refusal names the file and the loader's reason
    file = re.escape(str(user_folder / "my_edge.py"))
    with pytest.raises(StrategyDeployError, match=rf"^strategy {file} cannot be deployed: .*fast"):
        package_strategy(trading_json, user_folder)


def test_where_a_strategy_is_looked_for(user_folder):

    def deployed_name(name: str) -> str | None:
        trading_json, packaged = package_strategy(json.dumps({"strategy": {"name": name, "params": {}}}), user_folder)
        assert json.loads(trading_json)["strategy"]["name"] == (packaged.spec if packaged else name)
        return packaged.spec if packaged else None

    # Given a bundled strategy, or a class of a module in the layer / Then nothing is packaged
    assert deployed_name("sma_crossover") is None
    assert deployed_name("mytrader.strategies.library.sma_crossover:SmaCrossover") is None
    # Given module:Class of the user's / Then the file next to the config, with the class named
    assert deployed_name("my_edge:MyEdge") == f"{PACKAGED}:MyEdge"
    # Given a package of the user's, or a file that is nowhere / Then one line says why
    with pytest.raises(StrategyDeployError, match="only a single file can be deployed"):
        deployed_name("bot.my_edge:MyEdge")
    with pytest.raises(StrategyDeployError, match=r"^strategy file nowhere\.py not found \(looked in "):
        deployed_name("nowhere.py")
