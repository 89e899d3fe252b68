"""Function placement and provenance: private subnets, signed code.

`lambda_in_private_subnets`: a function outside a VPC, or in a subnet whose route
table sends traffic to an internet gateway, an egress-only internet gateway or a NAT
gateway, has a way out for whatever it reads (the API and ingest functions read full
card numbers). The subnets and security groups must be the stack's own: a subnet of
another stack cannot be reviewed here. Which route table a subnet uses follows AWS:
its explicit association, else its VPC's main route table.

`lambda_code_signing`: a function without a code signing config, or with one that only
warns (`Warn` deploys unsigned code and logs it), runs whatever was uploaded. The config
must be the stack's, enforce, and trust only signing profiles of the stack.

Links are followed as the other stack policies follow them (`stack_policies.linked`):
by value, else by the engine's property dependencies; what cannot be known at preview
is skipped and checked again at `pulumi up`.
"""

from __future__ import annotations

from typing import Any

from . import resource_policies as rp
from .requirements import STRICTEST, Requirements
from .stack_policies import StackResource, Violation, _has_unknown_identity, _known, _of, _who, identifiers, linked
from .values import as_list, get, is_unknown

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
DEFAULT_ROUTE_TABLE = "aws:ec2/defaultRouteTable:DefaultRouteTable"
ROUTE = "aws:ec2/route:Route"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
MAIN_ASSOCIATION = "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation"
INTERNET_GATEWAY = "aws:ec2/internetGateway:InternetGateway"
EGRESS_ONLY_GATEWAY = "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
CODE_SIGNING_CONFIG = "aws:lambda/codeSigningConfig:CodeSigningConfig"
SIGNING_PROFILE = "aws:signer/signingProfile:SigningProfile"

#: Route targets that reach the internet: (route property, what it is, resource type, id prefix).
EXITS = (
    ("gatewayId", "an internet gateway", INTERNET_GATEWAY, "igw-"),
    ("egressOnlyGatewayId", "an egress-only internet gateway", EGRESS_ONLY_GATEWAY, "eigw-"),
    ("natGatewayId", "a NAT gateway", NAT_GATEWAY, "nat-"),
)

_NETWORK_FIX = ("Fix: keep the functions in the private subnets of fraud_pipeline/network.py (networkEnabled = true), "
                "which have no internet or NAT gateway; AWS APIs are reached through VPC endpoints.")
_SIGNING_FIX = "Fix: set codeSigning = true (fraud_pipeline/code_signing.py)."


def _resolve(holder: StackResource, prop: str, value: Any, candidates: list[StackResource]) -> tuple[list[StackResource], bool]:
    """The candidates `value` refers to, and whether that cannot be known yet.

    A known value is matched by value only: it names one resource, and the holder's other
    dependencies say nothing about it. An unknown one is followed as `linked` follows it.
    """
    if _known(value):
        found = [c for c in candidates if value in identifiers(c)]
        return found, not found and any(_has_unknown_identity(c) for c in candidates)
    return linked(holder, prop, value, candidates)


def _refers(holder: StackResource, prop: str, value: Any, target: StackResource) -> bool:
    if _known(value):
        return value in identifiers(target)
    return target.urn in holder.property_dependencies.get(prop, holder.dependencies)


# --- every function in the stack's private subnets -------------------------------------------

def _exit_of(route: dict, holder: StackResource, prop: str, resources: list[StackResource]) -> str | None:
    """What a route (inline or an aws.ec2.Route) sends to the internet through, or None."""
    for key, what, type_, prefix in EXITS:
        target = route.get(key)
        if target is None or target == "":
            continue
        if _known(target):
            gateways = [g for g in _of(resources, type_) if target in identifiers(g)]
            if target.startswith(prefix) or gateways:
                return f"{what} ({_who(gateways[0]) if gateways else target})"
        elif key != "gatewayId":
            return what  # a NAT or egress-only gateway, whichever one it is
        else:
            gateways = [g for g in _of(resources, type_) if g.urn in holder.property_dependencies.get(prop, ())]
            if gateways:
                return f"{what} ({_who(gateways[0])})"
    return None


