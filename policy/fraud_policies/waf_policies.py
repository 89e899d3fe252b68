"""WAF controls: managed rule groups that block, a rate limit keyed on the API key, logs without the key.

The pack is standalone (it cannot import `fraud_pipeline`), so the names it checks are
restated here: they are AWS's names (managed rule groups, the API Gateway key header,
WAF's log-group prefix) and the one exception the program justifies, each mirrored from
`fraud_pipeline/defaults.py` and `fraud_pipeline/api.py`.

The web ACL's rules are read from its inline `rules` (camelCase), or from `ruleJson` (AWS's
PascalCase JSON, which the first letter lowered turns into the same shape), so moving the
rules to JSON does not hide them. Rules declared as separate `aws.wafv2.WebAclRule`
resources are not seen: the program keeps them inline so one resource shows the whole ACL.
"""

from __future__ import annotations

from typing import Any

from . import resource_policies as rp
from .requirements import STRICTEST, Requirements
from .stack_policies import StackResource, Violation, _known, _of, _who, linked
from .values import as_list, fmt, get, is_unknown, label, num, parse_json

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"

#: AWS's managed rule groups every web ACL runs (fraud_pipeline/defaults.py WAF_MANAGED_RULE_GROUPS).
MANAGED_VENDOR = "AWS"
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesCommonRuleSet",
)
#: Rules inside a group that may count where the group must block, each justified in fraud_pipeline/api.py
#: WAF_RULE_COUNT_OVERRIDES (server-to-server clients often send no User-Agent). Any other override to
#: count (or allow) turns part of a blocking group off, and is reported.
JUSTIFIED_COUNT_OVERRIDES = {"AWSManagedRulesCommonRuleSet": frozenset({"NoUserAgent_HEADER"})}
#: The header API Gateway reads the API key from (fraud_pipeline/defaults.py API_KEY_HEADER).
API_KEY_HEADER = "x-api-key"
#: WAF delivers to CloudWatch Logs only into groups named so (fraud_pipeline/defaults.py WAF_LOG_GROUP_PREFIX).
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"
#: A rate-based rule's window when none is set (seconds).
DEFAULT_WINDOW_SECONDS = 300.0


# --- reading a web ACL's rules ---------------------------------------------------------

