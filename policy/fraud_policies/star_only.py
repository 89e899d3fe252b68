"""Actions AWS authorises only on `Resource: "*"` (no resource-level permissions).

A copy of `fraud_pipeline/defaults.py` STAR_ONLY_ACTIONS: the policy pack runs in
its own virtualenv without the component library, so it carries the list itself;
tests/policy keeps the two equal.
"""

STAR_ONLY_ACTIONS: frozenset[str] = frozenset({
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "kinesis:ListStreams",
    "dynamodb:ListStreams",
    "cloudwatch:PutMetricData",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
})
