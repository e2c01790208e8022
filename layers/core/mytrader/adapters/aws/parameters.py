"""SSM parameters through Powertools (cached briefly) and the clocks built on them."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mytrader.app.settings import PipelineSettings
from mytrader.clock import Clock, SystemClock, parse_utc
from mytrader.stack_spec import PARAMETER_DEFAULTS, parameter_names

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from mytrader.adapters.aws.clients import SSMClient


class Params:
    """Active model id, mode and kill switch from SSM through Powertools Parameters (cached briefly)."""

    def __init__(self, settings: PipelineSettings, ssm_client: SSMClient):
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        self.names = parameter_names(settings.param_prefix)
        self.max_age = settings.params_max_age_s
        self._ssm: SSMProvider = SSMProvider(boto3_client=ssm_client)

    def get(self, key: str, fresh: bool = False, strict: bool = False) -> str:
        """The parameter's value. Unreadable (throttled, deleted, not text): its documented default — unless
        `strict`, for the values that gate entries, where the error is raised so the caller fails closed."""
        try:
            value = self._ssm.get(self.names[key], max_age=0 if fresh else self.max_age, force_fetch=fresh)
            if not isinstance(value, str):
                raise TypeError(f"parameter {self.names[key]} is not a string")
            return value
        except Exception:
            if key in PARAMETER_DEFAULTS and not strict:
                return PARAMETER_DEFAULTS[key]
            raise


class ReplayClock:
    """Embedded AWS only: the replay driver writes the simulated time to an SSM parameter."""

    def __init__(self, params: Params):
        self.params = params

    def now(self) -> datetime:
        return parse_utc(self.params.get("REPLAY_CLOCK", fresh=True))


def make_clock(settings: PipelineSettings, params: Params) -> Clock:
    return ReplayClock(params) if settings.clock_source == "replay" else SystemClock()
