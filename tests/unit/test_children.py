"""FraudPipeline's children are reachable, and a team can adjust one with a transform; the pack refuses an unsafe one.

Like AWS Solutions Constructs, the component exposes what it built (typed attributes), and
like any Pulumi component it takes `ResourceOptions(transforms=[...])`, which the engine
applies to every descendant. The mock engine runs transforms the way the engine does
(fraud_pipeline/evaluation.py RecordingMonitor), so these tests see their effect.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import mocks as pulumi_mocks

from fraud_pipeline import FraudPipeline, FraudPipelineArgs
from fraud_pipeline.alerts import AlertTopics
from fraud_pipeline.archive import ArchiveBucket
from fraud_pipeline.evaluation import evaluate
from fraud_pipeline.functions import PipelineFunction
from fraud_pipeline.plan import settings_of

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "policy"))
import fraud_policies as fp  # noqa: E402


def run_with(transforms=None, stack: str = "prod"):
    """Evaluate a program that builds prod's pipeline, optionally with transforms on it; returns (evaluation, pipeline)."""
    built: dict = {}
    settings = settings_of(stack)

    def program() -> None:
        built["pipeline"] = FraudPipeline("fraud", FraudPipelineArgs(settings=settings),
                                          pulumi.ResourceOptions(transforms=transforms or []))

    return evaluate(stack, {"aws:region": settings.region}, program=program), built["pipeline"]


def test_children_are_typed_attributes():
    ev, pipeline = run_with()
    assert isinstance(pipeline.archive, ArchiveBucket) and isinstance(pipeline.topics, AlertTopics)
    assert set(pipeline.functions) == {"api", "ingest", "detection", "notification", "review", "label", "label-ingest"}
    assert all(isinstance(f, PipelineFunction) for f in pipeline.functions.values())
    assert pipeline.network is not None and pipeline.signing is not None  # prod has both
    # a child's own resources are reachable too (here: the archive's bucket resource)
    bucket = ev.one("aws:s3/bucket:Bucket", "fraud-archive-bucket")
    assert pipeline.archive.bucket.__class__.__name__ == "Bucket" and bucket.inputs["bucket"].startswith("fraud-archive-")


def add_cost_center(args: pulumi.ResourceTransformArgs):
    """The README's example: a team's tag on every taggable resource of the pipeline."""
    if args.custom and isinstance(args.props.get("tags"), dict):
        return pulumi.ResourceTransformResult(props={**args.props, "tags": {**args.props["tags"], "cost-center": "cc-4711"}},
                                              opts=args.opts)
    return None


def drop_queue_encryption(args: pulumi.ResourceTransformArgs):
    """An unsafe change: SQS queues without the customer-managed key."""
    if args.type_ == "aws:sqs/queue:Queue":
        props = {k: v for k, v in args.props.items() if k != "kmsMasterKeyId"}
        return pulumi.ResourceTransformResult(props=props, opts=args.opts)
    return None


def violations(ev, policy: str) -> list[str]:
    return [m for r in ev.custom_resources()
            for m in fp.check_resource(policy, r.type, r.inputs, r.name, r.urn)]


def test_a_transform_reaches_every_descendant_and_the_pack_still_passes():
    ev, _ = run_with([add_cost_center])
    tagged = [r for r in ev.custom_resources() if "tags" in r.inputs]
    assert tagged and all(r.inputs["tags"].get("cost-center") == "cc-4711" for r in tagged)
    assert violations(ev, "encryption-at-rest-cmk") == []


def test_the_policy_pack_refuses_an_unsafe_transform():
    ev, _ = run_with([drop_queue_encryption])
    found = violations(ev, "encryption-at-rest-cmk")
    queues = ev.of_type("aws:sqs/queue:Queue")
    assert queues and len(found) == len(queues)
    assert all("kmsMasterKeyId" in m for m in found)


def test_the_private_mock_api_the_transform_emulation_uses_is_still_there():
    # fraud_pipeline/evaluation.py runs transforms through these private helpers of the SDK's mocks
    assert callable(getattr(pulumi_mocks, "_resolve_callbacks", None)), "pulumi.runtime.mocks._resolve_callbacks is gone"
    assert callable(getattr(pulumi_mocks, "_sync_await", None)), "pulumi.runtime.mocks._sync_await is gone"


@pytest.mark.parametrize("stack", ["dev"])
def test_without_transforms_nothing_changes(stack):
    ev, _ = run_with(stack=stack)
    assert len(list(ev.custom_resources())) == len(list(evaluate(stack).custom_resources()))
