"""AlertTopics: the fraud-alert topic people subscribe to, and the ops topic alarms go to.

Kept apart so an analyst's inbox never fills with alarm noise and the on-call
rota never receives card alerts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import NotRequired

import pulumi
import pulumi_aws as aws

from .naming import ComponentArgs, Namer

#: SMS is costly and interrupts people: text only the transactions that were blocked.
SMS_FILTER_POLICY = {"decision": ["block"]}


def topic_policy(topic_arn: str, account_id: str, publishers: Sequence[str]) -> dict:
    """Only this account's principals may publish, only over TLS; services in `publishers` may publish too."""
    statements = [
        {
            "Sid": "AccountPublishesAndManages",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
                       "sns:ListSubscriptionsByTopic"],
            "Resource": topic_arn,
        },
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ]
    if publishers:
        statements.append({
            "Sid": "ServicesPublishForThisAccount",
            "Effect": "Allow",
            "Principal": {"Service": list(publishers)},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        })
    return {"Version": "2012-10-17", "Statement": statements}


def _topic_policy_json(publishers: Sequence[str]) -> Callable[[list[str]], str]:
    """`topic_policy` as JSON, from `[topic ARN, account id]` (an `Output.all` of both)."""
    return lambda a: json.dumps(topic_policy(a[0], a[1], publishers))


class AlertTopicsArgs(ComponentArgs):
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key for both topics."""
    email_subscribers: NotRequired[Sequence[str]]
    """E-mail addresses subscribed to every alert (each must confirm by mail)."""
    sms_subscribers: NotRequired[Sequence[str]]
    """E.164 numbers subscribed to blocked transactions only."""
    ops_email_subscribers: NotRequired[Sequence[str]]
    """E-mail addresses told of every alarm (each must confirm by mail)."""
    ops_sms_subscribers: NotRequired[Sequence[str]]
    """E.164 numbers texted every alarm."""
    ops_https_subscribers: NotRequired[Sequence[str]]
    """HTTPS endpoints (a paging service's webhook) that receive every alarm; each confirms the subscription
    (paging services such as PagerDuty do it themselves) before SNS delivers to it."""


class AlertTopics(pulumi.ComponentResource):
    """`fraud-alerts-<env>-<suffix>` with its subscriptions, and `fraud-ops-<env>-<suffix>` for alarms."""

    alert_topic_arn: pulumi.Output[str]
    ops_topic_arn: pulumi.Output[str]

    def __init__(self, name: str, args: AlertTopicsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:AlertTopics", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id

        self.alert_topic = aws.sns.Topic(
            f"{name}-alerts",
            name=namer.name("fraud-alerts", "topic"),
            display_name="Fraud alerts",
            kms_master_key_id=args["kms_key_arn"],
            tags=args.get("tags"),
            opts=child,
        )
        self.ops_topic = aws.sns.Topic(
            f"{name}-ops",
            name=namer.name("fraud-ops", "topic"),
            display_name="Fraud pipeline alarms",
            kms_master_key_id=args["kms_key_arn"],
            tags=args.get("tags"),
            opts=child,
        )
        for label, topic, publishers in (("alerts", self.alert_topic, []),
                                         ("ops", self.ops_topic, ["cloudwatch.amazonaws.com"])):
            aws.sns.TopicPolicy(
                f"{name}-{label}-policy",
                arn=topic.arn,
                policy=pulumi.Output.all(topic.arn, account).apply(_topic_policy_json(publishers)),
                opts=child,
            )
        for i, address in enumerate(args.get("email_subscribers") or []):
            aws.sns.TopicSubscription(
                f"{name}-email-{i}", topic=self.alert_topic.arn, protocol="email", endpoint=address, opts=child)
        for i, number in enumerate(args.get("sms_subscribers") or []):
            aws.sns.TopicSubscription(
                f"{name}-sms-{i}", topic=self.alert_topic.arn, protocol="sms", endpoint=number,
                filter_policy=json.dumps(SMS_FILTER_POLICY), filter_policy_scope="MessageAttributes", opts=child)

        # Alarms reach someone: the on-call rota by mail, text and a paging webhook.
        ops_subscriptions = [("email", a) for a in args.get("ops_email_subscribers") or []]
        ops_subscriptions += [("sms", n) for n in args.get("ops_sms_subscribers") or []]
        ops_subscriptions += [("https", u) for u in args.get("ops_https_subscribers") or []]
        self.ops_subscriptions = [
            aws.sns.TopicSubscription(
                f"{name}-ops-{protocol}-{i}", topic=self.ops_topic.arn, protocol=protocol, endpoint=endpoint,
                opts=child)
            for i, (protocol, endpoint) in enumerate(ops_subscriptions)
        ]

        self.alert_topic_arn = self.alert_topic.arn
        self.ops_topic_arn = self.ops_topic.arn
        self.register_outputs({"alert_topic_arn": self.alert_topic_arn, "ops_topic_arn": self.ops_topic_arn})
