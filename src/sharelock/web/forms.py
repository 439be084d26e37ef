"""Reading request bodies with limits, before anything is parsed."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from sharelock.oauth import InvalidRequest, single_valued

MAX_FORM_BYTES = 16 * 1024


class BodyTooLarge(InvalidRequest):
    status = 413


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge("request body too large")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge("request body too large")
    return bytes(body)


def is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/x-www-form-urlencoded"


async def read_form_pairs(request: Request) -> list[tuple[str, str]]:
    """An `application/x-www-form-urlencoded` body as it came, repetitions included."""
    if not is_form(request):
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    body = await read_limited(request, MAX_FORM_BYTES)
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None


async def read_form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body, each parameter at most once."""
    return single_valued(await read_form_pairs(request))
