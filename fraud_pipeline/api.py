"""ApiFront: the public REST entry points, `POST /transactions` and `POST /transactions/{transaction_id}/label`.

The gateway is the first line of defence in front of the API handler: the WAF
sheds floods and known-bad payloads before they cost a Lambda invocation, the
API key and usage plan bound what any one client may send, and the request
validator turns malformed bodies away with a 400 the handler never sees. The
handler still re-validates everything; the schema here only has to be a
faithful, never-stricter-than-needed first pass of its rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from . import defaults
from .naming import ComponentArgs, Namer
from .permissions import service_trust_policy
from .settings import WAF_RATE_WINDOW_SECONDS

#: The transactions resource.
RESOURCE_PATH = "transactions"
HTTP_METHOD = "POST"
#: Model names must be alphanumeric.
REQUEST_MODEL_NAME = "TransactionRequest"
JSON_CONTENT_TYPE = "application/json"
#: The label route: `/transactions/{transaction_id}/label`, POST, its own function and model.
LABEL_PATH_PARAMETER = "transaction_id"
LABEL_PATH_PART = "label"
LABEL_RESOURCE_PATH = f"{RESOURCE_PATH}/{{{LABEL_PATH_PARAMETER}}}/{LABEL_PATH_PART}"
LABEL_MODEL_NAME = "LabelRequest"
LABELS = ("fraud", "genuine")
LABEL_SOURCES = ("analyst", "chargeback", "customer")
LABEL_NOTE_MAX_LENGTH = 500


def transaction_request_schema() -> dict[str, Any]:
    """JSON schema (draft-04, the dialect API Gateway models speak) of the request body.

    Mirrors the API handler's rules where a schema can express them without
    refusing anything the handler would accept; the finer rules (two decimals,
    12-19 digits once separators are removed, ISO 8601 parsing) stay in the
    handler. Shared with the local emulation so both fronts refuse the same bodies.
    """
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": REQUEST_MODEL_NAME,
        "type": "object",
        "required": ["amount", "merchant", "card_number", "location"],
        "properties": {
            # draft-04 spells an exclusive bound as a boolean beside `minimum`.
            "amount": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1000000},
            "merchant": {"type": "string", "minLength": 1, "maxLength": 128},
            # Digits with optional space/dash separators; the handler counts the digits.
            "card_number": {"type": "string", "minLength": 12, "pattern": "^[0-9][0-9 -]*$"},
            "location": {"type": "string", "minLength": 1, "maxLength": 128},
            "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
            "customer_id": {"type": "string", "maxLength": 64},
            "transaction_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "timestamp": {"type": ["number", "string"]},
            "hour": {"type": "integer", "minimum": 0, "maximum": 23},
            "location_mismatch": {"type": "boolean"},
            "velocity_flag": {"type": "boolean"},
        },
        "additionalProperties": False,
    }


def label_request_schema() -> dict[str, Any]:
    """JSON schema (draft-04) of a label body: `label` and `source` from fixed sets, an optional short note.

    The handler re-checks all of it and also refuses a note that looks like a
    card number, which a schema cannot say without refusing ordinary notes.
    """
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": LABEL_MODEL_NAME,
        "type": "object",
        "required": ["label", "source"],
        "properties": {
            "label": {"type": "string", "enum": list(LABELS)},
            "source": {"type": "string", "enum": list(LABEL_SOURCES)},
            "note": {"type": "string", "maxLength": LABEL_NOTE_MAX_LENGTH},
        },
        "additionalProperties": False,
    }


def _error_template(error: str, field: str, message: str, *, quote: bool = True) -> str:
    """A gateway-response body in the handler's error shape, so clients parse one format.

    `$context.error.messageString` is already a quoted JSON string, hence `quote=False` for it.
    """
    value = f'"{message}"' if quote else message
    # A JSON template with $context placeholders: built as text, not json.dumps (value may be a quoted placeholder).
    return '{"error": "%s", "details": [{"field": "%s", "message": %s}]}' % (error, field, value)  # noqa: UP031


#: Gateway responses: (response type, status code, body template).
GATEWAY_RESPONSES: tuple[tuple[str, str, str], ...] = (
    # `validationErrorString` quotes field names with `"`, which would break the JSON body, and
    # gateway responses cannot escape it; the message says where the rules are instead.
    ("BAD_REQUEST_BODY", "400", _error_template(
        "Invalid request body", "body",
        "Body does not match the route's request model (POST /transactions: amount, merchant, card_number and "
        "location are required; POST /transactions/{transaction_id}/label: label and source are required; "
        "no other fields than those documented); see the API reference")),
    ("INVALID_API_KEY", "403", _error_template("Forbidden", "x-api-key", "Missing or invalid API key")),
    ("MISSING_AUTHENTICATION_TOKEN", "403",
     _error_template("Forbidden", "x-api-key", "Missing API key, or no such resource or method")),
    ("THROTTLED", "429", _error_template("Too many requests", "request", "Rate limit exceeded; retry with backoff")),
    ("QUOTA_EXCEEDED", "429", _error_template("Too many requests", "request", "Usage-plan quota exceeded for this API key")),
    ("WAF_FILTERED", "403", _error_template("Forbidden", "request", "Request blocked by the web application firewall")),
    ("REQUEST_TOO_LARGE", "413", _error_template("Request body too large", "body", "$context.error.messageString", quote=False)),
    ("DEFAULT_4XX", "", _error_template("Request refused", "request", "$context.error.messageString", quote=False)),
    ("DEFAULT_5XX", "", _error_template("Internal error", "request", "$context.error.messageString", quote=False)),
)


#: WAF's limits on a rate-based rule: the limit per evaluation window, and the windows it offers (seconds).
WAF_RATE_LIMIT_RANGE = (10, 2_000_000_000)
WAF_EVALUATION_WINDOWS = (60, 120, 300, 600)
#: Short names of the managed groups, for rule metrics.
WAF_GROUP_METRICS = {
    "AWSManagedRulesAmazonIpReputationList": "ip-reputation",
    "AWSManagedRulesKnownBadInputsRuleSet": "known-bad-inputs",
    "AWSManagedRulesCommonRuleSet": "common",
}
#: Rules of a managed group that only count, and why: each is a rule that would block requests this API must
#: serve. Nothing else is overridden; the rest of each group blocks wherever the group does.
#:
#: Considered and *not* overridden: `SizeRestrictions_BODY` (blocks bodies over 8 KB). The API's transport
#: ceiling is `defaults.API_MAX_BODY_BYTES` (64 KB), but no body a client writes in the documented form comes
#: near 8 KB: the request models are closed (`additionalProperties: false`) and every text field has a
#: maxLength (a card number is at most 19 digits and their separators), so even pretty-printed, with every
#: character an escaped astral code point (12 bytes), a transaction stays under 5 KB and a label under 7 KB
#: (tests/unit/test_api.py computes the bound from the schemas). Only padding (whitespace, separators, zeros)
#: makes a body larger. Blocking it also closes the gap the other body rules leave: a regional web ACL
#: inspects the first 8 KB of a body only, so a payload padded past that would go unexamined.
WAF_RULE_COUNT_OVERRIDES: dict[str, dict[str, str]] = {
    "AWSManagedRulesCommonRuleSet": {
        # The clients are payment processors' servers, authenticated by API key; several common HTTP stacks
        # (.NET HttpClient, Node's http module, many Java clients) send no User-Agent unless told to. Its
        # absence says nothing about a keyed machine client, and blocking it would refuse them outright.
        "NoUserAgent_HEADER": "server-to-server clients often send no User-Agent",
    },
}


def _check_rate_limit(name: str, limit: Any) -> None:
    """WAF refuses a rate-based rule outside its range; fail at preview instead of at `CreateWebACL`."""
    low, high = WAF_RATE_LIMIT_RANGE
    if isinstance(limit, int) and not low <= limit <= high:
        raise ValueError(f"{name} = {limit}: a WAF rate limit must be {low:,} to {high:,} requests per window")


_ScopeDown = aws.wafv2.WebAclRuleStatementRateBasedStatementScopeDownStatementArgsDict


class _UnnumberedRule(TypedDict):
    """A web ACL rule before `waf_rules` numbers it (`aws.wafv2.WebAclRuleArgsDict` without `priority`)."""

    name: str
    action: NotRequired[aws.wafv2.WebAclRuleActionArgsDict]
    override_action: NotRequired[aws.wafv2.WebAclRuleOverrideActionArgsDict]
    statement: aws.wafv2.WebAclRuleStatementArgsDict
    visibility_config: aws.wafv2.WebAclRuleVisibilityConfigArgsDict


def _header_present(header: str) -> _ScopeDown:
    """Matches a request that carries `header` with a value (WAF's documented missing-header test, negated)."""
    return {"size_constraint_statement": {
        "field_to_match": {"single_header": {"name": header}},
        "comparison_operator": "GT",
        "size": 0,
        "text_transformations": [{"priority": 0, "type": "NONE"}],
    }}


def waf_rules(acl_name: str, *, ip_rate_limit: pulumi.Input[int], api_key_rate_limit: pulumi.Input[int],
              count_mode_groups: Sequence[str] = (),
              window_seconds: int = WAF_RATE_WINDOW_SECONDS) -> list[aws.wafv2.WebAclRuleArgsDict]:
    """The web ACL's rules, in evaluation order (Pulumi input shape).

    0. AWS's IP reputation list: known-bad sources go first, so they never use up a client's rate budget.
    1. Unkeyed requests, per IP (`ip_rate_limit`): nothing legitimate arrives without an `x-api-key`, so
       anything that does (scanners, floods) gets the tight limit. The scope-down is WAF's documented
       missing-header test (NOT: the header is present with a value).
    2. Keyed requests, per IP, at the per-key limit: random keys would otherwise escape both the unkeyed
       rule (they carry a key) and the per-key rule (each random key is its own counter) while API Gateway
       answers every one with a 403. The ceiling costs an honest client nothing: the stage throttle is the
       usage plan's rate too, so one IP is never served more than one key's budget anyway.
    3. Per API key (`api_key_rate_limit`, the usage plan's rate over the window): one client is one key,
       wherever it sends from, so a processor behind a few addresses is limited as one client at its plan
       rate. WAF omits requests without the header from this rule; rule 1 has them.
    4. Known bad inputs, 5. the common rule set: the costlier body inspections, last.

    Each managed group blocks unless it is in `count_mode_groups`; `WAF_RULE_COUNT_OVERRIDES` names the
    few rules inside a group that count, and why.
    """
    if window_seconds not in WAF_EVALUATION_WINDOWS:
        raise ValueError(f"WAF evaluation window {window_seconds} s: must be one of {WAF_EVALUATION_WINDOWS}")
    _check_rate_limit("waf_rate_limit", ip_rate_limit)
    _check_rate_limit("waf_api_key_rate_limit", api_key_rate_limit)
    unknown = sorted(set(count_mode_groups) - set(defaults.WAF_MANAGED_RULE_GROUPS))
    if unknown:
        raise ValueError(f"unknown WAF managed rule group(s) {unknown}: known are {defaults.WAF_MANAGED_RULE_GROUPS}")
    key = defaults.API_KEY_HEADER
    vendor = defaults.WAF_MANAGED_RULE_VENDOR

    def visibility(metric: str) -> aws.wafv2.WebAclRuleVisibilityConfigArgsDict:
        return {"cloudwatch_metrics_enabled": True, "sampled_requests_enabled": True, "metric_name": metric}

    def rate(name: str, limit: pulumi.Input[int], aggregate_key_type: str, scope_down_statement: _ScopeDown | None = None,
             custom_keys: Sequence[aws.wafv2.WebAclRuleStatementRateBasedStatementCustomKeyArgsDict] | None = None,
             ) -> _UnnumberedRule:
        statement: aws.wafv2.WebAclRuleStatementRateBasedStatementArgsDict = {
            "limit": limit, "evaluation_window_sec": window_seconds, "aggregate_key_type": aggregate_key_type}
        if scope_down_statement is not None:
            statement["scope_down_statement"] = scope_down_statement
        if custom_keys is not None:
            statement["custom_keys"] = custom_keys
        return {
            "name": name,
            "action": {"block": {}},
            "statement": {"rate_based_statement": statement},
            "visibility_config": visibility(f"{acl_name}-{name}"),
        }

    def managed(group: str) -> _UnnumberedRule:
        statement: aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementArgsDict = {"vendor_name": vendor, "name": group}
        overrides = WAF_RULE_COUNT_OVERRIDES.get(group, {})
        if overrides:
            statement["rule_action_overrides"] = [
                {"name": rule, "action_to_use": {"count": {}}} for rule in sorted(overrides)]
        return {
            "name": f"{vendor}-{group}",
            "override_action": {"count": {}} if group in count_mode_groups else {"none": {}},
            "statement": {"managed_rule_group_statement": statement},
            "visibility_config": visibility(f"{acl_name}-{WAF_GROUP_METRICS[group]}"),
        }

    rules: list[_UnnumberedRule] = [
        managed("AWSManagedRulesAmazonIpReputationList"),
        rate("rate-limit-unkeyed-per-ip", ip_rate_limit, aggregate_key_type="IP",
             scope_down_statement={"not_statement": {"statement": _header_present(key)}}),
        rate("rate-limit-keyed-per-ip", api_key_rate_limit, aggregate_key_type="IP",
             scope_down_statement=_header_present(key)),
        rate("rate-limit-per-api-key", api_key_rate_limit, aggregate_key_type="CUSTOM_KEYS",
             custom_keys=[{"header": {"name": key, "text_transformations": [{"priority": 0, "type": "NONE"}]}}]),
        managed("AWSManagedRulesKnownBadInputsRuleSet"),
        managed("AWSManagedRulesCommonRuleSet"),
    ]
    return [{**rule, "priority": i} for i, rule in enumerate(rules)]


def waf_log_delivery_policy(log_group_arn: str) -> str:
    """The CloudWatch Logs resource policy that lets WAF's log delivery write to its log group, and only that.

    WAF delivers through `delivery.logs.amazonaws.com`; without a policy that grants it, WAF adds this
    account's catch-all `AWSWAF-LOGS` policy itself (a shared document that outgrows its size limit as web
    ACLs come and go). The statement is the one AWS writes for vended logs, narrowed to this group's streams,
    with the confused-deputy conditions: deliveries made for this account, from this region's log delivery.
    Partition, region and account come from the group's ARN (`arn:<partition>:logs:<region>:<account>:log-group:<name>`).
    """
    _, partition, _, region, account, *_ = log_group_arn.split(":")
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "WafLogDeliveryWritesItsLogGroup",
            "Effect": "Allow",
            "Principal": {"Service": "delivery.logs.amazonaws.com"},
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn}:log-stream:*",
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": f"arn:{partition}:logs:{region}:{account}:*"},
            },
        }],
    })


