"""A team's own Pulumi program that embeds the fraud pipeline as one component."""

import pulumi

from fraud_pipeline import FraudPipeline, FraudPipelineArgs, PipelineSettings

settings = PipelineSettings(
    environment="qa",
    environment_suffix="team1",
    region="eu-west-1",
    network_enabled=False,
    kinesis_shard_count=2,
    blocked_merchants=("Unknown Store", "Shady Shop"),
    manage_api_gateway_account=False,
)
fraud = FraudPipeline(
    "payments-fraud",
    FraudPipelineArgs(settings=settings, tags={"team": "payments"}),
)
pulumi.export("fraudApiEndpoint", fraud.api_endpoint)
pulumi.export("fraudAlertTopic", fraud.alert_topic_arn)
