"""PipelineParameters: the SSM SecureStrings operators own after the first deploy.

Pulumi creates each parameter with a placeholder and then ignores its value,
so an operator's `aws ssm put-parameter --overwrite` (the real API key, the ML
endpoint name, the alert templates) survives every later `pulumi up`.
"""

from __future__ import annotations

import json
import secrets
from typing import Mapping, NotRequired, Optional, TypedDict

import pulumi
import pulumi_aws as aws

from .naming import Namer

DEFAULT_TEMPLATES = {
    "subject": "Fraud alert: {decision} {amount} {currency} at {merchant}",
    "body": (
        "Transaction {transaction_id} was scored {score}/100 and decided {decision}.\n"
        "Card: {masked_card}\nAmount: {amount} {currency}\nMerchant: {merchant}\n"
        "Reasons: {reasons}\nTime: {time}"
    ),
}


def placeholders() -> dict[str, str]:
    """Leaf name -> first value. The card-token key is random so no two environments share tokens."""
    return {
        "api-key": "placeholder-set-me",
        "connection-string": "placeholder-set-me",
        "ml-endpoint": "none",
        "notification-templates": json.dumps(DEFAULT_TEMPLATES),
        "card-token-key": secrets.token_hex(32),
    }


class PipelineParametersArgs(TypedDict):
    environment: str
    """Environment name: parameters live under `/fraud-detection/<env>/`."""
    environment_suffix: str
    """Suffix of physical names (unused in parameter paths, which DESIGN fixes)."""
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key encrypting every SecureString."""
    tags: NotRequired[pulumi.Input[Mapping[str, str]]]
    """Tags for the parameters."""


class PipelineParameters(pulumi.ComponentResource):
    """`/fraud-detection/<env>/{api-key,connection-string,ml-endpoint,notification-templates,card-token-key}`."""

    names: dict[str, str]
    arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: PipelineParametersArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("fraud-pipeline:index:PipelineParameters", name, None, opts)
        namer = Namer(args["environment"], args["environment_suffix"])
        self.names = {}
        self.arns = {}
        for leaf, value in placeholders().items():
            path = namer.parameter(leaf)
            parameter = aws.ssm.Parameter(
                f"{name}-{leaf}",
                name=path,
                type="SecureString",
                key_id=args["kms_key_arn"],
                value=pulumi.Output.secret(value),
                description=f"fraud-pipeline {args['environment']} {leaf} (placeholder until set by an operator)",
                tags=args.get("tags"),
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
            )
            self.names[leaf] = path
            self.arns[leaf] = parameter.arn
        self.register_outputs({"parameter_names": self.names})
