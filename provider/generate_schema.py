"""Write provider/schema.json: the package schema the provider serves (its `GetSchema` answer).

    .venv/bin/python provider/generate_schema.py                  # rewrite provider/schema.json
    .venv/bin/python provider/generate_schema.py --check          # exit 1 when it is not current
    .venv/bin/python provider/generate_schema.py --inputs-source  # print the generated inputs TypedDict

The schema is inferred, as the running provider infers it, by the SDK's analyzer from
fraud_pipeline_component.py (itself generated from fraud_pipeline/settings.py). The committed
file is for review: its diff is what every generated SDK's users see change (a setting renamed,
a default or a rule changed). tests/provider checks that the running provider serves exactly it.
"""

import argparse
import json
import sys
from pathlib import Path

from fraud_pipeline_component import COMPONENTS, PROVIDER_NAME, PROVIDER_VERSION, inputs_source
from pulumi.provider.experimental.component import ComponentProvider

SCHEMA_FILE = Path(__file__).resolve().with_name("schema.json")
COMMAND = "python provider/generate_schema.py"


def schema() -> dict:
    """The schema `component_provider_host(COMPONENTS, PROVIDER_NAME, version=PROVIDER_VERSION)` serves."""
    return json.loads(ComponentProvider(COMPONENTS, PROVIDER_NAME, None, PROVIDER_VERSION).schema)


def render(value: dict) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if schema.json is not current; write nothing")
    parser.add_argument("--inputs-source", action="store_true", help="print the generated inputs source and exit")
    args = parser.parse_args(argv)
    if args.inputs_source:
        sys.stdout.write(inputs_source())
        return 0
    text = render(schema())
    current = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else None
    if args.check:
        if current is None or json.loads(current) != json.loads(text):
            print(f"{SCHEMA_FILE} is not current: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        SCHEMA_FILE.write_text(text)
        print(f"wrote {SCHEMA_FILE}")
    else:
        print(f"{SCHEMA_FILE} is current")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
