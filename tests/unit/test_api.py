"""ApiFront under Pulumi's mock engine: the settings that keep the public API safe."""

from __future__ import annotations

import json

import pytest

from fraud_pipeline import api as api_module
from fraud_pipeline import defaults
from fraud_pipeline.api import (
    WAF_RULE_COUNT_OVERRIDES,
    ApiFront,
    label_request_schema,
    transaction_request_schema,
    waf_log_delivery_policy,
    waf_rules,
)
from fraud_pipeline.evaluation import Evaluation, evaluate, stack_config
from fraud_pipeline.plan import settings_of

REGION = "us-east-1"
ACCOUNT = "123456789012"
FUNCTION_NAME = "fraud-api-dev-abc12"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_NAME}"
INVOKE_ARN = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{FUNCTION_ARN}/invocations"
LABEL_FUNCTION_NAME = "fraud-label-dev-abc12"
LABEL_INVOKE_ARN = (f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                    f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{LABEL_FUNCTION_NAME}/invocations")
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

COMPONENT = "fraud-pipeline:index:ApiFront"
REST_API = "aws:apigateway/restApi:RestApi"
METHOD = "aws:apigateway/method:Method"
VALIDATOR = "aws:apigateway/requestValidator:RequestValidator"
MODEL = "aws:apigateway/model:Model"
STAGE = "aws:apigateway/stage:Stage"
DEPLOYMENT = "aws:apigateway/deployment:Deployment"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
LOG_POLICY = "aws:cloudwatch/logResourcePolicy:LogResourcePolicy"
GROUPS = defaults.WAF_MANAGED_RULE_GROUPS


def api_args(**overrides):
    args = {
        "environment": "dev",
        "environment_suffix": "abc12",
        "handler_function_name": FUNCTION_NAME,
        "handler_function_arn": FUNCTION_ARN,
        "handler_invoke_arn": INVOKE_ARN,
        "label_function_name": LABEL_FUNCTION_NAME,
        "label_invoke_arn": LABEL_INVOKE_ARN,
        "kms_key_arn": KMS_KEY_ARN,
        "throttle_rate": 1000,
        "throttle_burst": 900,
        "quota_limit": 250000,
        "quota_period": "WEEK",
        "waf_rate_limit": 1500,
        "waf_api_key_rate_limit": 270000,
        "log_retention_days": 14,
        "tracing_enabled": True,
        "tags": {"team": "fraud"},
    }
    args.update(overrides)
    return args


def run(**overrides) -> Evaluation:
    return evaluate("dev", {"aws:region": REGION}, program=lambda: ApiFront("api", api_args(**overrides)))


@pytest.fixture(scope="module")
def ev() -> Evaluation:
    return run()


@pytest.fixture(scope="module")
def ev_shared_account() -> Evaluation:
    return run(manage_account_logging_role=False, tracing_enabled=False)


def statements(policy: str) -> list[dict]:
    found = json.loads(policy)["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def by_id(ev: Evaluation, type_: str, id_: str):
    [found] = [r for r in ev.of_type(type_) if r.id == id_]
    return found


def path_of(ev: Evaluation, resource_id: str) -> str:
    """A resource's full path, walking parent ids up to the API's root."""
    root = ev.one(REST_API).outputs["rootResourceId"]
    parts = []
    while resource_id != root:
        resource = by_id(ev, "aws:apigateway/resource:Resource", resource_id)
        parts.append(resource.inputs["pathPart"])
        resource_id = resource.inputs["parentId"]
    return "/" + "/".join(reversed(parts))


# --- structure ------------------------------------------------------------------------


def test_every_child_is_parented_to_the_component(ev):
    # GIVEN an ApiFront built on its own
    component = ev.one(COMPONENT)
    # WHEN we look at every other resource it declared
    others = [r for r in ev.resources if r.urn != component.urn]
    # THEN each one hangs directly off the component and is named from the component's name
    assert others, "the component declared no children"
    assert {r.parent for r in others} == {component.urn}
    assert all(r.name.startswith("api-") for r in others)


def test_rest_api_is_regional_and_named_by_the_namer(ev):
    # GIVEN / WHEN the API is built for dev with suffix abc12
    rest_api = ev.one(REST_API)
    # THEN it is a regional endpoint with the computed physical name
    assert rest_api.inputs["name"] == "fraud-api-dev-abc12"
    assert rest_api.inputs["endpointConfiguration"]["types"] == "REGIONAL"
    assert rest_api.inputs["tags"] == {"team": "fraud"}


# --- method, validation, integration -------------------------------------------------------


def test_post_transactions_requires_an_api_key_and_validates_the_body(ev):
    # GIVEN the transactions method of the API
    method = ev.one(METHOD, "api-post")
    validator = ev.one(VALIDATOR)
    model = ev.one(MODEL, "api-model")
    resource = ev.one("aws:apigateway/resource:Resource", "api-transactions")
    # THEN it is POST /transactions, keyed, with the validator and the JSON model attached
    assert resource.inputs["pathPart"] == "transactions"
    assert path_of(ev, method.inputs["resourceId"]) == "/transactions"
    assert method.inputs["httpMethod"] == "POST"
    assert method.inputs["resourceId"] == resource.id
    assert method.inputs["apiKeyRequired"] is True
    assert method.inputs["authorization"] == "NONE"
    assert method.inputs["requestValidatorId"] == validator.id
    assert method.inputs["requestModels"] == {"application/json": model.outputs["name"]}
    assert validator.inputs["validateRequestBody"] is True
    assert validator.inputs["validateRequestParameters"] is True


def test_model_schema_is_the_shared_request_schema(ev):
    # GIVEN the request model the gateway validates against
    model = ev.one(MODEL, "api-model")
    # THEN it is exactly the schema the pure function gives (and the emulation reuses)
    assert model.inputs["contentType"] == "application/json"
    assert json.loads(model.inputs["schema"]) == transaction_request_schema()


def test_request_schema_mirrors_the_handler_rules():
    # GIVEN the request schema
    schema = transaction_request_schema()
    props = schema["properties"]
    # THEN it is draft-04, closed, with the handler's required fields and bounds
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"amount", "merchant", "card_number", "location"}
    assert set(props) == {"amount", "merchant", "card_number", "location", "currency", "customer_id",
                          "transaction_id", "timestamp", "hour", "location_mismatch", "velocity_flag"}
    # draft-04: exclusiveMinimum is a boolean beside minimum
    assert props["amount"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1000000}
    assert (props["merchant"]["minLength"], props["merchant"]["maxLength"]) == (1, 128)
    assert (props["location"]["minLength"], props["location"]["maxLength"]) == (1, 128)
    assert props["card_number"]["type"] == "string"
    assert props["timestamp"]["type"] == ["number", "string"]
    assert props["hour"] == {"type": "integer", "minimum": 0, "maximum": 23}
    assert props["location_mismatch"]["type"] == props["velocity_flag"]["type"] == "boolean"
    # a fresh copy each call, so a caller cannot mutate what the component deploys
    schema["required"].append("x")
    assert "x" not in transaction_request_schema()["required"]


def test_integration_is_lambda_proxy_to_the_handler(ev):
    # GIVEN the method's integration
    integration = ev.one("aws:apigateway/integration:Integration", "api-integration")
    # THEN it proxies to the handler's invoke ARN with POST
    assert integration.inputs["type"] == "AWS_PROXY"
    assert integration.inputs["integrationHttpMethod"] == "POST"
    assert integration.inputs["uri"] == INVOKE_ARN
    assert integration.inputs["httpMethod"] == "POST"


def test_gateway_responses_are_json_errors(ev):
    # GIVEN the gateway responses
    responses = {r.inputs["responseType"]: r for r in ev.of_type("aws:apigateway/response:Response")}
    # THEN bad bodies, bad keys and throttling answer in the handler's JSON error shape
    bad_body = responses["BAD_REQUEST_BODY"]
    assert bad_body.inputs["statusCode"] == "400"
    body = json.loads(bad_body.inputs["responseTemplates"]["application/json"])
    assert body["error"] == "Invalid request body" and body["details"][0]["field"] == "body"
    # validationErrorString contains unescapable quotes: it must never be spliced into the JSON body
    assert "validationErrorString" not in bad_body.inputs["responseTemplates"]["application/json"]
    assert responses["INVALID_API_KEY"].inputs["statusCode"] == "403"
    assert responses["MISSING_AUTHENTICATION_TOKEN"].inputs["statusCode"] == "403"
    assert responses["THROTTLED"].inputs["statusCode"] == "429"
    assert responses["QUOTA_EXCEEDED"].inputs["statusCode"] == "429"
    for rtype, response in responses.items():
        template = response.inputs["responseTemplates"]["application/json"]
        # with the context variables stubbed by JSON strings, every body parses and names error and details
        body = json.loads(template.replace("$context.error.messageString", '"m"'))
        assert set(body) == {"error", "details"}, rtype
        assert response.inputs["restApiId"] == ev.one(REST_API).id


# --- POST /transactions/{transaction_id}/label ------------------------------------------------


def test_label_route_is_keyed_validated_and_proxied_to_the_label_function(ev):
    # GIVEN the label method
    method = ev.one(METHOD, "label-post")
    model = ev.one(MODEL, "label-model")
    integration = ev.one("aws:apigateway/integration:Integration", "label-integration")
    # THEN it is POST on /transactions/{transaction_id}/label (nested under the transactions resource)
    assert path_of(ev, method.inputs["resourceId"]) == "/transactions/{transaction_id}/label"
    assert method.inputs["httpMethod"] == "POST"
    assert method.inputs["apiKeyRequired"] is True and method.inputs["authorization"] == "NONE"
    assert method.inputs["requestParameters"] == {"method.request.path.transaction_id": True}
    # AND the body is validated against the label model by the API's validator
    assert method.inputs["requestValidatorId"] == ev.one(VALIDATOR).id
    assert method.inputs["requestModels"] == {"application/json": model.outputs["name"]}
    assert model.inputs["name"] == "LabelRequest" and model.inputs["contentType"] == "application/json"
    assert json.loads(model.inputs["schema"]) == label_request_schema()
    # AND it is a Lambda proxy to the label function, not the transaction handler
    assert (integration.inputs["type"], integration.inputs["integrationHttpMethod"]) == ("AWS_PROXY", "POST")
    assert integration.inputs["uri"] == LABEL_INVOKE_ARN
    assert integration.inputs["resourceId"] == method.inputs["resourceId"]
    # two routes, two methods: nothing else is exposed
    assert sorted(path_of(ev, m.inputs["resourceId"]) for m in ev.of_type(METHOD)) == [
        "/transactions", "/transactions/{transaction_id}/label"]


def test_label_permission_is_scoped_to_post_label_of_this_api(ev):
    permission = ev.one("aws:lambda/permission:Permission", "label-invoke-permission")
    execution_arn = ev.one(REST_API).outputs["executionArn"]
    assert permission.inputs["function"] == LABEL_FUNCTION_NAME
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    # `*` is the transaction id; the method and the rest of the path are fixed
    assert permission.inputs["sourceArn"] == f"{execution_arn}/*/POST/transactions/*/label"


@pytest.mark.parametrize("body, valid", [
    ({"label": "fraud", "source": "analyst"}, True),
    ({"label": "genuine", "source": "chargeback", "note": "x" * 500}, True),
    ({"label": "genuine", "source": "customer", "note": ""}, True),
    ({"label": "fraud"}, False),                                            # source required
    ({"source": "analyst"}, False),                                         # label required
    ({"label": "maybe", "source": "analyst"}, False),                       # not in the enum
    ({"label": "fraud", "source": "merchant"}, False),
    ({"label": "FRAUD", "source": "analyst"}, False),                       # enums are exact
    ({"label": "fraud", "source": "analyst", "note": "x" * 501}, False),    # note too long
    ({"label": "fraud", "source": "analyst", "note": 5}, False),
    ({"label": "fraud", "source": "analyst", "card_number": "4111111111111111"}, False),  # unknown field
    (["fraud", "analyst"], False),
])
def test_label_schema_accepts_exactly_the_documented_bodies(body, valid):
    import jsonschema

    validator = jsonschema.Draft4Validator(label_request_schema())
    assert validator.is_valid(body) is valid


def test_label_schema_agrees_with_the_label_handler():
    # the gateway's first pass must never refuse what the handler accepts, nor accept other values
    from handlers import labels

    props = label_request_schema()["properties"]
    assert props["label"]["enum"] == list(labels.LABELS)
    assert props["source"]["enum"] == list(labels.SOURCES)
    assert props["note"]["maxLength"] == labels.NOTE_MAX
    assert set(props) == set(labels.FIELDS)


def test_deployment_redeploys_when_the_label_schema_changes(ev, monkeypatch):
    before = ev.one(DEPLOYMENT).inputs["triggers"]["redeployment"]
    changed = label_request_schema()
    changed["properties"]["note"]["maxLength"] = 100
    monkeypatch.setattr(api_module, "label_request_schema", lambda: changed)
    assert run().one(DEPLOYMENT).inputs["triggers"]["redeployment"] != before


def test_bad_body_response_names_both_routes_rules(ev):
    [bad_body] = [r for r in ev.of_type("aws:apigateway/response:Response") if r.inputs["responseType"] == "BAD_REQUEST_BODY"]
    message = json.loads(bad_body.inputs["responseTemplates"]["application/json"])["details"][0]["message"]
    assert "POST /transactions:" in message and "POST /transactions/{transaction_id}/label: label and source" in message


# --- deployment and stage ----------------------------------------------------------------


def test_deployment_redeploys_when_the_definition_changes(ev, monkeypatch):
    # GIVEN the deployment of the default definition
    before = ev.one(DEPLOYMENT).inputs["triggers"]["redeployment"]
    # WHEN the request schema changes
    changed = transaction_request_schema()
    changed["properties"]["merchant"]["maxLength"] = 64
    monkeypatch.setattr(api_module, "transaction_request_schema", lambda: changed)
    after = run().one(DEPLOYMENT).inputs["triggers"]["redeployment"]
    # THEN the trigger changes, so Pulumi replaces the deployment and the stage serves the new model
    assert before and after and before != after
    assert ev.one(DEPLOYMENT).inputs["restApi"] == ev.one(REST_API).id


def test_deployment_trigger_is_stable_for_the_same_definition(ev):
    # GIVEN two evaluations of the same definition
    # THEN the redeployment trigger is the same, so `pulumi up` does not redeploy for nothing
    assert ev.one(DEPLOYMENT).inputs["triggers"] == run().one(DEPLOYMENT).inputs["triggers"]


def test_stage_logs_to_the_cmk_log_group_with_tracing(ev):
    # GIVEN the stage and the access-log group
    stage = ev.one(STAGE)
    access = ev.one(LOG_GROUP, "access-logs")
    # THEN the stage is v1 on the deployment, traced, and writes access logs to the CMK group in the fixed format
    assert stage.inputs["stageName"] == defaults.API_STAGE_NAME
    assert stage.inputs["deployment"] == ev.one(DEPLOYMENT).id
    assert stage.inputs["xrayTracingEnabled"] is True
    assert stage.inputs["accessLogSettings"]["destinationArn"] == access.outputs["arn"]
    assert stage.inputs["accessLogSettings"]["format"] == defaults.API_ACCESS_LOG_FORMAT
    assert access.inputs["name"] == "/aws/apigateway/fraud-api-dev-abc12"


def test_tracing_follows_the_args(ev_shared_account):
    assert ev_shared_account.one(STAGE).inputs["xrayTracingEnabled"] is False


def test_every_log_group_has_retention_and_the_cmk(ev):
    # GIVEN the access-log group and the execution-log group API Gateway would otherwise create unencrypted
    groups = ev.of_type(LOG_GROUP)
    rest_api_id = ev.one(REST_API).id
    # THEN all three (with the WAF's) carry the stack's retention and the CMK
    assert {g.inputs["name"] for g in groups} == {
        "/aws/apigateway/fraud-api-dev-abc12", f"API-Gateway-Execution-Logs_{rest_api_id}/v1",
        "aws-waf-logs-fraud-api-dev-abc12"}
    for group in groups:
        assert group.inputs["retentionInDays"] == 14
        assert group.inputs["kmsKeyId"] == KMS_KEY_ARN


def test_method_settings_log_errors_without_data_trace_and_throttle(ev):
    # GIVEN the stage-wide method settings
    settings = ev.one("aws:apigateway/methodSettings:MethodSettings")
    s = settings.inputs["settings"]
    # THEN every method logs at ERROR, never full request bodies (card numbers), with metrics and throttling
    assert settings.inputs["methodPath"] == "*/*"
    assert settings.inputs["stageName"] == defaults.API_STAGE_NAME
    assert s["loggingLevel"] == "ERROR"
    assert s["dataTraceEnabled"] is False
    assert s["metricsEnabled"] is True
    assert s["throttlingRateLimit"] == 1000
    assert s["throttlingBurstLimit"] == 900


# --- keys and usage plan ------------------------------------------------------------------


def test_api_key_usage_plan_and_key_binding(ev):
    # GIVEN the key, the plan and their binding
    key = ev.one("aws:apigateway/apiKey:ApiKey")
    plan = ev.one("aws:apigateway/usagePlan:UsagePlan")
    binding = ev.one("aws:apigateway/usagePlanKey:UsagePlanKey")
    # THEN the key is enabled with an AWS-generated value, and the plan bounds it on this stage
    assert key.inputs["enabled"] is True
    assert "value" not in key.inputs
    assert plan.inputs["apiStages"] == [{"apiId": ev.one(REST_API).id, "stage": defaults.API_STAGE_NAME}]
    assert plan.inputs["throttleSettings"] == {"rateLimit": 1000, "burstLimit": 900}
    assert plan.inputs["quotaSettings"] == {"limit": 250000, "period": "WEEK"}
    assert binding.inputs == {"keyId": key.id, "keyType": "API_KEY", "usagePlanId": plan.id}


# --- WAF ------------------------------------------------------------------------------------


def rules_of(acl) -> dict[str, dict]:
    """A web ACL's rules by name (camelCase, as the engine records them)."""
    return {r["name"]: r for r in acl.inputs["rules"]}


def managed_rule(rules: dict[str, dict], group: str) -> dict:
    return rules[f"{defaults.WAF_MANAGED_RULE_VENDOR}-{group}"]


def header_present(statement: dict) -> bool:
    """The scope-down form that matches a request carrying x-api-key with a value."""
    return statement == {"sizeConstraintStatement": {
        "fieldToMatch": {"singleHeader": {"name": "x-api-key"}}, "comparisonOperator": "GT", "size": 0,
        "textTransformations": [{"priority": 0, "type": "NONE"}]}}


def test_waf_is_regional_allows_by_default_and_every_rule_is_visible(ev):
    # GIVEN the web ACL
    acl = ev.one(WEB_ACL)
    rules = acl.inputs["rules"]
    # THEN it is regional, allows what no rule stops, and every rule has metrics and sampled requests
    assert acl.inputs["scope"] == "REGIONAL"
    assert acl.inputs["defaultAction"] == {"allow": {}}
    assert len({r["priority"] for r in rules}) == len(rules)
    for visibility in [acl.inputs["visibilityConfig"], *(r["visibilityConfig"] for r in rules)]:
        assert visibility["cloudwatchMetricsEnabled"] is True
        assert visibility["sampledRequestsEnabled"] is True
        assert visibility["metricName"]
    assert len({r["visibilityConfig"]["metricName"] for r in rules}) == len(rules)


def test_waf_rules_run_reputation_and_rate_limits_first_body_inspection_last(ev):
    # GIVEN the web ACL WHEN its rules are put in priority order
    ordered = [r["name"] for r in sorted(ev.one(WEB_ACL).inputs["rules"], key=lambda r: r["priority"])]
    # THEN known-bad sources go first (they never use up a client's budget), then the rate limits, then the
    # groups that inspect bodies
    assert ordered == [
        "AWS-AWSManagedRulesAmazonIpReputationList", "rate-limit-unkeyed-per-ip", "rate-limit-keyed-per-ip",
        "rate-limit-per-api-key", "AWS-AWSManagedRulesKnownBadInputsRuleSet", "AWS-AWSManagedRulesCommonRuleSet"]


def test_managed_groups_block_unless_listed_for_count_mode(ev):
    # GIVEN the component built without count-mode groups (the default)
    rules = rules_of(ev.one(WEB_ACL))
    # THEN all three AWS groups run and block (override action none)
    for group in GROUPS:
        rule = managed_rule(rules, group)
        statement = rule["statement"]["managedRuleGroupStatement"]
        assert (statement["vendorName"], statement["name"]) == ("AWS", group)
        assert rule["overrideAction"] == {"none": {}}, group
        assert "action" not in rule
    # WHEN one group is listed THEN only that one counts
    listed = {r["name"]: r for r in waf_rules("acl", ip_rate_limit=100, api_key_rate_limit=1000,
                                               count_mode_groups=["AWSManagedRulesKnownBadInputsRuleSet"])}
    assert listed["AWS-AWSManagedRulesKnownBadInputsRuleSet"]["override_action"] == {"count": {}}
    assert listed["AWS-AWSManagedRulesCommonRuleSet"]["override_action"] == {"none": {}}
    assert listed["AWS-AWSManagedRulesAmazonIpReputationList"]["override_action"] == {"none": {}}


def test_prod_blocks_with_all_three_groups_and_dev_counts(prod, dev):
    # GIVEN the real stacks: prod lists no count-mode group, dev lists all three
    assert settings_of("prod").waf_count_mode_rule_groups == ()
    assert set(settings_of("dev").waf_count_mode_rule_groups) == set(GROUPS)
    prod_rules, dev_rules = rules_of(prod.one(WEB_ACL)), rules_of(dev.one(WEB_ACL))
    for group in GROUPS:
        # THEN prod's groups block and dev's only count
        assert managed_rule(prod_rules, group)["overrideAction"] == {"none": {}}, group
        assert managed_rule(dev_rules, group)["overrideAction"] == {"count": {}}, group


def test_only_the_justified_rule_inside_a_group_counts(prod):
    # GIVEN prod's managed groups
    rules = rules_of(prod.one(WEB_ACL))
    overrides = {g: managed_rule(rules, g)["statement"]["managedRuleGroupStatement"].get("ruleActionOverrides", [])
                 for g in GROUPS}
    # THEN the common rule set counts NoUserAgent_HEADER (machine clients often send no User-Agent) and nothing else;
    # SizeRestrictions_BODY keeps blocking (see test_no_documented_body_reaches_the_8_kb_the_common_rule_set_allows)
    assert overrides == {
        "AWSManagedRulesAmazonIpReputationList": [],
        "AWSManagedRulesKnownBadInputsRuleSet": [],
        "AWSManagedRulesCommonRuleSet": [{"name": "NoUserAgent_HEADER", "actionToUse": {"count": {}}}],
    }
    assert set(WAF_RULE_COUNT_OVERRIDES) == {"AWSManagedRulesCommonRuleSet"}
    assert all(reason for reasons in WAF_RULE_COUNT_OVERRIDES.values() for reason in reasons.values())


def _widest(schema: dict, lengths: dict[str, int]) -> dict:
    """A body with every field the model allows at its longest, each character an escaped astral code point."""
    astral = "\U0001F600"  # 12 bytes once JSON escapes it as a surrogate pair
    body = {}
    for field, spec in schema["properties"].items():
        if "enum" in spec:
            body[field] = max(spec["enum"], key=len)
        elif spec.get("type") == "string" or field in lengths:
            length = spec.get("maxLength") or lengths[field]
            body[field] = astral * length if "pattern" not in spec else "9" * length
        elif spec.get("type") == "integer":
            body[field] = spec.get("maximum", 2 ** 53)
        elif spec.get("type") == "boolean":
            body[field] = False
        else:
            body[field] = 999999.99
    return body


def test_no_documented_body_reaches_the_8_kb_the_common_rule_set_allows():
    # GIVEN the two request models, closed, every text field at its longest (fields without a maxLength at the
    # length the handler allows: a card number of 19 digits and 18 separators, a 40-character ISO timestamp)
    lengths = {"card_number": 37, "timestamp": 40, "transaction_id": 64, "currency": 3}
    bodies = [_widest(transaction_request_schema(), lengths), _widest(label_request_schema(), lengths)]
    assert transaction_request_schema()["additionalProperties"] is False
    assert label_request_schema()["additionalProperties"] is False
    # WHEN each is written pretty-printed with every non-ASCII character escaped
    sizes = [len(json.dumps(body, indent=2, ensure_ascii=True).encode()) for body in bodies]
    # THEN each stays under the common rule set's SizeRestrictions_BODY (8 KB), which can therefore keep blocking
    assert all(size < 8 * 1024 for size in sizes), sizes
    assert defaults.API_MAX_BODY_BYTES > 8 * 1024  # the handler's ceiling is a transport guard, not a body size


def test_waf_limits_each_api_key_at_the_usage_plan_rate(ev):
    # GIVEN the component built with a per-key limit of 270,000 requests / 5 min (900 req/s)
    rules = rules_of(ev.one(WEB_ACL))
    per_key = rules["rate-limit-per-api-key"]
    statement = per_key["statement"]["rateBasedStatement"]
    # THEN one blocking rule counts requests per value of the x-api-key header, only that header, over 300 s
    assert per_key["action"] == {"block": {}}
    assert statement["aggregateKeyType"] == "CUSTOM_KEYS"
    assert statement["customKeys"] == [
        {"header": {"name": defaults.API_KEY_HEADER, "textTransformations": [{"priority": 0, "type": "NONE"}]}}]
    assert statement["limit"] == 270000
    assert statement["evaluationWindowSec"] == 300
    assert "scopeDownStatement" not in statement  # requests without the header are left out by WAF itself


@pytest.mark.parametrize("ip_limit, key_limit", [(1500, 270000), (10, 600), (2000, 3000000)])
def test_rate_limits_follow_the_arguments(ip_limit, key_limit):
    # GIVEN any limits within WAF's range WHEN the rules are built THEN each rate rule carries its own
    rules = {r["name"]: r["statement"]["rate_based_statement"]
             for r in waf_rules("acl", ip_rate_limit=ip_limit, api_key_rate_limit=key_limit)
             if "rate_based_statement" in r["statement"]}
    assert rules["rate-limit-unkeyed-per-ip"]["limit"] == ip_limit
    assert rules["rate-limit-keyed-per-ip"]["limit"] == key_limit
    assert rules["rate-limit-per-api-key"]["limit"] == key_limit


def test_unkeyed_requests_are_limited_per_ip_and_keyed_ones_get_the_per_key_ceiling(ev):
    # GIVEN the two per-IP rules
    rules = rules_of(ev.one(WEB_ACL))
    unkeyed = rules["rate-limit-unkeyed-per-ip"]["statement"]["rateBasedStatement"]
    keyed = rules["rate-limit-keyed-per-ip"]["statement"]["rateBasedStatement"]
    # THEN the tight one counts only requests WITHOUT an x-api-key (WAF's documented missing-header test) ...
    assert unkeyed["aggregateKeyType"] == "IP" and unkeyed["limit"] == 1500
    assert header_present(unkeyed["scopeDownStatement"]["notStatement"]["statement"])
    # ... and the one for requests WITH a key (random keys) sits at the per-key limit, never below it
    assert keyed["aggregateKeyType"] == "IP" and keyed["limit"] == 270000
    assert header_present(keyed["scopeDownStatement"])
    assert rules["rate-limit-unkeyed-per-ip"]["action"] == rules["rate-limit-keyed-per-ip"]["action"] == {"block": {}}


def test_the_stacks_key_their_limits_on_the_usage_plan(stack):
    # GIVEN each real stack THEN the per-key rule is the usage plan's rate over the 5-minute window
    s = settings_of(stack.stack)
    rules = rules_of(stack.one(WEB_ACL))
    assert rules["rate-limit-per-api-key"]["statement"]["rateBasedStatement"]["limit"] == s.api_throttle_rate * 300
    assert rules["rate-limit-unkeyed-per-ip"]["statement"]["rateBasedStatement"]["limit"] == s.waf_rate_limit
    plan = stack.one("aws:apigateway/usagePlan:UsagePlan").inputs["throttleSettings"]["rateLimit"]
    assert rules["rate-limit-per-api-key"]["statement"]["rateBasedStatement"]["limit"] == plan * 300


def test_changed_stack_settings_reach_the_web_acl():
    # GIVEN dev with a slower usage plan, a tighter unkeyed limit and only the common rule set in count mode
    config = {**stack_config("dev"), "fraud-pipeline:apiThrottleRate": "250", "fraud-pipeline:wafRateLimit": "500",
              "fraud-pipeline:wafCountModeRuleGroups": json.dumps(["AWSManagedRulesCommonRuleSet"])}
    # WHEN the program is evaluated
    rules = rules_of(evaluate("dev", config).one(WEB_ACL))
    # THEN the web ACL follows: 250 req/s x 300 s per key, 500 per IP unkeyed, two groups blocking
    assert rules["rate-limit-per-api-key"]["statement"]["rateBasedStatement"]["limit"] == 75000
    assert rules["rate-limit-keyed-per-ip"]["statement"]["rateBasedStatement"]["limit"] == 75000
    assert rules["rate-limit-unkeyed-per-ip"]["statement"]["rateBasedStatement"]["limit"] == 500
    assert managed_rule(rules, "AWSManagedRulesCommonRuleSet")["overrideAction"] == {"count": {}}
    assert managed_rule(rules, "AWSManagedRulesKnownBadInputsRuleSet")["overrideAction"] == {"none": {}}
    assert managed_rule(rules, "AWSManagedRulesAmazonIpReputationList")["overrideAction"] == {"none": {}}


@pytest.mark.parametrize("kwargs, message", [
    ({"ip_rate_limit": 9, "api_key_rate_limit": 1000}, "waf_rate_limit = 9"),
    ({"ip_rate_limit": 100, "api_key_rate_limit": 2_000_000_001}, "waf_api_key_rate_limit = 2000000001"),
    ({"ip_rate_limit": 100, "api_key_rate_limit": 1000, "window_seconds": 30}, "evaluation window 30 s"),
    ({"ip_rate_limit": 100, "api_key_rate_limit": 1000, "count_mode_groups": ["AWSManagedRulesSQLiRuleSet"]},
     "unknown WAF managed rule group"),
])
def test_limits_outside_what_waf_accepts_fail_at_preview(kwargs, message):
    with pytest.raises(ValueError, match=message):
        waf_rules("acl", **kwargs)


# --- WAF logging ----------------------------------------------------------------------------


def test_waf_logs_every_request_with_the_api_key_redacted(ev):
    # GIVEN the logging configuration and its log group
    logging = ev.one(WAF_LOGGING)
    group = ev.one(LOG_GROUP, "waf-logs")
    # THEN the ACL logs to the group by its ARN as WAF wants it (no `:*`), the key header is redacted,
    # and no filter leaves requests out of the audit log
    assert logging.inputs["resourceArn"] == ev.one(WEB_ACL).outputs["arn"]
    assert logging.inputs["logDestinationConfigs"] == [group.outputs["arn"]]
    assert not group.outputs["arn"].endswith(":*")
    assert logging.inputs["redactedFields"] == [{"singleHeader": {"name": "x-api-key"}}]
    assert "loggingFilter" not in logging.inputs
    # AND it is declared after the delivery policy, so WAF does not write its own account-wide one
    assert ev.one(LOG_POLICY).urn in logging.depends_on


def test_waf_log_group_is_named_for_waf_encrypted_and_kept_for_the_audit_retention(ev):
    group = ev.one(LOG_GROUP, "waf-logs")
    assert group.inputs["name"] == "aws-waf-logs-fraud-api-dev-abc12"
    assert group.inputs["name"].startswith(defaults.WAF_LOG_GROUP_PREFIX)
    assert group.inputs["kmsKeyId"] == KMS_KEY_ARN
    assert group.inputs["retentionInDays"] == 14
    assert group.inputs["tags"] == {"team": "fraud"}


def test_waf_log_delivery_policy_is_scoped_to_this_group_and_account(ev):
    # GIVEN the CloudWatch Logs resource policy
    policy = ev.one(LOG_POLICY)
    group_arn = ev.one(LOG_GROUP, "waf-logs").outputs["arn"]
    [statement] = statements(policy.inputs["policyDocument"])
    # THEN only WAF's log delivery may create streams and write events, in this group only, for this account
    assert policy.inputs["policyName"] == "fraud-waf-log-delivery-dev-abc12"
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == f"{group_arn}:log-stream:*"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                                      "ArnLike": {"aws:SourceArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:*"}}


