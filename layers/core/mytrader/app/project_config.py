"""The project's one config file (mytrader.toml): its schema, the loader, and what each reader takes from it.

TOML read with the standard library's tomllib, validated by pydantic. Every error is one line naming the dotted
key and where it was set: the file and line (found by scanning the source text), or the option or context key
that overrode it. Readers: `mytrader backtest` and `mytrader demo` (`trading_config`), the CDK app
(`deploy_context`) and, through the stack's environment, the pipeline (`pipeline_env`). Pure pydantic and
tomllib: the library, the tools and the CDK app all import it.
"""
from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mytrader.config import DEFAULT_MODEL_ID, AdvisorSettings, RiskLimits, StrategyChoice, TradingConfig
from mytrader.models import Mode, Symbol
from mytrader.stack_spec import DECISION_SCHEDULE, OUTCOMES_SCHEDULE

DEFAULT_FILE = "mytrader.toml"
_TRADING = TradingConfig.model_fields
_ADVISOR = AdvisorSettings.model_fields


class InputError(ValueError):
    """A file or setting the user can fix; the message is one line saying what to do."""


class ConfigError(InputError):
    pass


def _split_list(v: object) -> object:
    """A list given as text (a CDK context value or an environment variable): JSON, or comma separated."""
    if isinstance(v, str):
        text = v.strip()
        return json.loads(text) if text.startswith("[") else [s.strip() for s in text.split(",") if s.strip()]
    return v


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, never silently the default


class LlmSection(_Section):
    enabled: bool = Field(True, description="false: no Bedrock or Comprehend call anywhere; every mode is baseline")
    model_id: str = Field(DEFAULT_MODEL_ID, min_length=1, description="Bedrock model or inference-profile id")
    min_confidence: float = Field(_ADVISOR["min_confidence"].default, ge=0, le=1,
                                  description="advice below this confidence counts as HOLD")
    response_mode: Literal["auto", "tool", "json"] = Field(
        "auto", description="auto: forced tool call, JSON text for fine-tuned models")
    daily_token_budget: int = Field(_ADVISOR["daily_token_budget"].default, ge=0,
                                    description="tokens per UTC day, then the strategy alone (0: no limit)")
    anonymise: bool = Field(False, description="look-ahead-safe prompts: no symbol, no calendar dates")


class BrokerSection(_Section):
    kind: Literal["paper", "alpaca"] = Field("paper", description="paper (simulated fills) or alpaca")
    live_trading: bool = Field(False, description="true: Alpaca's live endpoint (needs kind = alpaca)")
    market_data: Literal["alpaca", "s3"] = Field("alpaca", description="where the deployed bot reads bars")
    news_source: Literal["alpaca", "s3", "none"] = Field("alpaca", description="headlines for the sentiment score")

    @model_validator(mode="after")
    def _live_needs_alpaca(self) -> BrokerSection:
        if self.live_trading and self.kind != "alpaca":
            raise ValueError("live_trading = true needs kind = \"alpaca\"")
        return self


_SCHEDULE = r"^(cron|rate)\(.+\)$"


class SchedulesSection(_Section):
    decision: str = Field(DECISION_SCHEDULE, pattern=_SCHEDULE,
                          description="decision cycle, once after the close on the completed bar (America/New_York)")
    outcomes: str = Field(OUTCOMES_SCHEDULE, pattern=_SCHEDULE,
                          description="reconciliation of fills at the open, stops and targets (before the decisions)")


class BacktestSection(_Section):
    capital: float = Field(_TRADING["initial_equity"].default, gt=0, description="starting cash (USD)")
    fee_bps: float = Field(_TRADING["fee_bps"].default, ge=0, description="fee per fill, basis points of notional")
    slippage_bps: float = Field(_TRADING["slippage_bps"].default, ge=0,
                                description="fill price worse than the quote by this many basis points")
    advisor: Literal["local", "bedrock"] = Field("local", description="local: deterministic model, not an LLM")
    start: date | None = Field(None, description="first day trading may happen (earlier bars warm up)")
    end: date | None = Field(None, description="last day of data used")

    @model_validator(mode="after")
    def _ordered(self) -> BacktestSection:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class DeploySection(_Section):
    prefix: str = Field("mytrader", pattern=r"^[a-z][a-z0-9-]{1,20}$", description="resource name prefix")
    alarm_email: str = Field("", description="alarm notifications (empty: none)")
    architecture: Literal["arm64", "x86_64"] = "arm64"
    inference_regions: list[str] | None = Field(None, min_length=1, description="regions the inference profile may "
                                                "route to (default: the stack's table for the model)")

    @field_validator("inference_regions", mode="before")
    @classmethod
    def _regions(cls, v: object) -> object:
        return _split_list(v)


