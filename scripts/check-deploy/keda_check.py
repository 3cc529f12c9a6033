"""Validates KEDA objects (ScaledObject, TriggerAuthentication, ...) read as YAML on stdin
against KEDA's own schema, as pydantic models (cloudcoil-models-keda, KEDA 2.16's CRDs),
and rejects any key the schema does not define: the models alone ignore unknown fields,
so a misspelt `pollingInterva1` would pass. Exit 1 naming every problem."""

import sys

import pydantic
import yaml
from cloudcoil.models.keda import v1alpha1


def unknown_keys(value, raw, path):
    """Keys of `raw` (the YAML) that the validated model `value` has no field for."""
    if isinstance(value, pydantic.BaseModel) and isinstance(raw, dict):
        fields = type(value).model_fields
        by_key = {(f.alias or name): name for name, f in fields.items()}
        by_key.update({name: name for name in fields})
        for key, sub in raw.items():
            if key not in by_key:
                yield f"{path}.{key}"
            else:
                yield from unknown_keys(getattr(value, by_key[key]), sub, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(raw, list):
        for i, (v, r) in enumerate(zip(value, raw)):
            yield from unknown_keys(v, r, f"{path}[{i}]")
    elif isinstance(value, dict) and isinstance(raw, dict):
        for key, sub in raw.items():
            if key in value:
                yield from unknown_keys(value[key], sub, f"{path}.{key}")


def main():
    problems, seen = [], 0
    for doc in yaml.safe_load_all(sys.stdin):
        if not doc:
            continue
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        where = f"{kind}/{name}"
        if doc.get("apiVersion") != "keda.sh/v1alpha1" or not hasattr(v1alpha1, str(kind)):
            problems.append(f"{where}: not a KEDA keda.sh/v1alpha1 kind")
            continue
        seen += 1
        try:
            obj = getattr(v1alpha1, kind).model_validate(doc)
        except pydantic.ValidationError as e:
            problems.append(f"{where}: {e}")
            continue
        problems += [f"{where}: unknown key {k}" for k in unknown_keys(obj, doc, "")]
        print(f"keda: {where} valid against KEDA 2.16's schema, no unknown keys", file=sys.stderr)
    if seen == 0:
        problems.append("no KEDA object on stdin")
    for p in problems:
        print(f"keda: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
