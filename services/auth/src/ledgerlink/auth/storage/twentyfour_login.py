"""The 24SevenOffice login the token service makes for a connection's integration user.

One SOAP ``Login`` per call, never repeated here: the vendor throttles repeated logins
(seed 004: one integration user serves every client of a firm), so the token service
decides under its per-connection lock when a login happens at all, and what a refusal
means. The request and the refusal mapping are the connector's
(:func:`ledgerlink.connectors.twentyfour.open_session`), so both sides read the vendor's
answers the same way. Nothing secret is logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from ledgerlink.auth.config import TwentyFourLoginSettings
from ledgerlink.auth.storage.vendor_oauth import VendorUnreachableError
from ledgerlink.connectors.errors import (
    AccessNotEnabled,
    AuthenticationFailed,
    ConnectorError,
    NotFound,
    RateLimited,
    UnexpectedResponse,
    VendorUnavailable,
)
from ledgerlink.connectors.twentyfour import open_session

__all__ = [
    "LoginRefusedError",
    "LoginThrottledError",
    "LoginUnconfiguredError",
    "TwentyFourLoginClient",
]


class LoginRefusedError(Exception):
    """24SevenOffice refused the integration user: a person must act (``reason_code``)."""

    def __init__(self, reason_code: str, vendor_message: str | None) -> None:
        super().__init__(f"24SevenOffice refused the login: {reason_code}")
        self.reason_code = reason_code
        self.vendor_message = vendor_message


class LoginThrottledError(Exception):
    """24SevenOffice throttles this user's logins; ``retry_after`` seconds if it said."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__("24SevenOffice throttled the login")
        self.retry_after = retry_after


class LoginUnconfiguredError(Exception):
    """Our side is not set up: no ApplicationId, or the vendor refused ours."""


@dataclass
class TwentyFourLoginClient:
    """Logs in at 24SevenOffice through the process's shared ``httpx.AsyncClient``."""

    http: httpx.AsyncClient
    settings: TwentyFourLoginSettings
    timeout: float = 15.0
    #: Login requests sent (tests count them).
    logins: int = 0

    async def login(self, username: str, password: SecretStr, identity_id: str | None) -> SecretStr:
        """A new session id for the user (landed on ``identity_id``'s client when given)."""
        application_id = self.settings.application_id
        if application_id is None:
            raise LoginUnconfiguredError("no 24SevenOffice ApplicationId is configured")
        self.logins += 1
        try:
            return await open_session(
                self.http,
                soap_base_url=self.settings.soap_base_url,
                application_id=application_id,
                username=username,
                password=password,
                identity_id=identity_id,
                timeout=self.timeout,
            )
        except RateLimited as throttled:
            raise LoginThrottledError(throttled.retry_after) from None
        except AuthenticationFailed as refused:
            said = refused.vendor_message
            if said is not None and "applicationid" in said.lower():
                # The vendor refused our application, not the customer's user.
                raise LoginUnconfiguredError("24SevenOffice refused our ApplicationId") from None
            raise LoginRefusedError("invalid_credentials", said) from None
        except NotFound as missing:
            raise LoginRefusedError("identity_unavailable", missing.vendor_message) from None
        except AccessNotEnabled as disabled:
            raise LoginRefusedError("access_not_enabled", disabled.vendor_message) from None
        except (VendorUnavailable, UnexpectedResponse) as failed:
            raise VendorUnreachableError(f"24SevenOffice login failed: {failed}") from None
        except ConnectorError as refused:
            # Any other refusal ("the user has no access to any client"): asking again
            # would only add a failed login to the vendor's count.
            raise LoginRefusedError("login_refused", refused.vendor_message) from None
