"""Alarms reach someone: every alarm has an action, and the topics it publishes to have subscribers.

An alarm that publishes to a topic nobody subscribed to changes state in the console
and tells no one: for an on-call team that is the same as having no alarm.
"""

from __future__ import annotations

from . import resource_policies as rp
from .requirements import STRICTEST, Requirements
from .stack_policies import StackResource, Violation, _of, _who, identifiers
from .values import as_list, is_unknown

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"


def _alarm_topics(alarm: StackResource, topics: list[StackResource]) -> tuple[list[StackResource], bool]:
    """The stack's topics among the alarm's actions, and whether some action cannot be known yet."""
    actions = as_list(alarm.props.get("alarmActions"))
    found = [t for t in topics if identifiers(t) & {a for a in actions if isinstance(a, str)}]
    deps = alarm.property_dependencies.get("alarmActions", ())
    found += [t for t in topics if t.urn in deps and t not in found]
    unknowable = any(is_unknown(a) for a in actions) and not found
    return found, unknowable


def _subscribed(topic: StackResource, subscriptions: list[StackResource]) -> bool | None:
    """True if a subscription of the stack names the topic; None when that cannot be known at preview."""
    names = identifiers(topic)
    unknowable = False
    for s in subscriptions:
        ref = s.props.get("topic")
        if isinstance(ref, str) and not is_unknown(ref) and ref in names:
            return True
        if topic.urn in s.property_dependencies.get("topic", ()):
            return True
        if is_unknown(ref) or not names:
            unknowable = True
    return None if unknowable else False


def alarm_topic_has_subscriber(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    if not req.alarm_subscribers:
        return []
    out: list[Violation] = []
    topics = _of(resources, rp.TOPIC)
    subscriptions = _of(resources, SUBSCRIPTION)
    checked: set[str] = set()
    for alarm in _of(resources, ALARM):
        actions = alarm.props.get("alarmActions")
        if not is_unknown(actions) and not as_list(actions):
            out.append(Violation(f"{_who(alarm)}: has no alarm action, so its state changes tell no one. Fix: set "
                                 "alarmActions to the ops topic (fraud_pipeline/monitoring.py).", alarm.urn))
            continue
        found, _ = _alarm_topics(alarm, topics)
        for topic in found:
            if topic.urn in checked:
                continue
            checked.add(topic.urn)
            if _subscribed(topic, subscriptions) is False:
                out.append(Violation(
                    f"{_who(topic)}: alarms publish to this topic but it has no subscription, so no one is told. "
                    "Fix: set opsEmailSubscribers, opsSmsSubscribers or opsHttpsSubscribers in the stack file.",
                    topic.urn))
    return out
