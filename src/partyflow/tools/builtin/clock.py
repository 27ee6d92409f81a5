"""The current-time tool: models do not know what time it is, and guess confidently when asked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from partyflow.tools.base import Tool, ToolError
from partyflow.tools.functions import function_tool


def current_time_tool(*, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Tool:
    """A `current_time` tool; `clock` is injectable so tests and replays get a fixed time."""

    def current_time(timezone: str = "UTC") -> dict[str, str]:
        """The current date and time (ISO 8601) and weekday.

        Args:
            timezone: An IANA time zone name such as 'Europe/Paris'; UTC when omitted.
        """
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"unknown time zone {timezone!r}; use an IANA name such as 'America/New_York'") from None
        now = clock().astimezone(zone)
        return {"iso": now.isoformat(timespec="seconds"), "weekday": now.strftime("%A"), "timezone": timezone}

    return function_tool(current_time)
