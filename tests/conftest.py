"""Shared fixtures. The non-commercial news set is read from ../shared/data (never copied into the repo)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PACKAGED_DATA = ROOT / "layers" / "core" / "mytrader_tools" / "embedded" / "data"


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present (tests read the shared data set beside the repository)")
    return path


@pytest.fixture(scope="session")
def nvda_series():
    from mytrader.market.sources import parse_price_csv

    return parse_price_csv((PACKAGED_DATA / "nvda-daily-1999-2014.csv").read_text(), "NVDA")


@pytest.fixture(scope="session")
def orcl_series():
    from mytrader.market.sources import parse_price_csv

    return parse_price_csv((PACKAGED_DATA / "orcl-daily-1995-2014.csv").read_text(), "ORCL")


# ---- IAM: every call the embedded AWS served, checked (mytrader_tools/embedded/iam) -------------------------------
# Each process records its calls (RECORDER); xdist workers hand theirs to the controller, which prints a table per
# caller and fails the session on a denied call (unless a test expects it: `iam_denials_expected`) or on an invalid
# request or local-service answer. The merged record is kept in .build/iam-calls/last-run.json (the template check
# reads it).
IAM_RECORD = ROOT / ".build" / "iam-calls" / "last-run.json"


@pytest.fixture
def iam_denials_expected():
    """For a test that provokes AccessDenied on purpose: its denials are counted apart and fail nothing."""
    from mytrader_tools.embedded.iam.recorder import RECORDER

    with RECORDER.expecting():
        yield RECORDER


INTEGRATION = ROOT / "tests" / "integration"


class _XdistIam:
    def __init__(self) -> None:
        self.snapshots: list[dict] = []

    def pytest_testnodedown(self, node, error):
        import json

        raw = getattr(node, "workeroutput", {}).get("mytrader_iam")
        if raw:
            self.snapshots.append(json.loads(raw))

    def pytest_xdist_node_collection_finished(self, node, ids):
        _RUN["collected"].update(ids)


_RUN: dict[str, set[str]] = {"collected": set(), "passed": set(), "files": set()}


def pytest_configure(config):
    # the integration test files as the session starts (files added while it runs are not its business)
    _RUN["files"] = {f"tests/integration/{p.name}" for p in INTEGRATION.glob("test_*.py")}
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config._mytrader_iam = _XdistIam()
        config.pluginmanager.register(config._mytrader_iam, "mytrader-iam-xdist")


def pytest_collection_finish(session):
    _RUN["collected"].update(item.nodeid for item in session.items)


def pytest_runtest_logreport(report):
    if (report.when == "call" and report.passed) or report.skipped:
        _RUN["passed"].add(report.nodeid)


def _integration_run() -> dict:
    """Whether every integration test file ran and every integration test collected passed: then the record holds
    every call the integration tests make (what the unused-grant check needs)."""
    ran = {n for n in _RUN["collected"] if n.startswith("tests/integration/")}
    missing = sorted(_RUN["files"] - {n.split("::")[0] for n in ran})
    not_passed = sorted(ran - _RUN["passed"])
    return {"collected": len(ran), "files_not_run": missing, "not_passed": not_passed[:20],
            "complete": bool(ran) and not missing and not not_passed}


def pytest_sessionfinish(session, exitstatus):
    import json

    from mytrader_tools.embedded.iam.recorder import RECORDER, merge

    snap = RECORDER.snapshot()
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller merges
        session.config.workeroutput["mytrader_iam"] = json.dumps(snap)
        return
    collector = getattr(session.config, "_mytrader_iam", None)
    merged = merge([snap, *(collector.snapshots if collector else [])])
    session.config._mytrader_iam_merged = merged
    if not merged["calls"]:
        return
    IAM_RECORD.parent.mkdir(parents=True, exist_ok=True)
    from mytrader_tools.embedded.iam.template import inputs_hash

    run = _integration_run()
    merged["unused_grants"] = _unused_grants(merged) if run["complete"] else []
    IAM_RECORD.write_text(json.dumps({**merged, "template_inputs": inputs_hash(), "integration_run": run,
                                      "integration_complete": run["complete"]}, indent=1))
    bad = _failures(merged)
    if bad and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _failures(merged: dict) -> int:
    """Denied calls, invalid requests or answers, and (after a complete integration run) grants no call used."""
    return (sum(merged["denied"].values()) + sum(merged["invalid"].values())
            + len(merged.get("unused_grants", [])))


def _unused_grants(merged: dict) -> list[str]:
    """The deployed functions' grants no recorded call used (iam/audit.py; the infra test checks the same)."""
    from mytrader.stack_spec import DEFAULT_PREFIX, FUNCTIONS
    from mytrader_tools.embedded.iam import audit
    from mytrader_tools.embedded.iam.template import load_template

    keys = {spec.name(DEFAULT_PREFIX): key for key, spec in FUNCTIONS.items()}
    return audit.unused_grants(audit.deployed_iam(load_template()), keys, merged["statements"])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    import os

    if os.environ.get("MYTRADER_IAM") == "off":
        terminalreporter.write_line("MYTRADER_IAM=off: the embedded AWS checked no permission in this run", red=True)
    merged = getattr(config, "_mytrader_iam_merged", None)
    if not merged or not merged["calls"]:
        return
    from mytrader_tools.embedded.iam.recorder import table

    bad = _failures(merged)
    terminalreporter.section("embedded AWS: calls per caller (IAM denials, invalid requests/answers)",
                             red=bool(bad), green=not bad)
    terminalreporter.write_line(table(merged))
    for grant in merged.get("unused_grants", []):
        terminalreporter.write_line(f"  UNUSED GRANT {grant}")
    if bad:
        terminalreporter.write_line("FAILED: the embedded AWS denied or found invalid calls, or a function holds a "
                                    "grant no call used (above; docs/contributing-iam.md)", red=True)