def _route_tables(subnet: StackResource, resources: list[StackResource]) -> tuple[list[StackResource], list[str], bool]:
    """The route tables the subnet uses (resources, plus table ids the stack has no resource for), and unknowable."""
    tables = _of(resources, ROUTE_TABLE, DEFAULT_ROUTE_TABLE)
    found: list[StackResource] = []
    unknowable = False
    for assoc in _of(resources, ASSOCIATION):
        if not _refers(assoc, "subnetId", assoc.props.get("subnetId"), subnet):
            continue
        ref = assoc.props.get("routeTableId")
        hits, unknown = _resolve(assoc, "routeTableId", ref, tables)
        found += hits
        unknowable = unknowable or unknown or (not hits and not _known(ref))
    if found or unknowable:
        return found, [], unknowable
    # No explicit association: the VPC's main route table.
    vpcs, unknown = _resolve(subnet, "vpcId", subnet.props.get("vpcId"), _of(resources, VPC))
    if unknown or not vpcs:
        return [], [], unknown
    vpc = vpcs[0]
    main_ids = [v for v in (vpc.props.get("mainRouteTableId"), vpc.props.get("defaultRouteTableId")) if _known(v)]
    for assoc in _of(resources, MAIN_ASSOCIATION):
        if _refers(assoc, "vpcId", assoc.props.get("vpcId"), vpc):
            hits, unknown = _resolve(assoc, "routeTableId", assoc.props.get("routeTableId"), tables)
            return hits, [], unknown
    managed = [t for t in _of(resources, DEFAULT_ROUTE_TABLE) if get(t.props, "defaultRouteTableId") in main_ids
               or _refers(t, "defaultRouteTableId", t.props.get("defaultRouteTableId"), vpc)]
    return managed, main_ids, not main_ids and is_unknown(vpc.props.get("mainRouteTableId"))


def _exits_of_subnet(subnet: StackResource, resources: list[StackResource]) -> list[str]:
    """Descriptions of the subnet's routes to the internet (those that cannot be known yet are left to `up`)."""
    tables, table_ids, _ = _route_tables(subnet, resources)
    exits: list[str] = []
    for table in tables:
        routes = table.props.get("routes")
        for route in ([] if is_unknown(routes) else as_list(routes)):
            if isinstance(route, dict) and (what := _exit_of(route, table, "routes", resources)):
                exits.append(f"route table {_who(table)} sends {_destination(route)} to {what}")
    ids = set(table_ids) | {i for t in tables for i in identifiers(t)}
    for route in _of(resources, ROUTE):
        ref = route.props.get("routeTableId")
        mine = (_known(ref) and ref in ids) or (not _known(ref) and any(
            t.urn in route.property_dependencies.get("routeTableId", route.dependencies) for t in tables))
        if mine and (what := _exit_of(route.props, route, _exit_prop(route.props), resources)):
            exits.append(f"{_who(route)} sends {_destination(route.props)} to {what}")
    return exits


def _exit_prop(route: dict) -> str:
    return next((key for key, *_ in EXITS if route.get(key) not in (None, "")), "gatewayId")


def _destination(route: dict) -> str:
    for key in ("cidrBlock", "destinationCidrBlock", "ipv6CidrBlock", "destinationIpv6CidrBlock",
                "destinationPrefixListId"):
        if _known(route.get(key)):
            return route[key]
    return "traffic"


