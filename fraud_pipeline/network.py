"""PrivateNetwork: the private VPC every function of the pipeline runs in.

The API and stream-ingest functions see full card numbers, detection reads card
tokens and scores transactions, and the others write labels, alerts and
decisions; keeping their traffic off the internet is the point of this
component. There is no internet gateway and no NAT gateway: every AWS API a
handler calls is reached through a VPC endpoint, so a compromised dependency has
nowhere to send data but AWS services this account already uses, and no NAT
hourly or per-GB charge accrues.

What does not cross the VPC: Lambda's event source mappings (Kinesis, the table's
stream, the alert queue) poll and deliver from the Lambda service, and their
on-failure destinations are written by it; API Gateway, Step Functions and S3
invoke the functions from outside; Lambda ships stdout (logs and Powertools' EMF
metrics) and decrypts the environment itself. None of that needs an endpoint.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import NotRequired

import pulumi
import pulumi_aws as aws

from . import defaults
from .naming import ComponentArgs, Namer
from .permissions import service_trust_policy

#: A /16 leaves room to add subnets (more AZs, other workloads) without renumbering.
DEFAULT_CIDR_BLOCK = "10.40.0.0/16"

#: Two AZs: Lambda keeps running when one AZ fails, and every interface endpoint
#: is billed per AZ, so a third AZ would add cost without adding a failure domain
#: the functions need.
SUBNET_COUNT = 2

#: The AWS APIs each function's handler code calls, by boto3 client name (`handlers/clients.py`
#: `client(<name>)`): the table the endpoint list below is derived from. It matches each
#: function's IAM grants (`permissions.handler_statements`), and tests/unit/test_network.py
#: checks both that and that every `client(...)` call under handlers/ is covered, so a new
#: call in a handler cannot ship without its endpoint (it would time out in staging and prod).
FUNCTION_AWS_SERVICES: dict[str, tuple[str, ...]] = {
    "api": ("dynamodb", "ssm"),
    "ingest": ("dynamodb", "s3", "ssm"),
    "detection": ("dynamodb", "s3", "sqs", "events", "ssm", "sagemaker-runtime"),
    "notification": ("dynamodb", "sns", "ssm"),
    "review": ("dynamodb", "events", "sns", "ssm", "sagemaker-runtime"),
    "label": ("dynamodb", "events"),
    "label-ingest": ("dynamodb", "s3", "events"),
}

#: boto3 client names whose PrivateLink service name differs (`com.amazonaws.<region>.<service>`).
_ENDPOINT_SERVICE_OF_CLIENT = {"sagemaker-runtime": "sagemaker.runtime"}


def endpoint_service_of_client(client_name: str) -> str:
    """The PrivateLink short service name for a boto3 client name (`sagemaker-runtime` -> `sagemaker.runtime`)."""
    return _ENDPOINT_SERVICE_OF_CLIENT.get(client_name, client_name)


#: Interface endpoints for the AWS APIs the functions call (`FUNCTION_AWS_SERVICES`) other
#: than DynamoDB and S3, which go through free gateway endpoints. Each is billed per AZ-hour
#: (us-east-1: $0.01, so 6 endpoints x 2 AZs x 730 h = $87.60 a month per stack, plus $0.01
#: per GB processed), so only what a handler actually calls is here:
#:
#: * ``sqs`` - detection sends flagged transactions to the alert queue (``ALERT_QUEUE_URL``).
#: * ``events`` - detection puts every decision, and the label paths (label, label-ingest,
#:   review) put every applied label, on the EventBridge bus (``EVENT_BUS_NAME``).
#: * ``ssm`` - the card-token key (api, ingest), detection's model, lists and ML endpoint
#:   parameters, and the notification templates (notification, review).
#: * ``sns`` - notification and review publish alerts to the fraud-alert topic.
#: * ``sagemaker.runtime`` - detection and review score against the ML endpoint when
#:   ``ML_ENDPOINT_PARAM`` is not ``none``; that can be switched on with ``put-parameter``
#:   and no deploy, so the path must already exist.
#: * ``xray`` - tracing is on in every stack that runs the network. The X-Ray daemon is run
#:   by Lambda, not by the handlers, and AWS does not document whether it uploads through
#:   the function's VPC; without a path traces would be dropped silently rather than fail,
#:   so the endpoint ($14.60 a month) is kept until a staging trace shows it unneeded.
#:
#: Deliberately absent: ``kinesis`` and the alert queue's consumption (event source
#: mappings poll from the Lambda service, outside the function's VPC, and deliver on-failure
#: records themselves); ``kms`` (SQS, S3, DynamoDB, SSM, SNS, EventBridge and Lambda's
#: environment decryption call KMS server-side, never from the function); ``sts`` (the
#: execution role's credentials come from the Lambda runtime); ``logs`` and ``monitoring``
#: (Lambda ships stdout, and Powertools' EMF metrics with it, outside the VPC); ``lambda`` and
#: ``states`` (API Gateway, S3 and Step Functions invoke the functions; no handler invokes
#: anything).
DEFAULT_INTERFACE_ENDPOINT_SERVICES: tuple[str, ...] = ("sqs", "events", "ssm", "sns", "sagemaker.runtime", "xray")

#: Endpoints no handler calls but the functions' runtime needs: the traces of active tracing.
TRACING_ENDPOINT_SERVICES: tuple[str, ...] = ("xray",)

#: Services reached through gateway endpoints (route-table entries, no hourly charge).
GATEWAY_ENDPOINT_SERVICES: tuple[str, ...] = ("dynamodb", "s3")

HTTPS_PORT = 443

#: What each security group is for, as an (updatable) tag: see the note at the groups.
LAMBDA_SG_PURPOSE = "Every fraud-pipeline function - no ingress, HTTPS egress to the VPC endpoints only"
ENDPOINT_SG_PURPOSE = "Interface VPC endpoints - HTTPS from the fraud-pipeline functions only"

_FLOW_LOGS_PRINCIPAL = "vpc-flow-logs.amazonaws.com"


class PrivateNetworkArgs(ComponentArgs):
    """Inputs of `PrivateNetwork`."""

    region: str
    """Region the VPC is built in; endpoint service names are derived from it, so every resource is pinned to it."""
    cidr_block: NotRequired[str]
    """IPv4 range of the VPC (default 10.40.0.0/16); the two subnets are carved from it."""
    interface_endpoint_services: NotRequired[Sequence[str]]
    """Short service names (``sqs``, ``sagemaker.runtime``) that get an interface endpoint; default `DEFAULT_INTERFACE_ENDPOINT_SERVICES`."""
    kms_key_arn: NotRequired[pulumi.Input[str]]
    """Customer-managed key for the flow-log group. When given, VPC flow logs are on (PCI DSS 10 wants network logs)."""
    log_retention_days: NotRequired[pulumi.Input[int]]
    """Retention of the flow-log group; required with `kms_key_arn`."""


def private_subnet_cidrs(cidr_block: str, count: int = SUBNET_COUNT) -> list[str]:
    """The subnets' ranges: the first `count` quarters of the VPC range.

    Quarters rather than halves leave half the range free for a later subnet
    tier without renumbering the ones Lambda's ENIs already sit in.
    """
    network = ipaddress.ip_network(cidr_block, strict=True)
    if network.version != 4:
        raise ValueError(f"cidr_block {cidr_block!r} must be IPv4")
    if not 16 <= network.prefixlen <= 26:
        raise ValueError(f"cidr_block {cidr_block!r} must be between /16 and /26 (AWS VPC sizes, two /28 subnets at least)")
    subnets = list(network.subnets(prefixlen_diff=2))
    if count > len(subnets):
        raise ValueError(f"cidr_block {cidr_block!r} cannot hold {count} subnets")
    return [str(s) for s in subnets[:count]]


def endpoint_service_name(region: str, service: str) -> str:
    """The PrivateLink service name AWS publishes for `service` in `region`."""
    return f"com.amazonaws.{region}.{service}"


def interface_endpoint_services(requested: Sequence[str] | None) -> list[str]:
    """The interface endpoints to build, validated and without duplicates.

    DynamoDB and S3 are refused: they already have gateway endpoints, and an S3
    interface endpoint with private DNS would take over the gateway's traffic at
    a per-GB charge.
    """
    services = list(DEFAULT_INTERFACE_ENDPOINT_SERVICES if requested is None else requested)
    seen: list[str] = []
    for service in services:
        if not service or not all(c.isalnum() or c in ".-" for c in service) or service != service.lower():
            raise ValueError(f"interface endpoint service {service!r} must be a lowercase AWS service name like 'sqs'")
        if service in GATEWAY_ENDPOINT_SERVICES:
            raise ValueError(f"{service!r} is reached through its gateway endpoint; do not list it as an interface endpoint")
        if service not in seen:
            seen.append(service)
    return seen


def _tag_key(service: str) -> str:
    return service.replace(".", "-")


def flow_log_assume_role_policy(account_id: str, partition: str, region: str) -> str:
    """Trust policy: only this account's flow logs may assume the delivery role (confused-deputy guard)."""
    return json.dumps(service_trust_policy(
        _FLOW_LOGS_PRINCIPAL, account_id, f"arn:{partition}:ec2:{region}:{account_id}:vpc-flow-log/*"))


