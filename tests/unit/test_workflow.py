"""ReviewWorkflow under Pulumi's mock engine, plus its pure definition and event pattern."""

from __future__ import annotations

import json

import pulumi
import pytest

from fraud_pipeline import defaults
from fraud_pipeline.evaluation import Evaluation, evaluate
from fraud_pipeline.workflow import (
    REVIEW_TASKS,
    ReviewWorkflow,
    review_definition,
    review_event_pattern,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TASK_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fraud-review-tasks-dev-abc12"

COMPONENT = "fraud-pipeline:index:ReviewWorkflow"
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
BUS = "aws:cloudwatch/eventBus:EventBus"
QUEUE = "aws:sqs/queue:Queue"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
OUTPUTS = ("event_bus_name", "event_bus_arn", "rule_name", "rule_arn", "state_machine_name",
           "state_machine_arn", "dlq_url", "dlq_arn", "log_group_name")


def workflow_args(**overrides):
    args = {
        "environment": "dev",
        "environment_suffix": "abc12",
        "kms_key_arn": KMS_KEY_ARN,
        "task_function_arn": TASK_ARN,
        "review_amount_threshold": 5000.0,
        "log_retention_days": 30,
        "tracing_enabled": True,
        "dlq_retention_seconds": 1209600,
        "tags": {"team": "fraud"},
    }
    args.update(overrides)
    return args


def run(**overrides) -> Evaluation:
    def program():
        workflow = ReviewWorkflow("review", workflow_args(**overrides))
        for key in OUTPUTS:
            pulumi.export(key, getattr(workflow, key))

    return evaluate("dev", {"aws:region": REGION}, program=program)


@pytest.fixture(scope="module")
def ev() -> Evaluation:
    return run()


@pytest.fixture(scope="module")
def ev_untraced() -> Evaluation:
    return run(tracing_enabled=False, review_amount_threshold=7500)


def statements(policy: str) -> list[dict]:
    found = json.loads(policy)["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# --- pure functions -------------------------------------------------------------------------


def test_event_pattern_filters_amount_numerically():
    # GIVEN a review threshold
    pattern = review_event_pattern(5000)
    # THEN only detection's decisions with amount strictly above it match, compared as numbers
    assert pattern == {
        "source": [defaults.EVENT_SOURCE],
        "detail-type": [defaults.EVENT_DETAIL_TYPE],
        "detail": {"amount": [{"numeric": [">", 5000]}]},
    }


def test_definition_chains_the_four_tasks_in_order():
    # GIVEN the definition for one task function
    definition = review_definition(TASK_ARN)
    states = definition["States"]
    # WHEN we follow Next from StartAt
    order, name = [], definition["StartAt"]
    while name:
        order.append(name)
        name = states[name].get("Next")
    # THEN it is validate -> analyze -> store -> notify, ending at notify
    assert order == ["Validate", "Analyze", "Store", "Notify"]
    assert states["Notify"]["End"] is True
    assert states["ReviewFailed"]["Type"] == "Fail"
    assert states["ReviewFailed"]["Error"] and states["ReviewFailed"]["Cause"]


@pytest.mark.parametrize("task", REVIEW_TASKS)
def test_every_task_invokes_the_lambda_with_retry_and_catch(task):
    # GIVEN one task state
    state = review_definition(TASK_ARN)["States"][task.capitalize()]
    # THEN it invokes the one function with its task name and the whole input
    assert state["Type"] == "Task"
    assert state["Resource"] == "arn:aws:states:::lambda:invoke"
    assert state["Parameters"] == {"FunctionName": TASK_ARN, "Payload": {"task": task, "input.$": "$"}}
    # AND its Lambda's return value becomes the next input
    assert state["ResultSelector"] == {"result.$": "$.Payload"}
    assert state["OutputPath"] == "$.result"
    # AND it is bounded in time, retries transient faults with backoff, and catches everything else
    assert state["TimeoutSeconds"] == defaults.WORKFLOW_TASK_TIMEOUT_SECONDS
    assert state["Retry"] == [defaults.WORKFLOW_TASK_RETRY]
    assert state["Retry"][0]["BackoffRate"] > 1
    assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ReviewFailed"}]


def test_definition_does_not_share_the_retry_default():
    # GIVEN a definition whose retry we change
    review_definition(TASK_ARN)["States"]["Validate"]["Retry"][0]["MaxAttempts"] = 99
    # THEN the default stays intact
    assert defaults.WORKFLOW_TASK_RETRY["MaxAttempts"] != 99


# --- component structure ------------------------------------------------------------------------


def test_every_child_is_parented_to_the_component(ev):
    component = ev.one(COMPONENT)
    others = [r for r in ev.resources if r.urn != component.urn]
    assert others
    assert {r.parent for r in others} == {component.urn}
    assert all(r.name.startswith("review-") for r in others)


def test_outputs_resolve(ev):
    # GIVEN the exported outputs
    exports = ev.exports
    # THEN each resolves to the physical resources' names and ARNs
    assert exports["event_bus_name"] == "fraud-events-dev-abc12"
    assert exports["rule_name"] == "fraud-review-dev-abc12"
    assert exports["state_machine_name"] == "fraud-review-dev-abc12"
    assert exports["state_machine_arn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:fraud-review-dev-abc12"
    assert exports["dlq_arn"].endswith(":fraud-review-dlq-dev-abc12")
    assert exports["log_group_name"] == "/aws/vendedlogs/states/fraud-review-dev-abc12"
    assert all(exports[k] for k in OUTPUTS)


# --- bus, rule, target, DLQ ------------------------------------------------------------------------


def test_bus_is_encrypted_with_the_cmk(ev):
    bus = ev.one(BUS)
    assert bus.inputs["name"] == "fraud-events-dev-abc12"
    assert bus.inputs["kmsKeyIdentifier"] == KMS_KEY_ARN


def test_rule_on_the_bus_matches_amounts_over_the_threshold(ev, ev_untraced):
    # GIVEN the rule
    rule = ev.one(RULE)
    # THEN it is enabled on the custom bus with the numeric filter at the threshold from the args
    assert rule.inputs["state"] == "ENABLED"
    assert rule.inputs["eventBusName"] == ev.one(BUS).outputs["name"]
    assert json.loads(rule.inputs["eventPattern"]) == review_event_pattern(5000.0)
    assert json.loads(ev_untraced.one(RULE).inputs["eventPattern"])["detail"]["amount"] == [{"numeric": [">", 7500]}]


def test_target_starts_the_state_machine_with_retries_and_dlq(ev):
    # GIVEN the rule's target
    target = ev.one(TARGET)
    machine = ev.one(STATE_MACHINE)
    dlq = ev.one(QUEUE)
    role = ev.one("aws:iam/role:Role", "target-role")
    # THEN it starts this state machine on this bus with its own role, bounded retries, and a DLQ
    assert target.inputs["arn"] == machine.outputs["arn"]
    assert target.inputs["rule"] == ev.one(RULE).outputs["name"]
    assert target.inputs["eventBusName"] == ev.one(BUS).outputs["name"]
    assert target.inputs["roleArn"] == role.outputs["arn"]
    assert target.inputs["retryPolicy"] == {
        "maximumRetryAttempts": defaults.EVENT_TARGET_MAX_RETRIES,
        "maximumEventAgeInSeconds": defaults.EVENT_TARGET_MAX_AGE_SECONDS,
    }
    assert target.inputs["deadLetterConfig"] == {"arn": dlq.outputs["arn"]}


def test_target_role_may_start_only_this_state_machine(ev):
    # GIVEN the target role and its policy
    role = ev.one("aws:iam/role:Role", "target-role")
    policy = ev.one(ROLE_POLICY, "target-policy")
    machine_arn = ev.one(STATE_MACHINE).outputs["arn"]
    # THEN only EventBridge of this account assumes it, and it starts exactly this machine
    trust = statements(role.inputs["assumeRolePolicy"])
    assert [s["Principal"] for s in trust] == [{"Service": "events.amazonaws.com"}]
    assert trust[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    by_action = {a: s for s in statements(policy.inputs["policy"]) for a in as_list(s["Action"])}
    assert by_action["states:StartExecution"]["Resource"] == machine_arn
    assert by_action["kms:GenerateDataKey"]["Resource"] == KMS_KEY_ARN


def test_dlq_is_encrypted_and_only_the_rule_may_send(ev):
    # GIVEN the DLQ and its policy
    dlq = ev.one(QUEUE)
    policy = statements(ev.one("aws:sqs/queuePolicy:QueuePolicy").inputs["policy"])
    rule_arn = ev.one(RULE).outputs["arn"]
    # THEN it is CMK-encrypted with the retention from the args
    assert dlq.inputs["kmsMasterKeyId"] == KMS_KEY_ARN
    assert dlq.inputs["messageRetentionSeconds"] == 1209600
    # AND EventBridge may send to it only on behalf of this rule, and never without TLS
    allow = [s for s in policy if s["Effect"] == "Allow"]
    assert allow == [{
        "Sid": "ReviewRuleDeadLetters",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": dlq.outputs["arn"],
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }]
    deny = [s for s in policy if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny[0]["Resource"] == dlq.outputs["arn"]


# --- state machine --------------------------------------------------------------------------------------


def test_state_machine_logs_traces_and_encrypts(ev, ev_untraced):
    # GIVEN the state machine and its log group
    machine = ev.one(STATE_MACHINE)
    group = ev.one("aws:cloudwatch/logGroup:LogGroup")
    # THEN it is STANDARD, runs the pure definition, logs to the CMK group without execution data
    assert machine.inputs["type"] == "STANDARD"
    assert json.loads(machine.inputs["definition"]) == review_definition(TASK_ARN)
    logging = machine.inputs["loggingConfiguration"]
    assert logging["logDestination"] == f"{group.outputs['arn']}:*"
    assert logging["level"] == defaults.WORKFLOW_LOG_LEVEL
    assert logging["includeExecutionData"] is False
    assert group.inputs["name"] == "/aws/vendedlogs/states/fraud-review-dev-abc12"
    assert group.inputs["retentionInDays"] == 30
    assert group.inputs["kmsKeyId"] == KMS_KEY_ARN
    # AND encrypts its data with the CMK, and traces per the args
    assert machine.inputs["encryptionConfiguration"]["type"] == "CUSTOMER_MANAGED_KMS_KEY"
    assert machine.inputs["encryptionConfiguration"]["kmsKeyId"] == KMS_KEY_ARN
    assert machine.inputs["tracingConfiguration"] == {"enabled": True}
    assert ev_untraced.one(STATE_MACHINE).inputs["tracingConfiguration"] == {"enabled": False}


def _state_machine_statements(evaluation: Evaluation) -> list[dict]:
    return statements(evaluation.one(ROLE_POLICY, "sfn-policy").inputs["policy"])


def test_state_machine_role_names_specific_arns_except_star_only_actions(ev):
    # GIVEN the state machine role's policy
    found = _state_machine_statements(ev)
    granted = {a: as_list(s["Resource"]) for s in found for a in as_list(s["Action"])}
    # THEN it invokes only the task function (and its versions/aliases) and uses only the CMK
    assert granted["lambda:InvokeFunction"] == [TASK_ARN, f"{TASK_ARN}:*"]
    assert granted["kms:Decrypt"] == granted["kms:GenerateDataKey"] == [KMS_KEY_ARN]
    # AND "*" appears only for star-only actions: all the log-delivery ones and, when traced, the X-Ray ones
    star = {a for a, resources in granted.items() if resources == ["*"]}
    assert star <= set(defaults.STAR_ONLY_ACTIONS)
    assert {a for a in defaults.STAR_ONLY_ACTIONS if a.startswith(("logs:", "xray:"))} == star
    for statement in found:
        resources = as_list(statement["Resource"])
        assert resources == ["*"] or all(r.startswith("arn:aws:") for r in resources)
    # AND only Step Functions of this account assumes the role
    role = ev.one("aws:iam/role:Role", "sfn-role")
    trust = statements(role.inputs["assumeRolePolicy"])
    assert [s["Principal"] for s in trust] == [{"Service": "states.amazonaws.com"}]
    assert ev.one(STATE_MACHINE).inputs["roleArn"] == role.outputs["arn"]


def test_untraced_state_machine_gets_no_xray_actions(ev_untraced):
    actions = {a for s in _state_machine_statements(ev_untraced) for a in as_list(s["Action"])}
    assert not any(a.startswith("xray:") for a in actions)
    assert {a for a in defaults.STAR_ONLY_ACTIONS if a.startswith("logs:")} <= actions


def test_no_lambda_permission_is_created(ev):
    # Step Functions invokes with its role; a resource policy would only widen access.
    assert ev.of_type("aws:lambda/permission:Permission") == []