class ApiFrontArgs(ComponentArgs):
    handler_function_name: pulumi.Input[str]
    """Name of the API handler function; the invoke permission is granted on it."""
    handler_function_arn: pulumi.Input[str]
    """ARN of the API handler; its region and account scope the execution-log role."""
    handler_invoke_arn: pulumi.Input[str]
    """The handler's API Gateway invoke ARN, the proxy integration's URI."""
    label_function_name: pulumi.Input[str]
    """Name of the label function behind `POST /transactions/{transaction_id}/label`."""
    label_invoke_arn: pulumi.Input[str]
    """The label function's API Gateway invoke ARN."""
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key of the access-, execution- and WAF log groups."""
    throttle_rate: pulumi.Input[int]
    """Steady-state requests per second, for the stage and for each API key."""
    throttle_burst: pulumi.Input[int]
    """Burst capacity, for the stage and for each API key."""
    quota_limit: pulumi.Input[int]
    """Requests one API key may make per quota period."""
    quota_period: pulumi.Input[str]
    """`DAY`, `WEEK` or `MONTH`."""
    waf_rate_limit: pulumi.Input[int]
    """Requests *without* an `x-api-key` one IP may make in any 5-minute window before the WAF blocks it."""
    waf_api_key_rate_limit: pulumi.Input[int]
    """Requests one API key may make in any 5-minute window (the usage plan's rate x 300 s); also the ceiling
    of keyed requests from one IP."""
    waf_count_mode_rule_groups: NotRequired[Sequence[str]]
    """AWS managed rule groups (names from `defaults.WAF_MANAGED_RULE_GROUPS`) that only count; the others
    block. Default: none, every group blocks."""
    log_retention_days: pulumi.Input[int]
    """Retention of the API's log groups, access, execution and WAF (audit logs; one of CloudWatch's allowed values)."""
    tracing_enabled: pulumi.Input[bool]
    """X-Ray tracing on the stage."""
    manage_account_logging_role: NotRequired[bool]
    """Create the region-wide API Gateway account CloudWatch role (default True).

    Execution logging fails without it, but there is one per account and region:
    when two stacks share both, exactly one of them passes True.
    """


def _deployment_fingerprint(parts: list[Any]) -> str:
    """Changes whenever anything a deployment snapshots changes, so the stage is redeployed."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ApiFront(pulumi.ComponentResource):
    """Regional REST API with API keys, usage plan, request validation, WAF (logged) and logs."""

    rest_api_id: pulumi.Output[str]
    rest_api_name: pulumi.Output[str]
    stage_name: pulumi.Output[str]
    invoke_url: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    label_endpoint: pulumi.Output[str]
    """`.../transactions/{transaction_id}/label` (a URL template: the client puts the id in)."""
    api_key_id: pulumi.Output[str]
    api_key_value: pulumi.Output[str]
    usage_plan_id: pulumi.Output[str]
    web_acl_arn: pulumi.Output[str]
    waf_log_group_name: pulumi.Output[str]
    access_log_group_name: pulumi.Output[str]
    execution_arn: pulumi.Output[str]

    def _post_route(self, name: str, prefix: str, resource: aws.apigateway.Resource, model_name: str,
                    description: str, schema: dict[str, Any], invoke_arn: pulumi.Input[str],
                    child: pulumi.ResourceOptions, path_parameters: dict[str, bool] | None = None,
                    ) -> tuple[aws.apigateway.Model, aws.apigateway.Method, aws.apigateway.Integration]:
        """POST on `resource`: API key required, the body validated against `schema`, Lambda proxy to `invoke_arn`."""
        model = aws.apigateway.Model(
            f"{name}-{prefix}model",
            rest_api=self.rest_api.id,
            name=model_name,
            content_type=JSON_CONTENT_TYPE,
            description=description,
            schema=json.dumps(schema),
            opts=child,
        )
        method = aws.apigateway.Method(
            f"{name}-{prefix}post",
            rest_api=self.rest_api.id,
            resource_id=resource.id,
            http_method=HTTP_METHOD,
            authorization="NONE",
            api_key_required=True,
            request_validator_id=self.validator.id,
            request_models={JSON_CONTENT_TYPE: model.name},
            request_parameters=path_parameters,
            opts=child,
        )
        integration = aws.apigateway.Integration(
            f"{name}-{prefix}integration",
            rest_api=self.rest_api.id,
            resource_id=resource.id,
            http_method=method.http_method,
            type="AWS_PROXY",
            integration_http_method="POST",
            uri=invoke_arn,
            opts=child,
        )
        return model, method, integration

    def __init__(self, name: str, args: ApiFrontArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:ApiFront", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        tags = args.get("tags")
        kms_key_arn = args["kms_key_arn"]
        retention = args["log_retention_days"]
        api_name = namer.name("fraud-api", "api")
        schema = transaction_request_schema()
        label_schema = label_request_schema()

        # --- REST API, resource, validation ----------------------------------
        self.rest_api = aws.apigateway.RestApi(
            f"{name}-api",
            name=api_name,
            description=f"Card-fraud pipeline transaction intake ({args['environment']})",
            endpoint_configuration={"types": defaults.API_ENDPOINT_TYPE},
            api_key_source="HEADER",
            tags=tags,
            opts=child,
        )
        self.resource = aws.apigateway.Resource(
            f"{name}-transactions",
            rest_api=self.rest_api.id,
            parent_id=self.rest_api.root_resource_id,
            path_part=RESOURCE_PATH,
            opts=child,
        )
        self.validator = aws.apigateway.RequestValidator(
            f"{name}-validator",
            rest_api=self.rest_api.id,
            name="body-and-params",
            validate_request_body=True,
            validate_request_parameters=True,
            opts=child,
        )
        self.model, self.method, self.integration = self._post_route(
            name, "", self.resource, REQUEST_MODEL_NAME, "Transaction submitted to POST /transactions", schema,
            args["handler_invoke_arn"], child)

        # --- POST /transactions/{transaction_id}/label ---------------------------
        self.transaction_resource = aws.apigateway.Resource(
            f"{name}-transaction",
            rest_api=self.rest_api.id,
            parent_id=self.resource.id,
            path_part=f"{{{LABEL_PATH_PARAMETER}}}",
            opts=child,
        )
        self.label_resource = aws.apigateway.Resource(
            f"{name}-label",
            rest_api=self.rest_api.id,
            parent_id=self.transaction_resource.id,
            path_part=LABEL_PATH_PART,
            opts=child,
        )
        self.label_model, self.label_method, self.label_integration = self._post_route(
            name, "label-", self.label_resource, LABEL_MODEL_NAME,
            "Label submitted to POST /transactions/{transaction_id}/label", label_schema, args["label_invoke_arn"],
            child, path_parameters={f"method.request.path.{LABEL_PATH_PARAMETER}": True})
        self.gateway_responses = [
            aws.apigateway.Response(
                f"{name}-response-{rtype.lower().replace('_', '-')}",
                rest_api_id=self.rest_api.id,
                response_type=rtype,
                status_code=status or None,
                response_templates={JSON_CONTENT_TYPE: template},
                response_parameters={"gatewayresponse.header.Content-Type": "'application/json'"},
                opts=child,
            )
            for rtype, status, template in GATEWAY_RESPONSES
        ]

        # --- logs --------------------------------------------------------------
        def audit_log_group(kind: str, log_name: pulumi.Input[str]) -> aws.cloudwatch.LogGroup:
            """The API's logs (access, execution, WAF) are audit logs: the CMK and the audit retention."""
            return aws.cloudwatch.LogGroup(f"{name}-{kind}-logs", name=log_name, retention_in_days=retention,
                                           kms_key_id=kms_key_arn, tags=tags, opts=child)

        self.access_log_group = audit_log_group("access", namer.log_group("apigateway", "fraud-api"))
        # API Gateway would otherwise create this group itself, unencrypted and kept forever.
        self.execution_log_group = audit_log_group(
            "execution", self.rest_api.id.apply(lambda i: f"API-Gateway-Execution-Logs_{i}/{defaults.API_STAGE_NAME}"))
        logging_ready: list[pulumi.Resource] = [self.execution_log_group]
        self.account_role: aws.iam.Role | None = None
        self.account: aws.apigateway.Account | None = None
        if args.get("manage_account_logging_role", True):
            self.account_role = aws.iam.Role(
                f"{name}-cloudwatch-role",
                name=namer.name("fraud-apigw-logs", "role"),
                description="Lets API Gateway write execution and access logs in this region",
                # One role serves every API of the account and region, so no source condition.
                assume_role_policy=json.dumps(service_trust_policy("apigateway.amazonaws.com")),
                tags=tags,
                opts=child,
            )
            account_policy = aws.iam.RolePolicy(
                f"{name}-cloudwatch-policy",
                role=self.account_role.id,
                policy=pulumi.Output.from_input(args["handler_function_arn"]).apply(_account_logging_policy),
                opts=child,
            )
            # API Gateway checks the role's permissions when the account setting is made.
            self.account = aws.apigateway.Account(
                f"{name}-account",
                cloudwatch_role_arn=self.account_role.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[account_policy]),
            )
            logging_ready.append(self.account)

        # --- deployment and stage ----------------------------------------------
        snapshot = [self.resource, self.method, self.integration, self.model, self.validator,
                    self.transaction_resource, self.label_resource, self.label_model, self.label_method,
                    self.label_integration, *self.gateway_responses]
        fingerprint = pulumi.Output.all(
            *[r.id for r in snapshot], args["handler_invoke_arn"], args["label_invoke_arn"],
        ).apply(lambda ids: _deployment_fingerprint([
            ids, schema, label_schema, GATEWAY_RESPONSES, HTTP_METHOD, RESOURCE_PATH, LABEL_RESOURCE_PATH,
            "AWS_PROXY", "api-key-required",
        ]))
        self.deployment = aws.apigateway.Deployment(
            f"{name}-deployment",
            rest_api=self.rest_api.id,
            description="Managed by Pulumi; replaced whenever the API definition changes",
            triggers={"redeployment": fingerprint},
            # A new deployment must exist before the stage moves to it and the old one goes.
            opts=pulumi.ResourceOptions(parent=self, depends_on=snapshot, delete_before_replace=False),
        )
        self.stage = aws.apigateway.Stage(
            f"{name}-stage",
            rest_api=self.rest_api.id,
            deployment=self.deployment.id,
            stage_name=defaults.API_STAGE_NAME,
            xray_tracing_enabled=args["tracing_enabled"],
            access_log_settings={
                "destination_arn": self.access_log_group.arn,
                "format": defaults.API_ACCESS_LOG_FORMAT,
            },
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=logging_ready),
        )
        self.method_settings = aws.apigateway.MethodSettings(
            f"{name}-method-settings",
            rest_api=self.rest_api.id,
            stage_name=self.stage.stage_name,
            method_path="*/*",
            settings={
                "logging_level": defaults.API_EXECUTION_LOG_LEVEL,
                "data_trace_enabled": defaults.API_DATA_TRACE,
                "metrics_enabled": True,
                "throttling_rate_limit": args["throttle_rate"],
                "throttling_burst_limit": args["throttle_burst"],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=logging_ready),
        )

        # --- API key and usage plan --------------------------------------------
        self.api_key = aws.apigateway.ApiKey(
            f"{name}-key",
            name=namer.name("fraud-api-key"),
            description="Default client key; its value is generated by API Gateway",
            enabled=True,
            tags=tags,
            opts=child,
        )
        self.usage_plan = aws.apigateway.UsagePlan(
            f"{name}-usage-plan",
            name=namer.name("fraud-usage-plan"),
            description="Per-key rate, burst and quota for the transaction API",
            api_stages=[{"api_id": self.rest_api.id, "stage": self.stage.stage_name}],
            throttle_settings={"rate_limit": args["throttle_rate"], "burst_limit": args["throttle_burst"]},
            quota_settings={"limit": args["quota_limit"], "period": args["quota_period"]},
            tags=tags,
            opts=child,
        )
        self.usage_plan_key = aws.apigateway.UsagePlanKey(
            f"{name}-usage-plan-key",
            key_id=self.api_key.id,
            key_type="API_KEY",
            usage_plan_id=self.usage_plan.id,
            opts=child,
        )

        # --- WAF ---------------------------------------------------------------
        acl_name = namer.name("fraud-waf", "web_acl")
        self.web_acl = aws.wafv2.WebAcl(
            f"{name}-waf",
            name=acl_name,
            description="IP reputation, rate limits per API key and per IP, AWS known-bad-inputs and common rule sets",
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=waf_rules(acl_name, ip_rate_limit=args["waf_rate_limit"],
                            api_key_rate_limit=args["waf_api_key_rate_limit"],
                            count_mode_groups=list(args.get("waf_count_mode_rule_groups", ()))),
            visibility_config={"cloudwatch_metrics_enabled": True, "sampled_requests_enabled": True,
                               "metric_name": acl_name},
            tags=tags,
            opts=child,
        )
        self.web_acl_association = aws.wafv2.WebAclAssociation(
            f"{name}-waf-association",
            resource_arn=self.stage.arn,
            web_acl_arn=self.web_acl.arn,
            opts=child,
        )
        # Every request the web ACL sees, allowed, counted or blocked, is an audit record: no logging filter.
        # WAF only delivers to groups named `aws-waf-logs-*`, and wants the ARN without the `:*` suffix (which
        # the provider's `arn` output never has).
        self.waf_log_group = audit_log_group("waf", namer.name(f"{defaults.WAF_LOG_GROUP_PREFIX}fraud-api"))
        self.waf_log_policy = aws.cloudwatch.LogResourcePolicy(
            f"{name}-waf-log-policy",
            policy_name=namer.name("fraud-waf-log-delivery"),
            policy_document=self.waf_log_group.arn.apply(waf_log_delivery_policy),
            opts=child,
        )
        self.waf_logging = aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-waf-logging",
            resource_arn=self.web_acl.arn,
            log_destination_configs=[self.waf_log_group.arn],
            # A logged API key is a usable key: WAF writes the header as REDACTED.
            redacted_fields=[{"single_header": {"name": defaults.API_KEY_HEADER}}],
            # With the delivery policy in place first, WAF does not write its own account-wide one.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.waf_log_policy]),
        )

        # --- invoke permission -------------------------------------------------
        self.permission = aws.lambda_.Permission(
            f"{name}-invoke-permission",
            action="lambda:InvokeFunction",
            function=args["handler_function_name"],
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(self.rest_api.execution_arn, f"/*/{HTTP_METHOD}/{RESOURCE_PATH}"),
            opts=child,
        )
        # `*` stands for the transaction id: only POST .../label of this API, on any stage.
        self.label_permission = aws.lambda_.Permission(
            f"{name}-label-invoke-permission",
            action="lambda:InvokeFunction",
            function=args["label_function_name"],
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(
                self.rest_api.execution_arn, f"/*/{HTTP_METHOD}/{RESOURCE_PATH}/*/{LABEL_PATH_PART}"),
            opts=child,
        )

        # --- outputs -----------------------------------------------------------
        self.rest_api_id = self.rest_api.id
        self.rest_api_name = self.rest_api.name
        self.stage_name = self.stage.stage_name
        self.invoke_url = self.stage.invoke_url
        self.endpoint = pulumi.Output.concat(self.stage.invoke_url, f"/{RESOURCE_PATH}")
        self.label_endpoint = pulumi.Output.concat(self.stage.invoke_url, f"/{LABEL_RESOURCE_PATH}")
        self.api_key_id = self.api_key.id
        self.api_key_value = pulumi.Output.secret(self.api_key.value)
        self.usage_plan_id = self.usage_plan.id
        self.web_acl_arn = self.web_acl.arn
        self.waf_log_group_name = self.waf_log_group.name
        self.access_log_group_name = self.access_log_group.name
        self.execution_arn = self.rest_api.execution_arn
        self.register_outputs({
            "rest_api_id": self.rest_api_id,
            "rest_api_name": self.rest_api_name,
            "stage_name": self.stage_name,
            "invoke_url": self.invoke_url,
            "endpoint": self.endpoint,
            "label_endpoint": self.label_endpoint,
            "api_key_id": self.api_key_id,
            "api_key_value": self.api_key_value,
            "usage_plan_id": self.usage_plan_id,
            "web_acl_arn": self.web_acl_arn,
            "waf_log_group_name": self.waf_log_group_name,
            "access_log_group_name": self.access_log_group_name,
            "execution_arn": self.execution_arn,
        })


def _account_logging_policy(function_arn: str) -> str:
    """What API Gateway's account role needs: its execution-log groups in this region, nothing else.

    The role is region-wide (every API of the account uses it), so it covers every
    API's `API-Gateway-Execution-Logs_*` groups and the access-log groups under
    `/aws/apigateway/`, not just this one's. Region and account come from the
    handler's ARN (`arn:<partition>:lambda:<region>:<account>:function:<name>`).
    """
    _, partition, _, region, account, *_ = function_arn.split(":")
    logs = f"arn:{partition}:logs:{region}:{account}:log-group"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteApiGatewayLogs",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams",
                    "logs:PutLogEvents", "logs:GetLogEvents", "logs:FilterLogEvents",
                ],
                "Resource": [
                    f"{logs}:API-Gateway-Execution-Logs_*",
                    f"{logs}:/aws/apigateway/*",
                ],
            },
            {
                "Sid": "DescribeLogGroups",
                "Effect": "Allow",
                "Action": ["logs:DescribeLogGroups"],
                "Resource": "*",
            },
        ],
    })
