"""
title: Clock
author: toolbridge
version: 1.0.0
description: The current date and time in any timezone, and the days between two dates.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r} (expected an IANA name such as 'Europe/Paris')"
        ) from None


class Tools:
    class Valves(BaseModel):
        timezone: str = Field(
            default="UTC", description="The timezone `now` answers in (an IANA name)."
        )

        @field_validator("timezone")
        @classmethod
        def _known(cls, value: str) -> str:
            _zone(value)
            return value

    class UserValves(BaseModel):
        timezone: str = Field(
            default="", description="Your own timezone; empty means the server's setting."
        )

    def __init__(self) -> None:
        self.valves = self.Valves()

    def now(self, __user__: dict[str, Any] | None = None) -> dict[str, str]:
        """Tell the current date and time.

        Answers in the caller's timezone when they set one, else in the server's. Use it
        whenever the answer depends on today's date or the time of day.
        """
        valves = (__user__ or {}).get("valves")
        name = getattr(valves, "timezone", "") or self.valves.timezone
        moment = datetime.now(_zone(name))
        return {
            "datetime": moment.isoformat(timespec="seconds"),
            "weekday": moment.strftime("%A"),
            "timezone": name,
        }

    now.readonly = True  # type: ignore[attr-defined]  # toolbridge: a read-only tool

    def days_between(self, start: str, end: str) -> int:
        """Count the days from one date to another.

        The answer is negative when `end` comes before `start`.

        :param start: The first date, as YYYY-MM-DD.
        :param end: The second date, as YYYY-MM-DD.
        """
        return (date.fromisoformat(end) - date.fromisoformat(start)).days

    days_between.readonly = True  # type: ignore[attr-defined]  # toolbridge: a read-only tool

    def convert_time(self, time: str, to_timezone: str, from_timezone: str = "UTC") -> str:
        """Convert a date and time from one timezone to another.

        Args:
            time: The date and time, as YYYY-MM-DDTHH:MM (ISO 8601), without an offset.
            to_timezone: The timezone to convert to, an IANA name such as "Asia/Tokyo".
            from_timezone: The timezone `time` is in.
        """
        moment = datetime.fromisoformat(time)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_zone(from_timezone))
        return moment.astimezone(_zone(to_timezone)).isoformat(timespec="minutes")

    convert_time.readonly = True  # type: ignore[attr-defined]  # toolbridge: a read-only tool
