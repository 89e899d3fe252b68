"""PrivateNetwork under Pulumi's mock engine: the settings that keep every function off the internet.

Also, without mocks: the endpoint list is what the handlers call (`FUNCTION_AWS_SERVICES`,
checked against the handlers' source and the functions' IAM grants), and in the evaluated
stacks every function of staging and prod runs in the private subnets while dev has no VPC.
"""

from __future__ import annotations

import ast
import inspect
import ipaddress
import json

import pulumi
import pytest

from fraud_pipeline import evaluation, network, permissions, wiring
from fraud_pipeline.evaluation import Evaluation, evaluate
from fraud_pipeline.network import (
    DEFAULT_CIDR_BLOCK,
    DEFAULT_INTERFACE_ENDPOINT_SERVICES,
    FUNCTION_AWS_SERVICES,
    GATEWAY_ENDPOINT_SERVICES,
    SUBNET_COUNT,
    TRACING_ENDPOINT_SERVICES,
    PrivateNetwork,
    endpoint_service_of_client,
    interface_endpoint_services,
    private_subnet_cidrs,
)
from fraud_pipeline.pipeline import handlers_directory
from fraud_pipeline.plan import settings_of
from fraud_pipeline.settings import PipelineSettings

REGION = "us-west-2"
KMS_KEY_ARN = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
COMPONENT = "fraud-pipeline:index:PrivateNetwork"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"

_mock_new_resource = evaluation.AwsMocks.new_resource


def _with_prefix_lists(self, args):
    """AwsMocks gives gateway endpoints no `prefixListId`; the real provider does (pl-...)."""
    resource_id, out = _mock_new_resource(self, args)
    if args.typ == ENDPOINT and args.inputs.get("vpcEndpointType") == "Gateway":
        out["prefixListId"] = "pl-" + args.inputs["serviceName"].rsplit(".", 1)[-1]
    return resource_id, out


def _evaluate(args: dict) -> Evaluation:
    def program() -> None:
        net = PrivateNetwork("net", args)
        for output in ("vpc_id", "subnet_ids", "lambda_security_group_id", "endpoint_security_group_id", "route_table_id"):
            pulumi.export(output, getattr(net, output))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation.AwsMocks, "new_resource", _with_prefix_lists)
        return evaluate("staging", {"aws:region": REGION}, program=program)


BASE_ARGS = {"environment": "staging", "environment_suffix": "abc12", "region": REGION}


@pytest.fixture(scope="module")
def ev() -> Evaluation:
    """GIVEN a PrivateNetwork with default CIDR and endpoints and flow logs on."""
    return _evaluate({**BASE_ARGS, "kms_key_arn": KMS_KEY_ARN, "log_retention_days": 14, "tags": {"team": "fraud"}})


@pytest.fixture(scope="module")
def ev_minimal() -> Evaluation:
    """GIVEN a PrivateNetwork without flow logs and with an explicit endpoint list."""
    return _evaluate({**BASE_ARGS, "cidr_block": "10.8.0.0/20", "interface_endpoint_services": ["sqs", "events"]})


def _by_id(ev: Evaluation, type_: str) -> dict[str, evaluation.RecordedResource]:
    return {r.id: r for r in ev.of_type(type_)}


def _lambda_sg(ev: Evaluation):
    return ev.one(SG, "lambda")


def _endpoint_sg(ev: Evaluation):
    return ev.one(SG, "endpoint")


def test_vpc_resolves_endpoint_dns_privately(ev):
    # WHEN the VPC is declared THEN DNS support and hostnames are on (private DNS of endpoints needs both)
    vpc = ev.one(VPC)
    assert vpc.inputs["cidrBlock"] == DEFAULT_CIDR_BLOCK
    assert vpc.inputs["enableDnsSupport"] is True
    assert vpc.inputs["enableDnsHostnames"] is True
    assert vpc.inputs["tags"]["Name"] == "fraud-vpc-staging-abc12"
    assert vpc.inputs["tags"]["team"] == "fraud"
    assert vpc.inputs["region"] == REGION


def test_two_private_subnets_in_two_distinct_azs(ev):
    subnets = ev.of_type(SUBNET)
    vpc = ev.one(VPC)
    # THEN there are exactly two, each in its own AZ, inside the VPC range, not overlapping, no public IPs
    assert len(subnets) == 2
    azs = {s.inputs["availabilityZone"] for s in subnets}
    assert len(azs) == 2 and all(az.startswith(REGION) for az in azs)
    ranges = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
    assert all(r.subnet_of(ipaddress.ip_network(DEFAULT_CIDR_BLOCK)) for r in ranges)
    assert not ranges[0].overlaps(ranges[1])
    assert all(s.inputs["vpcId"] == vpc.id for s in subnets)
    assert all(s.inputs.get("mapPublicIpOnLaunch") is False for s in subnets)


