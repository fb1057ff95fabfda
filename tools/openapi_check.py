#!/usr/bin/python3
"""Checks sendq's answers, or its route list, against an OpenAPI 3.1 document.

Usage:
  tools/openapi_check.py DOC.json RESPONSES.jsonl
  tools/openapi_check.py DOC.json --routes ROUTES.txt

RESPONSES.jsonl holds one answer per line:
  {"method": "GET", "path": "/v1/messages/sq_abc", "status": 200, "body": <parsed JSON>}
The path is a concrete one (a query string is ignored). It is matched to the document's path
templates segment by segment, a literal segment winning over a {param} (so
/v1/messages/export is not /v1/messages/{id}); the first template that has the method is taken.
The body is validated (JSON Schema draft 2020-12, `#/components/...` references resolved
against the whole document) against the response schema for that status (the exact status,
else 2XX-style ranges, else `default`) and its application/json content (or another +json
type). A response whose only content is application/x-ndjson is checked line by line: give
its body as a list of the parsed lines (or one parsed line).

Prints one line per failure and a summary `checked N responses against M schemas`.
Exit: 0 all valid; 1 some answer does not match its schema; 2 some answer has no schema in
the document (unknown path, method, status or content) and none failed, or bad input.

ROUTES.txt holds lines `METHOD /path/{param}/template` (blank lines and # comments are
skipped; a `*` segment is taken as a {param}, parameter names do not matter). Every route
missing from the document and every document operation missing from the file is listed;
exit 1 when there is any, else 0.

Needs python3-jsonschema (Debian's 4.10 or later).
"""

import argparse
import json
import sys
import warnings

import jsonschema

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
DOC_URI = "urn:sendq:openapi"


def fail_input(message):
    print(f"openapi_check: {message}", file=sys.stderr)
    sys.exit(2)


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail_input(f"cannot read {path}: {e}")


def split_path(path):
    """'/v1/messages/x' -> ['v1', 'messages', 'x']; the query string and fragment dropped."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        return None
    return path[1:].split("/")


def is_param(segment):
    return (segment.startswith("{") and segment.endswith("}") and len(segment) > 2) or \
        segment == "*"


def pointer(*parts):
    """A JSON pointer (RFC 6901) to the given keys."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Document:
    def __init__(self, doc, path):
        if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
            fail_input(f"{path} is not an OpenAPI document (no paths)")
        self.doc = doc
        self.templates = []  # (segments, template)
        for template in doc["paths"]:
            segments = split_path(template)
            if segments is None:
                fail_input(f"{path}: path {template!r} does not start with /")
            self.templates.append((segments, template))
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.exceptions.SchemaError as e:
                fail_input(f"{path}: components/schemas/{name} is not a valid schema: "
                           f"{e.message}")
        self._validators = {}

    def operations(self):
        """Every (METHOD, template) the document has."""
        for template, item in self.doc["paths"].items():
            for method in METHODS:
                if isinstance(item, dict) and method in item:
                    yield method.upper(), template

    def match(self, method, path):
        """(template, operation or None, why) for a concrete path."""
        segments = split_path(path)
        if segments is None:
            return None, None, "the path does not start with /"
        candidates = []
        for tsegments, template in self.templates:
            if len(tsegments) != len(segments):
                continue
            rank = []
            for want, got in zip(tsegments, segments):
                if is_param(want):
                    if got == "":
                        break
                    rank.append(1)
                elif want == got:
                    rank.append(0)
                else:
                    break
            else:
                candidates.append((rank, template))
        if not candidates:
            return None, None, "no path template matches"
        candidates.sort()
        for _, template in candidates:
            operation = self.doc["paths"][template].get(method.lower())
            if isinstance(operation, dict):
                return template, operation, None
        return candidates[0][1], None, f"{candidates[0][1]} has no {method.upper()} operation"

    def deref(self, node):
        """One step of a local $ref (#/components/responses/...): the object it names."""
        ref = node["$ref"]
        node = self.doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def response_schema(self, template, method, operation, status):
        """(pointer to the schema, per_line, None) or (None, None, why)."""
        responses = operation.get("responses", {})
        key = None
        for candidate in (str(status), f"{str(status)[:1]}XX", "default"):
            if candidate in responses:
                key = candidate
                break
        if key is None:
            return None, None, f"no response for status {status}"
        # The response may be a $ref (#/components/responses/...): follow it, keeping the
        # pointer to where the object really is.
        base = pointer("paths", template, method.lower(), "responses", key)
        response = responses[key]
        for _ in range(20):
            if not (isinstance(response, dict) and isinstance(response.get("$ref"), str)):
                break
            if not response["$ref"].startswith("#/"):
                return None, None, f"response {key} is an external $ref"
            base = response["$ref"][1:]
            response = self.deref(response)
        if not isinstance(response, dict) or "$ref" in response:
            return None, None, f"response {key} cannot be resolved"
        content = response.get("content") or {}
        json_types = [t for t in content
                      if t.split(";")[0].strip().lower() == "application/json"]
        json_types += [t for t in content if t not in json_types and
                       t.split(";")[0].strip().lower().endswith("+json")]
        for media in json_types:
            if isinstance(content[media], dict) and "schema" in content[media]:
                return base + pointer("content", media, "schema"), False, None
        for media in content:
            if media.split(";")[0].strip().lower() == "application/x-ndjson" and \
                    isinstance(content[media], dict) and "schema" in content[media]:
                return base + pointer("content", media, "schema"), True, None
        return None, None, f"response {key} has no JSON schema"

    def validator(self, schema_pointer):
        if schema_pointer not in self._validators:
            self._validators[schema_pointer] = make_validator(self.doc, schema_pointer)
        return self._validators[schema_pointer]


