"""ReviewWorkflow: large decisions get a second, durable look.

Detection publishes every decision to a custom EventBridge bus; a rule picks
the ones over the review amount and starts a Step Functions execution
(validate -> analyze -> store -> notify). EventBridge retries the start and
parks what it still cannot deliver in an encrypted DLQ, and every task retries
transient Lambda faults with backoff and catches the rest into one failure
state, so a review is never silently dropped.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pulumi
import pulumi_aws as aws

from . import defaults
from .naming import ComponentArgs, Namer
from .permissions import service_trust_policy
from .queue import encrypted_queue

#: The review tasks, in order; one Lambda runs them all, told which by `task`.
REVIEW_TASKS = ("validate", "analyze", "store", "notify")
FAILURE_STATE = "ReviewFailed"
LAMBDA_INVOKE_RESOURCE = "arn:aws:states:::lambda:invoke"
#: Vended-log delivery actions Step Functions needs on its role (all star-only).
LOG_DELIVERY_ACTIONS = sorted(a for a in defaults.STAR_ONLY_ACTIONS if a.startswith("logs:"))
#: X-Ray actions of a traced state machine (all star-only).
TRACING_ACTIONS = sorted(a for a in defaults.STAR_ONLY_ACTIONS if a.startswith("xray:"))


def event_bus_name(namer: Namer) -> str:
    """The bus's physical name, for the functions that must know it before the workflow exists (the review task)."""
    return namer.name("fraud-events", "event_bus")


def event_bus_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:events:{region}:{account}:event-bus/{name}"


def review_event_pattern(amount_threshold: float) -> dict[str, Any]:
    """Decisions whose amount is over the threshold: a numeric filter, so EventBridge compares numbers, not strings."""
    return {
        "source": [defaults.EVENT_SOURCE],
        "detail-type": [defaults.EVENT_DETAIL_TYPE],
        "detail": {"amount": [{"numeric": [">", amount_threshold]}]},
    }


def _state_name(task: str) -> str:
    return task.capitalize()


def review_definition(task_function_arn: str) -> dict[str, Any]:
    """The state machine's ASL.

    Each task's Lambda return value becomes the next task's input
    (`ResultSelector` + `OutputPath`); the first task receives the EventBridge
    event itself. Transient Lambda faults are retried with jittered backoff;
    anything else, or retries exhausted, lands in the failure state with the
    error kept under `$.error`.
    """
    states: dict[str, Any] = {}
    for index, task in enumerate(REVIEW_TASKS):
        state: dict[str, Any] = {
            "Type": "Task",
            "Comment": f"Review task '{task}'",
            "Resource": LAMBDA_INVOKE_RESOURCE,
            "Parameters": {"FunctionName": task_function_arn, "Payload": {"task": task, "input.$": "$"}},
            "ResultSelector": {"result.$": "$.Payload"},
            "OutputPath": "$.result",
            "TimeoutSeconds": defaults.WORKFLOW_TASK_TIMEOUT_SECONDS,
            "Retry": [copy.deepcopy(defaults.WORKFLOW_TASK_RETRY)],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": FAILURE_STATE}],
        }
        if index + 1 < len(REVIEW_TASKS):
            state["Next"] = _state_name(REVIEW_TASKS[index + 1])
        else:
            state["End"] = True
        states[_state_name(task)] = state
    states[FAILURE_STATE] = {
        "Type": "Fail",
        "Error": "ReviewFailed",
        "Cause": "A review task failed after its retries; the execution history holds the error.",
    }
    return {
        "Comment": "Review of high-amount fraud decisions: validate -> analyze -> store -> notify",
        "StartAt": _state_name(REVIEW_TASKS[0]),
        "States": states,
    }


