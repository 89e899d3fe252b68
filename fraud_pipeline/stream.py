"""IngestStream: the Kinesis stream producers write transactions to."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .naming import ComponentArgs, Namer


class IngestStreamArgs(ComponentArgs):
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key for server-side encryption of records."""
    shard_count: pulumi.Input[int]
    """Provisioned shards: each takes 1,000 records/s or 1 MiB/s of writes."""
    retention_hours: pulumi.Input[int]
    """How long records stay replayable (168 h in prod covers a long weekend's outage)."""


class IngestStream(pulumi.ComponentResource):
    """Provisioned, CMK-encrypted Kinesis stream with shard-level metrics for the iterator-age alarms."""

    stream_name: pulumi.Output[str]
    stream_arn: pulumi.Output[str]

    def __init__(self, name: str, args: IngestStreamArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:IngestStream", name, None, opts)
        namer = Namer(args["environment"], args["environment_suffix"])
        self.stream = aws.kinesis.Stream(
            f"{name}-stream",
            name=namer.name("fraud-transactions", "stream"),
            shard_count=args["shard_count"],
            retention_period=args["retention_hours"],
            stream_mode_details=aws.kinesis.StreamStreamModeDetailsArgs(stream_mode="PROVISIONED"),
            encryption_type="KMS",
            kms_key_id=args["kms_key_arn"],
            shard_level_metrics=["IncomingRecords", "IncomingBytes", "IteratorAgeMilliseconds",
                                 "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded"],
            tags=args.get("tags"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.stream_name = self.stream.name
        self.stream_arn = self.stream.arn
        self.register_outputs({"stream_name": self.stream_name, "stream_arn": self.stream_arn})
