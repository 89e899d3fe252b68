"""PipelineParameters: the SSM SecureStrings operators own after the first deploy.

Pulumi creates each parameter with a first value and then ignores its value,
so an operator's `aws ssm put-parameter --overwrite` (the real API key, the ML
endpoint name, the alert templates, a promoted model, the lists) survives every
later `pulumi up`; SSM's parameter history records who changed what and when.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import NotRequired

import pulumi
import pulumi_aws as aws

from .naming import ComponentArgs, Namer

#: The alert templates the parameter starts with: placeholders are the notification handler's
#: (`handlers.alerts.PLACEHOLDERS`; a test parses this seed with the handler's own parser).
DEFAULT_TEMPLATES = {
    "subject": "Fraud alert: {decision} {amount} {currency} at {merchant}",
    "body": (
        "Transaction {transaction_id} was scored {score}/100 and decided {decision}.\n"
        "Card: {card}\nAmount: {amount} {currency}\nMerchant: {merchant}\n"
        "Reasons: {reasons}\nTime (UTC): {timestamp}"
    ),
}


#: A `model` / `model-shadow` value meaning "no model": detection scores with the rules only.
NO_MODEL = "none"
#: The keys of the `lists` parameter's JSON document, in order.
LIST_KEYS = ("blocked_merchants", "high_risk_countries", "allowed_card_tokens")
#: A standard-tier SSM parameter holds at most 4 KB.
MAX_PARAMETER_BYTES = 4096


def lists_document(lists: Mapping[str, Sequence[str]] | None = None) -> str:
    """The `lists` parameter's JSON: every key of `LIST_KEYS`, each a list of strings (missing ones empty)."""
    lists = dict(lists or {})
    unknown = sorted(set(lists) - set(LIST_KEYS))
    if unknown:
        raise ValueError(f"unknown list(s) {unknown}; the lists parameter holds {', '.join(LIST_KEYS)}")
    document = json.dumps({k: [str(v) for v in lists.get(k, ())] for k in LIST_KEYS})
    if len(document.encode()) > MAX_PARAMETER_BYTES:
        raise ValueError(f"the lists document is {len(document.encode())} bytes; an SSM parameter holds {MAX_PARAMETER_BYTES}")
    return document


def placeholders(model: str = NO_MODEL, lists: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Leaf name -> first value. The card-token key is random so no two environments share tokens.

    `model` seeds the `model` parameter (the shipped default model's S3 key, or "none");
    the shadow model starts as "none"; `lists` seeds the `lists` document.
    """
    if not model:
        raise ValueError("model must be an S3 key under models/ or 'none'")
    return {
        "api-key": "placeholder-set-me",
        "connection-string": "placeholder-set-me",
        "ml-endpoint": "none",
        "notification-templates": json.dumps(DEFAULT_TEMPLATES),
        "card-token-key": secrets.token_hex(32),
        "model": model,
        "model-shadow": NO_MODEL,
        "lists": lists_document(lists),
    }


class PipelineParametersArgs(ComponentArgs):
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key encrypting every SecureString."""
    model: NotRequired[str]
    """First value of `model`: the S3 key of the shipped default model under `models/` (default "none": rules only)."""
    lists: NotRequired[Mapping[str, Sequence[str]]]
    """First value of `lists`: blocked_merchants, high_risk_countries, allowed_card_tokens (missing ones empty)."""


class PipelineParameters(pulumi.ComponentResource):
    """`/fraud-detection/<env>/{api-key,connection-string,ml-endpoint,notification-templates,card-token-key,
    model,model-shadow,lists}`."""

    names: dict[str, str]
    arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: PipelineParametersArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:PipelineParameters", name, None, opts)
        namer = Namer(args["environment"], args["environment_suffix"])
        self.names = {}
        self.arns = {}
        for leaf, value in placeholders(args.get("model") or NO_MODEL, args.get("lists")).items():
            path = namer.parameter(leaf)
            parameter = aws.ssm.Parameter(
                f"{name}-{leaf}",
                name=path,
                type="SecureString",
                key_id=args["kms_key_arn"],
                value=pulumi.Output.secret(value),
                # Kept as it was: a new description would update every existing parameter.
                description=f"fraud-pipeline {args['environment']} {leaf} (placeholder until set by an operator)",
                tags=args.get("tags"),
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value"]),
            )
            self.names[leaf] = path
            self.arns[leaf] = parameter.arn
        self.register_outputs({"parameter_names": self.names})
