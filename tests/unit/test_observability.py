"""X-Ray patching as it happens inside Lambda: botocore from the start, requests only once it is imported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import mytrader.observability
before = "requests" in sys.modules
import botocore.client, requests
traced = lambda cls, name: hasattr(cls.__dict__[name], "__wrapped__")  # an X-Ray wrapper around it
print(json.dumps({"requests_imported_at_start": before,
                  "botocore_traced": traced(botocore.client.BaseClient, "_make_api_call"),
                  "requests_traced": traced(requests.Session, "request")}))
"""


def run_in_lambda_like_env(tmp_path: Path) -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT / "layers" / "core"),
           "LAMBDA_TASK_ROOT": str(tmp_path), "AWS_LAMBDA_FUNCTION_NAME": "mytrader-probe",
           "AWS_REGION": "us-east-1", "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "POWERTOOLS_SERVICE_NAME": "probe"}
    res = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_requests_is_traced_when_imported_and_not_imported_for_tracing(tmp_path):
    # Given a Lambda environment (tracing enabled)
    # When the observability module loads and later something imports requests
    seen = run_in_lambda_like_env(tmp_path)
    # Then AWS calls are traced from the start, requests is not imported just to trace it, and is traced once used
    assert seen == {"requests_imported_at_start": False, "botocore_traced": True, "requests_traced": True}


def test_init_phase_runs_without_the_collector_inside_lambda_and_freezes_what_it_built():
    import gc

    from mytrader.coldstart import init_phase

    # Given the Lambda runtime (its API address is set)
    try:
        # When a handler's set-up runs in the init phase
        with init_phase({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}) as active:
            collector_during = gc.isenabled()
            built = [{"long": "lived"} for _ in range(1000)]
        # Then the collector was off during it, is on again after it, and what it built is frozen
        assert (active, collector_during, gc.isenabled()) == (True, False, True)
        assert gc.get_freeze_count() >= len(built)
    finally:
        gc.unfreeze()


def test_init_phase_changes_nothing_outside_lambda():
    import gc

    from mytrader.coldstart import init_phase

    # Given a process that is not the Lambda runtime (tests, the demo's embedded AWS)
    frozen_before = gc.get_freeze_count()
    # When a handler is imported into it
    with init_phase({}) as active:
        collector_during = gc.isenabled()
    # Then the collector stays on and nothing is frozen
    assert (active, collector_during, gc.get_freeze_count()) == (False, True, frozen_before)