def _camel(value: Any) -> Any:
    """AWS's PascalCase JSON (`ruleJson`) in the provider's camelCase: first letter of every key lowered."""
    if isinstance(value, dict):
        return {(k[:1].lower() + k[1:] if isinstance(k, str) else k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def acl_rules(resource_type: str, props: dict) -> list[dict] | None:
    """A web ACL's rules (camelCase dicts, [] when it declares none); None when there is nothing to check:
    not a web ACL, or rules still unknown at preview."""
    if resource_type != WEB_ACL:
        return None
    rules = get(props, "rules")
    if is_unknown(rules):
        return None
    if rules:
        return [r for r in as_list(rules) if isinstance(r, dict)]
    raw = parse_json(get(props, "ruleJson"))
    if is_unknown(raw):
        return None
    return [r for r in as_list(_camel(raw)) if isinstance(r, dict)] if raw else []


def _managed(rule: dict) -> dict | None:
    statement = get(rule, "statement", "managedRuleGroupStatement")
    return statement if isinstance(statement, dict) else None


def _counts(action: Any) -> bool:
    """An override action or `actionToUse` that lets matching requests through (count or allow)."""
    return isinstance(action, dict) and any(k in action for k in ("count", "allow"))


def _blocks(rule: dict) -> bool | None:
    """Whether a rule's own action blocks (None: unknown at preview)."""
    action = get(rule, "action")
    if is_unknown(action):
        return None
    return isinstance(action, dict) and "block" in action


def _rate(rule: dict) -> dict | None:
    statement = get(rule, "statement", "rateBasedStatement")
    return statement if isinstance(statement, dict) else None


def _is_api_key_header(name: Any) -> bool:
    return isinstance(name, str) and name.lower() == API_KEY_HEADER


def _key_present(statement: Any) -> bool:
    """A statement that matches exactly the requests carrying the API-key header with a value."""
    size = get(statement, "sizeConstraintStatement")
    if not isinstance(size, dict) or not _is_api_key_header(get(size, "fieldToMatch", "singleHeader", "name")):
        return False
    op, n = get(size, "comparisonOperator"), num(get(size, "size"))
    return (op == "GT" and n == 0) or (op == "GE" and n == 1)


def _scope(rate: dict) -> str:
    """Which requests an IP rate rule counts: "unkeyed", "keyed", "all" or "other" (narrowed some other way)."""
    scope = get(rate, "scopeDownStatement")
    if scope is None:
        return "all"
    if _key_present(get(scope, "notStatement", "statement")):
        return "unkeyed"
    if _key_present(scope):
        return "keyed"
    return "other"


def _per_second(rate: dict) -> float | None:
    limit = num(get(rate, "limit"))
    window = get(rate, "evaluationWindowSec")
    seconds = DEFAULT_WINDOW_SECONDS if window is None else num(window)
    if limit is None or not seconds:
        return None
    return limit / seconds


# --- the policies ------------------------------------------------------------------------

def waf_managed_rules_block(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    """The web ACL runs the three AWS groups; where the stack requires it, each blocks (no count override).

    Every stack must run the groups (dev may watch them in count mode); `waf_managed_rules_block`
    requires the group's override action to be `none` and no rule inside it switched to count,
    except the justified `JUSTIFIED_COUNT_OVERRIDES`.
    """
    rules = acl_rules(resource_type, props)
    if rules is None:
        return []
    who = label(resource_type, name, props)
    by_group: dict[str, dict] = {}
    for rule in rules:
        statement = _managed(rule)
        if statement and get(statement, "vendorName") == MANAGED_VENDOR and isinstance(get(statement, "name"), str):
            by_group.setdefault(get(statement, "name"), rule)
    out: list[str] = []
    missing = [g for g in MANAGED_RULE_GROUPS if g not in by_group]
    if missing:
        out.append(f"{who}: does not run AWS's managed rule group(s) {', '.join(missing)}. Fix: add a rule with "
                   "managedRuleGroupStatement {vendorName: \"AWS\", name: <group>} for each (fraud_pipeline/api.py "
                   "waf_rules).")
    if not req.waf_managed_rules_block:
        return out
    for group in MANAGED_RULE_GROUPS:
        member = by_group.get(group)
        if member is None:
            continue
        override = get(member, "overrideAction")
        if not is_unknown(override) and _counts(override):
            out.append(f"{who}: {group} only counts (overrideAction count), but the {req.environment} stack "
                       "requires AWS's managed rules to block. Fix: remove the group from wafCountModeRuleGroups "
                       "(overrideAction none).")
        overrides = get(_managed(member), "ruleActionOverrides")
        if is_unknown(overrides):
            continue
        allowed = JUSTIFIED_COUNT_OVERRIDES.get(group, frozenset())
        switched = sorted(str(get(o, "name")) for o in as_list(overrides)
                          if isinstance(o, dict) and _counts(get(o, "actionToUse")) and get(o, "name") not in allowed)
        if switched:
            out.append(f"{who}: {group} has rule(s) {', '.join(switched)} overridden to count, so they no longer "
                       f"block in {req.environment}. Fix: drop those ruleActionOverrides (only "
                       f"{', '.join(sorted(allowed)) or 'none'} may count, see fraud_pipeline/api.py "
                       "WAF_RULE_COUNT_OVERRIDES).")
    return out


def waf_rate_limit_per_api_key(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    """Each client is limited by its API key, unkeyed requests per IP, and no IP rule caps keyed clients lower.

    * a blocking rate-based rule with aggregateKeyType CUSTOM_KEYS whose only key is the `x-api-key`
      header (another key beside it would make the limit per combination, e.g. per key and IP);
    * a blocking rate-based rule per IP scoped to requests *without* the header (NOT size > 0);
    * no blocking per-IP rule that also counts keyed requests with a lower rate than the per-key rule:
      that is the limit that blocked a processor sending from a few addresses.
    """
    rules = acl_rules(resource_type, props)
    if rules is None:
        return []
    who = label(resource_type, name, props)
    rates = [(r, s) for r in rules if (s := _rate(r)) is not None]
    if any(_blocks(r) is None or is_unknown(get(s, "aggregateKeyType")) for r, s in rates):
        return []
    blocking = [(r, s) for r, s in rates if _blocks(r)]
    out: list[str] = []

    per_key: list[tuple[dict, dict]] = []   # (rule, its rate-based statement)
    combined: list[tuple[dict, dict]] = []
    for rule, s in blocking:
        if get(s, "aggregateKeyType") != "CUSTOM_KEYS":
            continue
        keys = get(s, "customKeys")
        if is_unknown(keys):
            return []
        keys = [k for k in as_list(keys) if isinstance(k, dict)]
        if not any(_is_api_key_header(get(k, "header", "name")) for k in keys):
            continue
        (per_key if len(keys) == 1 else combined).append((rule, s))
    if not per_key:
        extra = ""
        if combined:
            extra = (f" (rule {get(combined[0][0], 'name')!r} aggregates the header together with other keys, so "
                     "its limit applies per combination, not per key)")
        out.append(f"{who}: no blocking rate-based rule limits each API key{extra}. Fix: add a rate-based rule "
                   "with aggregateKeyType CUSTOM_KEYS and customKeys [{header: {name: \"x-api-key\", "
                   "textTransformations: [{priority: 0, type: NONE}]}}], limit = the usage plan's rate x the "
                   "window (fraud_pipeline/api.py waf_rules).")

    per_ip = [(r, s) for r, s in blocking if get(s, "aggregateKeyType") in ("IP", "FORWARDED_IP")]
    if not any(_scope(s) == "unkeyed" for _, s in per_ip):
        out.append(f"{who}: no blocking per-IP rate limit for requests without an API key. Fix: add a rate-based "
                   "rule with aggregateKeyType IP and scopeDownStatement {notStatement: {statement: "
                   "{sizeConstraintStatement: {fieldToMatch: {singleHeader: {name: \"x-api-key\"}}, "
                   "comparisonOperator: GT, size: 0}}}} (stack setting wafRateLimit).")

    key_rates = [x for _, s in per_key if (x := _per_second(s)) is not None]
    if key_rates:
        floor = max(key_rates)
        for rule, s in per_ip:
            rate = _per_second(s)
            if _scope(s) in ("all", "keyed") and rate is not None and rate < floor:
                out.append(f"{who}: rule {get(rule, 'name')!r} blocks an IP above {fmt(get(s, 'limit'))} requests "
                           f"per window ({rate:.3g} req/s) including requests with an API key, below the per-key "
                           f"limit ({floor:.3g} req/s): a client sending from a few addresses is blocked before its "
                           "usage plan's rate. Fix: scope the IP rule to requests without an x-api-key, or raise "
                           "its limit to at least the per-key limit.")
    return out


def _destination_problem(dest: Any) -> str | None:
    """What is wrong with a logging destination that is not a log group of the stack, or None."""
    if not isinstance(dest, str):
        return "is not a log group ARN"
    if ":log-group:" not in dest:
        return "is not a CloudWatch Logs log group (its encryption cannot be checked here)"
    if dest.endswith(":*"):
        return "ends with ':*', which WAF refuses (it wants the log group ARN itself)"
    return None


def _redacts_api_key(config: StackResource) -> bool | None:
    fields = config.props.get("redactedFields")
    if is_unknown(fields):
        return None
    return any(_is_api_key_header(get(f, "singleHeader", "name")) for f in as_list(fields) if isinstance(f, dict))


def _drops_requests(config: StackResource) -> bool:
    """A logging filter that leaves requests out of the audit log."""
    flt = config.props.get("loggingFilter")
    if not isinstance(flt, dict):
        return False
    return get(flt, "defaultBehavior") == "DROP" or any(
        get(f, "behavior") == "DROP" for f in as_list(get(flt, "filters")) if isinstance(f, dict))


def waf_logging_redacts_api_key(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    """Every web ACL logs every request to a CMK-encrypted `aws-waf-logs-` log group of the stack, key redacted.

    The log group's retention is `audit-log-retention`'s (the prefix makes it an audit log), and whether
    its key is the stack's own is `encryption-uses-stack-key`'s; here the group must exist in the stack
    and name a customer-managed key.
    """
    configs = _of(resources, WAF_LOGGING)
    groups = _of(resources, rp.LOG_GROUP)
    out: list[Violation] = []
    for acl in _of(resources, WEB_ACL):
        found: list[StackResource] = []
        unknowable = False
        for config in configs:
            mine, unsure = linked(config, "resourceArn", config.props.get("resourceArn"), [acl])
            if mine:
                found.append(config)
            unknowable = unknowable or unsure
        if not found:
            if not unknowable:
                out.append(Violation(f"{_who(acl)}: requests through this web ACL are not logged. Fix: declare an "
                                     "aws.wafv2.WebAclLoggingConfiguration with resourceArn = the ACL's arn, an "
                                     f"{WAF_LOG_GROUP_PREFIX}* log group and redactedFields [{{singleHeader: {{name: "
                                     f"\"{API_KEY_HEADER}\"}}}}].", acl.urn))
            continue
        for config in found:
            out += _check_logging(config, groups)
    return out


def _check_logging(config: StackResource, groups: list[StackResource]) -> list[Violation]:
    out: list[Violation] = []
    who = _who(config)
    if _redacts_api_key(config) is False:
        out.append(Violation(f"{who}: the {API_KEY_HEADER} header is written to the WAF log in clear, and a logged "
                             "API key is a usable key. Fix: set redactedFields = [{singleHeader: {name: "
                             f"\"{API_KEY_HEADER}\"}}].", config.urn))
    if _drops_requests(config):
        out.append(Violation(f"{who}: its loggingFilter drops requests from an audit log. Fix: remove the "
                             "loggingFilter so every request is logged.", config.urn))
    destinations = config.props.get("logDestinationConfigs")
    if is_unknown(destinations):
        return out
    destinations = as_list(destinations)
    if not destinations:
        out.append(Violation(f"{who}: has no log destination. Fix: set logDestinationConfigs = [<{WAF_LOG_GROUP_PREFIX}* "
                             "log group ARN>].", config.urn))
    for dest in destinations:
        if is_unknown(dest):
            matches, unknowable = linked(config, "logDestinationConfigs", dest, groups)
        else:
            problem = _destination_problem(dest)
            if problem:
                out.append(Violation(f"{who}: destination {dest!r} {problem}. Fix: log to an "
                                     f"{WAF_LOG_GROUP_PREFIX}* log group of this stack encrypted with the stack's "
                                     "key, by its arn output.", config.urn))
                continue
            matches, unknowable = linked(config, "logDestinationConfigs", dest, groups)
        if not matches:
            if not unknowable and _known(dest):
                out.append(Violation(f"{who}: destination {dest!r} is not a log group of this stack, so its "
                                     "encryption and retention are not managed. Fix: declare the "
                                     f"{WAF_LOG_GROUP_PREFIX}* log group in the stack with kmsKeyId = the stack's key.",
                                     config.urn))
            continue
        for group in matches:
            group_name = group.props.get("name")
            if _known(group_name) and not group_name.startswith(WAF_LOG_GROUP_PREFIX):
                out.append(Violation(f"{_who(group)}: WAF delivers only to log groups named {WAF_LOG_GROUP_PREFIX}*. "
                                     f"Fix: rename it {WAF_LOG_GROUP_PREFIX}<name>.", group.urn))
            key = group.props.get("kmsKeyId")
            if not is_unknown(key) and (not isinstance(key, str) or not key.strip() or "alias/aws/" in key):
                out.append(Violation(f"{_who(group)}: the WAF log group is not encrypted with the customer-managed "
                                     "key. Fix: set kmsKeyId to the pipeline's key ARN (KmsKeys.key.arn).", group.urn))
    return out
