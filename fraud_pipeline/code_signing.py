"""SignedCode: the handlers and the Powertools layer as artifacts an AWS Signer profile signed.

With `codeSigning` on, every function carries a code signing config that *enforces*
one Signer profile: Lambda checks the signature of the function's package and of
each of its layers at every deployment, and refuses anything the profile did not
sign. So the stack signs both itself, in this order:

1. Each archive is uploaded to `unsigned/<kind>-<digest>.zip` in a hardened code
   bucket (versioned, since Signer signs one object *version*; SSE-KMS under the
   stack key). The digest is the SHA-256 of the archive's file names and contents,
   so a code change is a new key, hence a new object version, hence a new signing
   job (a job's source cannot change in place): a change is re-signed, never
   silently deployed under an old signature, and a `pulumi preview` shows it.
2. A signing job signs that version into `signed/<kind>-<job id>.zip`.
3. The functions deploy the signed handlers object; the signed layer object is
   published as a layer version of this stack.

Why our own Powertools layer: AWS's published layer is signed by AWS, not by this
profile, and an enforcing config would reject every function that lists it. The
layer is built from the `aws_lambda_powertools` package installed where the program
runs (`powertools_layer_archive`), with the pure-Python dependencies it needs in
Lambda, whose runtime already has boto3 and botocore.

Signer reads the source and writes the signed object with the caller's (the
deployer's) S3 permissions, and S3 calls KMS for it, so the key policy's
`kms:ViaService = s3` grant to account principals covers the SSE-KMS objects, as
it covers Lambda reading the package when it creates a function or a layer version.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import NotRequired

import pulumi
import pulumi_aws as aws

from . import buckets, defaults
from .naming import ComponentArgs, Namer

#: Prefixes of the code bucket: what Pulumi uploads, and what Signer writes.
UNSIGNED_PREFIX = "unsigned/"
SIGNED_PREFIX = "signed/"
#: Hex digits of the archive digest in an unsigned object's key.
DIGEST_LENGTH = 16
#: The longest profile name prefix the provider accepts (it appends a unique 26-character part).
SIGNING_PROFILE_PREFIX_MAX_LENGTH = 38

#: The distributions the layer ships: Powertools, its core requirements (jmespath, typing-extensions) and
#: its `tracer` extra (aws-xray-sdk, which needs wrapt; its botocore requirement is the runtime's). The
#: handlers use Logger, Metrics, Tracer and the batch utility, which need nothing else.
LAYER_DISTRIBUTIONS: tuple[str, ...] = ("aws-lambda-powertools", "jmespath", "typing-extensions", "aws-xray-sdk", "wrapt")
#: What the Lambda Python runtime already provides (boto3 and its dependencies): not shipped.
RUNTIME_PROVIDED_DISTRIBUTIONS: tuple[str, ...] = ("boto3", "botocore", "s3transfer", "python-dateutil", "six", "urllib3")
#: Compiled files are left out: the layer must load on arm64 whatever machine runs `pulumi up`, and
#: the one extension among the dependencies (wrapt's `_wrappers`) has a pure-Python fallback.
_NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
#: Installer bookkeeping that describes this machine, not the package.
_INSTALLER_FILES = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


class SignedCodeArgs(ComponentArgs):
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key of the code bucket."""
    code: pulumi.Input[pulumi.Archive]
    """The handlers archive to sign."""
    layer_code: pulumi.Input[pulumi.Archive]
    """The Powertools layer archive (`python/...`) to sign."""
    force_destroy: NotRequired[bool]
    """Let `pulumi destroy` empty the code bucket (dev only)."""


def _ships(relative: PurePosixPath) -> bool:
    if ".." in relative.parts or "__pycache__" in relative.parts or relative.suffix in (".pyc", ".pyo"):
        return False
    if relative.suffix in _NATIVE_SUFFIXES or ".so." in relative.name:
        return False
    return not (relative.parent.name.endswith(".dist-info") and relative.name in _INSTALLER_FILES)


