"""Monitoring: the alarm topic (optional e-mail), alarms and a dashboard."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from mytrader.stack_spec import SECRET_NOT_SET_METRIC

from .functions import METRICS_NAMESPACE, service_name
from .settings import DeploySettings

if TYPE_CHECKING:  # for `wire` only: learning.py imports this module
    from .decisions import Decisions
    from .execution import Execution
    from .learning import Learning


class Monitoring(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: DeploySettings) -> None:
        super().__init__(scope, id)
        account = Stack.of(self).account
        # A customer-managed key: CloudWatch alarms cannot publish to a topic under the AWS-managed alias/aws/sns
        # (its key policy cannot be changed to let cloudwatch.amazonaws.com use it). About $1 a month.
        self.key = kms.Key(self, "alarm-topic-key", alias=f"alias/{settings.prefix}-alarms", enable_key_rotation=True,
                           description="Encrypts the MyTrader alarm topic; CloudWatch alarms may use it to publish",
                           removal_policy=RemovalPolicy.DESTROY, pending_window=Duration.days(7))
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish", principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": account}}))
        self.topic = sns.Topic(self, "alarms", topic_name=f"{settings.prefix}-alarms", enforce_ssl=True,
                               master_key=self.key)
        if settings.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(settings.alarm_email))
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarms", principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"], resources=[self.topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": account}}))
        self.action = actions.SnsAction(self.topic)
        self.alarms: list[cw.Alarm] = []

    def metric(self, name: str, stat: str = "Sum", service: str | None = None) -> cw.Metric:
        dims = {"service": service} if service else None
        return cw.Metric(namespace=METRICS_NAMESPACE, metric_name=name, statistic=stat, period=Duration.minutes(15),
                         dimensions_map=dims)

    def alarm(self, id: str, metric: cw.IMetric, threshold: float, description: str,
              op: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_THRESHOLD) -> cw.Alarm:
        a = cw.Alarm(self, id, metric=metric, threshold=threshold, evaluation_periods=1, comparison_operator=op,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
        a.add_alarm_action(self.action)
        self.alarms.append(a)
        return a

    def wire(self, *, decisions: Decisions, execution: Execution, learning: Learning) -> None:
        dc, ex = service_name("decision_cycle"), service_name("executor")
        self.alarm("dlq-depth", decisions.dlq.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(5)), 0, "Decisions reached the DLQ: inspect, then `mytrader ops redrive-dlq`")
        self.alarm("schedule-dlq-depth", decisions.schedule_dlq.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(5)), 0,
            "Decision-cycle invocations failed (schedule or async failure destination)")
        self.alarm("executor-errors", execution.executor.metric_errors(period=Duration.minutes(5)), 0,
                   "Executor errors")
        self.alarm("decision-cycle-errors", decisions.function.metric_errors(period=Duration.minutes(5)), 0,
                   "Decision-cycle errors")
        self.alarm("outcomes-errors", execution.outcomes.metric_errors(period=Duration.minutes(5)), 0,
                   "Outcomes errors: stops, targets and reconciliation did not run")
        oc = service_name("outcomes")
        not_set = cw.MathExpression(
            expression="dc + ex + oc", period=Duration.minutes(15), label="functions idle on the placeholder secret",
            using_metrics={name: self.metric(SECRET_NOT_SET_METRIC, service=svc)
                           for name, svc in (("dc", dc), ("ex", ex), ("oc", oc))})
        self.alarm("broker-secret-not-set", not_set, 1,
                   "The broker secret still holds the placeholder: the functions that need it do nothing (safe start). "
                   "Put your Alpaca keys in the secret (stack output BrokerSecretArn), then run `mytrader doctor`",
                   op=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD)
        fallback_rate = cw.MathExpression(expression="100 * fallbacks / MAX([calls + fallbacks, 1])",
                                          using_metrics={"fallbacks": self.metric("LlmFallbacks", service=dc),
                                                         "calls": self.metric("LlmCalls", service=dc)},
                                          period=Duration.minutes(15), label="LLM fallback rate %")
        self.alarm("llm-fallback-rate", fallback_rate, 20, "More than 20 % of advisor calls fell back to the strategy")
        self.alarm("kill-switch-tripped", self.metric("KillSwitchRejections", service=ex), 0,
                   "Entries rejected by the kill switch or the daily-loss limit")
        at_least_one = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        self.alarm("unknown-decision", self.metric("UnknownDecision", service=ex), 1,
                   "A decisions message named no decision record: forged, corrupted or sent by hand "
                   "(the executor acts only on recorded decisions)", op=at_least_one)
        self.alarm("entries-failed-closed", self.metric("EntriesFailedClosed", service=dc), 1,
                   "A risk gate could not be read: new entries were refused (exits still run)", op=at_least_one)
        self.alarm("position-mismatch", self.metric("PositionMismatches", service=service_name("outcomes")), 0,
                   "The book and the broker hold different quantities "
                   "(`mytrader ops status`; trades outside MyTrader?)")
        self.alarm("positions-unchecked", self.metric("PositionsUnchecked", service=service_name("outcomes")), 1,
                   "A held position's stop and target could not be checked: no bars and no trusted quote "
                   "(see the outcomes function's unchecked_reasons)", op=at_least_one)
        self.alarm("finetune-failed", learning.state_machine.metric_failed(period=Duration.minutes(5)), 0,
                   "The fine-tuning workflow failed")
        dash = cw.Dashboard(self, "dashboard", dashboard_name=f"{Stack.of(decisions).node.id}-trading")
        dash.add_widgets(
            cw.GraphWidget(title="Decisions and LLM calls", left=[self.metric("Decisions", service=dc),
                                                                   self.metric("LlmCalls", service=dc),
                                                                   self.metric("LlmFallbacks", service=dc)]),
            cw.GraphWidget(title="Tokens", left=[self.metric("LlmInputTokens", service=dc),
                                                 self.metric("LlmOutputTokens", service=dc)]),
            cw.GraphWidget(title="LLM cost (micro-USD)", left=[self.metric("LlmCostMicroUsd", service=dc)]),
            cw.GraphWidget(title="Executions", left=[self.metric("DecisionExecuted", service=ex),
                                                     self.metric("DecisionRejected", service=ex),
                                                     self.metric("DecisionSkipped", service=ex)]),
            cw.GraphWidget(title="Realised P&L (USD)",
                           left=[self.metric("RealisedPnl", service=service_name("outcomes"))]),
            cw.GraphWidget(title="Cold starts", left=[
                cw.Metric(namespace=METRICS_NAMESPACE, metric_name="ColdStart", statistic="Sum", label=key,
                          period=Duration.hours(1), dimensions_map={"function_name": fn.function_name,
                                                                    "service": service_name(key)})
                for key, fn in (("decision_cycle", decisions.function), ("executor", execution.executor),
                                ("outcomes", execution.outcomes), ("dataset_export", learning.export),
                                ("finetune_tasks", learning.tasks))]),
        )
