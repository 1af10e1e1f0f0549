"""The hotel's staffed hours (BUSINESS_HOURS in HOTEL_TIMEZONE): open or not, since when closed, when open next."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HOURS = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*$")


class InvalidBusinessHours(ValueError):
    """BUSINESS_HOURS or HOTEL_TIMEZONE cannot be read: a deployment mistake, reported at start-up."""


@dataclass(frozen=True)
class BusinessHours:
    """Staffed from `opens` to `closes` each day; `closes` before `opens` means the hours run past midnight."""

    opens: time
    closes: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, hours: str, timezone: str) -> BusinessHours:
        match = _HOURS.match(hours)
        if not match:
            raise InvalidBusinessHours("BUSINESS_HOURS must look like 08:00-22:00")
        opens = time(int(match.group(1)), int(match.group(2)))
        closes = time(int(match.group(3)), int(match.group(4)))
        if opens == closes:
            raise InvalidBusinessHours(
                "BUSINESS_HOURS opens and closes at the same time; leave it unset for always open"
            )
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise InvalidBusinessHours(f"HOTEL_TIMEZONE {timezone!r} is not a time zone") from error
        return cls(opens, closes, zone)

    def is_open(self, moment: datetime) -> bool:
        now = moment.astimezone(self.zone).time()
        if self.opens < self.closes:
            return self.opens <= now < self.closes
        return now >= self.opens or now < self.closes

    def closed_since(self, moment: datetime) -> datetime:
        """When the current closed period began (only meaningful while closed): names the night."""
        local = moment.astimezone(self.zone)
        for days_back in (0, 1):
            day = local.date() - timedelta(days=days_back)
            closing = datetime.combine(day, self.closes, tzinfo=self.zone)
            if closing <= local:
                return closing
        return datetime.combine(local.date() - timedelta(days=2), self.closes, tzinfo=self.zone)

    def night(self, moment: datetime) -> str:
        """One name per closed period, so the out-of-hours text goes out once a night."""
        return self.closed_since(moment).date().isoformat()

    def opens_at(self) -> str:
        return self.opens.strftime("%H:%M")
