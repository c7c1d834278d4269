"""What the Results pages' tests share: citizens answering ``central-park`` through the
service, as they would by SMS or Telegram."""

from __future__ import annotations

import itertools
from typing import Final

from bot.service import Service
from messages import Address, InboundMessage

#: Every week; walk and the dog; clean 4; playground yes; birth year skipped; an idea; future yes.
WEEKLY: Final = ("PARK", "1", "1 4", "4", "1", "SKIP", "More benches", "1")
#: Never; why not: typed; (no activities, no cleanliness); playground no; born 1950; no idea.
NEVER: Final = ("PARK", "4", "Too far from home", "2", "1950", "SKIP", "2")
IDEA: Final = "More benches"
_ids = itertools.count(1)


def answer(service: Service, address: Address, lines: tuple[str, ...]) -> None:
    """``address`` sends ``lines``, one message each, as a citizen would."""
    for text in lines:
        service.receive(InboundMessage(address, text, f"results-{next(_ids)}", service.now()))


def sms(n: int) -> Address:
    return Address("sms", f"+3247055{n:04d}")


def five_weekly_and_a_never(service: Service) -> None:
    """Five people by SMS who go every week, one on Telegram who never goes."""
    for n in range(5):
        answer(service, sms(n), WEEKLY)
    answer(service, Address("telegram", "990001"), NEVER)
