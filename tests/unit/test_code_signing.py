"""Code signing (`codeSigning`, prod): a Signer profile, an enforcing config, and only signed artifacts deployed.

Prod is read from its evaluation (the session's `prod` fixture); the component alone is
evaluated with small archives to show that a code change is re-signed; the layer archive
is built from the installed packages and imported with nothing but the runtime's boto3.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest
from packaging.requirements import Requirement

from fraud_pipeline import defaults, permissions
from fraud_pipeline.code_signing import (
    LAYER_DISTRIBUTIONS,
    RUNTIME_PROVIDED_DISTRIBUTIONS,
    SignedCode,
    archive_digest,
    powertools_layer_archive,
    powertools_version,
    signing_profile_name_prefix,
    unsigned_object_key,
)
from fraud_pipeline.evaluation import REPO_ROOT, Evaluation, evaluate
from fraud_pipeline.functions import PipelineFunction
from fraud_pipeline.plan import settings_of

COMPONENT = "fraud-pipeline:index:SignedCode"
FUNCTION = "aws:lambda/function:Function"
PROFILE = "aws:signer/signingProfile:SigningProfile"
JOB = "aws:signer/signingJob:SigningJob"
CONFIG = "aws:lambda/codeSigningConfig:CodeSigningConfig"
LAYER = "aws:lambda/layerVersion:LayerVersion"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
BUCKET = "aws:s3/bucket:Bucket"
SIGNING_TYPES = (PROFILE, JOB, CONFIG, LAYER)


def _signed(job) -> dict:
    [obj] = job.outputs["signedObjects"]
    [s3] = obj["s3s"]
    return s3


# --- prod: signed code only ----------------------------------------------------------------------

def test_the_profile_signs_for_lambda_with_the_default_validity(prod):
    profile = prod.one(PROFILE)
    assert profile.inputs["platformId"] == defaults.SIGNER_PLATFORM_ID == "AWSLambda-SHA384-ECDSA"
    assert profile.inputs["signatureValidityPeriod"] == {"type": "MONTHS", "value": defaults.SIGNATURE_VALIDITY_MONTHS}
    # Signer names: letters, digits, `_`; a prefix (not a name), since a cancelled name is never usable again
    assert "name" not in profile.inputs
    assert re.fullmatch(r"[A-Za-z0-9_]{2,38}", profile.inputs["namePrefix"])


def test_the_config_enforces_and_trusts_only_the_profile(prod):
    config, profile = prod.one(CONFIG), prod.one(PROFILE)
    assert config.inputs["policies"] == {"untrustedArtifactOnDeployment": "Enforce"}
    assert defaults.CODE_SIGNING_UNTRUSTED_ARTIFACT_ACTION == "Enforce"
    assert config.inputs["allowedPublishers"] == {"signingProfileVersionArns": [profile.outputs["versionArn"]]}


def test_every_function_deploys_the_signed_handlers_under_the_config(prod):
    config = prod.one(CONFIG)
    signed = _signed(prod.one(JOB, "handlers"))
    layer = prod.one(LAYER)
    functions = prod.of_type(FUNCTION)
    assert len(functions) == len(permissions.FUNCTIONS)
    for fn in functions:
        assert fn.inputs["codeSigningConfigArn"] == config.outputs["arn"], fn.name
        assert (fn.inputs["s3Bucket"], fn.inputs["s3Key"]) == (signed["bucket"], signed["key"]), fn.name
        assert not fn.inputs.get("code"), f"{fn.name} uploads an unsigned archive"
        # THEN the only layer is the stack's signed Powertools layer, never AWS's (unsigned by our profile)
        assert fn.inputs["layers"] == [layer.outputs["arn"]], fn.name
        assert not any(defaults.POWERTOOLS_LAYER_ACCOUNT in arn for arn in fn.inputs["layers"])


def test_each_archive_is_uploaded_unsigned_then_signed_by_the_profile(prod):
    bucket = prod.one(BUCKET, "fraud-code")
    versioning = prod.one("aws:s3/bucketVersioning:BucketVersioning", "signing-code")
    key_arn = prod.one("aws:kms/key:Key", "fraud-kms").outputs["arn"]
    profile = prod.one(PROFILE)
    for kind in ("handlers", "powertools-layer"):
        upload, job = prod.one(OBJECT, f"{kind}-unsigned"), prod.one(JOB, f"{kind}-signing")
        assert re.fullmatch(rf"unsigned/{kind}-[0-9a-f]{{16}}\.zip", upload.inputs["key"])
        assert upload.inputs["bucket"] == bucket.outputs["bucket"]
        assert (upload.inputs["serverSideEncryption"], upload.inputs["kmsKeyId"]) == ("aws:kms", key_arn)
        # Signer signs an object version: the upload waits for versioning
        assert versioning.urn in upload.depends_on
        assert job.inputs["source"] == {"s3": {"bucket": bucket.outputs["bucket"], "key": upload.inputs["key"],
                                               "version": upload.outputs["versionId"]}}
        assert job.inputs["destination"] == {"s3": {"bucket": bucket.outputs["bucket"], "prefix": f"signed/{kind}-"}}
        assert job.inputs["profileName"] == profile.outputs["name"]
        assert job.inputs["ignoreSigningJobFailure"] is False
        assert job.replace_on_changes == ["source"]
        assert _signed(job)["key"].startswith(f"signed/{kind}-")


def test_the_layer_is_published_from_the_signed_object(prod):
    layer, signed = prod.one(LAYER), _signed(prod.one(JOB, "powertools-layer"))
    assert (layer.inputs["s3Bucket"], layer.inputs["s3Key"]) == (signed["bucket"], signed["key"])
    assert layer.inputs["compatibleRuntimes"] == [defaults.LAMBDA_RUNTIME]
    assert layer.inputs["compatibleArchitectures"] == [defaults.LAMBDA_ARCHITECTURE]
    assert layer.inputs["layerName"] == "fraud-powertools-prod-f5g6h"
    assert powertools_version() in layer.inputs["description"]


def test_the_code_bucket_is_hardened(prod):
    bucket = prod.one(BUCKET, "fraud-code")
    assert bucket.inputs["bucket"] == "fraud-code-prod-f5g6h" and bucket.inputs["forceDestroy"] is False
    name = bucket.outputs["bucket"]

    def companion(type_: str):
        [found] = [r for r in prod.of_type(type_) if r.inputs.get("bucket") == name]
        return found.inputs

    assert companion("aws:s3/bucketVersioning:BucketVersioning")["versioningConfiguration"] == {"status": "Enabled"}
    [rule] = companion("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": prod.one("aws:kms/key:Key", "fraud-kms").outputs["arn"]}
    assert rule["bucketKeyEnabled"] is True
    assert all(companion("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")[flag] is True for flag in
               ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    [rule] = companion("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]
    # old versions and stale uploads go; current packages stay (a re-created function reads its package again)
    assert rule["status"] == "Enabled" and "expiration" not in rule
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": defaults.S3_NONCURRENT_EXPIRATION_DAYS}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": defaults.S3_ABORT_MULTIPART_DAYS}
    policy = json.loads(companion("aws:s3/bucketPolicy:BucketPolicy")["policy"])
    assert {s["Sid"] for s in policy["Statement"]} >= {"DenyInsecureTransport", "DenyOutdatedTls"}


def test_every_signing_resource_is_a_child_of_the_component(prod):
    component = prod.one(COMPONENT)
    children = prod.children(component.urn)
    assert {r.type for r in children} >= {BUCKET, PROFILE, CONFIG, JOB, OBJECT, LAYER}
    for type_ in SIGNING_TYPES:
        assert all(r.parent == component.urn for r in prod.of_type(type_))
    assert len(prod.of_type(JOB)) == 2 and len(prod.of_type(LAYER)) == 1


def test_without_code_signing_the_functions_ship_the_archive_and_the_aws_layer(stack):
    settings = settings_of(stack.stack)
    if settings.code_signing:
        pytest.skip("prod signs: see the tests above")
    assert not stack.of_type(COMPONENT)
    assert not [r for r in stack.resources if r.type in SIGNING_TYPES]
    assert not [b for b in stack.of_type(BUCKET) if b.inputs["bucket"].startswith("fraud-code-")]
    for fn in stack.of_type(FUNCTION):
        assert isinstance(fn.inputs["code"], pulumi.AssetArchive), fn.name
        assert not fn.inputs.get("s3Bucket") and not fn.inputs.get("codeSigningConfigArn"), fn.name
        assert fn.inputs["layers"] == [defaults.powertools_layer_arn(settings.region)], fn.name


# --- a change is re-signed ------------------------------------------------------------------------

def _component(code: pulumi.Archive) -> Evaluation:
    def program() -> None:
        SignedCode("sc", {"environment": "dev", "environment_suffix": "t1", "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k",
                          "code": code, "layer_code": pulumi.AssetArchive({"python/x.py": pulumi.StringAsset("x = 1\n")}),
                          "force_destroy": True})

    return evaluate("dev", {"aws:region": "us-east-1"}, program=program)


def test_a_code_change_is_a_new_upload_and_a_new_signing_job():
    one = _component(pulumi.AssetArchive({"handlers/a.py": pulumi.StringAsset("A = 1\n")}))
    same = _component(pulumi.AssetArchive({"handlers/a.py": pulumi.StringAsset("A = 1\n")}))
    other = _component(pulumi.AssetArchive({"handlers/a.py": pulumi.StringAsset("A = 2\n")}))
    key = lambda ev: ev.one(OBJECT, "handlers-unsigned").inputs["key"]  # noqa: E731
    source = lambda ev: ev.one(JOB, "handlers-signing").inputs["source"]["s3"]["key"]  # noqa: E731
    assert key(one) == key(same) and source(one) == source(same)
    # THEN the changed code has another key, so the job's source changes and (replace on change) a new job signs it
    assert key(one) != key(other) and source(other) == key(other)
    assert one.one(OBJECT, "layer-unsigned").inputs["key"] == other.one(OBJECT, "layer-unsigned").inputs["key"]
    assert one.one(BUCKET).inputs["forceDestroy"] is True
    component = one.one(COMPONENT)
    assert all(r.parent == component.urn for r in one.resources if r is not component)


def test_the_digest_covers_names_and_contents_not_order(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("A = 1\n")
    base = pulumi.AssetArchive({"a.py": pulumi.FileAsset(str(f)), "b.py": pulumi.StringAsset("B")})
    assert archive_digest(base) == archive_digest(pulumi.AssetArchive({"b.py": pulumi.StringAsset("B"), "a.py": pulumi.StringAsset("A = 1\n")}))
    assert archive_digest(base) != archive_digest(pulumi.AssetArchive({"a.py": pulumi.FileAsset(str(f)), "c.py": pulumi.StringAsset("B")}))
    assert archive_digest(base) != archive_digest(pulumi.AssetArchive({"a.py": pulumi.FileAsset(str(f)), "b.py": pulumi.StringAsset("C")}))
    assert archive_digest(pulumi.FileArchive(str(tmp_path))) == archive_digest(pulumi.AssetArchive({"a.py": pulumi.StringAsset("A = 1\n")}))
    assert re.fullmatch(r"unsigned/k-[0-9a-f]{16}\.zip", unsigned_object_key("k", base))
    with pytest.raises(TypeError):
        archive_digest(pulumi.AssetArchive({"r": pulumi.RemoteAsset("https://example.com/x")}))


def test_profile_prefixes_are_valid_signer_names():
    assert signing_profile_name_prefix("prod", "f5g6h") == "fraud_prod_f5g6h_"
    assert re.fullmatch(r"[A-Za-z0-9_]+", signing_profile_name_prefix("qa", "a-b"))


def test_a_function_cannot_mix_code_sources_or_sign_an_uploaded_archive():
    base = {"environment": "dev", "environment_suffix": "t1", "key": "api", "handler": "handlers.api_handler.handler",
            "memory_mb": 128, "timeout_seconds": 3, "reserved_concurrency": 1, "tracing_enabled": False,
            "log_retention_days": 7, "kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/k",
            "environment_variables": {}, "handler_statements": []}
    archive = pulumi.AssetArchive({"a.py": pulumi.StringAsset("")})
    for bad in ({}, {"code": archive, "s3_code": {"bucket": "b", "key": "k"}},
                {"code": archive, "code_signing_config_arn": "arn:aws:lambda:us-east-1:1:code-signing-config:csc-1"}):
        with pytest.raises(ValueError, match="PipelineFunction"):
            evaluate("dev", {"aws:region": "us-east-1"}, program=lambda bad=bad: PipelineFunction("f", {**base, **bad}))


# --- the layer archive -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def layer() -> pulumi.AssetArchive:
    return powertools_layer_archive()


def test_the_layer_has_powertools_and_its_dependencies_under_python(layer):
    names = set(layer.assets)
    assert all(n.startswith("python/") for n in names)
    for module in ("aws_lambda_powertools/__init__.py", "aws_lambda_powertools/tracing/tracer.py",
                   "aws_lambda_powertools/utilities/batch/__init__.py", "jmespath/__init__.py", "typing_extensions.py",
                   "aws_xray_sdk/__init__.py", "wrapt/__init__.py"):
        assert f"python/{module}" in names, module
    # THEN no caches, no compiled code built for this machine, nothing the runtime already has
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".so", ".pyd", ".dylib"))]
    assert not [n for n in names if n.split("/")[1].split("-")[0] in ("boto3", "botocore", "s3transfer", "urllib3", "dateutil")]
    assert not [n for n in names if n.endswith(("/RECORD", "/INSTALLER", "/direct_url.json"))]
    assert all(isinstance(a, pulumi.FileAsset) and Path(a.path).is_file() for a in layer.assets.values())


def _runtime_closure() -> set[str]:
    """Powertools' requirements with the `tracer` extra, transitively, minus what the runtime provides."""
    def norm(name: str) -> str:
        return name.lower().replace("_", "-")

    provided = {norm(n) for n in RUNTIME_PROVIDED_DISTRIBUTIONS}
    seen: set[str] = set()
    pending = [("aws-lambda-powertools", {"tracer"})]
    while pending:
        name, extras = pending.pop()
        if norm(name) in seen or norm(name) in provided:
            continue
        seen.add(norm(name))
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
                pending.append((req.name, set(req.extras)))
    return seen


