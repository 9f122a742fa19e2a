"""Slack's documented message limits, written down once for the stand-ins and the tests that judge messages.

These numbers are the oracle: they come from Slack's documentation, not from opsloop's code, so a
notifier that misreads a limit is caught instead of agreeing with itself. Sources:

- Blocks per message, block types and their fields: https://docs.slack.dev/reference/block-kit/blocks
  ("You can include up to 50 blocks in each message"), header block (text: "Maximum length for the text
  in this field is 150 characters"): https://docs.slack.dev/reference/block-kit/blocks/header-block,
  section block (text at most 3000 characters; fields at most 10 items of 2000 characters):
  https://docs.slack.dev/reference/block-kit/blocks/section-block, context block (at most 10 elements):
  https://docs.slack.dev/reference/block-kit/blocks/context-block.
- Message text: chat.postMessage truncates ``text`` past 40,000 characters and answers ``msg_too_long``
  when "Message text is too long": https://docs.slack.dev/reference/methods/chat.postMessage and
  https://api.slack.com/changelog/2018-04-truncating-really-long-messages. The stand-in refuses rather
  than truncates, so a client that relies on truncation is caught.
- Attachments: at most 100 per message (``too_many_attachments``), same page; ``color`` is a hex code
  or good/warning/danger: https://docs.slack.dev/messaging/formatting-message-text#when-to-use-attachments.
- Rate: "Posting messages: 1 per second" per channel, short bursts allowed; when limited, HTTP 429
  with ``Retry-After`` in seconds (Web API body ``{"ok": false, "error": "ratelimited"}``):
  https://docs.slack.dev/apis/web-api/rate-limits.
- Incoming-webhook errors, with HTTP status and plain-text body: ``invalid_payload`` 400,
  ``too_many_attachments`` 400, ``channel_not_found`` 404, ``channel_is_archived`` 410,
  ``action_prohibited`` 403, ``no_service`` 404:
  https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks#handling_errors.

Blocks inside attachments count towards the same 50 (Slack does not say otherwise; the stricter
reading keeps a client honest).
"""

from __future__ import annotations

import re

MAX_BLOCKS = 50
HEADER_TEXT = 150
SECTION_TEXT = 3000
SECTION_FIELDS = 10
SECTION_FIELD_TEXT = 2000
CONTEXT_ELEMENTS = 10
CONTEXT_TEXT = 3000
MESSAGE_TEXT = 40_000
MAX_ATTACHMENTS = 100
POST_INTERVAL = 1.0
"""Seconds between messages to one channel or one webhook."""
RATE_TOLERANCE = 0.75
"""Two posts a little less than one interval apart still pass, as Slack allows short bursts: a sender
pacing at exactly one a second sees its requests' latencies jitter, by a few milliseconds on a quiet
machine and by a few hundred on a loaded one (the test suite runs three workers on two cores)."""

WEBHOOK_ERRORS = {
    "invalid_payload": 400,
    "invalid_blocks": 400,
    "too_many_attachments": 400,
    "action_prohibited": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "channel_is_archived": 410,
}
"""Incoming-webhook error codes and the HTTP status Slack sends them with."""

_COLOR = re.compile(r"#?[0-9A-Fa-f]{6}|good|warning|danger")


def _text_error(obj: object, types: tuple[str, ...], limit: int) -> str | None:
    if not isinstance(obj, dict) or obj.get("type") not in types:
        return "invalid_blocks"
    text = obj.get("text")
    return None if isinstance(text, str) and 0 < len(text) <= limit else "invalid_blocks"


def block_error(block: object) -> str | None:
    """``invalid_blocks`` for a block Slack would refuse (of the kinds notifications use), else None."""
    if not isinstance(block, dict):
        return "invalid_blocks"
    kind = block.get("type")
    if kind == "header":
        return _text_error(block.get("text"), ("plain_text",), HEADER_TEXT)
    if kind == "section":
        fields = block.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or not 0 < len(fields) <= SECTION_FIELDS:
                return "invalid_blocks"
            bad = (e for f in fields if (e := _text_error(f, ("plain_text", "mrkdwn"), SECTION_FIELD_TEXT)))
            if error := next(bad, None):
                return error
            if "text" not in block:
                return None
        return _text_error(block.get("text"), ("plain_text", "mrkdwn"), SECTION_TEXT)
    if kind == "divider":
        return None
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 0 < len(elements) <= CONTEXT_ELEMENTS:
            return "invalid_blocks"
        return next((e for el in elements if (e := _text_error(el, ("plain_text", "mrkdwn"), CONTEXT_TEXT))), None)
    return "invalid_blocks"


def _blocks_error(blocks: object) -> str | None:
    if not isinstance(blocks, list) or not blocks:
        return "invalid_blocks"
    return next((error for block in blocks if (error := block_error(block))), None)


def _attachments_error(attachments: object) -> tuple[str | None, int]:
    """The error of an ``attachments`` list, and how many blocks its entries hold."""
    if not isinstance(attachments, list) or not attachments:
        return "invalid_attachments", 0
    if len(attachments) > MAX_ATTACHMENTS:
        return "too_many_attachments", 0
    count = 0
    for attachment in attachments:
        if not isinstance(attachment, dict):
            return "invalid_attachments", 0
        color = attachment.get("color")
        if color is not None and not (isinstance(color, str) and _COLOR.fullmatch(color)):
            return "invalid_attachments", 0
        blocks = attachment.get("blocks")
        if blocks is not None:
            if error := _blocks_error(blocks):
                return error, 0
            count += len(blocks)
        elif not attachment.get("text") and not attachment.get("fallback"):
            return "invalid_attachments", 0
    return None, count


def payload_error(payload: object, *, web_api: bool = False) -> str | None:
    """The error code Slack would answer for a message payload, or None when it would accept it.

    ``web_api``: judge as chat.postMessage/chat.update do (``msg_too_long`` past the text limit, ``no_text``
    for an empty message); otherwise as an incoming webhook (``invalid_payload``).
    """
    if not isinstance(payload, dict):
        return "invalid_payload" if not web_api else "invalid_arguments"
    text, blocks, attachments = payload.get("text"), payload.get("blocks"), payload.get("attachments")
    if text is not None and not isinstance(text, str):
        return "invalid_payload" if not web_api else "invalid_arguments"
    if isinstance(text, str) and len(text) > MESSAGE_TEXT:
        return "msg_too_long" if web_api else "invalid_payload"
    count = 0
    if blocks is not None:
        if error := _blocks_error(blocks):
            return error
        count = len(blocks)
    if attachments is not None:
        error, inner = _attachments_error(attachments)
        if error:
            return error
        count += inner
    if count > MAX_BLOCKS:
        return "invalid_blocks"
    if not text and blocks is None and attachments is None:
        return "no_text" if web_api else "invalid_payload"
    return None
