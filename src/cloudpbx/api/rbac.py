"""Rights and tenant scope, enforced in one place (ADM-3, ADM-4, issue 2 §5).

Every route reaches data through :func:`authorize` (via the CRUD layer or directly), which turns
a principal, a policy and a client into an :class:`Access`. A principal that has nothing to do
with a client gets 404 for it, not 403, so other tenants' existence does not leak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from cloudpbx.rights import Level, Right


class Scope(Enum):
    ANY_CLIENT = "any"  # provider staff: every client
    OWN_CLIENT = "client"  # company admins: their own client
    OWN_NUMBERS = "numbers"  # client users: objects of their own numbers


class Access(Enum):
    NONE = 0
    NUMBERS = 1
    FULL = 2


Grant = tuple[Right, Scope]


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    login: str
    level: Level
    client_id: int | None
    rights: frozenset[str]
    internal_number_ids: frozenset[int] = field(default_factory=frozenset)
    external_number_ids: frozenset[int] = field(default_factory=frozenset)

    def has(self, right: Right) -> bool:
        return right.value in self.rights

    @property
    def is_provider(self) -> bool:
        return self.client_id is None


@dataclass(frozen=True, slots=True)
class Policy:
    read: tuple[Grant, ...]
    create: tuple[Grant, ...]
    update: tuple[Grant, ...]
    delete: tuple[Grant, ...]

    def for_action(self, action: str) -> tuple[Grant, ...]:
        return {
            "read": self.read,
            "create": self.create,
            "update": self.update,
            "delete": self.delete,
        }[action]

    def all_grants(self) -> tuple[Grant, ...]:
        return self.read + self.create + self.update + self.delete


def access(principal: Principal, grants: tuple[Grant, ...], client_id: int | None) -> Access:
    """The widest access any of the grants gives this principal on this client."""
    best = Access.NONE
    for right, scope in grants:
        if not principal.has(right):
            continue
        if scope is Scope.ANY_CLIENT:
            return Access.FULL
        if client_id is None or principal.client_id != client_id:
            continue
        if scope is Scope.OWN_CLIENT:
            return Access.FULL
        best = Access.NUMBERS
    return best


def sees_client(principal: Principal, client_id: int) -> bool:
    """Whether the principal may know the client exists at all (else: 404)."""
    if principal.client_id == client_id:
        return True
    provider_rights = (Right.SYSTEM_MANAGE, *_PROVIDER_VIEW)
    return any(principal.has(r) for r in provider_rights)


_PROVIDER_VIEW = (
    Right.CLIENTS_VIEW_SETTINGS,
    Right.CLIENTS_VIEW_CDR,
    Right.CLIENTS_MANAGE_CALLS,
    Right.CLIENTS_EDIT,
    Right.CLIENTS_DELETE,
)

S, A, C, N = Right, Scope.ANY_CLIENT, Scope.OWN_CLIENT, Scope.OWN_NUMBERS

# A company's telephony objects: provider staff with "edit clients" may change them too.
CLIENT_CONFIG = Policy(
    read=((S.SYSTEM_MANAGE, A), (S.CLIENTS_VIEW_SETTINGS, A), (S.USERS_VIEW_SETTINGS, C)),
    create=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A), (S.USERS_ADD, C)),
    update=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A), (S.USERS_EDIT, C)),
    delete=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A), (S.USERS_DELETE, C)),
)

# Objects that belong to a number: a client user sees and changes those of their numbers.
NUMBER_CONFIG = Policy(
    read=(*CLIENT_CONFIG.read, (S.OWN_VIEW_SETTINGS, N)),
    create=CLIENT_CONFIG.create,
    update=(*CLIENT_CONFIG.update, (S.OWN_CHANGE_SETTINGS, N)),
    delete=CLIENT_CONFIG.delete,
)

# Numbers themselves: visible to their users; only the provider allocates DIDs (NUM-1).
INTERNAL_NUMBERS = Policy(
    read=NUMBER_CONFIG.read,
    create=CLIENT_CONFIG.create,
    update=CLIENT_CONFIG.update,
    delete=CLIENT_CONFIG.delete,
)
EXTERNAL_NUMBERS = Policy(
    read=NUMBER_CONFIG.read,
    create=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A)),
    update=CLIENT_CONFIG.update,
    delete=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A)),
)

# TM-1 / ADM-2: campaigns need the Telemarketing set on top of reading settings.
CAMPAIGNS = Policy(
    read=CLIENT_CONFIG.read,
    create=((S.SYSTEM_MANAGE, A), (S.TELEMARKETING, A), (S.TELEMARKETING, C)),
    update=((S.SYSTEM_MANAGE, A), (S.TELEMARKETING, A), (S.TELEMARKETING, C)),
    delete=((S.SYSTEM_MANAGE, A), (S.TELEMARKETING, A), (S.TELEMARKETING, C)),
)

# Call records are read-only through the API (CDR-2: nothing can be broken from statistics).
CDR = Policy(
    read=(
        (S.SYSTEM_MANAGE, A),
        (S.CLIENTS_VIEW_CDR, A),
        (S.USERS_VIEW_CDR, C),
        (S.OWN_VIEW_CDR, N),
    ),
    create=(),
    update=(),
    delete=(),
)

# Installation-wide objects of the system administrator (operators, staff users).
SYSTEM = Policy(
    read=((S.SYSTEM_MANAGE, A),),
    create=((S.SYSTEM_MANAGE, A),),
    update=((S.SYSTEM_MANAGE, A),),
    delete=((S.SYSTEM_MANAGE, A),),
)

# Tariffs: the clients administrator reads them to assign billing accounts (ADM-6).
TARIFFS = Policy(
    read=((S.SYSTEM_MANAGE, A), (S.CLIENTS_VIEW_SETTINGS, A), (S.CLIENTS_EDIT, A)),
    create=SYSTEM.create,
    update=SYSTEM.update,
    delete=SYSTEM.delete,
)

# Clients themselves (ADM-1): provider staff manage them, a company reads its own.
CLIENTS = Policy(
    read=(
        (S.SYSTEM_MANAGE, A),
        (S.CLIENTS_VIEW_SETTINGS, A),
        (S.CLIENTS_EDIT, A),
        (S.USERS_VIEW_SETTINGS, C),
        (S.OWN_VIEW_SETTINGS, C),
    ),
    create=((S.SYSTEM_MANAGE, A), (S.CLIENTS_ADD, A)),
    update=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A)),
    delete=((S.SYSTEM_MANAGE, A), (S.CLIENTS_DELETE, A)),
)

# ADM-5/ADM-6: limits and billing accounts are set by the provider, read by the company.
CLIENT_BILLING = Policy(
    read=(*CLIENTS.read[:3], (S.USERS_VIEW_SETTINGS, C)),
    create=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A)),
    update=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A)),
    delete=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A)),
)

# A company's users (ADM-1: the client administrator's own rights).
CLIENT_USERS = Policy(
    read=((S.SYSTEM_MANAGE, A), (S.CLIENTS_VIEW_SETTINGS, A), (S.USERS_VIEW_SETTINGS, C)),
    create=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A), (S.USERS_ADD, C)),
    update=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A), (S.USERS_EDIT, C)),
    delete=((S.SYSTEM_MANAGE, A), (S.CLIENTS_EDIT, A), (S.USERS_DELETE, C)),
)

# The audit log: the provider reads all of it, a company administrator its own client's.
AUDIT = Policy(
    read=((S.SYSTEM_MANAGE, A), (S.CLIENTS_VIEW_SETTINGS, A), (S.USERS_VIEW_SETTINGS, C)),
    create=(),
    update=(),
    delete=(),
)

LEVEL_OF_PRESET = Level