def test_no_path_to_the_internet(ev, ev_minimal):
    for evaluation_ in (ev, ev_minimal):
        types = {r.type for r in evaluation_.resources}
        # THEN no NAT, no internet gateway of any kind, no routes beyond the local one and the gateway endpoints
        forbidden = {
            "aws:ec2/natGateway:NatGateway", "aws:ec2/internetGateway:InternetGateway",
            "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway", "aws:ec2/eip:Eip",
            "aws:ec2/route:Route", "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment",
            "aws:ec2/vpnGateway:VpnGateway", "aws:ec2transitgateway/vpcAttachment:VpcAttachment",
        }
        assert not types & forbidden
        assert not any("nat" in t.lower() or "internetgateway" in t.lower() for t in types)
        rt = evaluation_.one(ROUTE_TABLE)
        assert not rt.inputs.get("routes")


def test_both_subnets_use_the_private_route_table(ev):
    rt = ev.one(ROUTE_TABLE)
    subnet_ids = {s.id for s in ev.of_type(SUBNET)}
    associations = ev.of_type(ASSOCIATION)
    assert {a.inputs["subnetId"] for a in associations} == subnet_ids
    assert all(a.inputs["routeTableId"] == rt.id for a in associations)


def test_lambda_security_group_has_no_ingress_and_https_egress_only(ev):
    sg = _lambda_sg(ev)
    # THEN no inline rules (they would fight the rule resources) and nothing admits traffic to it
    assert not sg.inputs.get("ingress") and not sg.inputs.get("egress")
    assert not [r for r in ev.of_type(INGRESS) if r.inputs["securityGroupId"] == sg.id]
    egress = [r for r in ev.of_type(EGRESS) if r.inputs["securityGroupId"] == sg.id]
    assert egress
    for rule in egress:
        assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == ("tcp", 443, 443)
        assert "cidrIpv6" not in rule.inputs
    # AND the destinations are exactly the VPC range and the two gateway endpoints' prefix lists
    gateways = [e for e in ev.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Gateway"]
    destinations = {r.inputs.get("cidrIpv4") or r.inputs.get("prefixListId") for r in egress}
    assert destinations == {DEFAULT_CIDR_BLOCK, *(g.outputs["prefixListId"] for g in gateways)}
    assert all(r.inputs.get("cidrIpv4") != "0.0.0.0/0" for r in egress)


def test_endpoint_security_group_admits_https_from_the_lambda_group_only(ev):
    lambda_sg, endpoint_sg = _lambda_sg(ev), _endpoint_sg(ev)
    assert not endpoint_sg.inputs.get("ingress") and not endpoint_sg.inputs.get("egress")
    ingress = [r for r in ev.of_type(INGRESS) if r.inputs["securityGroupId"] == endpoint_sg.id]
    assert len(ingress) == 1
    rule = ingress[0].inputs
    assert rule["referencedSecurityGroupId"] == lambda_sg.id
    assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)
    assert not {"cidrIpv4", "cidrIpv6", "prefixListId"} & rule.keys()
    # AND the endpoints need (and get) no egress
    assert not [r for r in ev.of_type(EGRESS) if r.inputs["securityGroupId"] == endpoint_sg.id]


def test_default_security_group_is_stripped(ev):
    default_sg = ev.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default_sg.inputs["vpcId"] == ev.one(VPC).id
    assert not default_sg.inputs.get("ingress") and not default_sg.inputs.get("egress")


