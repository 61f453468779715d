"""Rights are data (ADM-3): named permissions, the four ADM-1 levels as presets, ADM-2 sets.

The seed's right names are kept: a provider's *clients administrator* holds ``clients.*``
rights over every client; a company's *client administrator* holds ``users.*`` rights over
its own client's users and telephony objects; a *client user* holds ``own.*`` rights limited
to the numbers assigned to them.
"""

from __future__ import annotations

from enum import StrEnum


class Right(StrEnum):
    SYSTEM_MANAGE = "system.manage"
    HTTPS_LOGIN = "https.login"
    # Clients administrator (provider staff), over every client.
    CLIENTS_VIEW_SETTINGS = "clients.view_settings"
    CLIENTS_VIEW_CDR = "clients.view_cdr"
    CLIENTS_MANAGE_CALLS = "clients.manage_calls"
    CLIENTS_EDIT = "clients.edit"
    CLIENTS_ADD = "clients.add"
    CLIENTS_DELETE = "clients.delete"
    # Client administrator, over its own client.
    USERS_VIEW_SETTINGS = "users.view_settings"
    USERS_VIEW_CDR = "users.view_cdr"
    USERS_MANAGE_CALLS = "users.manage_calls"
    USERS_EDIT = "users.edit"
    USERS_ADD = "users.add"
    USERS_DELETE = "users.delete"
    # Client user, over the numbers assigned to them.
    OWN_VIEW_SETTINGS = "own.view_settings"
    OWN_VIEW_CDR = "own.view_cdr"
    OWN_MANAGE_CALLS = "own.manage_calls"
    OWN_CHANGE_SETTINGS = "own.change_settings"
    # ADM-2 additional sets, combinable with any level.
    PIN_AUTH = "extra.pin_auth"
    CLIP_AUTH = "extra.clip_auth"
    WEB_SERVICES = "extra.web_services"
    ADVANCED_SETTINGS = "extra.advanced_settings"
    TELEMARKETING = "extra.telemarketing"


DESCRIPTIONS: dict[Right, tuple[str, str]] = {
    Right.SYSTEM_MANAGE: ("Управление системой", "System management"),
    Right.HTTPS_LOGIN: ("Вход по HTTPS", "HTTPS login"),
    Right.CLIENTS_VIEW_SETTINGS: ("Просмотр настроек клиентов", "View client settings"),
    Right.CLIENTS_VIEW_CDR: ("Просмотр детализации клиентов", "View client CDR"),
    Right.CLIENTS_MANAGE_CALLS: ("Управление вызовами клиентов", "Manage client calls"),
    Right.CLIENTS_EDIT: ("Редактирование клиентов", "Edit clients"),
    Right.CLIENTS_ADD: ("Добавление клиентов", "Add clients"),
    Right.CLIENTS_DELETE: ("Удаление клиентов", "Delete clients"),
    Right.USERS_VIEW_SETTINGS: ("Просмотр настроек пользователей", "View users' settings"),
    Right.USERS_VIEW_CDR: ("Просмотр детализации пользователей", "View users' CDR"),
    Right.USERS_MANAGE_CALLS: ("Управление вызовами пользователей", "Manage users' calls"),
    Right.USERS_EDIT: ("Редактирование пользователей", "Edit users"),
    Right.USERS_ADD: ("Добавление пользователей", "Add users"),
    Right.USERS_DELETE: ("Удаление пользователей", "Delete users"),
    Right.OWN_VIEW_SETTINGS: ("Просмотр настроек", "View settings"),
    Right.OWN_VIEW_CDR: ("Просмотр детализации", "View CDR"),
    Right.OWN_MANAGE_CALLS: ("Управление вызовами", "Manage calls"),
    Right.OWN_CHANGE_SETTINGS: ("Изменение настроек", "Change settings"),
    Right.PIN_AUTH: ("PIN авторизация", "PIN authorization"),
    Right.CLIP_AUTH: ("CLIP авторизация", "CLIP authorization"),
    Right.WEB_SERVICES: ("Веб-сервисы", "Web services"),
    Right.ADVANCED_SETTINGS: ("Расширенные настройки", "Advanced settings"),
    Right.TELEMARKETING: ("Телемаркетинг", "Telemarketing"),
}


class Level(StrEnum):
    """ADM-1 account levels; each is a preset of rights and a personal cabinet."""

    SYSTEM_ADMIN = "system_admin"
    CLIENTS_ADMIN = "clients_admin"
    CLIENT_ADMIN = "client_admin"
    CLIENT_USER = "client_user"


# Every level has a personal cabinet, so every preset may log in over HTTPS.
PRESETS: dict[Level, frozenset[Right]] = {
    Level.SYSTEM_ADMIN: frozenset({Right.SYSTEM_MANAGE, Right.HTTPS_LOGIN}),
    Level.CLIENTS_ADMIN: frozenset(
        {
            Right.HTTPS_LOGIN,
            Right.CLIENTS_VIEW_SETTINGS,
            Right.CLIENTS_VIEW_CDR,
            Right.CLIENTS_MANAGE_CALLS,
            Right.CLIENTS_EDIT,
            Right.CLIENTS_ADD,
            Right.CLIENTS_DELETE,
        }
    ),
    Level.CLIENT_ADMIN: frozenset(
        {
            Right.HTTPS_LOGIN,
            Right.USERS_VIEW_SETTINGS,
            Right.USERS_VIEW_CDR,
            Right.USERS_MANAGE_CALLS,
            Right.USERS_EDIT,
            Right.USERS_ADD,
            Right.USERS_DELETE,
        }
    ),
    Level.CLIENT_USER: frozenset(
        {
            Right.HTTPS_LOGIN,
            Right.OWN_VIEW_SETTINGS,
            Right.OWN_VIEW_CDR,
            Right.OWN_MANAGE_CALLS,
            Right.OWN_CHANGE_SETTINGS,
        }
    ),
}

ADDITIONAL_SETS: frozenset[Right] = frozenset(
    {
        Right.PIN_AUTH,
        Right.CLIP_AUTH,
        Right.WEB_SERVICES,
        Right.ADVANCED_SETTINGS,
        Right.TELEMARKETING,
    }
)

# ADM-1: a client administrator's power over its users' settings, CDR and calls covers the
# client user's own.* rights: it may grant them without holding them itself.
COVERS: dict[Right, Right] = {
    Right.OWN_VIEW_SETTINGS: Right.USERS_VIEW_SETTINGS,
    Right.OWN_VIEW_CDR: Right.USERS_VIEW_CDR,
    Right.OWN_MANAGE_CALLS: Right.USERS_MANAGE_CALLS,
    Right.OWN_CHANGE_SETTINGS: Right.USERS_EDIT,
}

# Provider-side rights need a user without a client; company-side ones need a client.
PROVIDER_RIGHTS: frozenset[Right] = frozenset(
    r for r in Right if r.value.startswith(("system.", "clients."))
)


def level_needs_client(level: Level) -> bool:
    return level in (Level.CLIENT_ADMIN, Level.CLIENT_USER)
