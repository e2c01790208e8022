"""Local Bedrock control plane for model customization and custom model deployments.

moto's customization jobs stay InProgress forever and it has no custom model deployments, so this
service owns both (a visible workaround, tested). A job really trains: it fits the local advisor model's
logistic weights on the job's train.jsonl, then reaches Completed; a deployment of the resulting custom
model then answers Converse with those weights. Everything here is labelled local.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import numpy as np

from mytrader.advisor.local_model import LocalModelWeights, model_inputs
from mytrader.advisor.prompt import parse_inputs_from_prompt
from mytrader_tools.embedded.services import aws_error, json_response

ACCOUNT = "123456789012"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def fit_weights(records: list[dict], epochs: int, learning_rate: float, l2: float = 0.01) -> LocalModelWeights:
    """Logistic regression of P(up) on the prompt's inputs: BUY labels are 1, SELL labels 0, HOLD labels 0.5."""
    xs, ys = [], []
    for rec in records:
        user = next(m for m in rec["messages"] if m["role"] == "user")["content"][0]["text"]
        answer = json.loads(next(m for m in rec["messages"] if m["role"] == "assistant")["content"][0]["text"])
        xs.append(model_inputs(parse_inputs_from_prompt(user)))
        ys.append({"BUY": 1.0, "SELL": 0.0}.get(answer["decision"], 0.5))
    x, y = np.array(xs), np.array(ys)
    scale = np.maximum(np.abs(x).max(axis=0), 1e-9)
    xn = np.hstack([x / scale, np.ones((len(y), 1))])
    beta = np.zeros(xn.shape[1])
    for _ in range(max(5, epochs * 5)):  # Newton steps (IRLS) on the L2-penalised log-likelihood
        p = 1 / (1 + np.exp(-np.clip(xn @ beta, -30, 30)))
        grad = xn.T @ (p - y) + l2 * len(y) * beta
        hess = (xn * (p * (1 - p))[:, None]).T @ xn + l2 * len(y) * np.eye(len(beta))
        beta -= np.linalg.solve(hess, grad)  # full Newton step; Nova's learningRate only validated here
    w, b = beta[:-1], float(beta[-1])
    weights = (w / scale).round(6).tolist()
    # Decision thresholds chosen on the training set (3-class accuracy), as a calibration step would.
    p = 1 / (1 + np.exp(-(x @ np.asarray(weights) + b)))
    labels = np.where(y == 1.0, 1, np.where(y == 0.0, -1, 0))
    best = (-1.0, 0.56, 0.44)
    for hi in np.arange(0.50, 0.80, 0.01):
        for lo in np.arange(0.20, 0.51, 0.01):
            if lo > hi:
                continue
            pred = np.where(p >= hi, 1, np.where(p <= lo, -1, 0))
            acc = float((pred == labels).mean())
            if acc > best[0] + 1e-12:
                best = (acc, float(hi), float(lo))
    return LocalModelWeights(name="fitted", weights=weights, bias=round(b, 6), buy_above=round(best[1], 2),
                             sell_below=round(best[2], 2))


# Nova's fine-tuning hyperparameters and their documented ranges: Bedrock refuses others at CreateModelCustomizationJob
NOVA_HYPERPARAMETERS = {"epochCount": (int, 1, 5), "learningRate": (float, 1e-6, 1e-4),
                        "learningRateWarmupSteps": (int, 0, 100)}


def nova_hyperparameter_error(hp: dict) -> str | None:
    """Why Bedrock would refuse these Nova hyperparameters (None: accepted)."""
    for name, value in hp.items():
        if name not in NOVA_HYPERPARAMETERS:
            return f"hyperparameter {name} is not supported for this model; supported: {sorted(NOVA_HYPERPARAMETERS)}"
        kind, lo, hi = NOVA_HYPERPARAMETERS[name]
        try:
            number = kind(value)
        except (TypeError, ValueError):
            return f"hyperparameter {name}={value!r} is not a valid {kind.__name__}"
        if not lo <= number <= hi:
            return f"hyperparameter {name}={value} is out of range [{lo}, {hi}]"
    return None


