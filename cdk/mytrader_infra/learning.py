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

from .access import (
    advisor_invoke_statements,
    allow,
    deployments_arn,
    grant_index_queries,
    grant_objects,
    grant_parameter_read,
    grant_sources,
    stack_tag,
)
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
        # What Bedrock's customization example policy gives the job: the training data read, the bucket listed,
        # the output (metrics, logs) written and read back.
        for sid, actions, resources in (
                ("TrainingData", ["s3:GetObject"], [storage.datasets.arn_for_objects("datasets/*")]),
                ("ListDatasetsBucket", ["s3:ListBucket"], [storage.datasets.bucket_arn]),
                ("JobOutput", ["s3:GetObject", "s3:PutObject"],
                 [storage.datasets.arn_for_objects("finetune-output/*")])):
            self.bedrock_role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources))
        learn_env = {**env, "BEDROCK_ROLE_ARN": self.bedrock_role.role_arn,
                     "ALARM_TOPIC_ARN": monitoring.topic.topic_arn, "FINETUNE_BASE_MODEL": FINETUNE_BASE_MODEL,
                     "STATE_MACHINE_NAME": f"{p}-{STATE_MACHINE_NAME}"}
        self.export = make_function(self, "dataset_export", prefix=p, layer=layer, arch=settings.architecture,
                                    env=learn_env)
        self.tasks = make_function(self, "finetune_tasks", prefix=p, layer=layer, arch=settings.architecture,
                                   env=learn_env)
        # The export: labelled decisions from the trade log, bars from the market source, datasets written to S3.
        grant_index_queries(storage.trade_log, self.export, "TradeLogIndexes")  # labelled decisions by status
        grant_sources(storage, self.export, settings, market=True)
        grant_objects(storage.datasets, self.export, "WriteDatasets", ["s3:PutObject"], "datasets")
        # The tasks (finetune_tasks handler -> usecases/learn.py), each grant from one of their calls; no market
        # source and no broker secret.
        # the validation split the evaluation replays (written by the export: no missing key to tell apart)
        grant_objects(storage.datasets, self.tasks, "ReadDatasets", ["s3:GetObject"], "datasets")
        grant_index_queries(storage.trade_log, self.tasks, "TradeLogIndexes")  # shadow predictions by model
        grant_parameter_read(storage.params["ACTIVE_MODEL"], self.tasks, "ReadActiveModel")  # evaluate, promote
        allow(self.tasks, "PromoteModel", ["ssm:PutParameter"],  # promote (and roll back)
              [storage.params[key].parameter_arn for key in ("ACTIVE_MODEL", "PREVIOUS_MODEL")])
        self.tasks.add_to_role_policy(iam.PolicyStatement(  # request_approval: the token the CLI answers with
            sid="PendingApproval", actions=["ssm:PutParameter"],
            resources=[stack.format_arn(service="ssm", resource="parameter", resource_name=f"{p}/pending-approval")]))
        allow(self.tasks, "NotifyOperators", ["sns:Publish"], [monitoring.topic.topic_arn])  # notify
        allow(self.tasks, "AlarmTopicKey", ["kms:Decrypt", "kms:GenerateDataKey*"],  # SNS encrypts with it
              [monitoring.key.key_arn])
        allow(self.tasks, "PassCustomizationRole", ["iam:PassRole"], [self.bedrock_role.role_arn],  # to Bedrock only
              {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}})
        jobs = f"arn:{part}:bedrock:{region}:{account}:model-customization-job/*"
        models = f"arn:{part}:bedrock:{region}:{account}:custom-model/*"
        allow(self.tasks, "ModelCustomization", ["bedrock:CreateModelCustomizationJob"],  # create_job
              [models, f"arn:{part}:bedrock:{region}::foundation-model/amazon.nova-*"])  # authorised on these
        allow(self.tasks, "CustomizationJobStatus", ["bedrock:GetModelCustomizationJob"], [jobs])  # job_status
        allow(self.tasks, "TagNewJobsAndModels", ["bedrock:TagResource"], [jobs, models],  # the job's and model's tags
              stack_tag(p, "aws:RequestTag"))
        self.tasks.add_to_role_policy(iam.PolicyStatement(  # create_deployment: of this stack's custom models
            sid="DeployOwnCustomModels", actions=["bedrock:CreateCustomModelDeployment"],
            resources=[f"arn:{part}:bedrock:{region}:{account}:custom-model/*"], conditions=stack_tag(p)))
        self.tasks.add_to_role_policy(iam.PolicyStatement(  # ... creating a deployment tagged with the stack
            sid="NewDeploymentsTagged", actions=["bedrock:TagResource"],  # the create is authorised on the model
            resources=[deployments_arn(self)], conditions=stack_tag(p, "aws:RequestTag")))
        self.tasks.add_to_role_policy(iam.PolicyStatement(  # deployment_status, reject, evaluate (the candidate)
            sid="OwnDeployments", actions=["bedrock:GetCustomModelDeployment", "bedrock:DeleteCustomModelDeployment",
                                           "bedrock:InvokeModel"],
            resources=[deployments_arn(self)], conditions=stack_tag(p)))
        for statement in advisor_invoke_statements(self, settings, "EvaluateActiveModel"):  # evaluate (the active)
            self.tasks.add_to_role_policy(statement)
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
