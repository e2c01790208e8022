"""Logger, Tracer and Metrics, created once and shared by every handler (Powertools' own pattern).

X-Ray traces what MyTrader calls out through: botocore (every AWS call) from the start, and requests (Alpaca
orders, bars and news) as soon as something imports it. Powertools' default, the SDK's patch_all, imports
requests (and sqlite3, and probes a dozen other libraries) at cold start in every function, including those
that never call Alpaca; patching on import keeps the same traces without that cost.
"""
import wrapt  # type: ignore[import-untyped]  # wrapt ships no type stubs
from aws_lambda_powertools import Logger, Metrics, Tracer

TRACED_FROM_START = ("botocore",)
TRACED_WHEN_IMPORTED = ("requests",)

logger = Logger()
tracer = Tracer(patch_modules=TRACED_FROM_START)
metrics = Metrics()

for _module in TRACED_WHEN_IMPORTED:
    wrapt.register_post_import_hook(lambda _imported, name=_module: tracer.patch([name]), _module)
