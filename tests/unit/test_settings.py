"""Stack settings: every rule of a bad stack file is reported with stack, key, value and rule."""

import dataclasses
import re
from pathlib import Path

import pytest

from fraud_pipeline.evaluation import known_stacks
from fraud_pipeline.plan import reference, settings_of
from fraud_pipeline.settings import LOG_RETENTION_DAYS, PipelineSettings, SettingsError, setting_fields

REPO = Path(__file__).resolve().parents[2]
MINIMAL = {"environmentSuffix": "t1", "aws:region": "us-east-1"}


def problems_of(stack: str, values: dict) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        PipelineSettings.from_config(stack, values)
    assert caught.value.stack == stack
    assert f"stack '{stack}'" in str(caught.value)
    return caught.value.problems


def test_design_values_per_environment():
    # GIVEN the three stack files WHEN they are loaded THEN each environment's required values hold
    expected = {
        "dev": ("us-east-1", 1, 512, 5, 5, 10, 7, False, False),
        "staging": ("us-west-2", 2, 1024, 10, 10, 5, 14, True, True),
        "prod": ("us-east-1", 4, 2048, 25, 25, 2, 30, True, True),
    }
    assert sorted(known_stacks()) == sorted(expected)
    for stack, values in expected.items():
        s = settings_of(stack)
        got = (s.region, s.kinesis_shard_count, s.processing_memory_mb, s.dynamodb_read_capacity,
               s.dynamodb_write_capacity, s.error_rate_threshold_percent, s.log_retention_days,
               s.tracing_enabled, s.point_in_time_recovery)
        assert got == values, stack
        assert s.environment == stack
        assert s.dynamodb_billing_mode == "PROVISIONED"
        assert s.api_throttle_rate == 1000 and s.api_throttle_burst == 1000
        assert s.alert_visibility_timeout_seconds == 360
        assert s.dlq_retention_seconds == 14 * 24 * 3600 > s.alert_retention_seconds


def test_network_on_in_staging_and_prod_and_prod_protected():
    assert settings_of("staging").network_enabled and settings_of("prod").network_enabled
    prod = settings_of("prod")
    assert prod.deletion_protection and prod.kinesis_retention_hours >= 168
    assert not settings_of("dev").deletion_protection


def test_unknown_key_names_stack_key_and_value():
    problems = problems_of("dev", {**MINIMAL, "kinesisShards": 2})
    assert problems == ["kinesisShards = 2: unknown key (known keys: see README 'Configuration reference')"]


def test_missing_required_key():
    problems = problems_of("prod", {"aws:region": "us-east-1"})
    assert problems == ["environmentSuffix: missing key (required)"]


@pytest.mark.parametrize("key, value, message", [
    ("kinesisShardCount", "two", "kinesisShardCount = 'two': wrong type: expected a whole number"),
    ("kinesisShardCount", True, "kinesisShardCount = True: wrong type: expected a whole number"),
    ("tracingEnabled", "yes", "tracingEnabled = 'yes': wrong type: expected true or false"),
    ("errorRateThresholdPercent", "nan", "errorRateThresholdPercent = 'nan': wrong type: expected a finite number"),
    ("alertEmailSubscribers", '{"a": 1}', "alertEmailSubscribers = '{\"a\": 1}': wrong type: expected a list of strings"),
])
def test_wrong_type(key, value, message):
    assert problems_of("dev", {**MINIMAL, key: value}) == [message]


@pytest.mark.parametrize("key, value, message", [
    ("kinesisShardCount", "0", "kinesisShardCount = 0: out of range: must be 1 to 500"),
    ("processingMemoryMb", 64, "processingMemoryMb = 64: out of range: must be 128 to 10240"),
    ("logRetentionDays", 8, "logRetentionDays = 8: out of range: must be one of 1, 3, 5, 7, 14, 30"),
    ("dynamodbBillingMode", "ON_DEMAND", "dynamodbBillingMode = 'ON_DEMAND': out of range: must be one of PROVISIONED, PAY_PER_REQUEST"),
    ("environmentSuffix", "Has_Caps", "environmentSuffix = 'Has_Caps': invalid: must be 1-8 lowercase letters and digits"),
    ("aws:region", "mars-1", "aws:region = 'mars-1': invalid: must be an AWS region name such as us-east-1"),
    ("alertSmsSubscribers", '["555-0100"]', "alertSmsSubscribers = ['555-0100']: invalid item(s) ['555-0100']: must be E.164"),
    ("apiTimeoutSeconds", 30, "apiTimeoutSeconds = 30: out of range: must be 1 to 29"),
])
def test_out_of_range(key, value, message):
    problems = problems_of("dev", {**MINIMAL, key: value})
    assert len(problems) == 1 and problems[0].startswith(message), problems


@pytest.mark.parametrize("changes, message", [
    ({"dlqRetentionSeconds": 3600, "alertRetentionSeconds": 7200}, "dlqRetentionSeconds = 3600: must be longer than alertRetentionSeconds (7200)"),
    ({"alertVisibilityTimeoutSeconds": 100}, "alertVisibilityTimeoutSeconds = 100: must be at least 6 x supportTimeoutSeconds (360)"),
    ({"dynamodbMaxWriteCapacity": 3}, "dynamodbMaxWriteCapacity = 3: must be at least dynamodbWriteCapacity (5)"),
    ({"reviewScore": 80}, "reviewScore = 80: must be below blockScore (70)"),
])
def test_cross_field_rules(changes, message):
    problems = problems_of("staging", {**MINIMAL, **changes})
    assert any(p.startswith(message) for p in problems), problems


