"""`lambda-in-private-subnets` and `lambda-code-signing` on the real stacks and on broken copies of them.

Each case takes the evaluated stack, breaks one thing (a function's vpcConfig, a route
to an internet or NAT gateway, a function's code signing config, the config's mode or
publishers), and expects a violation that names the resource at fault and the fix.
`LAMBDA_STACK_CASES` is importable, so the catalogue-wide coverage check counts them.
"""

from __future__ import annotations

import fraud_policies as fp
import pytest
from fraud_policies import StackResource
from fraud_policies.values import UNKNOWN
from policy_helpers import find, stack_resources, stack_with

FUNCTION = "aws:lambda/function:Function"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
SUBNET = "aws:ec2/subnet:Subnet"
CONFIG = "aws:lambda/codeSigningConfig:CodeSigningConfig"
PROFILE = "aws:signer/signingProfile:SigningProfile"
VPC_POLICY, SIGNING_POLICY = "lambda-in-private-subnets", "lambda-code-signing"
FUNCTION_KEYS = ("api", "ingest", "detection", "notification", "review", "label", "label-ingest")


def _function(ev, key: str):
    return find(ev, FUNCTION, f"fraud-{key}-function")


def _messages(violations) -> list[str]:
    return [v.message for v in violations]


def _without(prop):
    return lambda props: props.pop(prop)


def _internet_route(props):
    props["routes"] = [{"cidrBlock": "0.0.0.0/0", "gatewayId": "igw-0123456789abcdef0"}]


# (policy, stack, broken stack, resource named in every violation, violations, fragments of each message)
LAMBDA_STACK_CASES = [
    (VPC_POLICY, "staging", lambda ev: stack_with(ev, FUNCTION, "fraud-api-function", _without("vpcConfig")),
     "fraud-api-function", 1, ["not in a VPC", "staging requires every function in private subnets", "Fix:"]),
    (VPC_POLICY, "prod", lambda ev: stack_with(ev, ROUTE_TABLE, "private-rt", _internet_route),
     "-function", len(FUNCTION_KEYS) * 2, ["sends 0.0.0.0/0 to an internet gateway", "way out to the internet", "Fix:"]),
    (SIGNING_POLICY, "prod", lambda ev: stack_with(ev, FUNCTION, "fraud-detection-function", _without("codeSigningConfigArn")),
     "fraud-detection-function", 1, ["no code signing config", "prod requires signed code", "Fix: set codeSigning = true"]),
    (SIGNING_POLICY, "prod", lambda ev: stack_with(
        ev, CONFIG, "", lambda p: p.update(policies={"untrustedArtifactOnDeployment": "Warn"})),
     "fraud-signing-config", 1, ["untrustedArtifactOnDeployment is 'Warn'", "Fix:", "Enforce"]),
]


@pytest.mark.parametrize("policy, stack_name, broken, culprit, count, fragments", LAMBDA_STACK_CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(LAMBDA_STACK_CASES)])
def test_each_policy_catches_a_broken_copy_of_the_stack(evaluation, policy, stack_name, broken, culprit, count, fragments):
    """GIVEN a copy of the real stack with one thing broken
    WHEN the policy checks it
    THEN it reports the expected violations, each naming the resource at fault and the fix."""
    ev = evaluation(stack_name)
    assert fp.check_stack(policy, stack_resources(ev)) == []  # the real stack passes
    violations = fp.check_stack(policy, broken(ev))
    assert len(violations) == count, _messages(violations)
    for v in violations:
        assert culprit in v.message and culprit in v.urn, v
        for fragment in fragments:
            assert fragment in v.message, v.message


@pytest.mark.parametrize("stack_name", ["dev", "staging", "prod"])
@pytest.mark.parametrize("policy", [VPC_POLICY, SIGNING_POLICY])
def test_the_real_stacks_pass(evaluation, stack_name, policy):
    assert fp.check_stack(policy, stack_resources(evaluation(stack_name))) == []


def test_the_requirements_are_what_each_environment_promises():
    assert fp.requirements_for("dev").functions_in_vpc is False and fp.requirements_for("dev").code_signing is False
    assert fp.requirements_for("staging").functions_in_vpc is True and fp.requirements_for("staging").code_signing is False
    assert fp.requirements_for("prod").functions_in_vpc is True and fp.requirements_for("prod").code_signing is True


# --- lambda-in-private-subnets ------------------------------------------------------------------

@pytest.mark.parametrize("stack_name", ["staging", "prod"])
@pytest.mark.parametrize("key", ["api", "ingest", "label"])
def test_a_function_without_vpc_config_fails(evaluation, stack_name, key):
    ev = evaluation(stack_name)
    fn = _function(ev, key)
    resources = stack_with(ev, FUNCTION, f"fraud-{key}-function", lambda p: p.pop("vpcConfig"))
    violations = fp.check_stack(VPC_POLICY, resources)
    assert [v.urn for v in violations] == [fn.urn]
    message = violations[0].message
    assert fn.inputs["name"] in message and "not in a VPC" in message and stack_name in message
    assert "Fix:" in message and "networkEnabled" in message


