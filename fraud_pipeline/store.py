"""TransactionStore: the transactions table (the pipeline's one decision point) and the features table.

Every ingestion path writes the transactions table, and its stream drives
detection, so a transaction is scored exactly once whichever way it arrived.
The features table keeps one item per card (`card#<token>`, or
`customer#<id>` without a card) and per merchant (`merchant#<name>`): the
aggregates detection scores with and labels update, in the same transaction
as the write they follow from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from . import defaults
from .naming import ComponentArgs, Namer


class TransactionStoreArgs(ComponentArgs):
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key encrypting both tables."""
    billing_mode: str
    """`PROVISIONED` (with application auto-scaling) or `PAY_PER_REQUEST`."""
    read_capacity: int
    """Provisioned RCU, also the auto-scaling minimum (ignored on demand)."""
    write_capacity: int
    """Provisioned WCU, also the auto-scaling minimum (ignored on demand)."""
    max_read_capacity: int
    """Auto-scaling ceiling for reads."""
    max_write_capacity: int
    """Auto-scaling ceiling for writes."""
    target_utilization_percent: int
    """Auto-scaling target utilisation."""
    point_in_time_recovery: bool
    """Continuous backups for both tables."""
    deletion_protection: bool
    """Refuse table deletion (prod); off keeps dev destroyable."""


class _TableSettings(TypedDict):
    """The `aws.dynamodb.Table` arguments both tables share."""

    billing_mode: str
    server_side_encryption: aws.dynamodb.TableServerSideEncryptionArgs
    point_in_time_recovery: aws.dynamodb.TablePointInTimeRecoveryArgs
    deletion_protection_enabled: bool
    tags: pulumi.Input[Mapping[str, str]] | None
    read_capacity: NotRequired[int]
    write_capacity: NotRequired[int]


class TransactionStore(pulumi.ComponentResource):
    """Transactions table with stream and TTL, and the card/merchant features table with TTL."""

    table_name: pulumi.Output[str]
    table_arn: pulumi.Output[str]
    stream_arn: pulumi.Output[str]
    features_table_name: pulumi.Output[str]
    features_table_arn: pulumi.Output[str]

    def __init__(self, name: str, args: TransactionStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:TransactionStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        provisioned = args["billing_mode"] == "PROVISIONED"
        common: _TableSettings = {
            "billing_mode": args["billing_mode"],
            "server_side_encryption": aws.dynamodb.TableServerSideEncryptionArgs(
                enabled=True, kms_key_arn=args["kms_key_arn"]),
            "point_in_time_recovery": aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=args["point_in_time_recovery"]),
            "deletion_protection_enabled": args["deletion_protection"],
            "tags": args.get("tags"),
        }
        if provisioned:
            common["read_capacity"] = args["read_capacity"]
            common["write_capacity"] = args["write_capacity"]
        self.table = aws.dynamodb.Table(
            f"{name}-transactions",
            name=namer.name("fraud-transactions", "table"),
            hash_key="transaction_id",
            range_key="timestamp",
            attributes=[
                aws.dynamodb.TableAttributeArgs(name="transaction_id", type="S"),
                aws.dynamodb.TableAttributeArgs(name="timestamp", type="N"),
            ],
            stream_enabled=True,
            stream_view_type=defaults.TABLE_STREAM_VIEW_TYPE,
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=defaults.TABLE_TTL_ATTRIBUTE, enabled=True),
            opts=child,
            **common,
        )
        self.features_table = aws.dynamodb.Table(
            f"{name}-features",
            name=namer.name("fraud-features", "table"),
            hash_key=defaults.FEATURES_HASH_KEY,
            attributes=[aws.dynamodb.TableAttributeArgs(name=defaults.FEATURES_HASH_KEY, type="S")],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=defaults.FEATURES_TTL_ATTRIBUTE, enabled=True),
            opts=child,
            **common,
        )
        if provisioned:
            for label, table in (("transactions", self.table), ("features", self.features_table)):
                self._autoscale(name, label, table, args, child)

        self.table_name = self.table.name
        self.table_arn = self.table.arn
        self.stream_arn = self.table.stream_arn
        self.features_table_name = self.features_table.name
        self.features_table_arn = self.features_table.arn
        self.register_outputs({
            "table_name": self.table_name, "table_arn": self.table_arn, "stream_arn": self.stream_arn,
            "features_table_name": self.features_table_name, "features_table_arn": self.features_table_arn,
        })

    def _autoscale(self, name: str, label: str, table: aws.dynamodb.Table, args: TransactionStoreArgs,
                   child: pulumi.ResourceOptions) -> None:
        """Target tracking on reads and writes, from the provisioned floor to the stack's ceiling."""
        dimensions = (
            ("read", "dynamodb:table:ReadCapacityUnits", "DynamoDBReadCapacityUtilization",
             args["read_capacity"], args["max_read_capacity"]),
            ("write", "dynamodb:table:WriteCapacityUnits", "DynamoDBWriteCapacityUtilization",
             args["write_capacity"], args["max_write_capacity"]),
        )
        for kind, dimension, metric, floor, ceiling in dimensions:
            target = aws.appautoscaling.Target(
                f"{name}-{label}-{kind}-target",
                service_namespace="dynamodb",
                resource_id=table.name.apply(lambda n: f"table/{n}"),
                scalable_dimension=dimension,
                min_capacity=floor,
                max_capacity=ceiling,
                opts=child,
            )
            aws.appautoscaling.Policy(
                f"{name}-{label}-{kind}-policy",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                resource_id=target.resource_id,
                scalable_dimension=target.scalable_dimension,
                target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                    target_value=args["target_utilization_percent"],
                    predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                        predefined_metric_type=metric,
                    ),
                    scale_in_cooldown=defaults.AUTOSCALING_SCALE_IN_COOLDOWN,
                    scale_out_cooldown=defaults.AUTOSCALING_SCALE_OUT_COOLDOWN,
                ),
                opts=child,
            )