def _fingerprint(request: dict) -> str:
    """A create request without its token: what must match for the token to replay the first answer."""
    return json.dumps({k: v for k, v in request.items() if k != "clientRequestToken"}, sort_keys=True)


class LocalBedrockControl:
    """Customization jobs and custom-model deployments (idempotent on clientRequestToken, as Bedrock is), plus the
    read-only model-access answers `mytrader doctor` asks for: GetFoundationModelAvailability and GetInferenceProfile.

    Knobs for tests: `fail_jobs_with` (a job then fails with that message), `model_access` (model id -> fields of its
    availability answer, e.g. {"authorizationStatus": "NOT_AUTHORIZED"}), `inference_profiles` (profile id ->
    destination regions, default: the pinned table of stack_spec for this region; "" is a global profile's
    region-less ARN), `unknown_models` (ids answered ResourceNotFoundException)."""

    def __init__(self, runtime, region: str):
        from mytrader.stack_spec import INFERENCE_PROFILE_DESTINATIONS

        self.runtime, self.region = runtime, region
        self.jobs: dict[str, dict] = {}
        self.models: dict[str, dict] = {}
        self.deployments: dict[str, dict] = {}
        self.tokens: dict[tuple[str, str], tuple[str, tuple]] = {}  # (operation, token) -> (fingerprint, response)
        self.fail_jobs_with: str | None = None
        self.model_access: dict[str, dict] = {}
        self.unknown_models: set[str] = set()
        self.inference_profiles: dict[str, tuple[str, ...]] = {
            pid: by_source[region] for pid, by_source in INFERENCE_PROFILE_DESTINATIONS.items() if region in by_source}
        self._lock = threading.Lock()
        # (role ARN, job ARN) -> the session a job works in, as Bedrock assumes the job's role (set by the embedded
        # AWS: the role's trust policy and policies then apply); None: the process's default credentials
        self.assume_role: Callable[[str, str], Any] | None = None

    def handles(self, method: str, path: str) -> bool:
        return path.startswith(("/model-customization-jobs", "/model-customization/custom-model-deployments",
                                "/custom-models/", "/foundation-model-availability/", "/inference-profiles/"))

    def handle(self, method: str, path: str, body: bytes, query: dict):
        data = json.loads(body or b"{}") if body else {}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "GET" and parts[0] == "foundation-model-availability" and len(parts) >= 2:
            return self.model_availability("/".join(parts[1:]))
        if method == "GET" and parts[0] == "inference-profiles" and len(parts) >= 2:
            return self.inference_profile("/".join(parts[1:]))
        if parts[0] == "model-customization-jobs":  # identifiers may be ARNs, which contain "/"
            if method == "POST" and len(parts) == 1:
                return self.create_job(data)
            if method == "GET" and len(parts) >= 2:
                return self.get_job("/".join(parts[1:]))
        if parts[:2] == ["model-customization", "custom-model-deployments"]:
            if method == "POST" and len(parts) == 2:
                return self.create_deployment(data)
            if len(parts) >= 3 and method == "GET":
                return self.get_deployment("/".join(parts[2:]))
            if len(parts) >= 3 and method == "DELETE":
                return self.delete_deployment("/".join(parts[2:]))
        if parts[0] == "custom-models" and method == "GET":
            model = self._find(self.models, "/".join(parts[1:]))
            return json_response(200, model) if model else aws_error(404, "ResourceNotFoundException", "no such model")
        return aws_error(400, "ValidationException", f"local Bedrock control does not implement {method} {path}")

    @staticmethod
    def _find(table: dict, ident: str) -> dict | None:
        names = ("jobName", "modelName", "modelDeploymentName")
        return table.get(ident) or next((v for v in table.values() if ident in (v.get(n) for n in names)), None)

    def _replayed(self, operation: str, d: dict, conflict: str):
        """Bedrock's idempotency: a create repeated with the same clientRequestToken and the same request answers
        what the first one did (nothing new is created); the same token with a different request is refused.
        None when the token is new (or absent)."""
        token = d.get("clientRequestToken")
        seen = self.tokens.get((operation, token)) if token else None
        if seen is None:
            return None
        if seen[0] != _fingerprint(d):
            return aws_error(400, conflict, f"clientRequestToken {token} was already used with a different request")
        return seen[1]

    def _remember(self, operation: str, d: dict, response: tuple) -> tuple:
        if d.get("clientRequestToken"):
            self.tokens[(operation, d["clientRequestToken"])] = (_fingerprint(d), response)
        return response

    def create_job(self, d: dict):
        required = ("jobName", "customModelName", "roleArn", "baseModelIdentifier", "trainingDataConfig",
                    "outputDataConfig")
        missing = [k for k in required if k not in d]
        if missing:
            return aws_error(400, "ValidationException", f"missing {missing}")
        if str(d["baseModelIdentifier"]).startswith("amazon.nova-"):
            refused = nova_hyperparameter_error(d.get("hyperParameters") or {})
            if refused:
                return aws_error(400, "ValidationException", refused)
        with self._lock:
            replay = self._replayed("CreateModelCustomizationJob", d, "ConflictException")
            if replay is not None:
                return replay
            if any(j["jobName"] == d["jobName"] for j in self.jobs.values()):
                return aws_error(400, "ConflictException", f"job {d['jobName']} exists")
            if any(m["modelName"] == d["customModelName"] for m in self.models.values()):
                return aws_error(400, "ConflictException", f"custom model {d['customModelName']} exists")
            arn = f"arn:aws:bedrock:{self.region}:{ACCOUNT}:model-customization-job/{uuid.uuid4().hex[:12]}"
            job = {"jobArn": arn, "jobName": d["jobName"], "outputModelName": d["customModelName"],
                   "roleArn": d["roleArn"], "status": "InProgress", "creationTime": _now(), "lastModifiedTime": _now(),
                   "baseModelArn": f"arn:aws:bedrock:{self.region}::foundation-model/{d['baseModelIdentifier']}",
                   "hyperParameters": d.get("hyperParameters", {}), "trainingDataConfig": d["trainingDataConfig"],
                   "validationDataConfig": d.get("validationDataConfig", {"validators": []}),
                   "outputDataConfig": d["outputDataConfig"],
                   "customizationType": d.get("customizationType", "FINE_TUNING")}
            self.jobs[arn] = job
            response = self._remember("CreateModelCustomizationJob", d, json_response(201, {"jobArn": arn}))
        threading.Thread(target=self._train, args=(arn,), daemon=True).start()
        return response

    def _train(self, arn: str) -> None:
        import boto3

        job = self.jobs[arn]
        try:
            if self.fail_jobs_with:
                raise ValueError(self.fail_jobs_with)
            hp = job["hyperParameters"]
            epochs, lr = int(hp.get("epochCount", "2")), float(hp.get("learningRate", "0.00001"))
            bucket, key = job["trainingDataConfig"]["s3Uri"][5:].split("/", 1)
            s3 = self.assume_role(job["roleArn"], arn).client("s3") if self.assume_role else boto3.client("s3")
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
            if not records:
                raise ValueError("training file is empty")
            weights = fit_weights(records, epochs, lr)
            model_name = job["outputModelName"]
            model_arn = f"arn:aws:bedrock:{self.region}:{ACCOUNT}:custom-model/{model_name}/{uuid.uuid4().hex[:8]}"
            out_bucket, out_prefix = job["outputDataConfig"]["s3Uri"][5:].split("/", 1)
            s3.put_object(Bucket=out_bucket, Key=f"{out_prefix.rstrip('/')}/{job['jobName']}/weights.json",
                          Body=weights.model_dump_json().encode())
            with self._lock:
                self.models[model_arn] = {"modelArn": model_arn, "modelName": job["outputModelName"], "jobArn": arn,
                                          "jobName": job["jobName"], "baseModelArn": job["baseModelArn"],
                                          "creationTime": _now(), "modelStatus": "Active", "weights": weights}
                job.update(status="Completed", outputModelArn=model_arn, endTime=_now(), lastModifiedTime=_now(),
                           trainingMetrics={"trainingLoss": 0.0})
        except Exception as exc:  # a failed job reports why, as Bedrock does
            with self._lock:
                job.update(status="Failed", failureMessage=f"local training failed: {exc}", endTime=_now())

    def get_job(self, ident: str):
        job = self._find(self.jobs, ident)
        return json_response(200, job) if job else aws_error(404, "ResourceNotFoundException", f"no job {ident}")

    def create_deployment(self, d: dict):
        model = self._find(self.models, d.get("modelArn", ""))
        if model is None:
            return aws_error(404, "ResourceNotFoundException", f"no custom model {d.get('modelArn')}")
        arn = f"arn:aws:bedrock:{self.region}:{ACCOUNT}:custom-model-deployment/{uuid.uuid4().hex[:12]}"
        with self._lock:
            replay = self._replayed("CreateCustomModelDeployment", d, "ValidationException")
            if replay is not None:
                return replay
            if any(x["modelDeploymentName"] == d["modelDeploymentName"] for x in self.deployments.values()):
                return aws_error(400, "ValidationException", f"deployment {d['modelDeploymentName']} exists")
            self.deployments[arn] = {"customModelDeploymentArn": arn, "modelDeploymentName": d["modelDeploymentName"],
                                     "modelArn": model["modelArn"], "createdAt": _now(), "status": "Creating",
                                     "polls": 0}
            self.runtime.weights_by_model[arn] = model["weights"]
            return self._remember("CreateCustomModelDeployment", d,
                                  json_response(202, {"customModelDeploymentArn": arn}))

    def get_deployment(self, ident: str):
        dep = self._find(self.deployments, ident)
        if dep is None:
            return aws_error(404, "ResourceNotFoundException", f"no deployment {ident}")
        with self._lock:  # asynchronous like the real one: Creating on the first poll, then Active
            dep["polls"] += 1
            if dep["status"] == "Creating" and dep["polls"] > 1:
                dep["status"] = "Active"
        return json_response(200, {k: v for k, v in dep.items() if k != "polls"})

    def delete_deployment(self, ident: str):
        dep = self._find(self.deployments, ident)
        if dep is None:
            return aws_error(404, "ResourceNotFoundException", f"no deployment {ident}")
        with self._lock:
            self.deployments.pop(dep["customModelDeploymentArn"], None)
            self.runtime.weights_by_model.pop(dep["customModelDeploymentArn"], None)
        return json_response(200, {})

    # -- model access (read-only; what `mytrader doctor` asks) ---------------------------------------------------
    def model_availability(self, model_id: str):
        if model_id in self.unknown_models:
            return aws_error(404, "ResourceNotFoundException", f"The model {model_id} does not exist")
        answer = {"modelId": model_id, "agreementAvailability": {"status": "AVAILABLE"},
                  "authorizationStatus": "AUTHORIZED", "entitlementAvailability": "AVAILABLE",
                  "regionAvailability": "AVAILABLE"}
        return json_response(200, {**answer, **self.model_access.get(model_id, {})})

    def inference_profile(self, ident: str):
        profile_id = ident.rsplit("/", 1)[-1]
        regions = self.inference_profiles.get(profile_id)
        if regions is None and profile_id.startswith("global."):
            regions = (self.region, "")
        if regions is None:
            return aws_error(404, "ResourceNotFoundException", f"Inference profile {ident} not found")
        base = profile_id.split(".", 1)[1]
        return json_response(200, {
            "inferenceProfileName": f"local {profile_id}", "description": "local emulation of a system-defined profile",
            "inferenceProfileArn": f"arn:aws:bedrock:{self.region}:{ACCOUNT}:inference-profile/{profile_id}",
            "inferenceProfileId": profile_id, "status": "ACTIVE", "type": "SYSTEM_DEFINED",
            "models": [{"modelArn": f"arn:aws:bedrock:{r}::foundation-model/{base}"} for r in regions]})