def test_empty_vpc_config_fails(evaluation):
    ev = evaluation("prod")
    resources = stack_with(ev, FUNCTION, "fraud-ingest-function",
                           lambda p: p.update(vpcConfig={"subnetIds": [], "securityGroupIds": []}))
    violations = fp.check_stack(VPC_POLICY, resources)
    assert len(violations) == 1 and "not in a VPC" in violations[0].message  # an empty config is no placement


def test_dev_may_run_functions_outside_a_vpc(evaluation):
    ev = evaluation("dev")
    assert all(not f.inputs.get("vpcConfig") for f in ev.of_type(FUNCTION))
    assert fp.check_stack(VPC_POLICY, stack_resources(ev)) == []
    # AND a dev stack held to the stricter rule fails for every function
    violations = fp.check_stack(VPC_POLICY, stack_resources(ev), config={"functionsInVpcRequired": True})
    assert len(violations) == len(FUNCTION_KEYS)


@pytest.mark.parametrize("target, what", [
    ({"gatewayId": "igw-0123456789abcdef0"}, "an internet gateway"),
    ({"natGatewayId": "nat-0123456789abcdef0"}, "a NAT gateway"),
    ({"egressOnlyGatewayId": "eigw-0123456789abcdef0"}, "an egress-only internet gateway"),
])
def test_an_inline_route_out_of_the_private_route_table_fails(evaluation, target, what):
    ev = evaluation("staging")
    destination = "::/0" if "egressOnlyGatewayId" in target else "0.0.0.0/0"
    key = "ipv6CidrBlock" if destination == "::/0" else "cidrBlock"
    resources = stack_with(ev, ROUTE_TABLE, "private-rt", lambda p: p.update(routes=[{key: destination, **target}]))
    violations = fp.check_stack(VPC_POLICY, resources)
    # THEN every function (each runs in both subnets) is reported, once per subnet
    assert len(violations) == len(FUNCTION_KEYS) * 2
    assert {v.urn for v in violations} == {_function(ev, k).urn for k in FUNCTION_KEYS}
    message = violations[0].message
    assert what in message and destination in message and "way out to the internet" in message and "Fix:" in message


