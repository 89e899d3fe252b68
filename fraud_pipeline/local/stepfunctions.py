"""Execute the state machine definition the program produced, with its Lambda tasks run in-process.

Covers the Amazon States Language the review workflow uses: Task (Lambda
invoke, with Parameters, ResultSelector, ResultPath, OutputPath, TimeoutSeconds,
Retry and Catch), Pass, Choice-free flows, Succeed and Fail. Retry intervals
are honoured in count but not slept (a local run should not wait minutes);
the attempts are recorded so the summary shows them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
MAX_TRANSITIONS = 1000


class StatesError(Exception):
    def __init__(self, error: str, cause: str):
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


@dataclass
class Execution:
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    path: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)


def read_path(data: Any, path: str | None) -> Any:
    """`$`, `$.a.b`, `$.a[0]`: the JSONPath forms ASL definitions use."""
    if path is None or path == "$":
        return data
    if not path.startswith("$"):
        raise StatesError("States.Runtime", f"invalid path {path!r}")
    value = data
    for token in path[2:].replace("]", "").replace("[", ".").split("."):
        if token == "":
            continue
        if isinstance(value, list):
            value = value[int(token)]
        elif isinstance(value, dict) and token in value:
            value = value[token]
        else:
            raise StatesError("States.Runtime", f"path {path!r} not found in the input")
    return value


def write_path(data: Any, path: str | None, result: Any) -> Any:
    if path is None:               # ResultPath null: discard the result
        return data
    if path == "$":
        return result
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = out
    tokens = path[2:].split(".")
    for token in tokens[:-1]:
        node = node.setdefault(token, {})
    node[tokens[-1]] = result
    return out


def render(template: Any, data: Any, context: dict) -> Any:
    """Parameters / ResultSelector: keys ending in `.$` take their value from a path."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = read_path(context, "$" + value[2:]) if value.startswith("$$") else read_path(data, value)
            else:
                out[key] = render(value, data, context)
        return out
    if isinstance(template, list):
        return [render(v, data, context) for v in template]
    return template


def _matches(error: str, names: list[str]) -> bool:
    return "States.ALL" in names or error in names or (error.startswith("Lambda.") and "States.TaskFailed" in names)


def run(definition: dict, execution_input: Any, invoke: Callable[[str, Any], Any], name: str = "local") -> Execution:
    """Run to completion; `invoke(function_arn, payload)` runs a Lambda task (raising on a function error)."""
    ex = Execution()
    state_name = definition["StartAt"]
    data = execution_input
    context = {"Execution": {"Name": name, "Input": execution_input}, "StateMachine": {"Name": name}}
    for _ in range(MAX_TRANSITIONS):
        state = definition["States"][state_name]
        ex.path.append(state_name)
        kind = state["Type"]
        if kind == "Fail":
            ex.status, ex.error, ex.cause = "FAILED", state.get("Error"), state.get("Cause")
            return ex
        if kind == "Succeed":
            ex.status, ex.output = "SUCCEEDED", read_path(read_path(data, state.get("InputPath", "$")), state.get("OutputPath", "$"))
            return ex
        effective = read_path(data, state.get("InputPath", "$"))
        try:
            if kind == "Pass":
                result = render(state["Parameters"], effective, context) if "Parameters" in state else state.get("Result", effective)
            elif kind == "Task":
                result = _task(state, state_name, effective, context, invoke, ex)
            else:
                raise StatesError("States.Runtime", f"state type {kind} is not supported by the local emulation")
        except StatesError as err:
            catcher = next((c for c in state.get("Catch", []) if _matches(err.error, c["ErrorEquals"])), None)
            if catcher is None:
                ex.status, ex.error, ex.cause = "FAILED", err.error, err.cause
                return ex
            data = write_path(data, catcher.get("ResultPath", "$"), {"Error": err.error, "Cause": err.cause})
            state_name = catcher["Next"]
            continue
        if "ResultSelector" in state:
            result = render(state["ResultSelector"], result, context)
        data = write_path(data, state.get("ResultPath", "$"), result)
        data = read_path(data, state.get("OutputPath", "$"))
        if state.get("End"):
            ex.status, ex.output = "SUCCEEDED", data
            return ex
        state_name = state["Next"]
    ex.status, ex.error = "FAILED", "States.Runtime"
    return ex


def _task(state: dict, name: str, data: Any, context: dict, invoke: Callable[[str, Any], Any], ex: Execution) -> Any:
    params = render(state.get("Parameters", {}), data, context) if "Parameters" in state else data
    if state["Resource"] == LAMBDA_INVOKE:
        function, payload = params["FunctionName"], params.get("Payload", data)
    elif ":function:" in state["Resource"]:
        function, payload = state["Resource"], params
    else:
        raise StatesError("States.Runtime", f"task resource {state['Resource']} is not supported locally")
    retriers = [dict(r, _used=0) for r in state.get("Retry", [])]
    while True:
        ex.attempts[name] = ex.attempts.get(name, 0) + 1
        try:
            returned = invoke(function, json.loads(json.dumps(payload)))
        except Exception as exc:  # a function error, as Lambda reports it to Step Functions
            error = type(exc).__name__
            retrier = next((r for r in retriers if _matches(error, r["ErrorEquals"])), None)
            if retrier is not None and retrier["_used"] < retrier.get("MaxAttempts", 3):
                retrier["_used"] += 1
                continue
            raise StatesError(error, str(exc)) from exc
        if state["Resource"] == LAMBDA_INVOKE:
            return {"ExecutedVersion": "$LATEST", "Payload": returned, "StatusCode": 200}
        return returned
