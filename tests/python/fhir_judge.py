"""Independent judges of the FHIR resources a running cireg serves: every file in a directory is
one response saved by tests/fhir.rs as {"fhirVersion": "5.0" | "4.3" | "4.0", "resource": {...}}.
fhir.resources (pydantic models of the FHIR specification) validates each in its version (R4 with
the R4B models, which match R4 for these resources); the R4 ones are also validated against HL7's
R4 JSON schema. The two catch different mistakes.
Exits non-zero with a report when a judge disagrees.

usage: fhir_judge.py <responses-dir> <fhir.schema.json>
"""

import json
import pathlib
import sys

import jsonschema
from fhir.resources import get_fhir_model_class as r5_class
from fhir.resources.R4B import get_fhir_model_class as r4b_class


def main() -> int:
    responses = sorted(pathlib.Path(sys.argv[1]).glob("*.json"))
    schema = json.loads(pathlib.Path(sys.argv[2]).read_text())
    r4_schema = jsonschema.Draft6Validator(schema)
    failures = []
    counts = {}
    for path in responses:
        saved = json.loads(path.read_text())
        version, resource = saved["fhirVersion"], saved["resource"]
        kind = resource.get("resourceType", "?")
        counts[(version, kind)] = counts.get((version, kind), 0) + 1
        model = r5_class if version.startswith("5") else r4b_class
        try:
            model(kind).model_validate(resource)
        except Exception as e:  # pydantic's ValidationError, or an unknown resource type
            failures.append(f"{path.name} (fhir.resources, {version} {kind}): {e}")
        if version == "4.0":
            for error in r4_schema.iter_errors(resource):
                where = "/".join(str(p) for p in error.absolute_path)
                failures.append(f"{path.name} (HL7 R4 JSON schema, {kind}) at /{where}: {error.message}")
    print(f"fhir_judge: {len(responses)} responses: " + ", ".join(f"{n} {v} {k}" for (v, k), n in sorted(counts.items())))
    if not responses:
        print("fhir_judge: no responses to judge")
        return 1
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
