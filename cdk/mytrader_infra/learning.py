"""Learning: dataset export, the fine-tuning state machine (the same ASL the embedded AWS runs), the role
Bedrock assumes, and iam:PassRole scoped to it."""
from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mytrader.stack_spec import FINETUNE_BASE_MODEL, STATE_MACHINE_NAME

from .functions import make_function
from .monitoring import Monitoring
from .settings import DeploySettings
from .storage import Storage

ASL = Path(__file__).resolve().parents[2] / "layers" / "core" / "mytrader" / "data" / "finetune.asl.json"


class Learning(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: DeploySettings, storage: Storage,
                 monitoring: Monitoring, layer: lambda_.ILayerVersion, env: dict[str, str]) -> None:
        super().__init__(scope, id)
        p = settings.prefix
        stack = Stack.of(self)
        part, region, account = stack.partition, stack.region, stack.account
        self.bedrock_role = iam.Role(
            self, "bedrock-customization-role", role_name=f"{p}-bedrock-customization",
            assumed_by=iam.ServicePrincipal("bedrock.amazonaws.com", conditions={
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": f"arn:{part}:bedrock:{region}:{account}:model-customization-job/*"}}),
            description="Assumed by Bedrock to read fine-tuning datasets and write job outputs")
        storage.datasets.grant_read(self.bedrock_role, "datasets/*")
        storage.datasets.grant_write(self.bedrock_role, "finetune-output/*")
        learn_env = {**env, "BEDROCK_ROLE_ARN": self.bedrock_role.role_arn,
                     "ALARM_TOPIC_ARN": monitoring.topic.topic_arn, "FINETUNE_BASE_MODEL": FINETUNE_BASE_MODEL,
                     "STATE_MACHINE_NAME": f"{p}-{STATE_MACHINE_NAME}"}
        self.export = make_function(self, "dataset_export", prefix=p, layer=layer, arch=settings.architecture,
                                    env=learn_env)
        self.tasks = make_function(self, "finetune_tasks", prefix=p, layer=layer, arch=settings.architecture,
                                   env=learn_env)
        storage.trade_log.grant_read_data(self.export)
        storage.datasets.grant_read_write(self.export, "datasets/*")
        storage.datasets.grant_read(self.export, "prompts/*")
        storage.datasets.grant_read(self.tasks, "datasets/*")
        storage.trade_log.grant_read_write_data(self.tasks)  # shadow predictions and evaluation records
        for key in ("ACTIVE_MODEL", "PREVIOUS_MODEL"):
            storage.params[key].grant_read(self.tasks)
            storage.params[key].grant_write(self.tasks)
        monitoring.topic.grant_publish(self.tasks)
        self.bedrock_role.grant_pass_role(self.tasks.grant_principal)  # iam:PassRole on exactly this role
        self.tasks.add_to_role_policy(iam.PolicyStatement(
            sid="ModelCustomization",
            actions=["bedrock:CreateModelCustomizationJob", "bedrock:GetModelCustomizationJob",
                     "bedrock:StopModelCustomizationJob", "bedrock:GetCustomModel", "bedrock:TagResource"],
            resources=[f"arn:{part}:bedrock:{region}:{account}:model-customization-job/*",
                       f"arn:{part}:bedrock:{region}:{account}:custom-model/*",
                       f"arn:{part}:bedrock:{region}::foundation-model/amazon.nova-*"]))
        self.tasks.add_to_role_policy(iam.PolicyStatement(
            sid="CustomModelDeployments",
            actions=["bedrock:CreateCustomModelDeployment", "bedrock:GetCustomModelDeployment",
                     "bedrock:DeleteCustomModelDeployment", "bedrock:InvokeModel"],
            resources=[f"arn:{part}:bedrock:{region}:{account}:custom-model-deployment/*",
                       f"arn:{part}:bedrock:{region}:{account}:custom-model/*"],
            conditions={"StringEquals": {"aws:ResourceTag/mytrader:stack": p}}))
        self.tasks.add_to_role_policy(iam.PolicyStatement(
            sid="InvokeActiveModelForEvaluation", actions=["bedrock:InvokeModel"],
            resources=[f"arn:{part}:bedrock:{region}:{account}:inference-profile/*",
                       f"arn:{part}:bedrock:*::foundation-model/*"]))
        log_group = logs.LogGroup(self, "finetune-logs", log_group_name=f"/aws/vendedlogs/states/{p}-finetune",
                                  retention=logs.RetentionDays.THREE_MONTHS, removal_policy=RemovalPolicy.DESTROY)
        self.state_machine = sfn.StateMachine(
            self, "finetune", state_machine_name=f"{p}-{STATE_MACHINE_NAME}",
            definition_body=sfn.DefinitionBody.from_string(ASL.read_text()),
            definition_substitutions={"FinetuneTasksArn": self.tasks.function_arn,
                                      "DatasetExportArn": self.export.function_arn},
            tracing_enabled=True, timeout=Duration.days(8),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False))
        for fn in (self.tasks, self.export):
            fn.grant_invoke(self.state_machine)
        # Task-token answers (manual approval), granted by the state machine's name: granting by its ARN token
        # would make the function depend on the state machine, which depends on the function.
        self.tasks.add_to_role_policy(iam.PolicyStatement(
            sid="ApprovalTaskTokens", actions=["states:SendTaskSuccess", "states:SendTaskFailure",
                                               "states:SendTaskHeartbeat"],
            resources=[f"arn:{part}:states:{region}:{account}:stateMachine:{p}-{STATE_MACHINE_NAME}"]))
