"""Every stack (dev, staging, prod), evaluated with the mock engine, passes every mandatory policy."""

from __future__ import annotations

import fraud_policies as fp
import pytest
from policy_helpers import stack_resources


@pytest.mark.parametrize("spec", fp.POLICIES, ids=lambda s: s.name)
def test_every_stack_passes_every_policy(stack, spec):
    """GIVEN a stack as the program declares it
    WHEN the policy runs the way `pulumi preview --policy-pack policy` runs it (requirements from the stack name)
    THEN it reports no violation."""
    if spec.kind == "resource":
        violations = [m for r in stack.custom_resources()
                      for m in fp.check_resource(spec, r.type, r.inputs, r.name, r.urn)]
    else:
        violations = [v.message for v in fp.check_stack(spec, stack_resources(stack))]
    assert violations == []


def test_the_policies_are_not_vacuous(prod):
    """GIVEN the prod stack
    WHEN we count what the resource policies govern
    THEN every type the controls name is present, so passing means something."""
    types = {r.type for r in prod.custom_resources()}
    governed = {
        "aws:dynamodb/table:Table", "aws:sqs/queue:Queue", "aws:sns/topic:Topic", "aws:kinesis/stream:Stream",
        "aws:s3/bucket:Bucket", "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "aws:s3/bucketPolicy:BucketPolicy",
        "aws:cloudwatch/logGroup:LogGroup", "aws:cloudwatch/logDataProtectionPolicy:LogDataProtectionPolicy",
        "aws:sfn/stateMachine:StateMachine", "aws:lambda/function:Function", "aws:lambda/permission:Permission",
        "aws:lambda/eventSourceMapping:EventSourceMapping", "aws:kms/key:Key", "aws:apigateway/method:Method",
        "aws:apigateway/stage:Stage", "aws:apigateway/methodSettings:MethodSettings",
        "aws:wafv2/webAclAssociation:WebAclAssociation", "aws:iam/rolePolicy:RolePolicy",
        "aws:cloudwatch/eventBus:EventBus", "aws:ssm/parameter:Parameter", "aws:s3/bucketObjectv2:BucketObjectv2",
    }
    assert governed <= types, governed - types
