"""AlertQueue: flagged transactions waiting for notification, with a dead-letter queue.

Also home of `encrypted_queue`, the one way this library makes any SQS queue
(alert queue, DLQs, the stream mappings' on-failure queues), so every queue
gets the CMK and the TLS-only policy without a second copy of either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import NamedTuple

import pulumi
import pulumi_aws as aws

from . import defaults
from .naming import ComponentArgs, Namer


def tls_only_statement(queue_arn: str) -> dict:
    """Deny any SQS call on the queue that does not arrive over TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sqs:*",
        "Resource": queue_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


class EncryptedQueue(NamedTuple):
    queue: aws.sqs.Queue
    policy: aws.sqs.QueuePolicy


def encrypted_queue(
    resource_name: str,
    physical_name: str,
    kms_key_arn: pulumi.Input[str],
    retention_seconds: pulumi.Input[int],
    opts: pulumi.ResourceOptions,
    visibility_timeout_seconds: pulumi.Input[int] = 30,
    redrive_to: aws.sqs.Queue | None = None,
    max_receive_count: pulumi.Input[int] = 5,
    extra_statements: Callable[[pulumi.Output[str]], pulumi.Input[list]] | None = None,
    tags: pulumi.Input[Mapping[str, str]] | None = None,
) -> EncryptedQueue:
    """A CMK-encrypted queue with a TLS-only queue policy.

    `extra_statements` receives the queue's ARN and returns further policy
    statements (e.g. letting EventBridge send dead letters from one rule).
    """
    redrive = None
    if redrive_to is not None:
        redrive = pulumi.Output.all(redrive_to.arn, max_receive_count).apply(
            lambda a: json.dumps({"deadLetterTargetArn": a[0], "maxReceiveCount": a[1]}))
    queue = aws.sqs.Queue(
        resource_name,
        name=physical_name,
        kms_master_key_id=kms_key_arn,
        kms_data_key_reuse_period_seconds=defaults.SQS_KMS_DATA_KEY_REUSE_SECONDS,
        message_retention_seconds=retention_seconds,
        visibility_timeout_seconds=visibility_timeout_seconds,
        receive_wait_time_seconds=defaults.SQS_RECEIVE_WAIT_SECONDS,
        redrive_policy=redrive,
        tags=tags,
        opts=opts,
    )
    policy = aws.sqs.QueuePolicy(
        f"{resource_name}-policy",
        queue_url=queue.url,
        policy=pulumi.Output.all(queue.arn, extra_statements(queue.arn) if extra_statements else []).apply(
            lambda a: json.dumps({"Version": "2012-10-17", "Statement": [*a[1], tls_only_statement(a[0])]})),
        opts=opts,
    )
    return EncryptedQueue(queue, policy)


class AlertQueueArgs(ComponentArgs):
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key for both queues."""
    visibility_timeout_seconds: pulumi.Input[int]
    """At least 6 x the notification function's timeout, as AWS advises for SQS event sources."""
    retention_seconds: pulumi.Input[int]
    """Alert queue retention."""
    dlq_retention_seconds: pulumi.Input[int]
    """DLQ retention: longer than the alert queue's so a message cannot expire on its way there."""
    max_receive_count: pulumi.Input[int]
    """Receives before a message is moved to the DLQ."""


class AlertQueue(pulumi.ComponentResource):
    """Alert queue with redrive to its DLQ."""

    queue_url: pulumi.Output[str]
    queue_arn: pulumi.Output[str]
    queue_name: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    dlq_arn: pulumi.Output[str]
    dlq_name: pulumi.Output[str]

    def __init__(self, name: str, args: AlertQueueArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:AlertQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        self.dlq = encrypted_queue(
            f"{name}-dlq", namer.name("fraud-alerts-dlq", "queue"), args["kms_key_arn"],
            args["dlq_retention_seconds"], child, tags=args.get("tags"),
        ).queue
        self.queue = encrypted_queue(
            f"{name}-queue", namer.name("fraud-alerts", "queue"), args["kms_key_arn"],
            args["retention_seconds"], child,
            visibility_timeout_seconds=args["visibility_timeout_seconds"],
            redrive_to=self.dlq, max_receive_count=args["max_receive_count"], tags=args.get("tags"),
        ).queue
        self.queue_url, self.queue_arn, self.queue_name = self.queue.url, self.queue.arn, self.queue.name
        self.dlq_url, self.dlq_arn, self.dlq_name = self.dlq.url, self.dlq.arn, self.dlq.name
        self.register_outputs({
            "queue_url": self.queue_url, "queue_arn": self.queue_arn, "queue_name": self.queue_name,
            "dlq_url": self.dlq_url, "dlq_arn": self.dlq_arn, "dlq_name": self.dlq_name,
        })