def test_waf_log_delivery_policy_follows_the_partition_and_region():
    doc = json.loads(waf_log_delivery_policy("arn:aws-us-gov:logs:us-gov-west-1:111122223333:log-group:aws-waf-logs-x"))
    condition = doc["Statement"][0]["Condition"]
    assert condition["ArnLike"]["aws:SourceArn"] == "arn:aws-us-gov:logs:us-gov-west-1:111122223333:*"
    assert condition["StringEquals"]["aws:SourceAccount"] == "111122223333"


def test_stacks_log_waf_with_the_stack_key_for_the_audit_retention(stack):
    # GIVEN each real stack THEN its WAF log group keeps the audit retention, under the stack's own key
    group = stack.one(LOG_GROUP, defaults.WAF_LOG_GROUP_PREFIX)
    assert group.inputs["retentionInDays"] == settings_of(stack.stack).audit_log_retention_days
    assert group.inputs["kmsKeyId"] == stack.one("aws:kms/key:Key", "fraud-kms").outputs["arn"]
    assert stack.one(WAF_LOGGING).inputs["logDestinationConfigs"] == [group.outputs["arn"]]


def test_waf_is_associated_with_the_stage(ev):
    # GIVEN the association
    association = ev.one("aws:wafv2/webAclAssociation:WebAclAssociation")
    # THEN it binds this ACL to this stage's ARN
    assert association.inputs["webAclArn"] == ev.one("aws:wafv2/webAcl:WebAcl").outputs["arn"]
    assert association.inputs["resourceArn"] == ev.one(STAGE).outputs["arn"]
    assert association.inputs["resourceArn"].endswith(f"/stages/{defaults.API_STAGE_NAME}")


