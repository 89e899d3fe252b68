"""The pure modules: the handler contract (wiring.py), the IAM statements (permissions.py), parameter seeds
(params.py), archive keys and lifecycle (archive.py) and what the handlers archive ships -- no mock engine."""

from __future__ import annotations

import hashlib
import json

import pytest

from fraud_pipeline import defaults, permissions, wiring
from fraud_pipeline.archive import lifecycle_rules, model_object_key
from fraud_pipeline.params import LIST_KEYS, lists_document, placeholders
from fraud_pipeline.pipeline import default_model_file, handler_files
from fraud_pipeline.settings import PipelineSettings, SettingsError

ACCOUNT, REGION = "123456789012", "eu-west-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/fraud-transactions-t-x1"
FEATURES = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/fraud-features-t-x1"
BUCKET = "arn:aws:s3:::fraud-archive-t-x1"
BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/fraud-events-t-x1"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:fraud-alerts-t-x1"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:fraud-alerts-t-x1"
LEAVES = ("api-key", "connection-string", "ml-endpoint", "notification-templates", "card-token-key",
          "model", "model-shadow", "lists")
PARAMS = {leaf: f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/fraud-detection/t/{leaf}" for leaf in LEAVES}
ARNS = permissions.PipelineArns(account=ACCOUNT, region=REGION, environment="t", key=KEY, table=TABLE,
                                features_table=FEATURES, alert_queue=QUEUE, archive_bucket=BUCKET, event_bus=BUS,
                                alert_topic=TOPIC, parameters=PARAMS)


def settings(**changes) -> PipelineSettings:
    return PipelineSettings(environment="t", environment_suffix="x1", region=REGION, **changes)


def grants(function: str) -> dict[str, set[str]]:
    """action -> resources, over every statement of the function."""
    out: dict[str, set[str]] = {}
    for st in permissions.handler_statements(function, ARNS):
        assert st["Effect"] == "Allow" and st["Sid"]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        for action in st["Action"]:
            out.setdefault(action, set()).update(resources)
    return out


# --- the handler contract ---------------------------------------------------------------

def test_every_contract_user_is_a_function_and_every_function_has_a_spec():
    specs = wiring.function_specs(settings())
    assert tuple(specs) == permissions.FUNCTIONS
    for name, users in wiring.CONTRACT.items():
        assert set(users) <= set(permissions.FUNCTIONS), name
    assert "VELOCITY_TABLE_NAME" not in wiring.CONTRACT


@pytest.mark.parametrize("function, expected", [
    ("detection", {"TABLE_NAME", "FEATURES_TABLE_NAME", "ALERT_QUEUE_URL", "ARCHIVE_BUCKET", "EVENT_BUS_NAME",
                   "ML_ENDPOINT_PARAM", "MODEL_PARAM", "MODEL_SHADOW_PARAM", "LISTS_PARAM", "RULES_JSON", "ENVIRONMENT"}),
    ("label", {"TABLE_NAME", "FEATURES_TABLE_NAME", "EVENT_BUS_NAME", "ENVIRONMENT"}),
    ("label-ingest", {"TABLE_NAME", "FEATURES_TABLE_NAME", "EVENT_BUS_NAME", "ARCHIVE_BUCKET", "ENVIRONMENT"}),
    ("review", {"TABLE_NAME", "FEATURES_TABLE_NAME", "EVENT_BUS_NAME", "ALERT_TOPIC_ARN", "ML_ENDPOINT_PARAM",
                "TEMPLATES_PARAM", "RULES_JSON", "ENVIRONMENT"}),
    ("api", {"TABLE_NAME", "CARD_TOKEN_KEY_PARAM", "ENVIRONMENT", "TRANSACTION_RETENTION_DAYS"}),
    ("ingest", {"TABLE_NAME", "CARD_TOKEN_KEY_PARAM", "ARCHIVE_BUCKET", "ENVIRONMENT", "TRANSACTION_RETENTION_DAYS"}),
])
def test_each_function_gets_exactly_its_share_of_the_contract(function, expected):
    s = settings()
    values = {name: f"value-of-{name}" for name in wiring.CONTRACT}
    variables = wiring.environment_variables(function, values, s, "svc")
    assert {k for k in variables if not k.startswith("POWERTOOLS_")} == expected
    assert variables["ENVIRONMENT"] == "t" and variables["POWERTOOLS_SERVICE_NAME"] == "svc"
    assert all(variables[k] == f"value-of-{k}" for k in expected - {"RULES_JSON", "ENVIRONMENT", "TRANSACTION_RETENTION_DAYS"})


@pytest.mark.parametrize("days", [0, 540, 3650])
def test_transaction_retention_reaches_exactly_the_functions_that_create_transactions(days):
    # GIVEN a stack's transactionRetentionDays WHEN the variables are derived
    s = settings(transaction_retention_days=days)
    values = {name: "v" for name in wiring.CONTRACT}
    # THEN the two writers of new transaction items get it verbatim, and no other function does
    for key in wiring.function_specs(s):
        variables = wiring.environment_variables(key, values, s, "svc")
        assert variables.get("TRANSACTION_RETENTION_DAYS") == (str(days) if key in ("api", "ingest") else None), key


def test_every_function_runs_in_the_private_network_when_the_stack_has_one():
    assert set(wiring.VPC_FUNCTIONS) == set(wiring.function_specs(settings()))


def test_a_missing_contract_value_is_a_wiring_error():
    with pytest.raises(KeyError, match="MODEL_PARAM"):
        wiring.environment_variables("detection", {n: "v" for n in wiring.CONTRACT if n != "MODEL_PARAM"},
                                     settings(), "svc")


def test_label_functions_run_their_handlers_with_the_support_settings():
    s = settings(support_memory_mb=384, support_timeout_seconds=45, support_reserved_concurrency=3)
    specs = wiring.function_specs(s)
    assert specs["label"].handler == "handlers.label_api.handler"
    assert specs["label-ingest"].handler == "handlers.label_ingest.handler"
    for key in ("label", "label-ingest"):
        assert (specs[key].memory_mb, specs[key].timeout_seconds, specs[key].reserved_concurrency) == (384, 45, 3)
    assert len({spec.service_name for spec in specs.values()}) == len(specs)


# --- IAM ----------------------------------------------------------------------------------

def test_detection_grants():
    g = grants("detection")
    assert g == {
        "dynamodb:BatchGetItem": {TABLE, FEATURES},
        "dynamodb:UpdateItem": {TABLE, FEATURES},
        "sqs:SendMessage": {QUEUE},
        "s3:PutObject": {f"{BUCKET}/high-risk/*"},
        "s3:GetObject": {f"{BUCKET}/models/*"},
        "s3:GetObjectVersion": {f"{BUCKET}/models/*"},
        "events:PutEvents": {BUS},
        "ssm:GetParameter": {PARAMS["ml-endpoint"], PARAMS["model"], PARAMS["model-shadow"], PARAMS["lists"]},
        "sagemaker:InvokeEndpoint": {f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/fraud-t-*"},
        "kms:Decrypt": {KEY}, "kms:GenerateDataKey": {KEY},
    }


def test_label_grants():
    assert grants("label") == {
        "dynamodb:GetItem": {TABLE}, "dynamodb:BatchGetItem": {TABLE},
        "dynamodb:UpdateItem": {TABLE, FEATURES},
        "events:PutEvents": {BUS},
        "kms:Decrypt": {KEY}, "kms:GenerateDataKey": {KEY},
    }


def test_label_ingest_grants():
    assert grants("label-ingest") == {
        "s3:GetObject": {f"{BUCKET}/labels/*"},
        "s3:PutObject": {f"{BUCKET}/rejected/labels/*"},
        "dynamodb:GetItem": {TABLE}, "dynamodb:BatchGetItem": {TABLE},
        "dynamodb:UpdateItem": {TABLE, FEATURES},
        "events:PutEvents": {BUS},
        "kms:Decrypt": {KEY}, "kms:GenerateDataKey": {KEY},
    }


def test_review_grants_add_the_label_of_its_outcome():
    assert grants("review") == {
        "dynamodb:GetItem": {TABLE}, "dynamodb:BatchGetItem": {TABLE}, "dynamodb:UpdateItem": {TABLE, FEATURES},
        "events:PutEvents": {BUS},
        "sns:Publish": {TOPIC},
        "ssm:GetParameter": {PARAMS["ml-endpoint"], PARAMS["notification-templates"]},
        "sagemaker:InvokeEndpoint": {f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/fraud-t-*"},
        "kms:Decrypt": {KEY}, "kms:GenerateDataKey": {KEY},
    }


@pytest.mark.parametrize("function", permissions.FUNCTIONS)
def test_every_statement_names_specific_arns_and_sids_are_unique(function):
    from fraud_policies.resource_policies import policy_document_violations

    statements = permissions.handler_statements(function, ARNS)
    assert policy_document_violations(permissions.policy_document(statements)) == []
    assert all("*" != r for st in statements for r in st["Resource"])
    sids = [st["Sid"] for st in statements]
    assert len(sids) == len(set(sids))
    # the card-token key only where card numbers arrive
    has_card_key = PARAMS["card-token-key"] in {r for st in statements for r in st["Resource"]}
    assert has_card_key is (function in ("api", "ingest"))


def test_async_failures_go_to_the_named_queue_only():
    [st] = permissions.async_failure_statements(QUEUE)
    assert (st["Action"], st["Resource"]) == (["sqs:SendMessage"], [QUEUE])


def test_unknown_function_is_refused():
    with pytest.raises(ValueError, match="label-ingest"):
        permissions.handler_statements("labels", ARNS)


# --- parameter seeds ----------------------------------------------------------------------

def test_parameter_seeds():
    seeds = placeholders("models/default-0123456789ab.json", settings(allowed_card_tokens=("a" * 64,)).lists())
    assert set(seeds) == set(LEAVES)
    assert seeds["model"] == "models/default-0123456789ab.json"
    assert seeds["model-shadow"] == "none"
    assert json.loads(seeds["lists"]) == {"blocked_merchants": ["Unknown Store"],
                                          "high_risk_countries": ["Nigeria", "North Korea", "Iran"],
                                          "allowed_card_tokens": ["a" * 64]}
    assert placeholders()["model"] == "none"
    # random per environment
    assert placeholders()["card-token-key"] != placeholders()["card-token-key"]
    with pytest.raises(ValueError):
        placeholders("")


def test_lists_document_is_complete_and_bounded():
    assert json.loads(lists_document()) == {k: [] for k in LIST_KEYS}
    assert list(json.loads(lists_document({"allowed_card_tokens": ["b" * 64]}))) == list(LIST_KEYS)
    with pytest.raises(ValueError, match="unknown list"):
        lists_document({"blocked_cards": ["x"]})
    with pytest.raises(ValueError, match="bytes"):
        lists_document({"allowed_card_tokens": ["c" * 64] * 70})


def test_allowed_card_tokens_setting_is_validated():
    assert settings(allowed_card_tokens=("0f" * 32,)).lists()["allowed_card_tokens"] == ["0f" * 32]
    parsed = PipelineSettings.from_config("t", {"environmentSuffix": "x1", "aws:region": REGION,
                                                "allowedCardTokens": json.dumps(["ab" * 32, "cd" * 32])})
    assert parsed.allowed_card_tokens == ("ab" * 32, "cd" * 32)
    for bad in ("AB" * 32, "ab" * 31, "4111111111111111"):
        with pytest.raises(SettingsError, match="allowedCardTokens"):
            settings(allowed_card_tokens=(bad,))
    with pytest.raises(SettingsError, match="lists` parameter"):
        settings(allowed_card_tokens=tuple(f"{i:064x}" for i in range(70)))


# --- archive --------------------------------------------------------------------------------

def test_model_key_is_the_content_digest():
    data = b'{"format": "placeholder"}'
    assert model_object_key(data) == f"models/default-{hashlib.sha256(data).hexdigest()[:12]}.json"
    assert model_object_key(data) != model_object_key(data + b" ")
    assert model_object_key(data, "candidate").startswith("models/candidate-")


def test_lifecycle_expires_evidence_but_never_models():
    rules = lifecycle_rules(30, 365)
    prefixes = [r["filter"].get("prefix") for r in rules if "expiration" in r]
    assert prefixes == ["high-risk/", "rejected/", "labels/"]
    assert defaults.ARCHIVE_MODELS_PREFIX not in prefixes
    assert all(r["expiration"] == {"days": 365} and r["transitions"][0]["days"] == 30 for r in rules if "expiration" in r)
    assert len({r["id"] for r in rules}) == len(rules)
    # label-ingest's own quarantine writes must not notify it again
    assert not defaults.ARCHIVE_REJECTED_LABELS_PREFIX.startswith(defaults.ARCHIVE_LABELS_PREFIX)
    [everything] = [r for r in rules if r["filter"] == {}]
    assert "expiration" not in everything and "noncurrent_version_expiration" in everything


# --- what the handlers archive ships --------------------------------------------------------

def test_handler_files_ship_modules_and_models_only(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "__pycache__").mkdir()
    for name in ("__init__.py", "label_api.py", "models/default.json", "__pycache__/x.py", "notes.txt"):
        (tmp_path / name).write_text("{}")
    shipped = {p.relative_to(tmp_path).as_posix() for p in handler_files(tmp_path)}
    assert shipped == {"__init__.py", "label_api.py", "models/default.json"}
    assert default_model_file(tmp_path) == tmp_path / "models" / "default.json"


def test_handlers_without_modules_or_model_are_refused(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "default.json").write_text("{}")
    with pytest.raises(RuntimeError, match="no handler modules"):
        handler_files(tmp_path)
    (tmp_path / "models" / "default.json").unlink()
    (tmp_path / "__init__.py").write_text("")
    with pytest.raises(RuntimeError, match="no default model"):
        default_model_file(tmp_path)


def test_the_wiring_and_the_handlers_share_one_contract():
    # GIVEN the contract module the handlers import WHEN compared with the wiring THEN they name the same
    # variables, and the library's event and prefix names are the contract's own objects
    from fraud_pipeline import defaults
    from handlers import contract

    assert set(wiring.CONTRACT) == set(contract.VARIABLES) and len(contract.VARIABLES) == len(wiring.CONTRACT)
    assert (defaults.EVENT_SOURCE, defaults.LABEL_EVENT_SOURCE) == (contract.DECISION_EVENT_SOURCE,
                                                                     contract.LABEL_EVENT_SOURCE)
    assert defaults.ARCHIVE_LABELS_PREFIX is contract.ARCHIVE_LABELS_PREFIX
    assert defaults.API_MAX_BODY_BYTES == contract.MAX_TRANSACTION_BYTES


def test_every_variable_a_handler_reads_is_in_the_contract():
    import re
    from pathlib import Path

    import handlers

    read = set()
    for path in Path(handlers.__file__).parent.glob("*.py"):
        read |= set(re.findall(r'(?:env|environ\.get|environ\[)\(?"([A-Z][A-Z0-9_]+)"', path.read_text()))
    read -= {"AWS_DEFAULT_REGION", "AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME"}
    read = {v for v in read if not v.startswith("POWERTOOLS_")}
    assert read == set(), f"read by name instead of through handlers.contract: {sorted(read)}"
