"""Continuous learning: dataset export and the fine-tuning workflow's tasks (one Lambda, one action each).

Every task takes the workflow state and returns JSON-safe values only (no timestamps as objects: moto's
engine breaks on them and the console shows strings anyway).
"""
from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mytrader import dataset as ds
from mytrader.adapters.tradelog import TradeLog
from mytrader.advisor.llm import InMemoryResponseCache, LlmAdvisor
from mytrader.advisor.prompt import parse_inputs_from_prompt
from mytrader.app.settings import response_mode_for
from mytrader.config import AdvisorSettings
from mytrader.errors import DataQualityError
from mytrader.labels import forward_return
from mytrader.models import Action, LlmAdvice, TradeDecision
from mytrader.stack_spec import FINETUNE_BASE_MODEL, parameter_names

if TYPE_CHECKING:
    from mytrader.adapters.aws.clients import BedrockClient, S3Client, SFNClient, SNSClient, SSMClient
    from mytrader.market.series import BarSeries
    from mytrader.ports import BarSource, ConverseClient

log = logging.getLogger(__name__)
TERMINAL = ("EXECUTED", "REJECTED", "SKIPPED", "DEAD_LETTERED")
T = TypeVar("T")


class NovaHyperparameters(BaseModel):
    """Nova Micro/Lite/Pro fine-tuning hyperparameters with their documented ranges (Amazon Bedrock user guide,
    "Amazon Nova Understanding model customization hyperparameters"). Nova takes these three and no others (no
    batchSize): anything else, or a value out of range, is refused before any job is created."""
    model_config = ConfigDict(extra="forbid")
    epochCount: int = Field(2, ge=1, le=5)  # Bedrock's own names, sent as they are
    learningRate: float = Field(1e-5, ge=1e-6, le=1e-4)
    learningRateWarmupSteps: int = Field(0, ge=0, le=100)

    def api(self) -> dict[str, str]:
        """CreateModelCustomizationJob's hyperParameters: a map of strings."""
        return {"epochCount": str(self.epochCount), "learningRate": f"{self.learningRate:.12f}".rstrip("0"),
                "learningRateWarmupSteps": str(self.learningRateWarmupSteps)}


class FinetuneConfig(BaseModel):
    """The workflow's input; `{}` from the console means every default below."""
    model_config = ConfigDict(extra="forbid")
    poll_seconds: int = Field(60, ge=1, le=3600)
    base_model: str = Field(FINETUNE_BASE_MODEL, pattern=r"^amazon\.nova-(micro|lite|pro)-",
                            description="a fine-tunable Nova model (the hyperparameters are Nova's)")
    hyperparameters: NovaHyperparameters = NovaHyperparameters()
    min_train: int = Field(300, ge=1)
    min_validation: int = Field(50, ge=1)
    max_label_share: float = Field(0.9, gt=0, le=1)
    validation_share: float = Field(0.2, gt=0, lt=1)
    promotion_margin: float = Field(0.02, ge=0, le=1, description="accuracy the candidate must gain")
    require_approval: bool = False
    shuffle_labels: bool = False  # negative control only
    eval_limit: int = Field(400, ge=1)
    max_eval_fallback_share: float = Field(
        0.05, ge=0, le=1, description="above this share of fallbacks (throttles, bad answers) for either model the "
        "evaluation fails instead of judging the candidate")
    run_id: str = Field("", pattern=r"^[a-zA-Z0-9-]{0,40}$")


def apply_defaults(raw: dict[str, Any] | None, base_model: str | None = None) -> FinetuneConfig:
    raw = {k: v for k, v in (raw or {}).items() if not k.startswith("_")}
    cfg = FinetuneConfig.model_validate({**({"base_model": base_model} if base_model else {}), **raw})
    if not cfg.run_id:
        cfg.run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return cfg


def _safe(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9-]", "-", name)[:60]


def request_token(name: str) -> str:
    """The clientRequestToken of a create call, derived from the resource's name (which holds the run id and the
    dataset version): a retried task sends the same token, and Bedrock answers with the resource it already created
    instead of failing on the name. Pattern [a-zA-Z0-9]([-a-zA-Z0-9]{0,254}[a-zA-Z0-9])?."""
    return re.sub(r"[^a-zA-Z0-9-]", "-", name).strip("-")[:256].rstrip("-") or "mytrader"