# --- permission and IAM -----------------------------------------------------------------------


def test_invoke_permission_is_scoped_to_post_transactions(ev):
    # GIVEN the Lambda permission
    permission = ev.one("aws:lambda/permission:Permission", "api-invoke-permission")
    execution_arn = ev.one(REST_API).outputs["executionArn"]
    # THEN only this API's POST /transactions may invoke the handler
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    assert permission.inputs["function"] == FUNCTION_NAME
    assert permission.inputs["sourceArn"] == f"{execution_arn}/*/POST/transactions"


def test_account_logging_role_names_log_groups_except_star_only_actions(ev):
    # GIVEN the account-level CloudWatch role API Gateway logs with
    account = ev.one("aws:apigateway/account:Account")
    role = ev.one("aws:iam/role:Role", "cloudwatch-role")
    policy = ev.one("aws:iam/rolePolicy:RolePolicy", "cloudwatch-policy")
    # THEN the account setting uses the role, which only API Gateway can assume
    assert account.inputs["cloudwatchRoleArn"] == role.outputs["arn"]
    trust = statements(role.inputs["assumeRolePolicy"])
    assert [s["Principal"] for s in trust] == [{"Service": "apigateway.amazonaws.com"}]
    # AND every statement names this account's log groups, except the star-only actions
    for statement in statements(policy.inputs["policy"]):
        resources = as_list(statement["Resource"])
        if "*" in resources:
            assert resources == ["*"]
            assert set(as_list(statement["Action"])) <= set(defaults.STAR_ONLY_ACTIONS)
        else:
            assert all(r.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:") for r in resources)


def test_account_logging_role_can_be_left_to_another_program(ev_shared_account):
    # GIVEN a program that already manages the region's API Gateway account settings
    # THEN the component creates neither the account setting nor its role
    assert ev_shared_account.of_type("aws:apigateway/account:Account") == []
    assert ev_shared_account.of_type("aws:iam/role:Role") == []
    # but still creates the encrypted execution-log group the stage writes to (beside the access and WAF logs)
    assert len(ev_shared_account.of_type(LOG_GROUP)) == 3


def test_component_outputs_resolve():
    # GIVEN a program exporting the component's outputs
    import pulumi

    def program():
        front = ApiFront("api", api_args())
        for key in ("rest_api_id", "rest_api_name", "stage_name", "invoke_url", "endpoint", "label_endpoint", "api_key_id",
                    "api_key_value", "usage_plan_id", "web_acl_arn", "waf_log_group_name", "access_log_group_name",
                    "execution_arn"):
            pulumi.export(key, getattr(front, key))
        pulumi.export("api_key_value_is_secret", pulumi.Output.from_input(front.api_key_value.is_secret()))

    # WHEN it is evaluated
    exports = evaluate("dev", {"aws:region": REGION}, program=program).exports
    # THEN every output resolves, the endpoint ends in /transactions and the key value is present
    assert exports["endpoint"] == exports["invoke_url"] + "/transactions"
    assert exports["label_endpoint"] == exports["invoke_url"] + "/transactions/{transaction_id}/label"
    assert exports["stage_name"] == "v1"
    assert exports["invoke_url"].endswith("/v1")
    assert exports["rest_api_name"] == "fraud-api-dev-abc12"
    assert exports["access_log_group_name"] == "/aws/apigateway/fraud-api-dev-abc12"
    assert exports["waf_log_group_name"] == "aws-waf-logs-fraud-api-dev-abc12"
    assert exports["api_key_value"]
    assert exports["api_key_value_is_secret"] is True
    assert exports["execution_arn"].startswith(f"arn:aws:execute-api:{REGION}:{ACCOUNT}:")
    assert all(exports[k] for k in exports)