def make_validator(doc, schema_pointer):
    """A draft 2020-12 validator for the schema at `schema_pointer` in `doc`, whose
    references resolve against the whole document."""
    try:
        from referencing import Registry, Resource  # jsonschema 4.18 and later
        from referencing.jsonschema import DRAFT202012
    except ImportError:
        Registry = None
    if Registry is not None:
        registry = Registry().with_resource(
            DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
        return jsonschema.Draft202012Validator({"$ref": DOC_URI + "#" + schema_pointer},
                                               registry=registry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resolver = jsonschema.RefResolver(base_uri="", referrer=doc)
        return jsonschema.Draft202012Validator({"$ref": "#" + schema_pointer},
                                               resolver=resolver)


def instance_path(error):
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def describe(error):
    text = error.message
    if len(text) > 300:
        text = text[:300] + "..."
    where = instance_path(error)
    schema_path = "/".join(str(p) for p in error.absolute_schema_path)
    line = f"{where}: {text} (schema: {schema_path})"
    if error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            best_text = best.message if len(best.message) <= 200 else best.message[:200] + "..."
            line += f"; closest: {instance_path(best)}: {best_text}"
    return line


def check_responses(document, responses_path):
    failures = 0
    unknown = 0
    checked = 0
    schemas_used = set()
    try:
        f = open(responses_path, encoding="utf-8")
    except OSError as e:
        fail_input(f"cannot read {responses_path}: {e}")
    with f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as e:
                fail_input(f"{responses_path}:{number}: not JSON: {e}")
            if not isinstance(entry, dict) or not isinstance(entry.get("method"), str) or \
                    not isinstance(entry.get("path"), str) or \
                    not isinstance(entry.get("status"), int) or "body" not in entry:
                fail_input(f"{responses_path}:{number}: needs method, path, status (an "
                           "integer) and body")
            method = entry["method"].upper()
            path = entry["path"]
            status = entry["status"]
            label = f"{method} {path} {status}"
            template, operation, why = document.match(method, path)
            schema_pointer = None
            if operation is not None:
                schema_pointer, per_line, why = document.response_schema(
                    template, method, operation, status)
            if schema_pointer is None:
                unknown += 1
                print(f"NO SCHEMA {label}: {why}")
                continue
            checked += 1
            schemas_used.add(schema_pointer)
            validator = document.validator(schema_pointer)
            body = entry["body"]
            items = body if per_line and isinstance(body, list) else [body]
            errors = []
            for index, item in enumerate(items):
                for error in sorted(validator.iter_errors(item),
                                    key=lambda e: list(map(str, e.absolute_path))):
                    prefix = f"line {index + 1}: " if items is body else ""
                    errors.append(prefix + describe(error))
            if errors:
                failures += 1
                for text in errors:
                    print(f"FAIL {label} ({method} {template}): {text}")
    print(f"checked {checked} responses against {len(schemas_used)} schemas"
          + (f"; {failures} failed" if failures else "")
          + (f"; {unknown} without a schema" if unknown else ""))
    if failures:
        return 1
    if unknown:
        return 2
    return 0


def normalise_route(method, template):
    segments = split_path(template)
    if segments is None:
        return None
    return method.upper(), "/" + "/".join("{}" if is_param(s) else s for s in segments)


def check_routes(document, routes_path):
    listed = {}
    try:
        f = open(routes_path, encoding="utf-8")
    except OSError as e:
        fail_input(f"cannot read {routes_path}: {e}")
    with f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            key = normalise_route(parts[0], parts[1]) if len(parts) == 2 else None
            if key is None or parts[0].lower() not in METHODS:
                fail_input(f"{routes_path}:{number}: expected 'METHOD /path', got {line!r}")
            listed.setdefault(key, f"{parts[0].upper()} {parts[1]}")
    documented = {}
    for method, template in document.operations():
        documented.setdefault(normalise_route(method, template), f"{method} {template}")
    missing_from_doc = [listed[k] for k in listed if k not in documented]
    missing_from_file = [documented[k] for k in documented if k not in listed]
    for route in sorted(missing_from_doc):
        print(f"missing from the document: {route}")
    for route in sorted(missing_from_file):
        print(f"missing from {routes_path}: {route}")
    print(f"{len(listed)} routes listed, {len(documented)} operations documented, "
          f"{len(missing_from_doc)} missing from the document, "
          f"{len(missing_from_file)} missing from the list")
    return 1 if missing_from_doc or missing_from_file else 0


def main():
    parser = argparse.ArgumentParser(
        description="Check answers (JSON lines) or a route list against an OpenAPI 3.1 "
        "document.")
    parser.add_argument("doc", metavar="DOC.json")
    parser.add_argument("responses", metavar="RESPONSES.jsonl", nargs="?")
    parser.add_argument("--routes", metavar="ROUTES.txt",
                        help="compare the document's operations with this route list")
    args = parser.parse_args()
    if (args.responses is None) == (args.routes is None):
        parser.error("give either RESPONSES.jsonl or --routes ROUTES.txt")
    document = Document(load_json(args.doc), args.doc)
    if args.routes is not None:
        return check_routes(document, args.routes)
    return check_responses(document, args.responses)


if __name__ == "__main__":
    sys.exit(main())