class EvaluationUnreliable(RuntimeError):
    """Too many evaluation answers fell back (throttles, timeouts, bad answers) to judge the candidate."""


# -- results: each task's JSON, which the workflow keeps in its state -------------------------------------
class TaskResult(BaseModel):
    """A task's result; `response()` is the JSON the workflow stores (fields that do not apply are left out)."""
    model_config = ConfigDict(frozen=True)

    def response(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ExportResult(TaskResult):
    enough: bool
    reason: str
    train_records: int
    validation_records: int
    skipped: dict[str, int]
    label_balance: dict[str, int]
    version: str | None = None  # the rest only once a dataset was written
    prefix: str | None = None
    train_uri: str | None = None
    validation_uri: str | None = None
    manifest_uri: str | None = None


class JobRef(TaskResult):
    job_name: str
    job_arn: str


class JobStatus(TaskResult):
    status: str
    failure_message: str
    model_arn: str


class DeploymentRef(TaskResult):
    deployment_arn: str
    name: str


class DeploymentStatus(TaskResult):
    status: str
    failure_message: str


class ModelScore(TaskResult):
    model_id: str
    accuracy: float
    simulated_return: float
    evaluated: int
    fallbacks: int
    cost_usd: float


class Evaluation(TaskResult):
    candidate: ModelScore
    active: ModelScore
    better: bool
    margin: float
    shadow_predictions: int
    shadow_accuracy: float | None  # null when no shadow prediction could be scored

    def response(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Promotion(TaskResult):
    previous: str
    active: str


class Rejection(TaskResult):
    deleted: str


class ApprovalRequest(TaskResult):
    requested: bool


class Notification(TaskResult):
    sent: bool
    message_id: str | None = None
    outcome: str | None = None


class WorkflowState(BaseModel):
    """The workflow's state as tasks read it: each earlier task's result under its ResultPath (finetune.asl.json);
    the console input and the keys no task reads are ignored."""
    model_config = ConfigDict(extra="ignore")

    config: FinetuneConfig | None = None
    dataset: ExportResult | None = None
    job: JobRef | None = None
    training: JobStatus | None = None
    deployment: DeploymentRef | None = None
    evaluation: Evaluation | None = None
    error: dict[str, Any] | None = None


class MissingState(KeyError):
    """A task ran before the task whose result it needs (a workflow definition error)."""


def _need(value: T | None, name: str) -> T:
    if value is None:
        raise MissingState(name)
    return value


# -- dataset export ------------------------------------------------------------------------------
def labelled_records(tl: TradeLog, market: BarSource, now: datetime) -> tuple[list[ds.Labelled], dict[str, int]]:
    """Every terminal decision with logged prompt inputs and a known forward outcome, labelled."""
    skipped: dict[str, int] = {"no_inputs": 0, "outcome_unknown": 0, "no_market_data": 0, "refused_by_format": 0}
    out: list[ds.Labelled] = []
    series_cache: dict[str, BarSeries] = {}
    for status in TERMINAL:
        for row in tl.decisions_by_status(status):
            if "doc" not in row:
                skipped["no_inputs"] += 1
                continue
            d = TradeDecision.model_validate_json(row["doc"])
            if not d.prompt_inputs:
                skipped["no_inputs"] += 1
                continue
            try:
                s = series_cache.get(d.symbol) or market.full(d.symbol).upto(now)
            except DataQualityError:
                skipped["no_market_data"] += 1
                continue
            series_cache[d.symbol] = s
            i = s.index_of(d.bar_ts)
            fr = forward_return(s.open, s.close, i, d.time_horizon_bars) if i >= 0 else None
            if fr is None:
                skipped["outcome_unknown"] += 1
                continue
            try:
                record, label = ds.make_record(d, float(fr))
            except ValidationError as exc:  # a record Nova would refuse is skipped and counted, never written
                log.warning("decision %s refused by the dataset format: %s", d.decision_id, str(exc)[:200])
                skipped["refused_by_format"] += 1
                continue
            out.append(ds.Labelled(d.decision_id, d.symbol, d.bar_ts.isoformat(), float(fr), label, record))
    return out, skipped


def export_dataset(tl: TradeLog, market: BarSource, s3: S3Client, bucket: str, now: datetime,
                   cfg: FinetuneConfig) -> ExportResult:
    items, skipped = labelled_records(tl, market, now)
    train, validation = ds.split_by_time(items, cfg.validation_share)
    if cfg.shuffle_labels:
        train = ds.shuffle_labels(train, seed=7)
    ok, reason = ds.enough(train, validation, cfg.min_train, cfg.min_validation, cfg.max_label_share)
    result = ExportResult(enough=ok, reason=reason, train_records=len(train), validation_records=len(validation),
                          skipped=skipped, label_balance=ds.balance(train))
    if not ok:
        return result
    files = {"train.jsonl": ds.jsonl(train), "validation.jsonl": ds.jsonl(validation),
             "validation_outcomes.json": ds.validation_outcomes(validation)}
    version = ds.version_of(files)
    prefix = f"datasets/{version}"
    man = ds.manifest(train, validation, files, cfg.base_model, cfg.shuffle_labels)
    for name, body in {**files, "manifest.json": json.dumps(man, indent=1).encode()}.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body,
                      ContentType="application/json" if name.endswith(".json") else "application/jsonl")
    return result.model_copy(update={
        "version": version, "prefix": prefix, "train_uri": f"s3://{bucket}/{prefix}/train.jsonl",
        "validation_uri": f"s3://{bucket}/{prefix}/validation.jsonl",
        "manifest_uri": f"s3://{bucket}/{prefix}/manifest.json"})


# -- the workflow's tasks --------------------------------------------------------------------------
class FinetuneTasks:
    """The workflow's tasks. `runtime`: a Converse client with retries on (evaluation is not latency-bound, and a
    throttled answer would otherwise count as a HOLD prediction)."""

    def __init__(self, *, prefix: str, bedrock: BedrockClient, runtime: ConverseClient, ssm: SSMClient, s3: S3Client,
                 sns: SNSClient, tl: TradeLog, bucket: str, role_arn: str, topic_arn: str) -> None:
        self.prefix, self.bedrock, self.runtime, self.ssm, self.s3 = prefix, bedrock, runtime, ssm, s3
        self.sns, self.tl = sns, tl
        self.bucket, self.role_arn, self.topic_arn = bucket, role_arn, topic_arn
        self.params = parameter_names(prefix)

    def create_job(self, state: WorkflowState) -> JobRef:
        cfg, data = _need(state.config, "config"), _need(state.dataset, "dataset")
        name = _safe(f"{self.prefix}-ft-{_need(data.version, 'dataset.version')}-{cfg.run_id}")
        resp = self.bedrock.create_model_customization_job(
            jobName=name, customModelName=name, roleArn=self.role_arn, baseModelIdentifier=cfg.base_model,
            customizationType="FINE_TUNING", hyperParameters=cfg.hyperparameters.api(),
            clientRequestToken=request_token(name),
            trainingDataConfig={"s3Uri": _need(data.train_uri, "dataset.train_uri")},
            validationDataConfig={"validators": [{"s3Uri": _need(data.validation_uri, "dataset.validation_uri")}]},
            outputDataConfig={"s3Uri": f"s3://{self.bucket}/finetune-output/"},
            customModelTags=[{"key": "mytrader:stack", "value": self.prefix}],
            jobTags=[{"key": "mytrader:stack", "value": self.prefix}])
        return JobRef(job_name=name, job_arn=resp["jobArn"])

    def job_status(self, state: WorkflowState) -> JobStatus:
        # polled by name: AWS accepts name or ARN, and moto's lookup by ARN fails
        job = self.bedrock.get_model_customization_job(jobIdentifier=_need(state.job, "job").job_name)
        return JobStatus(status=job["status"], failure_message=job.get("failureMessage", ""),
                         model_arn=job.get("outputModelArn", ""))

    def create_deployment(self, state: WorkflowState) -> DeploymentRef:
        name = _safe(f"{_need(state.job, 'job').job_name}-dep")
        resp = self.bedrock.create_custom_model_deployment(
            modelDeploymentName=name, modelArn=_need(state.training, "training").model_arn,
            description="MyTrader candidate advisor", tags=[{"key": "mytrader:stack", "value": self.prefix}],
            clientRequestToken=request_token(name))
        return DeploymentRef(deployment_arn=resp["customModelDeploymentArn"], name=name)

    def deployment_status(self, state: WorkflowState) -> DeploymentStatus:
        arn = _need(state.deployment, "deployment").deployment_arn
        dep = self.bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
        return DeploymentStatus(status=dep["status"], failure_message=dep.get("failureMessage", ""))

    def _read(self, state: WorkflowState, name: str) -> bytes:
        prefix = _need(_need(state.dataset, "dataset").prefix, "dataset.prefix")
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=f"{prefix}/{name}")["Body"].read()
        return body

    def score(self, model_id: str, records: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> ModelScore:
        """Replay validation prompts through a model: accuracy against the hindsight labels and the
        simulated return of following its calls (long-only: a BUY earns the forward return)."""
        advisor = LlmAdvisor(self.runtime, AdvisorSettings(model_id=model_id,
                                                           response_mode=response_mode_for(model_id)),
                             cache=InMemoryResponseCache())

        def ask(pair: tuple[dict[str, Any], dict[str, Any]]) -> tuple[LlmAdvice | None, dict[str, Any]]:
            rec, out = pair
            user = rec["messages"][0]["content"][0]["text"]
            advice, _ = advisor.advise(parse_inputs_from_prompt(user), out["bar_ts"][:10])
            return advice, out

        # in parallel: a few hundred Converse calls per model must fit one task's Lambda timeout
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(ask, zip(records, outcomes, strict=False)))
        hits, ret, fallbacks = 0, 0.0, 0
        for advice, out in answers:
            pred = advice.decision if advice is not None else Action.HOLD
            fallbacks += advice is None
            hits += pred.value == out["label"]
            ret += out["forward_return"] if pred == Action.BUY else 0.0
        n = max(1, len(records))
        return ModelScore(model_id=model_id, accuracy=round(hits / n, 4), simulated_return=round(ret / n, 6),
                          evaluated=len(records), fallbacks=fallbacks, cost_usd=round(advisor.stats.cost_usd, 6))

    def evaluate(self, state: WorkflowState) -> Evaluation:
        cfg, deployment_arn = _need(state.config, "config"), _need(state.deployment, "deployment").deployment_arn
        records = [json.loads(line) for line in self._read(state, "validation.jsonl").decode().splitlines() if line]
        outcomes: list[dict[str, Any]] = json.loads(self._read(state, "validation_outcomes.json"))
        records, outcomes = records[:cfg.eval_limit], outcomes[:cfg.eval_limit]
        candidate = _reliable(self.score(deployment_arn, records, outcomes), cfg.max_eval_fallback_share, "candidate")
        active_id = self.ssm.get_parameter(Name=self.params["ACTIVE_MODEL"])["Parameter"]["Value"]
        active = _reliable(self.score(active_id, records, outcomes), cfg.max_eval_fallback_share, "active model")
        shadow = self.tl.shadow_predictions(deployment_arn)
        labels = {o["decision_id"]: o["label"] for o in outcomes}
        scored = [p for p in shadow if p["decision_id"] in labels and p.get("decision")]
        shadow_accuracy = (round(sum(p["decision"] == labels[p["decision_id"]] for p in scored) / len(scored), 4)
                           if scored else None)
        better = (candidate.accuracy >= active.accuracy + cfg.promotion_margin
                  and candidate.simulated_return >= active.simulated_return)
        return Evaluation(candidate=candidate, active=active, better=better, margin=cfg.promotion_margin,
                          shadow_predictions=len(shadow), shadow_accuracy=shadow_accuracy)

    def promote(self, state: WorkflowState) -> Promotion:
        new = _need(state.deployment, "deployment").deployment_arn
        old = self.ssm.get_parameter(Name=self.params["ACTIVE_MODEL"])["Parameter"]["Value"]
        self.ssm.put_parameter(Name=self.params["PREVIOUS_MODEL"], Value=old, Type="String", Overwrite=True)
        self.ssm.put_parameter(Name=self.params["ACTIVE_MODEL"], Value=new, Type="String", Overwrite=True)
        return Promotion(previous=old, active=new)

    def reject(self, state: WorkflowState) -> Rejection:
        arn = _need(state.deployment, "deployment").deployment_arn
        self.bedrock.delete_custom_model_deployment(customModelDeploymentIdentifier=arn)
        return Rejection(deleted=arn)

    def request_approval(self, token: str, state: WorkflowState) -> ApprovalRequest:
        body = {"token": token, "deployment_arn": _need(state.deployment, "deployment").deployment_arn,
                "evaluation": state.evaluation.response() if state.evaluation is not None else None}
        self.ssm.put_parameter(Name=f"/{self.prefix}/pending-approval", Value=json.dumps(body), Type="String",
                               Overwrite=True)
        self.notify(state, "approval_requested")
        return ApprovalRequest(requested=True)

    def notify(self, state: WorkflowState, outcome: str) -> Notification:
        if not self.topic_arn:
            return Notification(sent=False)
        lines = [f"MyTrader fine-tuning: {outcome}"]
        if state.dataset is not None:
            d = state.dataset
            lines.append(f"dataset: {d.train_records} train / {d.validation_records} validation ({d.reason})")
        if state.evaluation is not None:
            ev = state.evaluation
            lines.append(f"candidate accuracy {ev.candidate.accuracy} vs active {ev.active.accuracy}")
        if state.error:
            lines.append(f"error: {json.dumps(state.error)[:500]}")
        resp = self.sns.publish(TopicArn=self.topic_arn, Subject=f"MyTrader fine-tuning {outcome}"[:100],
                                Message="\n".join(lines))
        return Notification(sent=True, message_id=resp["MessageId"], outcome=outcome)


