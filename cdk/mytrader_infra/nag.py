"""cdk-nag AwsSolutions acknowledgements: each names the exact finding and why it stands.

cdk-nag 3 runs as a CDK policy-validation plugin. `Validations.of(scope).acknowledge()` rejects finding ids
that contain "::" (cdk-nag issue 2351) -- the granular IAM4/IAM5 findings all do. The working way, as
cdk-nag itself reads acknowledgements: write the same entry acknowledge() writes -- construct metadata under
`Validations.ACKNOWLEDGED_RULES_METADATA_KEY`, {finding id: reason} -- on the stack; cdk-nag walks up the
construct tree (cdk-nag PR 2349), so an entry on the stack covers its resources, and only the exact finding.
Ids without "::" in the finding part go through the public API. tests/infra lists every acknowledgement.
"""
from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Token, Validations

P = "AwsSolutions::AwsSolutions-"
DDB_INDEX = "item actions on the trade log include its GSIs (the documented access patterns)"
VERSIONS = "Step Functions invokes the task functions' versions/aliases (CDK grant_invoke)"

# (finding id, reason). <ACCOUNT> and <REGION> stand for the stack's account and region.
ACKNOWLEDGEMENTS: list[tuple[str, str]] = [
    (f"{P}L1", "Lambda runtime Python 3.13 is fixed by the product card (the layer is built for it)"),
    (f"{P}SMG4", "Alpaca API keys are issued by Alpaca; rotate them there and update the secret (README)"),
    (f"{P}SQS3", "schedule-dlq is itself the dead-letter queue of the schedules and the async failure destination"),
    (f"{P}IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
     "AWS managed policy that lets each function write its own CloudWatch log streams"),
    (f"{P}IAM5[Resource::*]", "only X-Ray tracing, Comprehend DetectSentiment/BatchDetectSentiment and the "
     "state machine's CloudWatch Logs delivery actions, none of which support resource-level permissions "
     "(tests/infra lists the exact actions)"),
    (f"{P}IAM5[Resource::<storagetradelog0B250099.Arn>/index/*]", DDB_INDEX),
    (f"{P}IAM5[Resource::<storagedatasets58EEB726.Arn>/market-data/*]",
     "price files the functions replay (s3 market data)"),
    (f"{P}IAM5[Resource::<storagedatasets58EEB726.Arn>/datasets/*]",
     "fine-tuning datasets written by export, read by Bedrock"),
    (f"{P}IAM5[Resource::<storagedatasets58EEB726.Arn>/prompts/*]", "prompt archive keyed by prompt hash"),
    (f"{P}IAM5[Resource::<storagedatasets58EEB726.Arn>/news/*]", "dated headlines for the s3 news source"),
    (f"{P}IAM5[Resource::<storagedatasets58EEB726.Arn>/finetune-output/*]", "where Bedrock writes job outputs"),
    (f"{P}IAM5[Resource::<learningfinetunetasksfnC39BFB2C.Arn>:*]", VERSIONS),
    (f"{P}IAM5[Resource::<learningdatasetexportfn77837555.Arn>:*]", VERSIONS),
    (f"{P}IAM5[Resource::<executionoutcomesfn2A475AE1.Arn>:*]",
     "the schedule invokes the outcomes function's versions"),
    (f"{P}IAM5[Resource::<decisionsdecisioncyclefn4D625F9A.Arn>:*]",
     "the schedule invokes the decision cycle's versions"),
    (f"{P}IAM5[Resource::arn:<AWS::Partition>:bedrock:<REGION>:<ACCOUNT>:custom-model-deployment/*]",
     "a promoted model's deployment ARN does not exist at deploy time: limited by the tag mytrader:stack"),
    (f"{P}IAM5[Resource::arn:<AWS::Partition>:bedrock:<REGION>:<ACCOUNT>:model-customization-job/*]",
     "job names are generated per run; Bedrock customization jobs of this account and region"),
    (f"{P}IAM5[Resource::arn:<AWS::Partition>:bedrock:<REGION>:<ACCOUNT>:custom-model/*]",
     "custom model names are generated per run; deployments limited by the tag mytrader:stack"),
    (f"{P}IAM5[Resource::arn:<AWS::Partition>:bedrock:<REGION>::foundation-model/amazon.nova-*]",
     "the Nova base models that fine-tuning may start from"),
    (f"{P}IAM5[Action::kms:GenerateDataKey*]",
     "publishing to the encrypted alarm topic: data keys of its customer-managed key only (that key's ARN)"),
]


def resolved(stack: Stack) -> list[tuple[str, str]]:
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    return [(f.replace("<ACCOUNT>", account).replace("<REGION>", region), r) for f, r in ACKNOWLEDGEMENTS]


def acknowledge_findings(stack: Stack) -> None:
    for finding, reason in resolved(stack):
        rule = finding.split("::", 1)[1]
        if "::" in rule:
            stack.node.add_metadata(Validations.ACKNOWLEDGED_RULES_METADATA_KEY, {finding: reason}, stack_trace=False)
        else:
            Validations.of(stack).acknowledge(Acknowledgment(id=finding, reason=reason))
