"""The OpenAPI 3.1 document of the REST API (``GET /api/v1/openapi.json``), kept beside the
routes of web/api.py; a test checks that every route is described."""

from __future__ import annotations

from typing import Any

DELIVERY = {"type": "string", "enum": ["regular", "digest", "plain", "html", "nomail"]}
PROBLEM = {"$ref": "#/components/schemas/Problem"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(item: str, cursor: dict[str, Any] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"items": {"type": "array", "items": ref(item)}}
    if cursor is not None:
        properties["next"] = {**cursor, "description": "cursor of the next page; null at the end"}
    return {"type": "object", "properties": properties}


def param(name: str, where: str = "query", schema: dict | None = None, text: str = "") -> dict:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema or {"type": "string"},
        "description": text,
    }


def answer(description: str, schema: dict | None = None, status: str = "200") -> dict:
    content = {"application/json": {"schema": schema}} if schema else None
    problems = {
        code: {"description": text, "content": {"application/problem+json": {"schema": PROBLEM}}}
        for code, text in (
            ("401", "no or unknown API key"),
            ("403", "read-only key"),
            ("404", "unknown list, or outside the key's scope"),
        )
    }
    ok = {"description": description, **({"content": content} if content else {})}
    return {status: ok, **problems}


def body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


NAME = param("name", "path", text="the list's name")
ADDRESS = param("address", "path", text="a member's address")
LIMIT = param("limit", schema={"type": "integer", "minimum": 1, "maximum": 1000, "default": 50})


def openapi_document(server_url: str) -> dict[str, Any]:
    string = {"type": "string"}
    integer = {"type": "integer"}
    paths = {
        "/lists": {
            "get": {
                "summary": "Lists, by name, a page at a time",
                "parameters": [param("page", schema={"type": "integer", "minimum": 1}), LIMIT],
                "responses": answer("a page of lists", page_of("List", {"type": "boolean"})),
            }
        },
        "/lists/{name}": {
            "get": {
                "summary": "One list",
                "parameters": [NAME],
                "responses": answer("the list", ref("List")),
            }
        },
        "/lists/{name}/members": {
            "get": {
                "summary": "Members by address, a page at a time",
                "parameters": [
                    NAME,
                    param("cursor", text="the last address of the previous page"),
                    LIMIT,
                    param("q", text="part of an address"),
                ],
                "responses": answer("a page of members", page_of("Member", string)),
            },
            "post": {
                "summary": "Subscribe an address directly (it is welcomed)",
                "parameters": [NAME],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["address"],
                        "properties": {"address": string, "delivery": DELIVERY},
                    }
                ),
                "responses": answer("the new member", ref("Member"), "201"),
            },
        },
        "/lists/{name}/members/{address}": {
            "get": {
                "summary": "One member",
                "parameters": [NAME, ADDRESS],
                "responses": answer("the member", ref("Member")),
            },
            "patch": {
                "summary": "Change a member's delivery",
                "parameters": [NAME, ADDRESS],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["delivery"],
                        "properties": {"delivery": DELIVERY},
                    }
                ),
                "responses": answer("the member", ref("Member")),
            },
            "delete": {
                "summary": "Unsubscribe a member",
                "parameters": [NAME, ADDRESS],
                "responses": answer("removed", None, "204"),
            },
        },
        "/lists/{name}/held": {
            "get": {
                "summary": "Held posts waiting for a decision, a page at a time",
                "parameters": [NAME, param("cursor", schema=integer), LIMIT],
                "responses": answer("a page of held posts", page_of("Held", integer)),
            }
        },
        "/lists/{name}/held/{id}": {
            "post": {
                "summary": "Decide a held post, as a moderator's reply would",
                "parameters": [NAME, param("id", "path", integer)],
                "requestBody": body(
                    {
                        "type": "object",
                        "required": ["action"],
                        "properties": {
                            "action": {
                                "type": "string",
                                "enum": ["approve", "approve-always", "reject", "discard"],
                            },
                            "reason": string,
                        },
                    }
                ),
                "responses": answer(
                    "decided", {"type": "object", "properties": {"result": string}}
                ),
            }
        },
        "/lists/{name}/archive": {
            "get": {
                "summary": "Archived posts, newest first, a page at a time",
                "parameters": [NAME, param("cursor", schema=integer), LIMIT],
                "responses": answer("a page of posts", page_of("Post", integer)),
            }
        },
        "/lists/{name}/archive/{id}": {
            "get": {
                "summary": "One archived post with its text",
                "parameters": [NAME, param("id", "path", integer)],
                "responses": answer("the post", ref("Post")),
            }
        },
        "/search": {
            "get": {
                "summary": "Full-text search over the archives the key may read",
                "parameters": [param("q", text="words"), param("list"), LIMIT],
                "responses": answer("matching posts, most relevant first", page_of("Post", None)),
            }
        },
        "/queue": {
            "get": {
                "summary": "Outbound queue counts",
                "responses": answer("counts", {"type": "object", "additionalProperties": integer}),
            }
        },
    }
    schemas = {
        "Problem": {
            "type": "object",
            "description": "RFC 9457",
            "properties": {"type": string, "title": string, "status": integer, "detail": string},
        },
        "List": {
            "type": "object",
            "properties": {
                k: string
                for k in (
                    "name",
                    "address",
                    "title",
                    "description",
                    "region",
                    "topic",
                    "language",
                    "posting",
                    "archive",
                )
            }
            | {"advertised": {"type": "boolean"}, "members": integer},
        },
        "Member": {
            "type": "object",
            "properties": {
                "address": string,
                "display_name": string,
                "delivery": DELIVERY,
                "moderated": {"type": "boolean"},
                "bounce_score": {"type": "number"},
                "disabled_reason": {"type": ["string", "null"]},
                "subscribed_at": string,
            },
        },
        "Held": {
            "type": "object",
            "properties": {
                "id": integer,
                "sender": string,
                "subject": string,
                "rule": string,
                "reason": string,
                "held_at": string,
            },
        },
        "Post": {
            "type": "object",
            "description": "senders are shown by name and an obfuscated address",
            "properties": {
                "id": integer,
                "message_id": string,
                "thread_id": integer,
                "subject": string,
                "sender": string,
                "date": string,
                "removed": {"type": "boolean"},
                "text": string,
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "listserv API", "version": "1"},
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