class ProjectConfig(_Section):
    universe: list[Symbol] = Field(["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL"], min_length=1,
                                   description="symbols the deployed bot trades (entries in others are refused)")
    mode: Mode = Field(_TRADING["mode"].default, description="baseline | consensus | override | advisory")
    allow_short: bool = Field(_TRADING["allow_short"].default, description="open short positions on SELL")
    fractional_shares: bool = Field(_TRADING["fractional_shares"].default,
                                    description="size entries in millionths of a share (Alpaca: fractionable "
                                                "assets, long entries only)")
    strategy: StrategyChoice = StrategyChoice()
    llm: LlmSection = LlmSection()
    risk: RiskLimits = RiskLimits()
    broker: BrokerSection = BrokerSection()
    schedules: SchedulesSection = SchedulesSection()
    backtest: BacktestSection = BacktestSection()
    deploy: DeploySection = DeploySection()

    @field_validator("universe", mode="before")
    @classmethod
    def _universe(cls, v: object) -> object:
        return _split_list(v)

    @property
    def effective_mode(self) -> Mode:
        """The mode decisions are taken in: baseline whenever the LLM is switched off."""
        return self.mode if self.llm.enabled else Mode.BASELINE

    def response_mode(self, model_id: str) -> str:
        if self.llm.response_mode != "auto":
            return self.llm.response_mode
        return "json" if model_id.startswith("arn:") and "custom-model" in model_id else "tool"

    def trading_config(self, model_id: str | None = None, mode: Mode | None = None) -> TradingConfig:
        """The decision core's settings (their hash is in every decision id). `model_id`: the model actually
        asked (the backtest's local model, the pipeline's active model); `mode`: one of the backtest's runs."""
        model = model_id or self.llm.model_id
        llm = self.llm
        advisor = AdvisorSettings(enabled=llm.enabled, model_id=model, min_confidence=llm.min_confidence,
                                  response_mode=self.response_mode(model), daily_token_budget=llm.daily_token_budget,
                                  anonymise=llm.anonymise)
        return TradingConfig(mode=mode or self.mode, allow_short=self.allow_short,
                             fractional_shares=self.fractional_shares,
                             initial_equity=self.backtest.capital, fee_bps=self.backtest.fee_bps,
                             slippage_bps=self.backtest.slippage_bps, risk=self.risk, advisor=advisor,
                             strategy=self.strategy)

    def trading_json(self) -> str:
        """What the pipeline takes from the file (env TRADING_JSON); the mode and the model come from SSM."""
        blob = self.trading_config().model_dump(mode="json", exclude={"mode"})
        blob["advisor"].pop("model_id")
        if self.llm.response_mode == "auto":
            blob["advisor"].pop("response_mode")
        return json.dumps(blob, sort_keys=True, separators=(",", ":"))

    def pipeline_env(self) -> dict[str, str]:
        """Environment of the deployed (or embedded) functions for these settings."""
        return {"TRADING_JSON": self.trading_json(), "LLM_ENABLED": "true" if self.llm.enabled else "false",
                "INITIAL_EQUITY": repr(self.backtest.capital), "ALLOW_SHORT": str(self.allow_short).lower(),
                "RISK_JSON": self.risk.model_dump_json()}

    def deploy_context(self) -> dict[str, Any]:
        """CDK context keys (mytrader_infra.settings.DeploySettings) for these settings. With the LLM off the
        stack runs the baseline and reads no news, so neither Bedrock nor Comprehend is ever called."""
        off = not self.llm.enabled
        return {
            "prefix": self.deploy.prefix, "universe": list(self.universe),
            "decision_schedule": self.schedules.decision, "outcomes_schedule": self.schedules.outcomes,
            "mode": self.effective_mode.value, "model_id": self.llm.model_id, "broker": self.broker.kind,
            "market_data": self.broker.market_data, "news_source": "none" if off else self.broker.news_source,
            "live_trading": self.broker.live_trading, "risk": self.risk.model_dump(mode="json"),
            "alarm_email": self.deploy.alarm_email, "architecture": self.deploy.architecture,
            # the functions' TRADING_JSON and LLM_ENABLED
            "llm_enabled": self.llm.enabled, "trading_json": self.trading_json(),
        } | ({"inference_regions": list(self.deploy.inference_regions)} if self.deploy.inference_regions else {})


class Override(NamedTuple):
    """A key set outside the file: `source` names where, e.g. `--cash` or `-c llm.enabled`."""
    key: str
    value: object
    source: str