def test_gateway_endpoints_for_dynamodb_and_s3_on_the_route_table(ev):
    rt = ev.one(ROUTE_TABLE)
    gateways = {e.inputs["serviceName"]: e for e in ev.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Gateway"}
    assert set(gateways) == {f"com.amazonaws.{REGION}.dynamodb", f"com.amazonaws.{REGION}.s3"}
    for endpoint in gateways.values():
        assert endpoint.inputs["routeTableIds"] == [rt.id]
        assert endpoint.inputs["vpcId"] == ev.one(VPC).id


def test_every_interface_endpoint_has_private_dns_in_both_subnets(ev):
    subnet_ids = sorted(s.id for s in ev.of_type(SUBNET))
    endpoint_sg = _endpoint_sg(ev)
    interfaces = [e for e in ev.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Interface"]
    assert {e.inputs["serviceName"] for e in interfaces} == {
        f"com.amazonaws.{REGION}.{s}" for s in DEFAULT_INTERFACE_ENDPOINT_SERVICES}
    for endpoint in interfaces:
        assert endpoint.inputs["privateDnsEnabled"] is True
        assert sorted(endpoint.inputs["subnetIds"]) == subnet_ids
        assert endpoint.inputs["securityGroupIds"] == [endpoint_sg.id]


def test_explicit_endpoint_list_and_cidr_are_honoured(ev_minimal):
    interfaces = [e for e in ev_minimal.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Interface"]
    assert sorted(e.inputs["serviceName"] for e in interfaces) == [f"com.amazonaws.{REGION}.events", f"com.amazonaws.{REGION}.sqs"]
    assert ev_minimal.one(VPC).inputs["cidrBlock"] == "10.8.0.0/20"
    lambda_sg = _lambda_sg(ev_minimal)
    cidrs = {r.inputs.get("cidrIpv4") for r in ev_minimal.of_type(EGRESS) if r.inputs["securityGroupId"] == lambda_sg.id}
    assert "10.8.0.0/20" in cidrs


def test_flow_logs_go_to_a_cmk_log_group_with_a_scoped_role(ev):
    log_group = ev.one("aws:cloudwatch/logGroup:LogGroup")
    assert log_group.inputs["kmsKeyId"] == KMS_KEY_ARN
    assert log_group.inputs["retentionInDays"] == 14
    flow_log = ev.one("aws:ec2/flowLog:FlowLog")
    assert flow_log.inputs["vpcId"] == ev.one(VPC).id
    assert flow_log.inputs["trafficType"] == "ALL"
    assert flow_log.inputs["logDestination"] == log_group.outputs["arn"]
    role = ev.one("aws:iam/role:Role")
    assert flow_log.inputs["iamRoleArn"] == role.outputs["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == evaluation.ACCOUNT_ID
    policy = json.loads(ev.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    for statement in policy["Statement"]:
        assert "*" not in statement["Resource"]
        assert all(r.startswith(log_group.outputs["arn"]) for r in statement["Resource"])


def test_flow_logs_are_off_without_a_key(ev_minimal):
    assert not ev_minimal.of_type("aws:ec2/flowLog:FlowLog")
    assert not ev_minimal.of_type("aws:iam/role:Role")


def test_flow_logs_need_a_retention():
    with pytest.raises(ValueError, match="log_retention_days"):
        _evaluate({**BASE_ARGS, "kms_key_arn": KMS_KEY_ARN})


def test_every_child_is_parented_to_the_component(ev, ev_minimal):
    for evaluation_ in (ev, ev_minimal):
        component = evaluation_.one(COMPONENT)
        children = [r for r in evaluation_.resources if r is not component]
        assert children
        assert all(r.parent == component.urn for r in children), [r.name for r in children if r.parent != component.urn]
        assert all(r.name.startswith("net-") for r in children)


def test_outputs_name_the_resources(ev):
    assert ev.exports["vpc_id"] == ev.one(VPC).id
    assert sorted(ev.exports["subnet_ids"]) == sorted(s.id for s in ev.of_type(SUBNET))
    assert ev.exports["lambda_security_group_id"] == _lambda_sg(ev).id
    assert ev.exports["endpoint_security_group_id"] == _endpoint_sg(ev).id
    assert ev.exports["route_table_id"] == ev.one(ROUTE_TABLE).id


def test_subnet_ranges_are_quarters_of_the_vpc():
    assert private_subnet_cidrs("10.40.0.0/16") == ["10.40.0.0/18", "10.40.64.0/18"]
    with pytest.raises(ValueError):
        private_subnet_cidrs("10.0.0.0/8")
    with pytest.raises(ValueError):
        private_subnet_cidrs("10.40.0.1/16")


def test_gateway_services_cannot_be_interface_endpoints():
    with pytest.raises(ValueError, match="gateway"):
        interface_endpoint_services(["sqs", "s3"])
    with pytest.raises(ValueError):
        interface_endpoint_services(["SQS"])
    assert interface_endpoint_services(["sqs", "sqs", "kms"]) == ["sqs", "kms"]
    assert interface_endpoint_services(None) == list(DEFAULT_INTERFACE_ENDPOINT_SERVICES)


def test_security_group_descriptions_stay_as_deployed_and_tags_say_what_they_are_for(ev):
    # GroupDescription has no update API: a new text would replace the groups (and collide on their names)
    assert _lambda_sg(ev).inputs["description"] == "Fraud detection Lambda - no ingress, HTTPS egress to VPC endpoints only"
    assert _endpoint_sg(ev).inputs["description"] == "Interface VPC endpoints - HTTPS from the fraud detection Lambda only"
    assert _lambda_sg(ev).inputs["tags"]["purpose"] == network.LAMBDA_SG_PURPOSE
    assert _endpoint_sg(ev).inputs["tags"]["purpose"] == network.ENDPOINT_SG_PURPOSE
    assert _lambda_sg(ev).inputs["tags"]["team"] == "fraud"
    assert "fraud-pipeline functions" in ev.one(INGRESS).inputs["description"]


# --- the endpoint list is what the handlers call ----------------------------------------------

HANDLERS = handlers_directory()
FUNCTION = "aws:lambda/function:Function"
_LEAVES = ("ml-endpoint", "notification-templates", "card-token-key", "model", "model-shadow", "lists")
_ARNS = permissions.PipelineArns(
    account="123456789012", region=REGION, environment="t", key="arn:aws:kms:r:a:key/k", table="arn:table",
    features_table="arn:features", alert_queue="arn:queue", archive_bucket="arn:aws:s3:::bucket", event_bus="arn:bus",
    alert_topic="arn:topic", parameters={leaf: f"arn:parameter/{leaf}" for leaf in _LEAVES})
#: IAM service prefixes -> boto3 client names (the handlers call `sagemaker-runtime` for sagemaker:InvokeEndpoint).
_CLIENT_OF_IAM_PREFIX = {"sagemaker": "sagemaker-runtime"}


def _handler_modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(HANDLERS.glob("*.py"))}


def _client_calls(tree: ast.Module) -> list[ast.Call]:
    """`client(...)` calls (the cached factory of handlers/clients.py, imported by name or as `clients.client`)."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and (
        (isinstance(n.func, ast.Name) and n.func.id == "client")
        or (isinstance(n.func, ast.Attribute) and n.func.attr == "client"
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "clients"))]


def _services_called(tree: ast.Module) -> set[str]:
    return {call.args[0].value for call in _client_calls(tree)}


def _local_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """The handlers modules `tree` imports (`from . import x`, `from .x import y`, at any depth of the module)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("handlers")):
            base = (node.module or "").removeprefix("handlers").lstrip(".")
            if base:
                out.add(base.split(".")[0])
            else:
                out |= {a.name for a in node.names if a.name in modules}
    return out & modules


def _reachable_services(entry: str, modules: dict[str, ast.Module]) -> set[str]:
    """Every client name a function can call: its handler module and everything it imports, transitively."""
    seen, pending = set(), [entry]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending += sorted(_local_imports(modules[name], set(modules)))
    return set().union(*(_services_called(modules[m]) for m in seen))


def _entry_modules() -> dict[str, str]:
    specs = wiring.function_specs(PipelineSettings(environment="t", environment_suffix="x1", region=REGION))
    return {key: spec.handler.split(".")[1] for key, spec in specs.items()}


def test_the_table_names_every_function():
    assert set(FUNCTION_AWS_SERVICES) == set(permissions.FUNCTIONS) == set(wiring.VPC_FUNCTIONS)


def test_every_client_call_names_its_service_literally():
    # WHEN a handler builds a client THEN the service is a string literal (a computed one could hide from the table)
    for module, tree in _handler_modules().items():
        for call in _client_calls(tree):
            assert len(call.args) == 1 and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str), (
                f"handlers/{module}.py:{call.lineno}: client() must name its service as a string literal")


def test_no_handler_builds_a_boto3_client_of_its_own():
    # THEN every AWS client comes from handlers/clients.py, so the call sites above are all the call sites
    for module, tree in _handler_modules().items():
        if module == "clients":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "boto3":
                assert node.attr not in ("client", "resource", "Session"), f"handlers/{module}.py:{node.lineno}"


def test_every_service_the_handlers_call_is_in_the_table():
    modules = _handler_modules()
    called = set().union(*(_services_called(t) for t in modules.values()))
    assert called, "no client() calls found: the scan is broken"
    assert called == set().union(*map(set, FUNCTION_AWS_SERVICES.values()))


@pytest.mark.parametrize("key", sorted(FUNCTION_AWS_SERVICES))
def test_each_function_has_a_path_to_everything_its_code_can_call(key):
    reachable = _reachable_services(_entry_modules()[key], _handler_modules())
    covered = set(GATEWAY_ENDPOINT_SERVICES) | {c for c in reachable if endpoint_service_of_client(c) in DEFAULT_INTERFACE_ENDPOINT_SERVICES}
    # THEN whatever the function's modules can call has an endpoint (else it would hang in staging and prod) ...
    assert reachable <= covered, reachable - covered
    # ... AND the table claims nothing its code cannot call
    assert set(FUNCTION_AWS_SERVICES[key]) <= reachable


@pytest.mark.parametrize("key", sorted(FUNCTION_AWS_SERVICES))
def test_the_table_matches_each_functions_iam_grants(key):
    prefixes = {action.split(":")[0] for st in permissions.handler_statements(key, _ARNS) for action in st["Action"]}
    # KMS is called by the services on the function's behalf (server-side), never by the handler
    granted = {_CLIENT_OF_IAM_PREFIX.get(p, p) for p in prefixes - {"kms"}}
    assert granted == set(FUNCTION_AWS_SERVICES[key])


def test_the_interface_endpoints_are_exactly_what_the_table_needs():
    needed = {endpoint_service_of_client(c) for services in FUNCTION_AWS_SERVICES.values() for c in services}
    expected = (needed - set(GATEWAY_ENDPOINT_SERVICES)) | set(TRACING_ENDPOINT_SERVICES)
    assert set(DEFAULT_INTERFACE_ENDPOINT_SERVICES) == expected
    assert len(DEFAULT_INTERFACE_ENDPOINT_SERVICES) == len(expected)  # no duplicates


def test_the_endpoint_comment_states_the_monthly_cost():
    cost = len(DEFAULT_INTERFACE_ENDPOINT_SERVICES) * SUBNET_COUNT * 730 * 0.01
    assert f"{len(DEFAULT_INTERFACE_ENDPOINT_SERVICES)} endpoints x {SUBNET_COUNT} AZs x 730 h = ${cost:.2f}" in (
        inspect.getsource(network))


# --- the stacks: every function in the private subnets where the network exists ----------------

def test_every_function_runs_in_the_private_subnets_with_the_lambda_group_where_the_network_exists(stack):
    """GIVEN each evaluated stack (the session's `stack` fixture: dev, staging, prod)."""
    functions = stack.of_type(FUNCTION)
    assert len(functions) == len(wiring.VPC_FUNCTIONS)
    if not settings_of(stack.stack).network_enabled:
        # THEN dev has no VPC at all, and no function asks for one
        assert not stack.of_type(VPC) and not stack.of_type(ENDPOINT) and not stack.of_type(COMPONENT)
        assert all(not fn.inputs.get("vpcConfig") for fn in functions)
        return
    subnets = sorted(s.id for s in stack.of_type(SUBNET))
    lambda_sg = stack.one(SG, "lambda")
    assert len(subnets) == SUBNET_COUNT
    for fn in functions:
        config = fn.inputs.get("vpcConfig")
        assert config, f"{fn.name} has no vpcConfig"
        assert sorted(config["subnetIds"]) == subnets, fn.name
        assert config["securityGroupIds"] == [lambda_sg.id], fn.name
    # AND the stack builds exactly the endpoints the table asks for
    region = stack.one(VPC).inputs["region"]
    interfaces = {e.inputs["serviceName"] for e in stack.of_type(ENDPOINT) if e.inputs["vpcEndpointType"] == "Interface"}
    assert interfaces == {f"com.amazonaws.{region}.{s}" for s in DEFAULT_INTERFACE_ENDPOINT_SERVICES}


def test_every_function_role_may_manage_its_enis_exactly_where_it_runs_in_the_vpc(stack):
    in_vpc = settings_of(stack.stack).network_enabled
    for key in wiring.VPC_FUNCTIONS:
        [policy] = [json.loads(p.inputs["policy"]) for p in stack.of_type("aws:iam/rolePolicy:RolePolicy")
                    if p.name == f"fraud-{key}-policy"]
        actions = {a for st in policy["Statement"] for a in st["Action"]}
        eni = {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces"}
        assert (eni <= actions) is in_vpc and (not eni & actions) is (not in_vpc), (stack.stack, key)