def flow_log_delivery_policy(log_group_arn: str) -> str:
    """What delivery needs on its one log group, and nothing on `*`.

    Each action on the resource type it authorises on: streams are created and written under the group
    (`log-group:<name>:log-stream:<stream>`, matched by `<group arn>:*`), the group itself is described.
    """
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DeliverFlowLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": [f"{log_group_arn}:*"]},
            {"Sid": "DescribeFlowLogStreams", "Effect": "Allow",
             "Action": ["logs:DescribeLogStreams"], "Resource": [log_group_arn]},
        ],
    })


class PrivateNetwork(pulumi.ComponentResource):
    """A VPC with two private subnets and VPC endpoints, and no route to the internet."""

    vpc_id: pulumi.Output[str]
    """The VPC."""
    subnet_ids: pulumi.Output[list[str]]
    """The private subnets, one per AZ, in AZ order; give both to every function."""
    lambda_security_group_id: pulumi.Output[str]
    """The functions' security group (one for all of them): no ingress, HTTPS egress to the endpoints only."""
    endpoint_security_group_id: pulumi.Output[str]
    """The interface endpoints' security group: HTTPS from the functions' group only."""
    route_table_id: pulumi.Output[str]
    """The subnets' route table: local route and the gateway endpoints, nothing else."""

    def __init__(self, name: str, args: PrivateNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:PrivateNetwork", name, None, opts)

        namer = Namer(args["environment"], args["environment_suffix"])
        region = args["region"]
        cidr_block = args.get("cidr_block", DEFAULT_CIDR_BLOCK)
        subnet_cidrs = private_subnet_cidrs(cidr_block)
        services = interface_endpoint_services(args.get("interface_endpoint_services"))
        kms_key_arn = args.get("kms_key_arn")
        if kms_key_arn is not None and args.get("log_retention_days") is None:
            raise ValueError("PrivateNetwork: log_retention_days is required when kms_key_arn turns flow logs on")
        base_tags = {**defaults.BASE_TAGS, "environment": args["environment"]}
        extra_tags = pulumi.Output.from_input(args.get("tags") or {})

        def tags(physical_name: str) -> pulumi.Output[dict[str, str]]:
            return extra_tags.apply(lambda extra: {**base_tags, **(extra or {}), "Name": physical_name})

        def purpose_tags(physical_name: str, purpose: str) -> pulumi.Output[dict[str, str]]:
            return tags(physical_name).apply(lambda t: {**t, "purpose": purpose})

        child = pulumi.ResourceOptions(parent=self)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cidr_block,
            # Private DNS of interface endpoints needs both: the SDK's default
            # hostnames must resolve to the endpoints' private addresses.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            region=region,
            tags=tags(namer.name("fraud-vpc", "vpc")),
            opts=child,
        )

        # AWS gives every VPC a default group that admits all traffic from its
        # members; adopting it with no rules means nothing placed there by
        # mistake can talk (CIS AWS Foundations 5.4).
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            region=region,
            tags=tags(namer.name("fraud-default-sg")),
            opts=child,
        )

        zones = aws.get_availability_zones_output(
            state="available", region=region, opts=pulumi.InvokeOutputOptions(parent=self))

        route_table = aws.ec2.RouteTable(
            f"{name}-private-rt",
            vpc_id=vpc.id,
            region=region,
            tags=tags(namer.name("fraud-private-rt")),
            opts=child,
        )

        subnets: list[aws.ec2.Subnet] = []
        for index, subnet_cidr in enumerate(subnet_cidrs):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index + 1}",
                vpc_id=vpc.id,
                cidr_block=subnet_cidr,
                availability_zone=zones.names[index],
                map_public_ip_on_launch=False,
                region=region,
                tags=tags(namer.name(f"fraud-private-{index + 1}")),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index + 1}-rt",
                subnet_id=subnet.id,
                route_table_id=route_table.id,
                region=region,
                opts=child,
            )
            subnets.append(subnet)

        # Rules are separate resources (v7 style): inline rules and rule
        # resources on one group fight each other on every update.
        # One group for every function: Lambda's Hyperplane ENIs are per (subnet, security group)
        # pair, so seven functions sharing it cost two ENIs, not fourteen. The descriptions are
        # left as first deployed: EC2 has no API to change a group's description, so a new text
        # would replace the group (and its fixed name would collide with the old one); what the
        # group is for now is in its `purpose` tag, which can change in place.
        lambda_sg = aws.ec2.SecurityGroup(
            f"{name}-lambda-sg",
            name=namer.name("fraud-lambda-sg"),
            description="Fraud detection Lambda - no ingress, HTTPS egress to VPC endpoints only",
            vpc_id=vpc.id,
            region=region,
            tags=purpose_tags(namer.name("fraud-lambda-sg"), LAMBDA_SG_PURPOSE),
            opts=child,
        )
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoint-sg",
            name=namer.name("fraud-endpoints-sg"),
            description="Interface VPC endpoints - HTTPS from the fraud detection Lambda only",
            vpc_id=vpc.id,
            region=region,
            tags=purpose_tags(namer.name("fraud-endpoints-sg"), ENDPOINT_SG_PURPOSE),
            opts=child,
        )

        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoint-sg-in-https",
            security_group_id=endpoint_sg.id,
            description="HTTPS from the fraud-pipeline functions",
            ip_protocol="tcp",
            from_port=HTTPS_PORT,
            to_port=HTTPS_PORT,
            referenced_security_group_id=lambda_sg.id,
            region=region,
            tags=tags(namer.name("fraud-endpoints-in-https")),
            opts=child,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-lambda-sg-out-vpc-https",
            security_group_id=lambda_sg.id,
            description="HTTPS to the interface endpoints in this VPC",
            ip_protocol="tcp",
            from_port=HTTPS_PORT,
            to_port=HTTPS_PORT,
            cidr_ipv4=cidr_block,
            region=region,
            tags=tags(namer.name("fraud-lambda-out-vpc-https")),
            opts=child,
        )

        for service in GATEWAY_ENDPOINT_SERVICES:
            endpoint = aws.ec2.VpcEndpoint(
                f"{name}-{service}-gateway",
                vpc_id=vpc.id,
                service_name=endpoint_service_name(region, service),
                vpc_endpoint_type="Gateway",
                route_table_ids=[route_table.id],
                region=region,
                tags=tags(namer.name(f"fraud-{service}-endpoint")),
                opts=child,
            )
            # Gateway endpoints are reached at the service's public addresses;
            # their managed prefix list is what lets the group allow exactly those.
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-lambda-sg-out-{service}-https",
                security_group_id=lambda_sg.id,
                description=f"HTTPS to {service} through its gateway endpoint",
                ip_protocol="tcp",
                from_port=HTTPS_PORT,
                to_port=HTTPS_PORT,
                prefix_list_id=endpoint.prefix_list_id,
                region=region,
                tags=tags(namer.name(f"fraud-lambda-out-{service}-https")),
                opts=child,
            )

        subnet_ids = [s.id for s in subnets]
        for service in services:
            aws.ec2.VpcEndpoint(
                f"{name}-{_tag_key(service)}-interface",
                vpc_id=vpc.id,
                service_name=endpoint_service_name(region, service),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=subnet_ids,
                security_group_ids=[endpoint_sg.id],
                region=region,
                tags=tags(namer.name(f"fraud-{_tag_key(service)}-endpoint")),
                opts=child,
            )

        if kms_key_arn is not None:
            self._flow_logs(name, namer, region, vpc, kms_key_arn, args["log_retention_days"], tags)

        self.vpc_id = vpc.id
        self.subnet_ids = pulumi.Output.all(*subnet_ids).apply(list)
        self.lambda_security_group_id = lambda_sg.id
        self.endpoint_security_group_id = endpoint_sg.id
        self.route_table_id = route_table.id
        self.register_outputs({
            "vpc_id": self.vpc_id,
            "subnet_ids": self.subnet_ids,
            "lambda_security_group_id": self.lambda_security_group_id,
            "endpoint_security_group_id": self.endpoint_security_group_id,
            "route_table_id": self.route_table_id,
        })

    def _flow_logs(self, name, namer: Namer, region: str, vpc: aws.ec2.Vpc, kms_key_arn, retention, tags) -> None:
        """Accepted and rejected flows to a CMK log group: the audit trail PCI DSS 10 asks for."""
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=namer.log_group("vpc-flow-logs", "fraud-vpc"),
            kms_key_id=kms_key_arn,
            retention_in_days=retention,
            region=region,
            tags=tags(namer.name("fraud-vpc-flow-logs")),
            opts=child,
        )
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            name=namer.name("fraud-flow-logs", "role"),
            description="Delivers the fraud VPC flow logs to their CMK-encrypted log group",
            assume_role_policy=pulumi.Output.all(identity.account_id, partition.partition).apply(
                lambda v: flow_log_assume_role_policy(v[0], v[1], region)),
            tags=tags(namer.name("fraud-flow-logs", "role")),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=role.id,
            policy=log_group.arn.apply(flow_log_delivery_policy),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            region=region,
            tags=tags(namer.name("fraud-vpc-flow-log")),
            opts=child,
        )