def lambda_in_private_subnets(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    if not req.functions_in_vpc:
        return []
    out: list[Violation] = []
    subnets, groups = _of(resources, SUBNET), _of(resources, SECURITY_GROUP)
    exits_cache: dict[str, list[str]] = {}
    for fn in _of(resources, rp.FUNCTION):
        config = fn.props.get("vpcConfig")
        if is_unknown(config):
            continue
        subnet_ids, group_ids = get(config, "subnetIds"), get(config, "securityGroupIds")
        if is_unknown(subnet_ids) or is_unknown(group_ids):
            continue
        if not as_list(subnet_ids):
            out.append(Violation(f"{_who(fn)}: not in a VPC (no vpcConfig subnets), so it reaches the internet "
                                 f"directly; {req.environment} requires every function in private subnets. {_NETWORK_FIX}",
                                 fn.urn))
            continue
        for subnet_id in as_list(subnet_ids):
            found, unknowable = _resolve(fn, "vpcConfig", subnet_id, subnets)
            if unknowable:
                continue
            if not found:
                out.append(Violation(f"{_who(fn)}: subnet {subnet_id!r} is not a subnet of this stack, so its routes "
                                     f"cannot be checked. {_NETWORK_FIX}", fn.urn))
                continue
            for subnet in found:
                if subnet.urn not in exits_cache:
                    exits_cache[subnet.urn] = _exits_of_subnet(subnet, resources)
                for exit_ in exits_cache[subnet.urn]:
                    out.append(Violation(f"{_who(fn)}: runs in {_who(subnet)}, whose {exit_}: the function has a way "
                                         f"out to the internet. {_NETWORK_FIX}", fn.urn))
        if not as_list(group_ids):
            out.append(Violation(f"{_who(fn)}: vpcConfig names no security group. Fix: give it the stack's Lambda "
                                 "security group (PrivateNetwork.lambda_security_group_id).", fn.urn))
        for group_id in as_list(group_ids):
            found, unknowable = _resolve(fn, "vpcConfig", group_id, groups)
            if not found and not unknowable:
                out.append(Violation(f"{_who(fn)}: security group {group_id!r} is not a security group of this stack, "
                                     "so what it lets out cannot be reviewed. Fix: use the stack's Lambda security group "
                                     "(PrivateNetwork.lambda_security_group_id).", fn.urn))
    return out


# --- every function's code signed, and the signature enforced ----------------------------------

def _config_problems(config: StackResource, profiles: list[StackResource]) -> list[str]:
    problems: list[str] = []
    action = get(config.props, "policies", "untrustedArtifactOnDeployment")
    if not is_unknown(action) and action != "Enforce":
        problems.append(f"untrustedArtifactOnDeployment is {action or 'Warn'!r} (the default Warn deploys unsigned or "
                        "foreign code and only logs it). Fix: set policies.untrustedArtifactOnDeployment = \"Enforce\" "
                        "(fraud_pipeline/defaults.py CODE_SIGNING_UNTRUSTED_ARTIFACT_ACTION)")
    publishers = get(config.props, "allowedPublishers", "signingProfileVersionArns")
    if is_unknown(publishers):
        return problems
    if not as_list(publishers):
        problems.append("it allows no signing profile. Fix: set allowedPublishers.signingProfileVersionArns to the "
                        "stack's SigningProfile.version_arn")
    known_versions = {v for p in profiles for k in ("versionArn", "arn") if _known(v := p.props.get(k))}
    unknown_profiles = any(not _known(p.props.get("versionArn")) for p in profiles)
    for publisher in as_list(publishers):
        if not _known(publisher):
            continue  # rendered from a profile's output: known at `up`
        if publisher not in known_versions and not unknown_profiles:
            problems.append(f"allowed publisher {publisher!r} is not a signing profile of this stack, so code signed "
                            "elsewhere would deploy. Fix: allow only the stack's SigningProfile.version_arn")
    return problems


def lambda_code_signing(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    if not req.code_signing:
        return []
    out: list[Violation] = []
    configs, profiles = _of(resources, CODE_SIGNING_CONFIG), _of(resources, SIGNING_PROFILE)
    reported: set[str] = set()
    for fn in _of(resources, rp.FUNCTION):
        arn = fn.props.get("codeSigningConfigArn")
        if is_unknown(arn):
            continue
        if not arn:
            out.append(Violation(f"{_who(fn)}: has no code signing config, so Lambda deploys whatever package is "
                                 f"uploaded; {req.environment} requires signed code. {_SIGNING_FIX}", fn.urn))
            continue
        found, unknowable = _resolve(fn, "codeSigningConfigArn", arn, configs)
        if unknowable:
            continue
        if not found:
            out.append(Violation(f"{_who(fn)}: code signing config {arn!r} is not one of this stack, so what it "
                                 f"trusts cannot be reviewed. {_SIGNING_FIX}", fn.urn))
            continue
        for config in found:
            if config.urn in reported:
                continue
            reported.add(config.urn)
            for problem in _config_problems(config, profiles):
                out.append(Violation(f"{_who(config)}, the code signing config of {_who(fn)}: {problem}.",
                                     config.urn))
    return out