def _reliable(score: ModelScore, max_share: float, who: str) -> ModelScore:
    """The score, unless more of its answers fell back than `max_share`: a fallback is a HOLD that the model never
    said, so judging on them would compare throttling, not models."""
    share = score.fallbacks / max(1, score.evaluated)
    if share > max_share:
        raise EvaluationUnreliable(
            f"{who} {score.model_id}: {score.fallbacks} of {score.evaluated} evaluation answers fell back "
            f"({share:.0%} > {max_share:.0%}); the candidate is not judged (retry later, or raise "
            "max_eval_fallback_share)")
    return score


class ModelSwitch(TypedDict):
    """`mytrader model rollback`: the model now active and the one it replaced."""
    active: str
    previous: str


class ApprovalAnswer(TypedDict):
    approved: bool
    deployment_arn: str


def rollback(ssm: SSMClient, prefix: str) -> ModelSwitch:
    """Restore the previous active model (and remember the one rolled back)."""
    names = parameter_names(prefix)
    active = ssm.get_parameter(Name=names["ACTIVE_MODEL"])["Parameter"]["Value"]
    previous = ssm.get_parameter(Name=names["PREVIOUS_MODEL"])["Parameter"]["Value"]
    if previous in ("", "none"):
        raise ValueError("no previous model to roll back to")
    ssm.put_parameter(Name=names["ACTIVE_MODEL"], Value=previous, Type="String", Overwrite=True)
    ssm.put_parameter(Name=names["PREVIOUS_MODEL"], Value=active, Type="String", Overwrite=True)
    return {"active": previous, "previous": active}


def answer_approval(ssm: SSMClient, sfn: SFNClient, prefix: str, approve: bool, reason: str = "") -> ApprovalAnswer:
    raw = ssm.get_parameter(Name=f"/{prefix}/pending-approval")["Parameter"]["Value"]
    pending = json.loads(raw)
    if approve:
        sfn.send_task_success(taskToken=pending["token"], output=json.dumps({"approved": True}))
    else:
        sfn.send_task_failure(taskToken=pending["token"], error="Rejected", cause=reason or "rejected by an operator")
    ssm.delete_parameter(Name=f"/{prefix}/pending-approval")
    return {"approved": approve, "deployment_arn": pending["deployment_arn"]}