def test_every_problem_reported_at_once():
    problems = problems_of("dev", {"aws:region": "us-east-1", "bogus": 1, "kinesisShardCount": "x"})
    assert len(problems) == 3


def test_string_config_values_parse_like_pulumi_passes_them():
    s = PipelineSettings.from_config("dev", {**MINIMAL, "kinesisShardCount": "3", "tracingEnabled": "true",
                                             "errorRateThresholdPercent": "2.5",
                                             "highRiskCountries": '["Nigeria", "Iran"]'})
    assert (s.kinesis_shard_count, s.tracing_enabled, s.error_rate_threshold_percent) == (3, True, 2.5)
    assert s.high_risk_countries == ("Nigeria", "Iran")


def test_typed_construction_is_validated_too():
    with pytest.raises(SettingsError, match="kinesisShardCount = 0"):
        PipelineSettings(environment="dev", environment_suffix="x1", region="us-east-1", kinesis_shard_count=0)


def test_rules_json_carries_rule_settings():
    s = PipelineSettings(environment="dev", environment_suffix="x1", region="us-east-1",
                         blocked_merchants=("Bad Shop",), high_amount_threshold=20000)
    rules = s.rules()
    assert rules["blocked_merchants"] == ["Bad Shop"] and rules["high_amount"] == 20000


def test_log_retention_choices_match_cloudwatch():
    assert LOG_RETENTION_DAYS[:6] == (1, 3, 5, 7, 14, 30) and 3653 in LOG_RETENTION_DAYS


def test_readme_configuration_reference_is_current():
    # GIVEN the README WHEN its configuration reference is compared with the settings THEN they agree
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- config-reference:start -->\n", 1)[1].split("<!-- config-reference:end -->", 1)[0]
    assert table.strip() == reference().strip(), "regenerate with: python -m fraud_pipeline.plan --reference"
    for f in setting_fields():
        if f.metadata["key"] != "environment":
            assert re.search(rf"`{re.escape(f.metadata['key'])}`", table), f.metadata["key"]


def test_every_setting_has_unit_doc_and_rule():
    for f in setting_fields():
        assert f.metadata["doc"] and f.metadata["unit"], f.name
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING or f.metadata["required"]


# --- production hardening ----------------------------------------------------------------

def test_hardening_values_per_environment():
    # GIVEN the three stack files WHEN loaded THEN the security review's controls are set where required
    dev, staging, prod = (settings_of(s) for s in ("dev", "staging", "prod"))
    for s in (staging, prod):
        assert s.ops_email_subscribers and s.ops_sms_subscribers and s.ops_https_subscribers
        assert s.archive_access_logging and s.network_enabled and s.waf_count_mode_rule_groups == ()
    assert prod.audit_log_retention_days >= 365 and prod.transaction_retention_days >= 540
    assert prod.code_signing and prod.archive_replication_region == "us-west-2" != prod.region
    assert not staging.code_signing and staging.archive_replication_region == ""
    assert set(dev.waf_count_mode_rule_groups) == {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                                                   "AWSManagedRulesAmazonIpReputationList"}
    assert not dev.archive_access_logging and not dev.code_signing and dev.ops_email_subscribers == ()
    # the WAF's per-key limit is the usage plan's promise over its 5-minute window
    assert prod.waf_api_key_rate_limit == prod.api_throttle_rate * 300


@pytest.mark.parametrize("key, value, fragment", [
    ("opsEmailSubscribers", ["oncall(at)bank"], "e-mail addresses"),
    ("opsSmsSubscribers", ["5555550100"], "E.164"),
    ("opsHttpsSubscribers", ["http://pager.example.com/hook"], "https:// URLs"),
    ("wafCountModeRuleGroups", ["AWSManagedRulesSQLiRuleSet"], "names among AWSManagedRulesAmazonIpReputationList"),
    ("archiveReplicationRegion", "us-east", "empty or an AWS region name"),
    ("archiveReplicationRegion", "us-east-1", "must be another region than the stack's (us-east-1)"),
    ("auditLogRetentionDays", 10, "out of range"),
    ("auditLogRetentionDays", 3, "must be at least logRetentionDays (7)"),
    ("transactionRetentionDays", -1, "0 to 3650"),
])
def test_hardening_settings_reject_bad_values_naming_key_and_rule(key, value, fragment):
    problems = problems_of("prod", {**MINIMAL, key: value})
    assert len(problems) == 1 and problems[0].startswith(f"{key} = ") and fragment in problems[0], problems


def test_zero_transaction_retention_means_never_and_is_accepted():
    assert PipelineSettings.from_config("x", {**MINIMAL, "transactionRetentionDays": "0"}).transaction_retention_days == 0


def test_the_old_inert_ttl_key_is_refused():
    # transactionTtlDays was accepted and never used; a stack file that still sets it is told so
    (problem,) = problems_of("prod", {**MINIMAL, "transactionTtlDays": 90})
    assert problem.startswith("transactionTtlDays = 90: unknown key")
