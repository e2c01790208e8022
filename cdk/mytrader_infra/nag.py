"""cdk-nag AwsSolutions acknowledgements: each names the exact finding and why it stands.

cdk-nag 3 runs as a CDK policy-validation plugin. `Validations.of(scope).acknowledge()` rejects finding ids
that contain "::" (cdk-nag issue 2351) -- most granular IAM4/IAM5 findings do. The working way, as cdk-nag
itself reads acknowledgements: write the same entry CDK's acknowledge() writes, the construct metadata
`Validations.ACKNOWLEDGED_RULES_METADATA_KEY` ({finding id: reason}), on the scope; cdk-nag walks up the
construct tree (cdk-nag PR 2349), so an entry on the stack covers its resources. Ids without "::" go through
the public API. A test lists every acknowledgement, so none is blanket and none goes unreviewed.
"""
from __future__ import annotations

from aws_cdk import Stack, Validations

# (finding id, reason). Finding ids are cdk-nag's, exactly as printed by a failing synth.
ACKNOWLEDGEMENTS: list[tuple[str, str]] = []


def acknowledge_findings(stack: Stack) -> None:
    for finding, reason in ACKNOWLEDGEMENTS:
        finding = finding.replace("<ACCOUNT>", stack.account).replace("<REGION>", stack.region)
        if "::" in finding:
            stack.node.add_metadata(Validations.ACKNOWLEDGED_RULES_METADATA_KEY, {finding: reason}, stack_trace=False)
        else:
            Validations.of(stack).acknowledge(id=finding, reason=reason)
