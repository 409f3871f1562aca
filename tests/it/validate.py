"""Independent validators for custody's attestation tests (run from the venv that
scripts/install-python-tools makes).

  validate.py sbom <file> <1.5|1.6|1.7>  CycloneDX strict JSON schema (cyclonedx-python-lib)
  validate.py spdx <file>             SPDX 2.3 JSON, parsed and validated by spdx-tools
  validate.py schema <schema> <file> [<referenced schema>...]
                                      a JSON document against a draft 2020-12 schema (and
                                      the schemas it references, by $id), formats checked
  validate.py statement <file>        in-toto Statement v1 (in-toto-attestation), and for
                                      SLSA provenance v1 / VSA v1 the predicate proto as well
  validate.py serve                   the same checks, plus custody's own JSON schemas
                                      (jsonschema, draft 2020-12) and YAML/XML reading, as one
                                      long-running process: one JSON request per stdin line,
                                      one JSON answer per stdout line (see serve below)

Exit 0 when valid, 1 with the reason on stderr when not.
"""

import json
import sys

from google.protobuf import json_format


class Invalid(Exception):
    """The document does not validate; the message says why."""


def fail(message):
    raise Invalid(message)


def check_sbom(path, version):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    schema = {"1.5": SchemaVersion.V1_5, "1.6": SchemaVersion.V1_6, "1.7": SchemaVersion.V1_7}[
        version
    ]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if json.loads(text).get("specVersion") != version:
        fail(f"{path}: specVersion is not {version}")
    error = JsonStrictValidator(schema).validate_str(text)
    if error is not None:
        fail(f"{path}: not valid CycloneDX {version}: {error}")


def check_spdx(path):
    """SPDX's own tools: parse (a missing required field fails here), then the full
    validation (ids, namespace, relationships, purl locators, ...)."""
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    try:
        document = parse_file(path)
    except Exception as e:  # noqa: BLE001 - report whatever the parser rejects
        fail(f"{path}: not parseable as SPDX: {e}")
    messages = validate_full_spdx_document(document, "SPDX-2.3")
    if messages:
        fail(f"{path}: not valid SPDX 2.3:\n" + "\n".join(m.validation_message for m in messages))


def check_schema(schema_path, path, *referenced):
    """A document against a JSON schema of its format's owner (OpenVEX, CSAF, ...); the
    schemas it references are given as files, so nothing is fetched."""
    import jsonschema
    import referencing
    from referencing.jsonschema import DRAFT202012

    def load(p):
        with open(p, encoding="utf-8") as f:
            return json.load(f)

    resources = []
    for p in referenced:
        s = load(p)
        resources.append((s["$id"], referencing.jsonschema.specification_with(
            s.get("$schema", DRAFT202012.id), default=DRAFT202012).create_resource(s)))
    schema = load(schema_path)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(
        schema,
        registry=referencing.Registry().with_resources(resources),
        format_checker=validator_class.FORMAT_CHECKER,
    )
    errors = sorted(validator.iter_errors(load(path)), key=lambda e: list(e.absolute_path))
    if errors:
        fail(f"{path}: not valid against {schema_path}:\n" + "\n".join(
            "/" + "/".join(map(str, e.absolute_path)) + ": " + e.message for e in errors))