def powertools_layer_archive() -> pulumi.AssetArchive:
    """The Powertools layer as Lambda expects a Python layer: the packages under `python/`.

    Taken file by file from the installed distributions (`LAYER_DISTRIBUTIONS`), without
    caches, compiled extensions or installer records, so the archive (and its digest) depends
    only on the installed versions. Which Powertools that is: `powertools_version()`; pin it
    where the program is installed, or every deployer with another version re-signs the layer.
    """
    assets: dict[str, pulumi.Asset] = {}
    for name in LAYER_DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as err:
            raise RuntimeError(
                f"code signing builds the Powertools layer from the installed packages, and {name!r} is not "
                "installed where the program runs: install aws-lambda-powertools[tracer]") from err
        for file in dist.files or ():
            relative = PurePosixPath(file.as_posix())
            path = Path(str(dist.locate_file(file)))
            if _ships(relative) and path.is_file():
                assets[f"python/{relative}"] = pulumi.FileAsset(str(path))
    if "python/aws_lambda_powertools/__init__.py" not in assets:
        raise RuntimeError("the installed aws-lambda-powertools has no aws_lambda_powertools/__init__.py to ship")
    return pulumi.AssetArchive(dict(sorted(assets.items())))


def powertools_version() -> str:
    """The installed Powertools version, which the signed layer carries (AWS's layer is `defaults.POWERTOOLS_LAYER_VERSION`)."""
    return importlib.metadata.version("aws-lambda-powertools")


def _entries(archive: pulumi.Archive, prefix: str = "") -> Iterator[tuple[str, bytes]]:
    if isinstance(archive, pulumi.AssetArchive):
        for name in sorted(archive.assets):
            item = archive.assets[name]
            if isinstance(item, pulumi.Archive):
                yield from _entries(item, f"{prefix}{name}/")
            elif isinstance(item, pulumi.FileAsset):
                yield f"{prefix}{name}", Path(item.path).read_bytes()
            elif isinstance(item, pulumi.StringAsset):
                yield f"{prefix}{name}", item.text.encode()
            else:
                raise TypeError(f"cannot digest {type(item).__name__} {prefix}{name}: use file or string assets")
    elif isinstance(archive, pulumi.FileArchive):
        root = Path(archive.path)
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                yield f"{prefix}{path.relative_to(root).as_posix()}", path.read_bytes()
        else:
            yield f"{prefix}{root.name}", root.read_bytes()
    else:
        raise TypeError(f"cannot digest a {type(archive).__name__}: use an AssetArchive or a FileArchive")


def archive_digest(archive: pulumi.Archive) -> str:
    """SHA-256 over the archive's file names and contents (not the zip bytes, which carry timestamps)."""
    digest = hashlib.sha256()
    for name, data in _entries(archive):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def unsigned_object_key(kind: str, archive: pulumi.Archive) -> str:
    """`unsigned/<kind>-<digest>.zip`: content-addressed, so a change is a new object and a new signing job."""
    return f"{UNSIGNED_PREFIX}{kind}-{archive_digest(archive)[:DIGEST_LENGTH]}.zip"


def signing_profile_name_prefix(environment: str, suffix: str) -> str:
    """Signer profile names allow letters, digits and `_` only, and a cancelled name can never be used
    again: the provider appends a unique part to this prefix, so a destroyed stack can be rebuilt."""
    prefix = f"fraud_{environment}_{suffix}_".replace("-", "_")
    if len(prefix) > SIGNING_PROFILE_PREFIX_MAX_LENGTH:
        raise ValueError(f"signing profile name prefix {prefix!r} is longer than Signer's "
                         f"{SIGNING_PROFILE_PREFIX_MAX_LENGTH} characters")
    return prefix


def code_bucket_lifecycle_rules() -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    """Old versions and stale uploads go; current objects stay (a function re-created later reads its package again)."""
    return [{
        "id": "noncurrent-versions-and-stale-uploads",
        "status": "Enabled",
        "filter": {},
        "noncurrent_version_expiration": {"noncurrent_days": defaults.S3_NONCURRENT_EXPIRATION_DAYS},
        "abort_incomplete_multipart_upload": {"days_after_initiation": defaults.S3_ABORT_MULTIPART_DAYS},
    }]


def _first_signed_object(objects, field: str) -> str:
    """`signed_objects[0].s3s[0].<field>` (Signer writes one object per job)."""
    s3 = objects[0].s3s[0]
    return getattr(s3, field)


