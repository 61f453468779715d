"""The ``cloudpbx`` command: migrate, create-admin, demo, run (issue 2 §8)."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from cloudpbx.config import Settings, get_settings
from cloudpbx.db.migrate import sync_rights, upgrade
from cloudpbx.db.models import User, UserRight
from cloudpbx.db.session import make_engine, make_sessionmaker, session_scope
from cloudpbx.rights import PRESETS, Level
from cloudpbx.security import hash_password


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    upgrade(settings.database_url)
    factory = make_sessionmaker(make_engine(settings.database_url))
    with factory() as session:
        sync_rights(session)
    print(f"database migrated: {_safe_url(settings.database_url)}")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> int:
    password = args.password or getpass.getpass("password: ")
    if len(password) < 10:
        print("error: the password needs at least 10 characters", file=sys.stderr)
        return 2
    factory = make_sessionmaker(make_engine(settings.database_url))
    with session_scope(factory) as session:
        if session.scalar(select(User).where(User.login == args.login)) is not None:
            print(f"error: login {args.login!r} already exists", file=sys.stderr)
            return 2
        session.add(make_user(args.login, password, Level.SYSTEM_ADMIN, None))
    print(f"system administrator {args.login!r} created")
    return 0


def make_user(login: str, password: str, level: Level, client_id: int | None) -> User:
    user = User(
        login=login, password_hash=hash_password(password), level=level.value, client_id=client_id
    )
    user.rights = [UserRight(right=r.value) for r in sorted(PRESETS[level])]
    return user


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from cloudpbx.demo import ensure_demo

    credentials = ensure_demo(settings)
    if args.json:
        print(json.dumps(credentials, ensure_ascii=False, indent=2))
    else:
        print(_demo_text(credentials))
    return 0


def _demo_text(c: dict[str, object]) -> str:
    lines = [
        f"Web interface and API: {c['url']}",
        f"API documentation:     {c['url']}api/v1/docs",
    ]
    for user in c["users"]:  # type: ignore[attr-defined]
        lines.append(f"Login {user['level']:<13} {user['login']} / {user['password']}")
    lines.append(f"SIP server: {c['sip_server']} (realm {c['sip_realm']}), phones:")
    for phone in c["phones"]:  # type: ignore[attr-defined]
        lines.append(
            f"  {phone['number']}  login {phone['sip_login']}  password {phone['sip_password']}"
        )
    return "\n".join(lines)


def cmd_prompts(settings: Settings, args: argparse.Namespace) -> int:
    from cloudpbx.media.prompts import run

    return run(args.out or Path(settings.data_dir) / "prompts", args.lang, force=args.force)


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from cloudpbx.app import create_app
    from cloudpbx.transport.endpoint import event_loop_factory

    # The engine logs registrations, calls and what is not implemented (uvicorn configures
    # only its own loggers).
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    print(f"cloudpbx listening on http://{settings.http_host}:{settings.http_port}/", flush=True)
    if settings.sip_enabled:
        print(
            f"SIP engine on {settings.sip_host}:{settings.sip_port} (UDP, TCP), "
            f"WebSocket {settings.sip_ws_port}",
            flush=True,
        )
    uvicorn.run(
        create_app(settings, engine=settings.sip_enabled),
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        proxy_headers=False,
        # The engine shares the server's loop: uvloop when installed (ENGINEERING.md §1).
        loop="uvloop" if event_loop_factory() is not None else "asyncio",
    )
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    """DP-6 from the command line: the same simulation as the API route."""
    import datetime as dt

    from pydantic import ValidationError

    from cloudpbx.api.errors import ApiError
    from cloudpbx.api.simulation import body_from_cli, find_dialplan, format_path, simulate_stored

    try:
        body = body_from_cli(
            args.assume or [],
            args.digits or [],
            caller=args.caller,
            time=args.time,
            version=args.version,
            number=args.number if args.dialplan is not None else None,
        )
    except (ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    factory = make_sessionmaker(make_engine(settings.database_url))
    with factory() as session:
        try:
            dialplan = find_dialplan(session, settings, args.client, args.dialplan, args.number)
            result = simulate_stored(session, settings, dialplan, body, dt.datetime.now(dt.UTC))
        except ApiError as exc:
            print(f"error: {exc.body.message}", file=sys.stderr)
            return 2
    print(result.model_dump_json(indent=2) if args.json else format_path(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloudpbx", description="cloudpbx virtual PBX")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the database schema")
    admin = sub.add_parser("create-admin", help="create a system administrator")
    admin.add_argument("login")
    admin.add_argument("--password", help="prompted for when omitted")
    demo = sub.add_parser("demo", help="create the demo client (idempotent) and print logins")
    demo.add_argument("--json", action="store_true", help="print the credentials as JSON")
    prompts = sub.add_parser("prompts", help="make the voice prompts with espeak-ng (idempotent)")
    prompts.add_argument("--out", type=Path, help="directory (default: <data_dir>/prompts)")
    prompts.add_argument(
        "--lang", action="append", choices=["ru", "en"], help="repeatable; default all"
    )
    prompts.add_argument("--force", action="store_true", help="make every prompt again")
    sub.add_parser("run", help="serve the web interface and API, and the SIP engine")
    simulate = sub.add_parser("simulate", help="simulate a call through a dialplan (DP-6)")
    simulate.add_argument("--client", type=int, required=True, help="the client's id")
    simulate.add_argument("--dialplan", type=int, help="the dialplan's id (or give --number)")
    simulate.add_argument("--number", help="the dialled number (its dialplan is simulated)")
    simulate.add_argument("--caller", help="the caller's number (classifiers look it up)")
    simulate.add_argument("--time", help="ISO 8601; without an offset: the client's clock")
    simulate.add_argument("--version", type=int, help="dialplan version (default: current)")
    simulate.add_argument(
        "--assume", action="append", metavar="KIND:ID=STATE[@S]", help="e.g. port:7=busy"
    )
    simulate.add_argument("--digits", action="append", help="menu keys, one per menu play")
    simulate.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


COMMANDS = {
    "migrate": cmd_migrate,
    "create-admin": cmd_create_admin,
    "demo": cmd_demo,
    "prompts": cmd_prompts,
    "run": cmd_run,
    "simulate": cmd_simulate,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](get_settings(), args)


if __name__ == "__main__":
    sys.exit(main())