def test_the_shipped_distributions_are_exactly_what_powertools_needs_at_runtime():
    assert {d.lower() for d in LAYER_DISTRIBUTIONS} == _runtime_closure()


def test_the_installed_powertools_is_the_v3_line_of_the_aws_layer():
    # The AWS layer (dev, staging) is version POWERTOOLS_LAYER_VERSION of AWSLambdaPowertoolsPythonV3; the signed
    # layer (prod) carries the installed package: same major version, so the handlers see the same API.
    assert powertools_version().split(".")[0] == "3"
    assert "PythonV3" in defaults.powertools_layer_arn("us-east-1")


def test_the_layer_alone_runs_the_handlers_with_the_runtimes_boto3(layer, tmp_path):
    """GIVEN the layer unpacked as Lambda mounts it (/opt/python) and a 'runtime' with boto3 and its dependencies only
    WHEN a fresh interpreter without site-packages imports every handler and starts Powertools' Tracer
    THEN nothing is missing (and wrapt runs on its pure-Python implementation)."""
    opt = tmp_path / "opt"
    for name, asset in layer.assets.items():
        target = opt / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(asset.path, target)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    site = Path(importlib.metadata.distribution("boto3").locate_file(""))
    for module in ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six.py"):
        (runtime / module).symlink_to(site / module)
    handlers = sorted(p.stem for p in (REPO_ROOT / "handlers").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        f"sys.path[:0] = [{str(opt / 'python')!r}, {str(runtime)!r}, {str(REPO_ROOT)!r}]\n"
        "import importlib\n"
        f"for m in {handlers!r}: importlib.import_module('handlers.' + m)\n"
        "from aws_lambda_powertools import Tracer\n"
        "Tracer(service='layer-check')\n"
        "import wrapt.__wrapt__ as w, aws_lambda_powertools as p\n"
        f"assert p.__file__.startswith({str(opt)!r}), p.__file__\n"
        "print('c-extension' if w._using_c_extension else 'pure-python')\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "AWS_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": "layer-check",
           "POWERTOOLS_TRACE_DISABLED": "false", "POWERTOOLS_SERVICE_NAME": "layer-check"}
    result = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "pure-python"
