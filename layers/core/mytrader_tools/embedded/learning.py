"""The fine-tuning workflow on the embedded AWS: start, wait, read the outcome back."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path


def start_finetune(stack, config: dict | None = None) -> str:
    sfn = stack.client("stepfunctions")
    name = f"demo-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"  # unique: a name may be used once
    return sfn.start_execution(stateMachineArn=stack.state_machine_arn, name=name,
                               input=json.dumps(config or {}))["executionArn"]


def wait_execution(stack, arn: str, timeout_s: float = 240) -> dict:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING" or time.monotonic() > deadline:
            return desc
        time.sleep(0.5)


def execution_summary(stack, desc: dict) -> dict:
    out = json.loads(desc.get("output") or "{}")
    ev = out.get("evaluation") or {}
    data = out.get("dataset") or {}
    return {
        "execution_status": desc["status"], "error": desc.get("error"), "cause": (desc.get("cause") or "")[:500],
        "train_records": data.get("train_records", 0), "validation_records": data.get("validation_records", 0),
        "dataset_version": data.get("version"), "dataset_reason": data.get("reason"),
        "evaluation": {"candidate": {k: ev["candidate"][k] for k in ("accuracy", "simulated_return")},
                       "active": {k: ev["active"][k] for k in ("accuracy", "simulated_return")},
                       "margin": ev.get("margin")} if ev else None,
        "promoted": "promotion" in out,
        "candidate_model_id": (out.get("deployment") or {}).get("deployment_arn"),
        "active_model_id": stack.get_param("ACTIVE_MODEL"),
        "previous_model_id": stack.get_param("PREVIOUS_MODEL"),
    }


def run_finetune_demo(stack, out_dir: Path, config: dict | None = None) -> dict:
    arn = start_finetune(stack, {"poll_seconds": 1, **(config or {})})
    summary = execution_summary(stack, wait_execution(stack, arn))
    if summary["dataset_version"]:
        s3 = stack.client("s3")
        target = out_dir / "datasets" / summary["dataset_version"]
        target.mkdir(parents=True, exist_ok=True)
        prefix = f"datasets/{summary['dataset_version']}/"
        for obj in s3.list_objects_v2(Bucket=stack.bucket, Prefix=prefix).get("Contents", []):
            body = s3.get_object(Bucket=stack.bucket, Key=obj["Key"])["Body"].read()
            (target / obj["Key"][len(prefix):]).write_bytes(body)
    return summary
