"""The project's config file (mytrader.app.project_config): schema, one-line errors with key and line, overrides,
the default file, and what the pipeline, the CDK app and the decision ids take from it."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mytrader.app.project_config import (
    ConfigError,
    InputError,
    Override,
    ProjectConfig,
    context_settings,
    default_toml,
    leaf_keys,
    load_config,
)
from mytrader.app.settings import PipelineSettings
from mytrader.config import LOCAL_MODEL_ID, AdvisorSettings, StrategyChoice, TradingConfig
from mytrader.models import Mode

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "mytrader.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_default_file_is_the_defaults_and_the_repository_holds_it():
    # Given the file `mytrader init` writes / Then it parses to the built-in defaults, and the repository's copy is it
    import tomllib

    assert ProjectConfig.model_validate(tomllib.loads(default_toml())) == ProjectConfig()
    assert (ROOT / "mytrader.toml").read_text() == default_toml()
    # every key of the schema is in it (commented out where it has no default), and in docs/config.md
    assert all(key.split(".")[-1] + " = " in default_toml() for key in leaf_keys())
    docs = (ROOT / "docs" / "config.md").read_text()
    assert [key for key in leaf_keys() if f"`{key}`" not in docs] == []


def test_errors_name_the_dotted_key_and_its_line(tmp_path):
    # Given a file with a bad value, a misspelt key and a bad symbol
    path = write(tmp_path, 'universe = ["AAPL", "msft_x"]\n\n[llm]\nmodel_id = "m"\nmin_confidence = 1.5\n'
                           'enabeld = false\n\n[risk]\nmax_position_pct = -1\n')
    # When it is loaded
    with pytest.raises(ConfigError) as err:
        load_config(path)
    # Then one line names each key, its line and what is wrong
    msg = str(err.value)
    assert "\n" not in msg
    assert f"{path}:1: universe[1]" in msg and "msft_x" in msg
    assert f"{path}:5: llm.min_confidence: Input should be less than or equal to 1 (got 1.5)" in msg
    assert f"{path}:6: llm.enabeld: unknown key (did you mean enabled?)" in msg
    assert f"{path}:9: risk.max_position_pct" in msg


@pytest.mark.parametrize(("text", "expected"), [
    ("[llm\nenabled = true\n", "not valid TOML"),
    ('mode = "fast"\n', ":1: mode: Input should be 'baseline', 'consensus', 'override' or 'advisory'"),
    ("[broker]\nlive_trading = true\n", "broker: live_trading = true needs kind"),
    ("[backtest]\nstart = 2012-01-01\nend = 2011-01-01\n", "start 2012-01-01 is after end 2011-01-01"),
    ('[schedules]\ndecision = "every minute"\n', ":2: schedules.decision"),
])
def test_each_mistake_is_one_line(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_unreadable_files_are_one_line_and_a_byte_order_mark_is_accepted(tmp_path):
    # Given a directory, a missing file, a Latin-1 file and a UTF-8 file with a byte-order mark
    (tmp_path / "latin.toml").write_bytes('mode = "baseline" # caf\xe9\n'.encode("latin-1"))
    (tmp_path / "bom.toml").write_bytes(b'\xef\xbb\xbfmode = "baseline"\n')
    for path, expected in ((tmp_path, "is a directory"), (tmp_path / "none.toml", "does not exist"),
                           (tmp_path / "latin.toml", r"is not UTF-8 text \(byte 0xe9")):
        with pytest.raises(InputError, match=expected):
            load_config(path)
    # Then the byte-order mark is no problem
    assert load_config(tmp_path / "bom.toml").mode == Mode.BASELINE


def test_overrides_win_and_are_named_in_errors(tmp_path):
    # Given a file setting the capital, and options overriding it (one of them wrong)
    path = write(tmp_path, "[backtest]\ncapital = 5000\n")
    assert load_config(path, [Override("backtest.capital", 7000.0, "--cash")]).backtest.capital == 7000
    assert load_config(path, [Override("backtest.capital", None, "--cash")]).backtest.capital == 5000  # not given
    with pytest.raises(ConfigError, match=r"^--cash: backtest.capital: Input should be greater than 0"):
        load_config(path, [Override("backtest.capital", -1.0, "--cash")])
    # text values, as CDK context gives them, are read as the key's type
    cfg = load_config(None, [Override("llm.enabled", "false", "-c llm.enabled"),
                             Override("universe", "AAPL,MSFT", "-c universe")])
    assert cfg.llm.enabled is False and cfg.universe == ["AAPL", "MSFT"]


def test_the_config_hash_covers_the_new_settings():
    # Given the default decision settings / When the strategy, its parameters or llm.enabled change
    base = TradingConfig()
    others = [TradingConfig(strategy=StrategyChoice(name="sma_crossover")),
              TradingConfig(strategy=StrategyChoice(params={"fast": 10})),
              TradingConfig(advisor=AdvisorSettings(enabled=False))]
    # Then each has its own version (part of every decision id)
    assert len({base.version, *(c.version for c in others)}) == 4


def test_llm_off_means_baseline_everywhere():
    # Given llm.enabled = false with mode = override
    cfg = load_config(None, [Override("llm.enabled", False, "x"), Override("mode", "override", "y")])
    # Then the decisions are the baseline's, the stack reads no news (no Comprehend) and runs the baseline
    assert cfg.effective_mode == Mode.BASELINE and cfg.trading_config().mode == Mode.BASELINE
    ctx = cfg.deploy_context()
    assert ctx["mode"] == "baseline" and ctx["news_source"] == "none" and ctx["llm_enabled"] is False
    # and a deployed function given these settings decides as the baseline even if MODE says otherwise
    settings = PipelineSettings.from_env({"TRADE_LOG_TABLE": "t", **cfg.pipeline_env()})
    assert settings.trading_config("override", "some-model").mode == Mode.BASELINE


def test_no_news_is_read_when_the_llm_is_off():
    from mytrader.app.wiring import news_context

    # Given news from S3 and Comprehend, but the LLM off / Then no news context is built (no AWS client touched)
    settings = PipelineSettings(trade_log_table="t", news_source="s3", llm_enabled=False)
    assert news_context(settings, aws=None) is None  # type: ignore[arg-type]


def test_the_pipeline_decides_with_the_files_settings():
    # Given a config with other risk limits, fees, capital, confidence and strategy
    cfg = load_config(None, [Override("risk.max_open_positions", 2, "a"), Override("backtest.fee_bps", 4.0, "b"),
                             Override("backtest.capital", 5e4, "c"), Override("llm.min_confidence", 0.7, "d"),
                             Override("strategy.name", "rsi_reversion", "e")])
    # When a function builds its settings from the environment the stack gives it
    settings = PipelineSettings.from_env({"TRADE_LOG_TABLE": "t", **cfg.pipeline_env()})
    # Then it decides with exactly the file's settings (the same config version as the backtest's)
    assert settings.trading_config("consensus", LOCAL_MODEL_ID) == cfg.trading_config(LOCAL_MODEL_ID, Mode.CONSENSUS)
    # and without a config the functions keep their former settings
    assert PipelineSettings(trade_log_table="t").trading_config("consensus", LOCAL_MODEL_ID) == \
        TradingConfig(mode=Mode.CONSENSUS, advisor=AdvisorSettings(model_id=LOCAL_MODEL_ID))


def test_the_cdk_app_reads_the_file_and_context_overrides(tmp_path):
    sys.path.insert(0, str(ROOT / "cdk"))
    from mytrader_infra.settings import DeploySettings

    # Given no file: the stack's settings are its defaults
    nothing: dict[str, str] = {}
    from_file = DeploySettings.model_validate(context_settings(nothing.get, tmp_path / "none.toml"))
    assert from_file.model_copy(update={"trading_json": ""}) == DeploySettings()
    # and the functions get the file's decision settings (strategy, advisor, fees) as TRADING_JSON
    assert json.loads(from_file.trading_json)["strategy"]["name"] == "momentum_reversion"
    # Given a file named by -c config=, and -c overrides of config keys
    path = write(tmp_path, '[broker]\nnews_source = "s3"\n[risk]\nmax_open_positions = 4\n', "other.toml")
    context = {"config": str(path), "llm.model_id": "amazon.nova-lite-v1:0", "universe": "NVDA,ORCL"}
    settings = DeploySettings.model_validate(context_settings(context.get, tmp_path / "none.toml"))
    # Then the stack gets both
    assert (settings.news_source, settings.risk.max_open_positions) == ("s3", 4)
    assert settings.model_id == "amazon.nova-lite-v1:0" and settings.universe == ["NVDA", "ORCL"]
    # and a bad override is one line naming the context key
    with pytest.raises(ConfigError, match=r"^-c risk.max_open_positions: risk.max_open_positions"):
        bad = {"risk.max_open_positions": "0"}
        context_settings(bad.get, tmp_path / "none.toml")
