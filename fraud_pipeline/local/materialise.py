"""Create the program's resources on moto, with the names and settings the program produced."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3

from .topology import Topology

#: Emulator-owned queues: EventBridge and SNS deliver here so the emulation can see what AWS would route.
TAP_SUFFIX = "-local-tap"


@dataclass
class Materialised:
    """What was created, with moto's own identifiers where they differ from the mocks'."""

    key_arn: str
    queue_urls: dict[str, str] = field(default_factory=dict)          # queue ARN -> URL on moto
    table_streams: dict[str, str] = field(default_factory=dict)       # table name -> moto stream ARN
    rule_taps: dict[str, str] = field(default_factory=dict)           # rule name -> tap queue URL
    topic_taps: dict[str, str] = field(default_factory=dict)          # topic ARN -> tap queue URL
    #: bucket notification (index in `topo.notifications`) -> tap queue URL moto delivers its S3 events to
    notification_taps: dict[int, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)


def materialise(topo: Topology, session: boto3.Session, endpoint: str) -> Materialised:
    def client(service: str) -> Any:
        return session.client(service, region_name=topo.region, endpoint_url=endpoint)

    kms = client("kms")
    key_arn = kms.create_key(Description=f"fraud-pipeline {topo.stack} (local)")["KeyMetadata"]["Arn"]
    kms.enable_key_rotation(KeyId=key_arn)
    out = Materialised(key_arn=key_arn, created=[f"kms key {key_arn}"])

    ddb = client("dynamodb")
    for t in topo.tables:
        keys = [{"AttributeName": t.hash_key, "KeyType": "HASH"}]
        if t.range_key:
            keys.append({"AttributeName": t.range_key, "KeyType": "RANGE"})
        extra: dict[str, Any] = {}
        if t.stream_view_type:
            extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": t.stream_view_type}
        desc = ddb.create_table(
            TableName=t.name, KeySchema=keys, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": ty} for n, ty in t.attributes.items()],
            SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arn}, **extra,
        )["TableDescription"]
        if t.ttl_attribute:
            ddb.update_time_to_live(TableName=t.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": t.ttl_attribute})
        if desc.get("LatestStreamArn"):
            out.table_streams[t.name] = desc["LatestStreamArn"]
        out.created.append(f"dynamodb table {t.name}" + (" (stream)" if t.stream_view_type else ""))

    kinesis = client("kinesis")
    for s in topo.streams:
        kinesis.create_stream(StreamName=s["name"], ShardCount=s["shards"])
        kinesis.start_stream_encryption(StreamName=s["name"], EncryptionType="KMS", KeyId=key_arn)
        out.created.append(f"kinesis stream {s['name']} ({s['shards']} shard(s))")

    sqs = client("sqs")
    # Dead-letter queues first: a redrive policy must name an existing queue.
    for q in sorted(topo.queues, key=lambda q: q.dead_letter_arn is not None):
        attributes = {"VisibilityTimeout": str(q.visibility_timeout), "MessageRetentionPeriod": str(q.retention),
                      "KmsMasterKeyId": key_arn}
        if q.dead_letter_arn:
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": q.dead_letter_arn,
                                                      "maxReceiveCount": q.max_receive_count})
        out.queue_urls[q.arn] = sqs.create_queue(QueueName=q.name, Attributes=attributes)["QueueUrl"]
        out.created.append(f"sqs queue {q.name}" + (f" (redrive to {q.dead_letter_arn.split(':')[-1]})" if q.dead_letter_arn else ""))

    sns = client("sns")
    for topic in topo.topics:
        sns.create_topic(Name=topic["name"], Attributes={"KmsMasterKeyId": key_arn})
        tap = sqs.create_queue(QueueName=f"{topic['name']}{TAP_SUFFIX}")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic["arn"], Protocol="sqs", Endpoint=tap_arn)
        out.topic_taps[topic["arn"]] = tap
        out.created.append(f"sns topic {topic['name']}")
    for s in topo.subscriptions:
        attributes = {k: v for k, v in (("FilterPolicy", s.get("filterPolicy")),
                                        ("FilterPolicyScope", s.get("filterPolicyScope"))) if v}
        sns.subscribe(TopicArn=s["topic"], Protocol=s["protocol"], Endpoint=s["endpoint"], Attributes=attributes)
        out.created.append(f"sns subscription {s['protocol']}")

    s3 = client("s3")
    for bucket in topo.buckets:
        kwargs = {} if topo.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": topo.region}}
        s3.create_bucket(Bucket=bucket, **kwargs)
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
            "BucketKeyEnabled": True}]})
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        out.created.append(f"s3 bucket {bucket}")
    for obj in topo.objects:
        # What the program uploads (the shipped model), from the asset it names, under the CMK.
        if obj.source_path is not None:
            with open(obj.source_path, "rb") as f:
                data = f.read()
        else:
            data = (obj.content or "").encode()
        extra = {"ContentType": obj.content_type} if obj.content_type else {}
        s3.put_object(Bucket=obj.bucket, Key=obj.key, Body=data, ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key_arn, BucketKeyEnabled=True, **extra)
        out.created.append(f"s3 object {obj.bucket}/{obj.key}")
    by_bucket: dict[str, list[dict]] = {}
    for index, n in enumerate(topo.notifications):
        # S3 invokes the function asynchronously; moto delivers the same event to a tap queue,
        # from which the emulation invokes the function with Lambda's async retries (emulator.py).
        tap = sqs.create_queue(QueueName=f"{n.function[:60]}-s3-{index}{TAP_SUFFIX}")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rules = [{"Name": name, "Value": value} for name, value in (("prefix", n.prefix), ("suffix", n.suffix)) if value]
        config: dict[str, Any] = {"Id": f"local-{index}", "QueueArn": tap_arn, "Events": n.events}
        if rules:
            config["Filter"] = {"Key": {"FilterRules": rules}}
        by_bucket.setdefault(n.bucket, []).append(config)
        out.notification_taps[index] = tap
        out.created.append(f"s3 notification {n.bucket}/{n.prefix}* {','.join(n.events)} -> {n.function}")
    for bucket, configs in by_bucket.items():
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configs})

    ssm = client("ssm")
    for p in topo.parameters:
        ssm.put_parameter(Name=p["name"], Type=p["type"], Value=p["value"], KeyId=key_arn, Overwrite=True)
        out.created.append(f"ssm parameter {p['name']}")

    events = client("events")
    for bus in topo.buses:
        events.create_event_bus(Name=bus)
        out.created.append(f"event bus {bus}")
    for rule in topo.rules:
        events.put_rule(Name=rule.name, EventBusName=rule.bus, EventPattern=json.dumps(rule.pattern), State="ENABLED")
        # The rule's own targets are run by the emulation (state machines in-process); moto
        # delivers the matched events to a tap queue, so the rule's pattern is moto's to judge.
        tap = sqs.create_queue(QueueName=f"{rule.name}{TAP_SUFFIX}")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_targets(Rule=rule.name, EventBusName=rule.bus, Targets=[{"Id": "local-tap", "Arn": tap_arn}])
        out.rule_taps[rule.name] = tap
        out.created.append(f"event rule {rule.name} -> {', '.join(t['arn'].split(':')[-1] for t in rule.targets)}")

    sfn = client("stepfunctions")
    for machine in topo.state_machines.values():
        sfn.create_state_machine(name=machine["name"], definition=json.dumps(machine["definition"]),
                                 roleArn=f"arn:aws:iam::{topo.account}:role/{machine['name']}")
        out.created.append(f"state machine {machine['name']}")
    return out