def test_a_route_resource_to_an_internet_gateway_of_the_stack_fails(evaluation):
    ev = evaluation("prod")
    table = find(ev, ROUTE_TABLE, "private-rt")
    igw = StackResource("aws:ec2/internetGateway:InternetGateway", "rogue-igw", "urn:pulumi:prod::fraud-pipeline::aws:ec2/internetGateway:InternetGateway::rogue-igw",
                        {"id": "igw-0feedfacefeedface", "vpcId": find(ev, "aws:ec2/vpc:Vpc").id})
    route = StackResource("aws:ec2/route:Route", "rogue-route", "urn:pulumi:prod::fraud-pipeline::aws:ec2/route:Route::rogue-route",
                          {"routeTableId": table.id, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": UNKNOWN},
                          property_dependencies={"gatewayId": (igw.urn,), "routeTableId": (table.urn,)})
    violations = fp.check_stack(VPC_POLICY, stack_resources(ev) + [igw, route])
    assert len(violations) == len(FUNCTION_KEYS) * 2
    assert "rogue-route" in violations[0].message and "rogue-igw" in violations[0].message


def test_a_subnet_of_another_stack_fails(evaluation):
    ev = evaluation("prod")
    fn = _function(ev, "detection")
    resources = stack_with(ev, FUNCTION, "fraud-detection-function",
                           lambda p: p["vpcConfig"].update(subnetIds=["subnet-0a1b2c3d4e5f00000"]))
    violations = fp.check_stack(VPC_POLICY, resources)
    assert [v.urn for v in violations] == [fn.urn]
    assert "subnet-0a1b2c3d4e5f00000" in violations[0].message and "not a subnet of this stack" in violations[0].message


def test_a_security_group_of_another_stack_fails(evaluation):
    ev = evaluation("staging")
    resources = stack_with(ev, FUNCTION, "fraud-review-function",
                           lambda p: p["vpcConfig"].update(securityGroupIds=["sg-0a1b2c3d4e5f00000"]))
    violations = fp.check_stack(VPC_POLICY, resources)
    assert len(violations) == 1 and "sg-0a1b2c3d4e5f00000" in violations[0].message
    assert "not a security group of this stack" in violations[0].message


def test_a_subnet_in_a_public_route_table_fails_through_its_association(evaluation):
    ev = evaluation("prod")
    subnet = find(ev, SUBNET, "private-1")
    public = StackResource(ROUTE_TABLE, "public-rt", "urn:pulumi:prod::fraud-pipeline::aws:ec2/routeTable:RouteTable::public-rt",
                           {"id": "rtb-0public", "routes": [{"cidrBlock": "0.0.0.0/0", "gatewayId": "igw-0public"}]})

    def move(props):
        props["routeTableId"] = "rtb-0public"

    resources = stack_with(ev, "aws:ec2/routeTableAssociation:RouteTableAssociation", "private-1-rt", move) + [public]
    violations = fp.check_stack(VPC_POLICY, resources)
    # THEN each function is reported once: for the one subnet that moved
    assert len(violations) == len(FUNCTION_KEYS)
    assert all(subnet.name in v.message and "public-rt" in v.message for v in violations)


def test_values_unknown_at_preview_are_left_to_up(evaluation):
    ev = evaluation("prod")
    resources = stack_with(ev, FUNCTION, "fraud-api-function", lambda p: p.update(vpcConfig=UNKNOWN))
    assert fp.check_stack(VPC_POLICY, resources) == []
    resources = stack_with(ev, FUNCTION, "fraud-api-function",
                           lambda p: p["vpcConfig"].update(subnetIds=[UNKNOWN, UNKNOWN]))
    assert fp.check_stack(VPC_POLICY, resources) == []


# --- lambda-code-signing -----------------------------------------------------------------------

@pytest.mark.parametrize("key", FUNCTION_KEYS)
def test_a_prod_function_without_a_code_signing_config_fails(evaluation, key):
    ev = evaluation("prod")
    fn = _function(ev, key)
    resources = stack_with(ev, FUNCTION, f"fraud-{key}-function", lambda p: p.pop("codeSigningConfigArn"))
    violations = fp.check_stack(SIGNING_POLICY, resources)
    assert [v.urn for v in violations] == [fn.urn]
    message = violations[0].message
    assert fn.inputs["name"] in message and "no code signing config" in message and "prod" in message
    assert "Fix:" in message and "codeSigning" in message


def test_a_config_in_warn_mode_fails(evaluation):
    ev = evaluation("prod")
    config = find(ev, CONFIG)
    resources = stack_with(ev, CONFIG, "", lambda p: p.update(policies={"untrustedArtifactOnDeployment": "Warn"}))
    violations = fp.check_stack(SIGNING_POLICY, resources)
    assert [v.urn for v in violations] == [config.urn]  # once for the config, not once per function
    assert "'Warn'" in violations[0].message and "Enforce" in violations[0].message and "Fix:" in violations[0].message


def test_a_config_without_policies_defaults_to_warn_and_fails(evaluation):
    ev = evaluation("prod")
    resources = stack_with(ev, CONFIG, "", lambda p: p.pop("policies"))
    violations = fp.check_stack(SIGNING_POLICY, resources)
    assert len(violations) == 1 and "'Warn'" in violations[0].message


def test_a_config_trusting_a_foreign_profile_fails(evaluation):
    ev = evaluation("prod")
    foreign = "arn:aws:signer:us-east-1:999999999999:/signing-profiles/someone_else/abcdef1234"
    resources = stack_with(ev, CONFIG, "", lambda p: p["allowedPublishers"].update(signingProfileVersionArns=[foreign]))
    violations = fp.check_stack(SIGNING_POLICY, resources)
    assert len(violations) == 1 and foreign in violations[0].message
    assert "not a signing profile of this stack" in violations[0].message


def test_a_config_of_another_stack_fails(evaluation):
    ev = evaluation("prod")
    other = "arn:aws:lambda:us-east-1:999999999999:code-signing-config:csc-0123456789abcdef0"
    resources = stack_with(ev, FUNCTION, "fraud-notification-function", lambda p: p.update(codeSigningConfigArn=other))
    violations = fp.check_stack(SIGNING_POLICY, resources)
    assert len(violations) == 1 and other in violations[0].message and "not one of this stack" in violations[0].message


def test_a_config_whose_profile_is_gone_fails(evaluation):
    ev = evaluation("prod")
    profile = find(ev, PROFILE)
    resources = [r for r in stack_resources(ev) if r.urn != profile.urn]
    violations = fp.check_stack(SIGNING_POLICY, resources)
    assert len(violations) == 1 and profile.outputs["versionArn"] in violations[0].message


def test_staging_held_to_signing_fails_for_every_function(evaluation):
    ev = evaluation("staging")
    assert fp.check_stack(SIGNING_POLICY, stack_resources(ev)) == []
    violations = fp.check_stack(SIGNING_POLICY, stack_resources(ev), config={"codeSigningRequired": True})
    assert len(violations) == len(FUNCTION_KEYS)


def test_signing_values_unknown_at_preview_are_left_to_up(evaluation):
    ev = evaluation("prod")
    resources = stack_with(ev, FUNCTION, "fraud-api-function", lambda p: p.update(codeSigningConfigArn=UNKNOWN))
    assert fp.check_stack(SIGNING_POLICY, resources) == []
    resources = stack_with(ev, CONFIG, "", lambda p: p["allowedPublishers"].update(signingProfileVersionArns=[UNKNOWN]))
    assert fp.check_stack(SIGNING_POLICY, resources) == []
