"""OpenAPI 3.0 document that v1_standin.py serves at GET /v1/openapi.json.

It lists the operations the stand-in serves, minus those named by
--omit-operation. Paths carry the /v1 prefix, as in docs/v1-api.md.
"""

import copy

HEALTH = "GET /v1/health"
OPENAPI = "GET /v1/openapi.json"
STUDIOS = "GET /v1/studios"
SOURCES = "GET /v1/sources"
PUBLISH_CREDENTIALS = "POST /v1/sources/{sourceId}/publish-credentials"

OPERATION_KEYS = (HEALTH, OPENAPI, STUDIOS, SOURCES, PUBLISH_CREDENTIALS)

UNAUTHENTICATED = []


def ref(name: str) -> dict:
    return {"$ref": f"#/components/{name}"}


def json_content(schema_name: str) -> dict:
    return {"content": {"application/json": {"schema": ref(f"schemas/{schema_name}")}}}


ERROR_RESPONSES = {
    "401": {"description": "Missing or invalid API key", **json_content("Error")},
    "429": {"description": "Rate limited; see Retry-After", **json_content("Error")},
}

LIST_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    },
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]

OPERATIONS = {
    HEALTH: {
        "operationId": "getHealth",
        "summary": "Service health",
        "security": UNAUTHENTICATED,
        "responses": {"200": {"description": "Healthy", **json_content("Health")}},
    },
    OPENAPI: {
        "operationId": "getOpenApi",
        "summary": "This document",
        "security": UNAUTHENTICATED,
        "responses": {"200": {"description": "OpenAPI 3.0 document"}},
    },
    STUDIOS: {
        "operationId": "listStudios",
        "summary": "List the studios the key can see",
        "parameters": LIST_PARAMETERS,
        "responses": {
            "200": {"description": "One page of studios", **json_content("StudioList")},
            "400": {"description": "Invalid limit or cursor", **json_content("Error")},
            **ERROR_RESPONSES,
        },
    },
    SOURCES: {
        "operationId": "listSources",
        "summary": "List the sources the key can see",
        "parameters": LIST_PARAMETERS
        + [{"name": "studioId", "in": "query", "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "One page of sources", **json_content("SourceList")},
            "400": {"description": "Invalid limit or cursor", **json_content("Error")},
            **ERROR_RESPONSES,
        },
    },
    PUBLISH_CREDENTIALS: {
        "operationId": "createPublishCredentials",
        "summary": "Issue publishing credentials for one source and protocol",
        "parameters": [
            {"name": "sourceId", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "requestBody": {"required": True, **json_content("PublishCredentialsRequest")},
        "responses": {
            "201": {"description": "Credentials issued", **json_content("PublishCredentials")},
            "400": {"description": "Invalid body or protocol", **json_content("Error")},
            "403": {"description": "The key may not publish", **json_content("Error")},
            "404": {"description": "Unknown source", **json_content("Error")},
            "503": {"description": "write_disabled", **json_content("Error")},
            **ERROR_RESPONSES,
        },
    },
}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "requestId": {"type": "string"},
                },
            }
        },
    },
    "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
    "Studio": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
    },
    "Source": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "studioId": {"type": "string"},
        },
    },
    "StudioList": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "array", "items": ref("schemas/Studio")},
            "nextCursor": {"type": "string", "nullable": True},
        },
    },
    "SourceList": {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {"type": "array", "items": ref("schemas/Source")},
            "nextCursor": {"type": "string", "nullable": True},
        },
    },
    "PublishCredentialsRequest": {
        "type": "object",
        "required": ["protocol"],
        "properties": {"protocol": {"type": "string", "enum": ["srt", "rtmp", "whip"]}},
    },
    "PublishCredentials": {
        "type": "object",
        "required": ["sourceId", "protocol", "path"],
        "properties": {
            "sourceId": {"type": "string"},
            "protocol": {"type": "string"},
            "path": {"type": "string"},
            "token": {"type": "string"},
            "streamKey": {"type": "string"},
            "expiresAt": {"type": "string", "format": "date-time"},
            "ingestUrl": {"type": "string"},
        },
    },
}


def normalize_operation_key(text: str) -> str:
    """Return the OPERATION_KEYS entry that text names (method in any case).

    Raises ValueError listing the valid keys.
    """
    method, _, path = text.strip().partition(" ")
    key = f"{method.upper()} {path.strip()}"
    if key not in OPERATION_KEYS:
        raise ValueError(f"{text!r} is not one of: " + ", ".join(repr(k) for k in OPERATION_KEYS))
    return key


def build_document(api_version: str, omitted_keys) -> dict:
    paths = {}
    for key in OPERATION_KEYS:
        if key in omitted_keys:
            continue
        method, path = key.split(" ", 1)
        paths.setdefault(path, {})[method.lower()] = copy.deepcopy(OPERATIONS[key])
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "TRaX Developer API (local stand-in)",
            "version": api_version,
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": copy.deepcopy(SCHEMAS),
        },
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
    }
