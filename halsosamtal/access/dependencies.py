"""Request authentication: ``Authorization: Bearer <key>`` and role checks.

Routes declare who may call them with ``Depends(require("operator", ...))``. The roles show in
the OpenAPI document as the operation's security requirement (OpenAPI 3.1 allows role names
for non-OAuth schemes), so integrators can read them and tests can check every route.
"""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from halsosamtal.access.schemas import Principal, Role
from halsosamtal.access.service import authenticate
from halsosamtal.core.errors import Forbidden, Unauthenticated
from halsosamtal.core.http import Session

bearer = HTTPBearer(auto_error=False, description="An API key from `halsosamtal clients create`.")


async def current_principal(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    # Authenticated at the door (halsosamtal.access.doors), before the body was read.
    if isinstance(found := getattr(request.state, "principal", None), Principal):
        return found
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
    principal = await authenticate(session, credentials.credentials)
    if principal is None:
        raise Unauthenticated("the API key is unknown or revoked")
    request.state.principal = principal
    return principal


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that lets only clients with one of ``roles`` through (else 403)."""

    async def dependency(
        principal: Annotated[Principal, Security(current_principal, scopes=list(roles))],
    ) -> Principal:
        if principal.role not in roles:
            raise Forbidden(
                f"this needs the role {' or '.join(roles)}; the client {principal.name!r} "
                f"has {principal.role}"
            )
        return principal

    return dependency


Operator = Annotated[Principal, Depends(require("operator"))]