class SignedCode(pulumi.ComponentResource):
    """A Signer profile, an enforcing code signing config, and the handlers and Powertools layer signed by it."""

    code_signing_config_arn: pulumi.Output[str]
    """The config every function takes: `Enforce`, allowed publisher = the profile's version."""
    signing_profile_version_arn: pulumi.Output[str]
    """The profile version that signs (the config's one allowed publisher)."""
    code_bucket: pulumi.Output[str]
    """Bucket of the signed handlers object."""
    code_key: pulumi.Output[str]
    """Key of the signed handlers object (new per signing job)."""
    layer_arn: pulumi.Output[str]
    """The signed Powertools layer version's ARN."""

    def __init__(self, name: str, args: SignedCodeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:SignedCode", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env, sfx = args["environment"], args["environment_suffix"]
        namer = Namer(env, sfx)
        tags = args.get("tags")
        key = args["kms_key_arn"]

        self.hardened = buckets.hardened_bucket(
            f"{name}-code", namer.name("fraud-code", "bucket"), parent=self, kms_key_arn=key,
            lifecycle_rules=code_bucket_lifecycle_rules(), force_destroy=args.get("force_destroy", False), tags=tags,
        )
        self.profile = aws.signer.SigningProfile(
            f"{name}-profile",
            name_prefix=signing_profile_name_prefix(env, sfx),
            platform_id=defaults.SIGNER_PLATFORM_ID,
            signature_validity_period={"type": "MONTHS", "value": defaults.SIGNATURE_VALIDITY_MONTHS},
            tags=tags,
            opts=child,
        )
        self.config = aws.lambda_.CodeSigningConfig(
            f"{name}-config",
            description=f"fraud-pipeline {env}: deploy only code and layers signed by the stack's Signer profile",
            allowed_publishers={"signing_profile_version_arns": [self.profile.version_arn]},
            policies={"untrusted_artifact_on_deployment": defaults.CODE_SIGNING_UNTRUSTED_ARTIFACT_ACTION},
            tags=tags,
            opts=child,
        )

        self.code_job = self._sign(name, "handlers", args["code"], key, tags)
        self.layer_job = self._sign(name, "powertools-layer", args["layer_code"], key, tags)
        self.layer = aws.lambda_.LayerVersion(
            f"{name}-powertools-layer",
            layer_name=namer.name("fraud-powertools"),
            description=(f"Powertools for AWS Lambda (Python) {powertools_version()} and its runtime dependencies, "
                         "signed by the stack's Signer profile"),
            s3_bucket=self.layer_job.signed_objects.apply(lambda o: _first_signed_object(o, "bucket")),
            s3_key=self.layer_job.signed_objects.apply(lambda o: _first_signed_object(o, "key")),
            compatible_runtimes=[defaults.LAMBDA_RUNTIME],
            compatible_architectures=[defaults.LAMBDA_ARCHITECTURE],
            opts=child,
        )

        self.code_signing_config_arn = self.config.arn
        self.signing_profile_version_arn = self.profile.version_arn
        self.code_bucket = self.code_job.signed_objects.apply(lambda o: _first_signed_object(o, "bucket"))
        self.code_key = self.code_job.signed_objects.apply(lambda o: _first_signed_object(o, "key"))
        self.layer_arn = self.layer.arn
        self.register_outputs({
            "code_signing_config_arn": self.code_signing_config_arn,
            "signing_profile_version_arn": self.signing_profile_version_arn,
            "code_bucket": self.code_bucket, "code_key": self.code_key, "layer_arn": self.layer_arn,
        })

    def _sign(self, name: str, kind: str, archive: pulumi.Input[pulumi.Archive], key: pulumi.Input[str],
              tags: pulumi.Input[Mapping[str, str]] | None) -> aws.signer.SigningJob:
        """Upload `archive` unsigned (content-addressed key) and sign that object version."""
        bucket = self.hardened.bucket
        upload = aws.s3.BucketObjectv2(
            f"{name}-{kind}-unsigned",
            bucket=bucket.id,
            key=pulumi.Output.from_input(archive).apply(lambda a: unsigned_object_key(kind, a)),
            source=archive,
            content_type="application/zip",
            server_side_encryption="aws:kms",
            kms_key_id=key,
            bucket_key_enabled=True,
            tags=tags,
            # Signer signs an object version: versioning must be on before the upload.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.hardened.versioning, self.hardened.encryption]),
        )
        return aws.signer.SigningJob(
            f"{name}-{kind}-signing",
            profile_name=self.profile.name,
            source={"s3": {"bucket": upload.bucket, "key": upload.key, "version": upload.version_id}},
            destination={"s3": {"bucket": bucket.id, "prefix": f"{SIGNED_PREFIX}{kind}-"}},
            # A failed signature fails the deployment rather than leaving a job in state.
            ignore_signing_job_failure=False,
            # A job cannot be changed: another source (new code) is a new job, and so a new signed object.
            opts=pulumi.ResourceOptions(parent=self, replace_on_changes=["source"]),
        )