class ReviewWorkflowArgs(ComponentArgs):
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key of the bus, the DLQ, the log group and the state machine."""
    task_function_arn: pulumi.Input[str]
    """The review-task Lambda; it runs all four tasks."""
    review_amount_threshold: pulumi.Input[float]
    """Decisions with an amount strictly above this start a review."""
    log_retention_days: pulumi.Input[int]
    """Retention of the state machine's log group (one of CloudWatch's allowed values)."""
    tracing_enabled: pulumi.Input[bool]
    """X-Ray tracing of the state machine."""
    dlq_retention_seconds: pulumi.Input[int]
    """How long an undeliverable review start waits in the rule target's DLQ."""


def _account_of(arn: str) -> str:
    return arn.split(":")[4]


def state_machine_policy(task_function_arn: str, kms_key_arn: str, tracing_enabled: bool) -> dict[str, Any]:
    """The state machine role's policy: its one Lambda, its key, and the star-only log/X-Ray actions."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "InvokeReviewTasks",
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": [task_function_arn, f"{task_function_arn}:*"],
        },
        {
            "Sid": "UseWorkflowKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms_key_arn,
        },
        {
            "Sid": "DeliverVendedLogs",
            "Effect": "Allow",
            "Action": LOG_DELIVERY_ACTIONS,
            "Resource": "*",
        },
    ]
    if tracing_enabled:
        statements.append({"Sid": "WriteTraces", "Effect": "Allow", "Action": TRACING_ACTIONS, "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


def target_policy_document(state_machine_arn: str, kms_key_arn: str) -> dict[str, Any]:
    """The rule target's policy: start this one state machine.

    The machine's data is encrypted with the CMK, so whoever starts an
    execution must be able to make a data key for its input.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "StartReview", "Effect": "Allow", "Action": "states:StartExecution", "Resource": state_machine_arn},
            {"Sid": "EncryptReviewInput", "Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": kms_key_arn},
        ],
    }


