"""Independent validators for custody's attestation tests (run from the venv that
scripts/install-python-tools makes).

  validate.py sbom <file> <1.5|1.6>   CycloneDX strict JSON schema (cyclonedx-python-lib)
  validate.py statement <file>        in-toto Statement v1 (in-toto-attestation), and for
                                      SLSA provenance v1 / VSA v1 the predicate proto as well

Exit 0 when valid, 1 with the reason on stderr when not.
"""

import json
import sys

from google.protobuf import json_format


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def check_sbom(path, version):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    schema = {"1.5": SchemaVersion.V1_5, "1.6": SchemaVersion.V1_6}[version]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if json.loads(text).get("specVersion") != version:
        fail(f"{path}: specVersion is not {version}")
    error = JsonStrictValidator(schema).validate_str(text)
    if error is not None:
        fail(f"{path}: not valid CycloneDX {version}: {error}")


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


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "sbom":
        check_sbom(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "statement":
        check_statement(sys.argv[2])
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()