def check_statement(path):
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    try:
        # Strict: a field name the proto does not know is an error.
        pb = json_format.ParseDict(data, statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
    except Exception as e:  # noqa: BLE001 - report whatever the library rejects
        fail(f"{path}: not a valid in-toto Statement v1: {e}")

    predicate_type = data["predicateType"]
    predicate = data.get("predicate", {})
    if predicate_type == "https://slsa.dev/provenance/v1":
        from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

        try:
            prov = json_format.ParseDict(predicate, provenance_pb2.Provenance())
        except Exception as e:  # noqa: BLE001
            fail(f"{path}: not a valid SLSA provenance v1 predicate: {e}")
        bd, rd = prov.build_definition, prov.run_details
        if not bd.build_type:
            fail(f"{path}: buildDefinition.buildType missing")
        if "externalParameters" not in predicate["buildDefinition"]:
            fail(f"{path}: buildDefinition.externalParameters missing")
        if not rd.builder.id:
            fail(f"{path}: runDetails.builder.id missing")
        for rdpb in list(bd.resolved_dependencies) + list(rd.byproducts):
            try:
                ResourceDescriptor.copy_from_pb(rdpb).validate()
            except Exception as e:  # noqa: BLE001
                fail(f"{path}: bad resource descriptor {rdpb}: {e}")
    elif predicate_type == "https://slsa.dev/verification_summary/v1":
        from in_toto_attestation.predicates.vsa.v1 import vsa_pb2

        # The in-toto proto (0.9.3) lags the SLSA VSA v1 spec in two fields: it lacks the
        # optional `verifier.version` map and has `verifiedLevels` as one string instead of an
        # array (in-toto/attestation issue 425, fix in PR 429). Check those two against the
        # spec here, then parse the rest strictly.
        predicate = json.loads(json.dumps(predicate))
        version = predicate.get("verifier", {}).pop("version", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in version.items()):
            fail(f"{path}: verifier.version must map strings to strings")
        levels = predicate.pop("verifiedLevels", None)
        if not isinstance(levels, list) or not all(isinstance(v, str) for v in levels):
            fail(f"{path}: verifiedLevels must be an array of strings")
        if predicate.get("verificationResult") not in ("PASSED", "FAILED"):
            fail(f"{path}: verificationResult must be PASSED or FAILED")
        try:
            json_format.ParseDict(predicate, vsa_pb2.VerificationSummary())
        except Exception as e:  # noqa: BLE001
            fail(f"{path}: not a valid VSA v1 predicate: {e}")


_schema_validators = {}


def schema_violations(folder, target, instance):
    """The messages of every violation of `instance` against `<folder>/<file>[#pointer]`, one per
    line with its JSON path (nested under the `anyOf`/`oneOf` branch that failed). Every file of
    the folder is loaded once, so `$ref`s between them resolve offline by `$id`; formats are
    checked. A schema that is not valid draft 2020-12 raises."""
    import pathlib

    import jsonschema
    import referencing
    from referencing.jsonschema import DRAFT202012

    V = jsonschema.Draft202012Validator
    if folder not in _schema_validators:
        ids, resources = {}, []
        for path in sorted(pathlib.Path(folder).glob("*.json")):
            schema = json.loads(path.read_text())
            V.check_schema(schema)
            ids[path.name] = schema["$id"]
            resources.append((schema["$id"], DRAFT202012.create_resource(schema)))
        _schema_validators[folder] = (ids, referencing.Registry().with_resources(resources))
    ids, registry = _schema_validators[folder]
    name, _, pointer = target.partition("#")
    root = {"$ref": ids[name] + ("#" + pointer if pointer else "")}
    validator = V(root, registry=registry, format_checker=V.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    lines = []

    def show(e, indent):
        lines.append(indent + "/" + "/".join(map(str, e.absolute_path)) + ": " + e.message)
        for sub in e.context:
            show(sub, indent + "  ")

    for e in errors:
        show(e, "")
    return "".join(line + "\n" for line in lines)


def answer(request):
    """One request of `serve`: {"check": "sbom", "path", "version"}, {"check": "statement",
    "path"} or {"check": "schema", "folder", "schema", "instance"} answer {"valid": true} or
    {"valid": false, "message"}; {"read": "yaml", "text"}, {"read": "yaml_all", "path"} and
    {"read": "junit_failures", "path"} answer {"value"}. Anything that could not run answers
    {"error"}."""
    check = request.get("check")
    try:
        if check == "sbom":
            check_sbom(request["path"], request["version"])
        elif check == "statement":
            check_statement(request["path"])
        elif check == "spdx":
            check_spdx(request["path"])
        elif check == "schema":
            message = schema_violations(request["folder"], request["schema"], request["instance"])
            if message:
                return {"valid": False, "message": message}
        elif request.get("read") == "yaml":
            import yaml

            return {"value": yaml.safe_load(request["text"])}
        elif request.get("read") == "yaml_all":
            import yaml

            with open(request["path"], encoding="utf-8") as f:
                return {"value": list(yaml.safe_load_all(f))}
        elif request.get("read") == "junit_failures":
            import xml.etree.ElementTree as t

            root = t.parse(request["path"]).getroot()
            return {"value": sum(1 for _ in root.iter("failure"))}
        else:
            return {"error": f"unknown request {request!r}"}
    except Invalid as e:
        return {"valid": False, "message": str(e)}
    return {"valid": True}


def serve():
    """Answers requests until stdin closes (the test process ended)."""
    import traceback

    for line in sys.stdin:
        try:
            reply = answer(json.loads(line))
        except Exception:  # noqa: BLE001 - the test reports it as "could not run"
            reply = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main():
    try:
        if len(sys.argv) == 4 and sys.argv[1] == "sbom":
            check_sbom(sys.argv[2], sys.argv[3])
        elif len(sys.argv) == 3 and sys.argv[1] == "statement":
            check_statement(sys.argv[2])
        elif len(sys.argv) == 3 and sys.argv[1] == "spdx":
            check_spdx(sys.argv[2])
        elif len(sys.argv) >= 4 and sys.argv[1] == "schema":
            check_schema(sys.argv[2], sys.argv[3], *sys.argv[4:])
        elif len(sys.argv) == 2 and sys.argv[1] == "serve":
            serve()
        else:
            fail(__doc__)
    except Invalid as e:
        print(e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