def leaf_keys(model: type[BaseModel] = ProjectConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the file (a section's free-form tables, like strategy.params, count as one key)."""
    out: list[str] = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += leaf_keys(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def context_settings(get: Callable[[str], Any], default_file: Path) -> dict[str, Any]:
    """The CDK app's view: the file `get("config")` names (else `default_file`, when it exists) with every config key
    that `get` (the CDK context) sets applied over it, as the stack's context values (ProjectConfig.deploy_context)."""
    named = get("config")
    path = Path(named) if named else (default_file if default_file.is_file() else None)
    return load_config(path, [Override(key, get(key), f"-c {key}") for key in leaf_keys()]).deploy_context()


def read_utf8(path: Path, what: str) -> str:
    """A text file's content; a byte-order mark is accepted. Anything else is one line saying what to fix."""
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory: give the path of a file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read: {exc.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}): "
                         "save it as UTF-8") from None


def load_config(path: Path | None, overrides: list[Override] | tuple[Override, ...] = ()) -> ProjectConfig:
    """The file at `path` (None: the defaults) with `overrides` applied, validated; ConfigError otherwise."""
    text = read_utf8(path, "config file") if path is not None else ""
    label = str(path) if path is not None else "defaults"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    by_key: dict[str, str] = {}
    for o in overrides:
        if o.value is not None:
            _set(data, o.key, o.value, label)
            by_key[o.key] = o.source
    try:
        cfg = ProjectConfig.model_validate(data)
        cfg.trading_config()
    except ValidationError as exc:
        lines = _key_lines(text)
        raise ConfigError("; ".join(_describe(e, label, lines, by_key) for e in exc.errors()[:5])) from None
    return cfg


def _set(data: dict[str, Any], key: str, value: object, label: str) -> None:
    *parents, leaf = key.split(".")
    node = data
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{label}: {'.'.join(parents[:i + 1])} is not a table, so {key} cannot be set")
        node = child
    node[leaf] = value


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _dotted(raw: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in raw.split("."))


def _key_lines(text: str) -> dict[str, int]:
    """The line where each dotted key (and each table) is set, found by scanning the TOML text."""
    table = ""
    out: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group(1))
            out.setdefault(table, n)
            continue
        key = _KEY.match(line)
        if key:
            out.setdefault(f"{table}.{_dotted(key.group(1))}" if table else _dotted(key.group(1)), n)
    return out


def _loc_text(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: Mapping[str, Any], label: str, lines: dict[str, int], by_key: dict[str, str]) -> str:
    loc = tuple(err["loc"])
    names = [str(p) for p in loc if not isinstance(p, int)]
    key = _loc_text(loc)
    msg = str(err["msg"]).removeprefix("Value error, ")
    where = label
    for n in range(len(names), 0, -1):
        prefix = ".".join(names[:n])
        named = _options_named(prefix, msg, by_key)
        if named:
            where = named
            break
        if prefix in lines:
            where = f"{label}:{lines[prefix]}"
            break
    if err["type"] == "extra_forbidden":
        known = _known_keys(names[:-1])
        close = difflib.get_close_matches(names[-1], known, n=1)
        msg = f"unknown key{f' (did you mean {close[0]}?)' if close else ''}; known: {', '.join(known)}"
    elif not isinstance(err.get("input"), dict | list):
        msg += f" (got {err['input']!r})"
    return f"{where}: {key or 'the file'}: {msg}"


def _options_named(prefix: str, msg: str, by_key: dict[str, str]) -> str:
    """Where `prefix` was set outside the file (e.g. `--start`), or, for an error of a whole table (a check across
    its keys), where the keys its message names were set outside the file (e.g. `--start/--end`); else ''."""
    if prefix in by_key:
        return by_key[prefix]
    words = set(re.findall(r"\w+", msg))
    named = [source for key, source in by_key.items()
             if key.startswith(prefix + ".") and key.removeprefix(prefix + ".") in words]
    return "/".join(dict.fromkeys(named))


def _known_keys(section: list[str]) -> list[str]:
    model: type[BaseModel] = ProjectConfig
    for name in section:
        ann = model.model_fields[name].annotation if name in model.model_fields else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


_EXAMPLES = {"backtest.start": "2011-01-03", "backtest.end": "2012-12-31",
             "deploy.inference_regions": '["us-east-1", "us-east-2", "us-west-2"]'}  # keys without a default value
_HEAD = """\
# MyTrader configuration (written by `mytrader init`). Every key is optional: a key left out takes the value
# shown here, the built-in default. Read by `mytrader backtest` and `mytrader demo` (--config PATH, default
# ./mytrader.toml) and by the CDK app (cdk deploy -c config=PATH -c llm.enabled=false). Reference: docs/config.md.
"""


def default_toml() -> str:
    """The commented default file: every key with its default and what it means."""
    top, tables = [], []
    for name, f in ProjectConfig.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            tables.append(f"\n[{name}]")
            tables += [_line(f"{name}.{k}", k, sub.get_default(call_default_factory=True), sub.description)
                       for k, sub in ann.model_fields.items()]
        else:
            top.append(_line(name, name, f.get_default(call_default_factory=True), f.description))
    return _HEAD + "\n" + "\n".join(top + tables) + "\n"


def _line(dotted: str, key: str, default: object, description: str | None) -> str:
    comment = f"  # {description}" if description else ""
    if default is None:
        return f"# {key} = {_EXAMPLES[dotted]}{comment}"
    return f"{key} = {_toml_value(default)}{comment}"


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Mode):
        return json.dumps(v.value)
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML form for {v!r}")
