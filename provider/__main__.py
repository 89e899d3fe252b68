"""The fraud-pipeline provider plugin: FraudPipeline for every Pulumi language.

The Python language host runs this directory (`python <plugin dir> <engine address> ...`, see
PulumiPlugin.yaml) when a program that added the package (`pulumi package add`) asks for its
schema or constructs a FraudPipeline. `component_provider_host` infers the schema from the
component's annotations, prints the gRPC port it serves on, and answers `GetSchema` and
`Construct`. provider/schema.json is that schema, committed for review
(`python provider/generate_schema.py` rewrites it).
"""

from fraud_pipeline_component import COMPONENTS, PROVIDER_NAME, PROVIDER_VERSION
from pulumi.provider.experimental import component_provider_host

if __name__ == "__main__":
    component_provider_host(COMPONENTS, PROVIDER_NAME, version=PROVIDER_VERSION)
