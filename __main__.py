"""The Pulumi program: read the stack's config, build FraudPipeline, export its outputs.

This is the only place that reads `pulumi.Config`; the settings are validated
as a whole before any resource is declared, so a bad stack file stops the
preview with every problem listed and nothing created.
"""

import pulumi

from fraud_pipeline import FraudPipeline, FraudPipelineArgs, PipelineSettings
from fraud_pipeline.evaluation import configured_keys
from fraud_pipeline.settings import NAMESPACE


def stack_values() -> dict:
    """Every `fraud-pipeline:*` key of the stack (so unknown keys are caught) plus `aws:region`, read with `pulumi.Config`."""
    config = pulumi.Config(NAMESPACE)
    values = {key: value for key in configured_keys(NAMESPACE) if (value := config.get(key)) is not None}
    region = pulumi.Config("aws").get("region")
    if region is not None:
        values["aws:region"] = region
    return values


settings = PipelineSettings.from_config(pulumi.get_stack(), stack_values())
pipeline = FraudPipeline("fraud", FraudPipelineArgs(settings=settings))

pulumi.export("apiEndpoint", pipeline.api_endpoint)
pulumi.export("labelEndpoint", pipeline.label_endpoint)
pulumi.export("apiKeyId", pipeline.api_key_id)
pulumi.export("transactionsTable", pipeline.table_name)
pulumi.export("featuresTable", pipeline.features_table_name)
pulumi.export("kinesisStream", pipeline.stream_name)
pulumi.export("alertQueueUrl", pipeline.alert_queue_url)
pulumi.export("dlqUrl", pipeline.dlq_url)
pulumi.export("alertTopicArn", pipeline.alert_topic_arn)
pulumi.export("archiveBucket", pipeline.archive_bucket)
pulumi.export("defaultModelKey", pipeline.default_model_key)
pulumi.export("kmsKeyArn", pipeline.kms_key_arn)
pulumi.export("stateMachineArn", pipeline.state_machine_arn)
pulumi.export("dashboardName", pipeline.dashboard_name)
