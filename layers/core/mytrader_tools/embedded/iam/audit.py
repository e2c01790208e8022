"""The deployed template's IAM checked with the knowledge base the gate uses (knowledge.py):

  - every action a policy names exists (a wildcard names at least one action);
  - every resource ARN fits one of the action's resource types (for a wildcard, one of the actions it names);
  - an action that has no resource types is granted on "*" alone (AWS authorises it on nothing else);
  - no function's role holds an action that no recorded call of that function used (the integration run's record,
    .build/iam-calls/last-run.json), except the grants in UNREACHED: paths the tests cannot take, each with why.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mytrader_tools.embedded.iam import knowledge
from mytrader_tools.embedded.iam.policy import Policy, action_matches
from mytrader_tools.embedded.iam.resolver import DeployedNames, Resolver
from mytrader_tools.embedded.iam.roles import Role, StackIam, stack_iam

ACCOUNT, REGION = "123456789012", "us-east-1"
# Grants the integration tests cannot exercise (function key, action pattern): why each is still needed.
FUNCTIONS = ("decision_cycle", "executor", "outcomes", "dataset_export", "finetune_tasks")
UNREACHED: dict[tuple[str, str], str] = {
    # CloudWatch Logs: Lambda's runtime writes the function's logs (AWSLambdaBasicExecutionRole); no SDK call.
    **{(fn, f"logs:{a}"): "Lambda's runtime writes the logs" for fn in FUNCTIONS
       for a in ("CreateLogGroup", "CreateLogStream", "PutLogEvents")},
    # X-Ray: Lambda and the X-Ray SDK send the traces (POWERTOOLS_TRACE_DISABLED locally).
    **{(fn, f"xray:{a}"): "traces are sent by Lambda and the X-Ray SDK, disabled locally" for fn in FUNCTIONS
       for a in ("PutTraceSegments", "PutTelemetryRecords")},
    # The Alpaca keys: deployed, market data and news come from Alpaca (cdk.json); the tests read them from S3.
    **{(fn, "secretsmanager:GetSecretValue"): "Alpaca keys (MARKET_DATA/NEWS_SOURCE=alpaca when deployed)"
       for fn in FUNCTIONS},
    # The SQS event source mapping checks the queue with the executor's role when it is created (AWS documents
    # ReceiveMessage, DeleteMessage and GetQueueAttributes; the emulated poller uses the first two).
    ("executor", "sqs:GetQueueAttributes"): "the event source mapping reads the queue's attributes",
    # An encrypted topic: publishing needs the key (moto's SNS does not encrypt, so no KMS call is made locally).
    ("finetune_tasks", "kms:GenerateDataKey*"): "SNS encrypts with the topic's key on publish",
    ("finetune_tasks", "kms:Decrypt"): "SNS encrypts with the topic's key on publish",
    # Tags given at create (customModelTags, jobTags, deployment tags): tag-on-create is not authorised locally.
    ("finetune_tasks", "bedrock:TagResource"): "tag-on-create of jobs, models and deployments (not emulated)",
}
# Statements (function key, Sid) of which one resource used is enough: why the others cannot be reached here.
ANY_RESOURCE: dict[tuple[str, str], str] = {
    # The inference profile routes each call to one of its destination regions; the embedded AWS routes to the
    # stack's own region, AWS to any of them (stack_spec's pinned destinations).
    ("decision_cycle", "InvokeAdvisorFoundationModel"): "the profile may route to any destination region",
    ("finetune_tasks", "EvaluateActiveModelFoundationModel"): "the profile may route to any destination region",
}
# Whole statements (function key, Sid) the tests cannot exercise: why each is still needed.
UNREACHED_STATEMENTS: dict[tuple[str, str], str] = {
    # Scheduler invokes the function asynchronously; after Lambda's own retries the event goes to the function's
    # dead-letter queue, sent by Lambda with the function's role (no SDK call of the function's code).
    ("decision_cycle", "AsyncFailuresToDeadLetterQueue"): "Lambda sends failed async invocations with the role",
    ("outcomes", "AsyncFailuresToDeadLetterQueue"): "Lambda sends failed async invocations with the role",
}


@dataclass(frozen=True)
class Grant:
    function: str  # the function key, or the role's logical id for roles of no function
    role: Role
    policy: str
    sid: str
    pattern: str
    resources: tuple[str, ...]


def deployed_iam(template: Mapping[str, object]) -> StackIam:
    from mytrader.stack_spec import DEFAULT_PREFIX
    from mytrader_tools.embedded.stack import deployed_context

    prefix = deployed_context().get("prefix", DEFAULT_PREFIX)
    return stack_iam(template, Resolver(template, DeployedNames(), REGION, ACCOUNT, prefix, prefix))


def grants(iam: StackIam, function_keys: Mapping[str, str]) -> list[Grant]:
    """Every Allow of every role (function_keys: function name -> key)."""
    keys_by_role = {role.logical_id: function_keys.get(name, role.logical_id) for name, role in iam.functions.items()}
    out: list[Grant] = []
    for role in iam.roles.values():
        who = keys_by_role.get(role.logical_id, role.logical_id)
        for policy in role.policies:
            out.extend(_grants(who, role, policy))
    return out


def _grants(who: str, role: Role, policy: Policy) -> Iterable[Grant]:
    for st in policy.statements:
        if st.effect == "Allow":
            for pattern in st.actions:
                yield Grant(who, role, policy.name, st.sid, pattern, st.resources)


def template_findings(iam: StackIam, function_keys: Mapping[str, str]) -> list[str]:
    """Per Allow statement: every action pattern names an action; every resource fits one of the statement's
    actions; every action (a wildcard: one of those it names) fits one of the statement's resources; an action
    without resource types is granted on "*"."""
    findings = []
    keys_by_role = {role.logical_id: function_keys.get(name, role.logical_id) for name, role in iam.functions.items()}
    for role in iam.roles.values():
        who = keys_by_role.get(role.logical_id, role.logical_id)
        for policy in role.policies:
            for st in policy.statements:
                if st.effect == "Allow" and st.actions:
                    findings += _statement_findings(f"{who} {policy.name}/{st.sid}", st.actions, st.resources)
    return findings


def _statement_findings(where: str, patterns: tuple[str, ...], resources: tuple[str, ...]) -> list[str]:
    named = {p: knowledge.actions_matching(p) for p in patterns}
    out = [f"{where}: {p}: no such action" for p, acts in named.items() if not acts]
    arns = [r for r in resources if r != "*"]
    every = [a for acts in named.values() for a in acts]
    for arn in arns:
        if not any(_fits(a, arn) for a in every):
            out.append(f"{where}: {arn} fits none of the statement's actions ({', '.join(patterns)})")
    for p, acts in named.items():
        if not acts or "*" in resources:
            continue
        if all(knowledge.only_star(a) for a in acts):
            out.append(f"{where}: {p} has no resource types: it is granted on \"*\" only, not on {', '.join(arns)}")
        elif not any(_fits(a, arn) for a in acts for arn in arns):
            out.append(f"{where}: {p} fits none of the statement's resources ({', '.join(arns)})")
    return out


def _fits(action: str, arn: str) -> bool:
    return any(knowledge.arn_fits(arn, rt.arn) for rt in knowledge.resource_types(action))


def unused_grants(iam: StackIam, function_keys: Mapping[str, str], used: Mapping[str, Mapping[str, int]]
                  ) -> list[str]:
    """Function grants no recorded call used, less UNREACHED, UNREACHED_STATEMENTS and ANY_RESOURCE. `used` is the
    recorder's "statements": role logical id -> "<policy>/<sid> <action> <resource index>" -> checks that statement
    allowed through that Resource entry. So a named grant counts as used only through its own statement and each
    of its resources on its own: the same action used on another table, a second statement repeating a first
    one's grant, or a resource of the statement no call touched is reported. An unnamed statement ("#<index>": its
    index differs between the deployed and the embedded stack's variants) counts any call of the role with the
    action; `unnamed_statements` keeps those to the few CDK adds itself."""
    out = []
    functions = set(function_keys.values())
    for g in grants(iam, function_keys):
        if g.function not in functions or _excused(g):
            continue  # roles of services (state machine, Scheduler, Bedrock's) are not functions
        recorded = [key.split(" ") for key in used.get(g.role.logical_id, {})]
        whole = f"{g.function} {g.policy}/{g.sid}: {g.pattern} on {', '.join(g.resources)}"
        if g.sid.startswith("#"):
            if not any(action_matches(g.pattern, action) for _, action, _ in recorded):
                out.append(whole)
            continue
        mine = [(action, int(index)) for statement, action, index in recorded
                if statement == f"{g.policy}/{g.sid}" and action_matches(g.pattern, action)]
        if (g.function, g.sid) in ANY_RESOURCE:
            if not mine:
                out.append(whole)
            continue
        for index, resource in enumerate(g.resources or ("*",)):
            if not any(i == index or (i == -1 and not g.resources) for _, i in mine):
                out.append(f"{g.function} {g.policy}/{g.sid}: {g.pattern} on {resource}")
    return sorted(set(out))


def _excused(g: Grant) -> bool:
    """A grant the tests cannot reach, listed with why."""
    if (g.function, g.sid) in UNREACHED_STATEMENTS:
        return True
    return any(_unreached(g.function, a) for a in knowledge.actions_matching(g.pattern))


def _unreached(function: str, action: str) -> bool:
    return any(fn == function and action_matches(p, action) for (fn, p) in UNREACHED)


def unnamed_statements(iam: StackIam, function_keys: Mapping[str, str]) -> list[str]:
    """Function statements without a Sid, unless every action they grant is in UNREACHED (the ones CDK adds
    itself: X-Ray for tracing, the alarm topic's key): the unused-grant check can follow a statement only by name."""
    out = []
    functions = set(function_keys.values())
    for g in grants(iam, function_keys):
        if g.function in functions and g.sid.startswith("#") and not all(
                _unreached(g.function, a) for a in knowledge.actions_matching(g.pattern)):
            out.append(f"{g.function} {g.policy}/{g.sid}: {g.pattern} has no Sid (give the statement one)")
    return sorted(set(out))