class ReviewWorkflow(pulumi.ComponentResource):
    """Event bus, review rule with DLQ, and the review state machine."""

    event_bus_name: pulumi.Output[str]
    event_bus_arn: pulumi.Output[str]
    rule_name: pulumi.Output[str]
    rule_arn: pulumi.Output[str]
    state_machine_name: pulumi.Output[str]
    state_machine_arn: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    dlq_arn: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: ReviewWorkflowArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:ReviewWorkflow", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        tags = args.get("tags")
        kms_key_arn = pulumi.Output.from_input(args["kms_key_arn"])
        task_function_arn = pulumi.Output.from_input(args["task_function_arn"])
        state_machine_name = namer.name("fraud-review", "state_machine")

        # --- state machine -----------------------------------------------------
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/vendedlogs/states/{state_machine_name}",
            retention_in_days=args["log_retention_days"],
            kms_key_id=kms_key_arn,
            tags=tags,
            opts=child,
        )
        self.state_machine_role = aws.iam.Role(
            f"{name}-sfn-role",
            name=namer.name("fraud-review-sfn", "role"),
            description="Runs the review tasks and writes the review workflow's logs",
            assume_role_policy=kms_key_arn.apply(
                lambda k: json.dumps(service_trust_policy("states.amazonaws.com", _account_of(k)))),
            tags=tags,
            opts=child,
        )
        state_machine_policy_ = aws.iam.RolePolicy(
            f"{name}-sfn-policy",
            role=self.state_machine_role.id,
            policy=pulumi.Output.all(task_function_arn, kms_key_arn, args["tracing_enabled"]).apply(
                lambda a: json.dumps(state_machine_policy(a[0], a[1], bool(a[2])))),
            opts=child,
        )
        # Step Functions checks the role can deliver logs and use the key when the machine is created.
        self.state_machine = aws.sfn.StateMachine(
            f"{name}-state-machine",
            name=state_machine_name,
            type="STANDARD",
            role_arn=self.state_machine_role.arn,
            definition=task_function_arn.apply(lambda arn: json.dumps(review_definition(arn))),
            logging_configuration={
                "log_destination": self.log_group.arn.apply(lambda a: f"{a}:*"),
                "level": defaults.WORKFLOW_LOG_LEVEL,
                "include_execution_data": defaults.WORKFLOW_INCLUDE_EXECUTION_DATA,
            },
            tracing_configuration={"enabled": args["tracing_enabled"]},
            encryption_configuration={
                "type": "CUSTOMER_MANAGED_KMS_KEY",
                "kms_key_id": kms_key_arn,
                "kms_data_key_reuse_period_seconds": defaults.WORKFLOW_KMS_DATA_KEY_REUSE_SECONDS,
            },
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[state_machine_policy_]),
        )

        # --- bus and rule ------------------------------------------------------
        self.event_bus = aws.cloudwatch.EventBus(
            f"{name}-bus",
            name=event_bus_name(namer),
            description="Every fraud decision the detection function makes, and every label applied",
            kms_key_identifier=kms_key_arn,
            tags=tags,
            opts=child,
        )
        self.rule = aws.cloudwatch.EventRule(
            f"{name}-rule",
            name=namer.name("fraud-review", "event_rule"),
            description="Decisions over the review amount start a review execution",
            event_bus_name=self.event_bus.name,
            event_pattern=pulumi.Output.from_input(args["review_amount_threshold"]).apply(
                lambda t: json.dumps(review_event_pattern(t))),
            state="ENABLED",
            tags=tags,
            opts=child,
        )

        # --- target DLQ ----------------------------------------------------------
        self.dlq, self.dlq_policy = encrypted_queue(
            f"{name}-dlq", namer.name("fraud-review-dlq", "queue"), kms_key_arn, args["dlq_retention_seconds"], child,
            tags=tags,
            extra_statements=lambda queue_arn: pulumi.Output.all(queue_arn, self.rule.arn).apply(lambda a: [{
                "Sid": "ReviewRuleDeadLetters",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": a[0],
                "Condition": {"ArnEquals": {"aws:SourceArn": a[1]}},
            }]),
        )

        # --- target ---------------------------------------------------------------
        self.target_role = aws.iam.Role(
            f"{name}-target-role",
            name=namer.name("fraud-review-events", "role"),
            description="Lets the review rule start the review state machine",
            assume_role_policy=kms_key_arn.apply(
                lambda k: json.dumps(service_trust_policy("events.amazonaws.com", _account_of(k)))),
            tags=tags,
            opts=child,
        )
        target_policy = aws.iam.RolePolicy(
            f"{name}-target-policy",
            role=self.target_role.id,
            policy=pulumi.Output.all(self.state_machine.arn, kms_key_arn).apply(
                lambda a: json.dumps(target_policy_document(a[0], a[1]))),
            opts=child,
        )
        self.target = aws.cloudwatch.EventTarget(
            f"{name}-target",
            rule=self.rule.name,
            event_bus_name=self.event_bus.name,
            target_id="review-state-machine",
            arn=self.state_machine.arn,
            role_arn=self.target_role.arn,
            retry_policy={
                "maximum_retry_attempts": defaults.EVENT_TARGET_MAX_RETRIES,
                "maximum_event_age_in_seconds": defaults.EVENT_TARGET_MAX_AGE_SECONDS,
            },
            dead_letter_config={"arn": self.dlq.arn},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[target_policy, self.dlq_policy]),
        )

        # --- outputs ---------------------------------------------------------------
        self.event_bus_name = self.event_bus.name
        self.event_bus_arn = self.event_bus.arn
        self.rule_name = self.rule.name
        self.rule_arn = self.rule.arn
        self.state_machine_name = self.state_machine.name
        self.state_machine_arn = self.state_machine.arn
        self.dlq_url = self.dlq.url
        self.dlq_arn = self.dlq.arn
        self.log_group_name = self.log_group.name
        self.register_outputs({
            "event_bus_name": self.event_bus_name,
            "event_bus_arn": self.event_bus_arn,
            "rule_name": self.rule_name,
            "rule_arn": self.rule_arn,
            "state_machine_name": self.state_machine_name,
            "state_machine_arn": self.state_machine_arn,
            "dlq_url": self.dlq_url,
            "dlq_arn": self.dlq_arn,
            "log_group_name": self.log_group_name,
        })
