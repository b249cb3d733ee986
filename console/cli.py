"""The `tradeconsole` command line (SPEC section 3).

Headless and export commands never import Textual; the UI is imported only by `demo`, `run`
without `--headless`, and `inspect`. Exit codes: 0 done, 1 runtime failure, 2 bad usage or
bad config (the message names the file, key and line), a store path that is not a store (the
message names the path and the problem), and a store another core holds (the message names the
holder and suggests `attach`). A core (`run`, `demo`) takes the store's lock (executor/storelock.py)
before it opens the store; `inspect` and the exports never do.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from executor.storelock import StoreLock, StoreLocked, StorePathError, check_store

if TYPE_CHECKING:
    from executor.config import Settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

ORDER_FIELDS = ("signal_id", "client_order_id", "exchange_order_id", "symbol", "side", "type", "amount", "price",
    "status", "filled", "average", "fee", "fee_currency", "attempts", "origin", "created_at", "updated_at",
    "last_error")
SIGNAL_FIELDS = ("id", "status", "reason", "received_at", "source", "symbol", "side", "amount", "reference_price",
    "expires_at", "decided_at", "decided_by")


class UsageError(Exception):
    pass


def store_in_use(exc: StoreLocked) -> str:
    """The one line a refused core prints: who holds the store, and what to do instead."""
    db = os.path.abspath(exc.path)
    return f"{exc}; use 'tradeconsole attach --db {db}' or 'tradeconsole inspect --db {db}' instead"


def store_problem(db: Path, exc: BaseException) -> str:
    """One line for a store that cannot be opened or read (never a traceback)."""
    if isinstance(exc, StorePathError):
        return str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return f"{db}: not a tradeconsole store ({exc})"
    if isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc):
        return f"{db}: not a tradeconsole store ({exc})"
    if isinstance(exc, OSError):
        return f"{db}: {exc.strerror or exc}"
    return f"{db}: cannot open the store ({exc})"


STORE_OPEN_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, StorePathError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradeconsole", description="A terminal trading console for crypto spot.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, *, config: bool = True) -> None:
        p.add_argument("--db", metavar="PATH", help="SQLite store (default: [store] path or the platform data dir)")
        if config:
            p.add_argument("--config", metavar="FILE", help="TOML config (default: the platform config dir)")

    p = sub.add_parser("demo", help="paper exchange + synthetic market + demo strategy, in the console")
    p.add_argument("--seed", type=int, default=None, help="seed of the synthetic market (default: [paper] seed)")
    p.add_argument("--via-emulator", action="store_true", help="trade through real ccxt against a local emulator")
    common(p)

    p = sub.add_parser("run", help="trade per the config")
    p.add_argument("--headless", action="store_true", help="no UI: the core alone, logging to stderr")
    p.add_argument(
        "--until-idle",
        action="store_true",
        help="exit 0 once every source is exhausted and no order is in a non-terminal state",
    )
    p.add_argument("--signals", metavar="PATH", help="JSONL signals file, or - for stdin")
    common(p)

    p = sub.add_parser("attach", help="the full console on a running core, over its control socket")
    p.add_argument("--socket", metavar="PATH", help="the core's control socket (default: found from --db)")
    common(p)

    p = sub.add_parser("inspect", help="the console, read-only: attached to the store's core, or following the store")
    common(p)

    p = sub.add_parser("emulator", help="a Binance-spot-compatible REST exchange on 127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port; the URL is printed)")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic market")
    p.add_argument("--faults", metavar="FILE", help="JSON fault-injection plan (see executor/venue/faults.py)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every response, like a venue's latency")
    p.add_argument("--max-orders-per-symbol", type=int, default=0, metavar="N",
                   help="MAX_NUM_ORDERS: at most N open orders per symbol (0: off)")
    p.add_argument("--record", metavar="FILE", help="on exit, write every order the emulator accepted (JSON) here")
    common(p)

    p = sub.add_parser("orders", help="export orders (open ones, or all)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    p.add_argument("--all", action="store_true", help="include finished orders")
    common(p)

    p = sub.add_parser("signals", help="export signals with their status and reason")
    p.add_argument("--json", action="store_true")
    common(p)

    p = sub.add_parser("audit", help="export the operator audit trail")
    p.add_argument("--json", action="store_true")
    common(p)

    p = sub.add_parser("positions", help="positions per market from fills, with realized and unrealized PnL")
    p.add_argument("--json", action="store_true", help="JSON, every quantity and price a decimal string")
    common(p)

    from console.ctl import add_parser as add_ctl_parser

    add_ctl_parser(sub)

    p = sub.add_parser("config", help="configuration helpers")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    pi = csub.add_parser("init", help="write a commented config template")
    pi.add_argument("path", nargs="?", help="where to write it (default: the platform config dir)")
    pi.add_argument("--force", action="store_true", help="overwrite an existing file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A console's start-up (the imports, the styles, the core's state) makes a great many objects
    # that live as long as the console does: the collector would walk them again and again for
    # nothing. It waits until the first full screen is drawn (`TradeConsole` turns it back on then)
    # and is back on when this returns at the latest. Commands without the UI never pause it.
    console = args.command in ("demo", "attach", "inspect") or (args.command == "run" and not args.headless)
    paused = console and gc.isenabled()
    if paused:
        gc.disable()
    from executor.config import ConfigError  # imported here: after the collector's pause, if any

    try:
        return _dispatch(args)
    except (ConfigError, UsageError, StoreLocked, StorePathError) as exc:
        # Bad usage, a bad config file, a store that is none or is another core's: one line (exit 2).
        said = f"config error:\n{exc}" if isinstance(exc, ConfigError) else (
            store_in_use(exc) if isinstance(exc, StoreLocked) else str(exc))
        print(f"tradeconsole: {said}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        if paused:
            gc.enable()


def _settings(args: argparse.Namespace) -> Settings:
    from executor.config import load_config

    path = Path(args.config) if getattr(args, "config", None) else None
    return load_config(path)


def _db(args: argparse.Namespace, settings: Settings) -> Path:
    return settings.db_path(args.db)


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "config":
        from executor.config import default_config_path, write_template

        target = Path(args.path) if args.path else default_config_path()
        try:
            write_template(target, force=args.force)
        except FileExistsError as exc:
            raise UsageError(str(exc)) from None
        print(f"wrote {target}")
        return EXIT_OK
    settings = _settings(args)
    if command == "ctl":
        from console.ctl import run as run_ctl

        return run_ctl(args, settings)
    if command in ("orders", "signals", "audit", "positions"):
        db = check_store(_db(args, settings), must_exist=True)
        return asyncio.run(_export(command, args, db))
    if command in ("run", "demo"):
        _check_intake(args, settings)
    if command == "run" and args.headless:
        path = args.signals or settings.signals.jsonl
        if path and path != "-" and not Path(path).exists():
            raise UsageError(f"--signals {path}: no such file")
        db = check_store(_db(args, settings), must_exist=False, writable=True)
        # One writer per store: the lock comes before the store is opened (before migrations)
        # and lasts as long as this process runs the core.
        with StoreLock.acquire(db):
            from console.logs import setup_logging

            setup_logging()
            return asyncio.run(_run_headless(settings, db, args.signals, args.until_idle))
    if command == "emulator":
        from console.emulator_cli import serve_cli

        return serve_cli(args, settings)
    from console.wiring import run_console

    if command == "demo":
        return run_console(settings, mode="demo", db=args.db, seed=args.seed, via_emulator=args.via_emulator)
    if command == "inspect":
        return run_console(settings, mode="inspect", db=str(_db(args, settings)))
    if command == "attach":
        return run_console(settings, mode="attach", db=str(_db(args, settings)), socket=args.socket)
    return run_console(settings, mode="run", db=str(_db(args, settings)), signals=args.signals, config=args.config)


def _check_intake(args: argparse.Namespace, settings: Settings) -> None:
    """What no run could do with these sources is said before anything starts (exit 2)."""
    from executor.config import check_webhook, secrets_from_env

    check_webhook(settings, secrets_from_env())
    if getattr(args, "until_idle", False):
        # A followed file and a webhook are never exhausted: --until-idle would never exit.
        if settings.signals.follow and (args.signals or settings.signals.jsonl) not in ("", "-"):
            raise UsageError("--until-idle: [signals] follow = true keeps reading the file, so the run would "
                             "never be idle; drop one of them")
        if settings.signals.webhook_port:
            raise UsageError("--until-idle: [signals] webhook_port takes signals until the core stops, so the run "
                             "would never be idle; drop one of them")


# -- headless ---------------------------------------------------------------------------------


async def _run_headless(settings: Settings, db: Path, signals_path: str | None, until_idle: bool) -> int:
    from executor.config import secrets_from_env
    from executor.control.paths import ControlError
    from executor.events import ErrorOccurred, OrderUpdated, SignalDecided
    from executor.service import TradingService
    from executor.sources import attach
    from executor.store import StoreError

    log = logging.getLogger("tradeconsole")
    try:
        service = await TradingService.open(settings, db)
    except (StoreError, *STORE_OPEN_ERRORS) as exc:
        raise UsageError(store_problem(db, exc)) from None

    def narrate(event: Any) -> None:
        if isinstance(event, OrderUpdated):
            o = event.order
            log.info(
                "order %s %s %s %s %s/%s %s", o.client_order_id, o.symbol, o.side, o.type, o.filled, o.amount, o.status
            )
        elif isinstance(event, SignalDecided):
            log.info("signal %s %s: %s", event.record.id, event.record.status, event.record.reason)
        elif isinstance(event, ErrorOccurred):
            log.log(logging.ERROR if event.level == "error" else logging.WARNING, "%s", event.message)

    service.bus.subscribe(narrate)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.request_stop)
    control = None
    try:
        result = await service.start()
        try:
            control = await serve(service, settings, db)
        except ControlError as exc:
            # The socket is how consoles reach the core, not what trades: a home too deep for a
            # socket path or a directory of someone else's must not stop a core that traded
            # yesterday. `ctl` and `attach` then say no core answers at that path.
            log.error("no control socket, trading goes on without one: %s", exc)
        if result is not None:
            log.info(
                "reconciled: %d checked, %d open, %d unknown, %d adopted, drift %s",
                result.checked,
                result.open,
                result.unknown,
                result.adopted,
                ", ".join(f"{c} {v}" for c, v in sorted(result.drift.items())) or "none",
            )
        if settings.signals.webhook_port:
            from executor.sources.webhook import WebhookError, start_webhook

            try:
                webhook = await start_webhook(service, settings, secrets_from_env().webhook_token)
            except WebhookError as exc:
                log.error("%s", exc)  # alerts would be lost without a word: no core runs without it
                return EXIT_FAILURE
            if webhook is not None:
                service.on_close(webhook.close, first=True)
        attach(service, settings, signals_path)
        if until_idle:
            idle = asyncio.create_task(service.run_until_idle())
            stop = asyncio.create_task(service.wait_stopped())
            await asyncio.wait({idle, stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in (idle, stop):
                task.cancel()
        else:
            await service.wait_stopped()
        log.info("stopping: requests in flight finish, open orders stay on the exchange")
        return EXIT_OK
    except UsageError:
        raise
    except Exception as exc:
        log.error("run failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return EXIT_FAILURE
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if control is not None:
            await control.close()
        await service.close()


async def serve(service: Any, settings: Settings, db: Path) -> Any:
    """Serve `service`'s control socket (SPEC section 12) where `[control]` says; its path is logged
    at INFO. Raises `ControlError` (executor.control.paths) when it cannot. Returns the started
    `ControlServer`: close it before the service."""
    from executor.control.server import serve as serve_control

    return await serve_control(service, settings, db)


# -- exports ----------------------------------------------------------------------------------


def _plain(value: Any, *, as_json: bool = False) -> Any:
    """A field as the exports write it: enums as their values, datetimes ISO 8601, and a quantity
    or price as a decimal string in JSON (never a float), a number in the CSV and the table."""
    if isinstance(value, Decimal):
        from executor.numbers import fmt

        return fmt(value) if as_json else float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value


async def _export(command: str, args: argparse.Namespace, db: Path) -> int:
    from executor.store import Store, StoreError

    try:
        store = await Store.open(db, read_only=True)
    except (StoreError, *STORE_OPEN_ERRORS) as exc:
        raise UsageError(store_problem(db, exc)) from None
    try:
        if command == "orders":
            orders = await store.orders(include_terminal=args.all)
            rows = [{f: _plain(getattr(o, f), as_json=args.json) for f in ORDER_FIELDS} for o in orders]
            _emit(rows, ORDER_FIELDS, as_json=args.json, as_csv=args.csv)
        elif command == "signals":
            records = await store.signals()
            rows = []
            for r in records:
                row = {f: _plain(getattr(r, f, None), as_json=args.json)
                       for f in SIGNAL_FIELDS if f not in ("symbol", "side")}
                row["symbol"] = r.signal.symbol if r.signal else None
                row["side"] = r.signal.side.value if r.signal else None
                rows.append({f: row.get(f) for f in SIGNAL_FIELDS})
            _emit(rows, SIGNAL_FIELDS, as_json=args.json, as_csv=False)
        elif command == "positions":
            await _positions(store, as_json=args.json)
        else:
            rows = await store.audit()
            _emit(rows, ("seq", "ts", "actor", "action", "target", "detail"), as_json=args.json, as_csv=False)
    except sqlite3.Error as exc:
        raise UsageError(store_problem(db, exc)) from None
    finally:
        await store.close()
    return EXIT_OK


POSITION_COLUMNS = (
    ("symbol", "symbol"),
    ("amount", "amount"),
    ("average_entry", "avg entry"),
    ("realized", "realized"),
    ("mark", "mark"),
    ("unrealized", "unrealized"),
    ("held_before", "held before"),
    ("other_fees", "other fees"),
)


async def _positions(store: Any, *, as_json: bool) -> None:
    """`positions`: from the store's fills, valued at the prices the core last persisted."""
    from executor.positions import marks_from_balances_flag, positions

    try:
        fills = await store.fills()
        marks = marks_from_balances_flag(await store.get_flag("balances"), {f.symbol for f in fills})
        result = positions(fills, marks)
    except (ValueError, ArithmeticError) as exc:  # a fill row no venue could have reported
        raise UsageError(f"{store.path}: cannot compute positions ({exc})") from None
    out = sys.stdout
    if as_json:
        json.dump([p.as_json() for p in result], out, indent=2)
        out.write("\n")
        return
    rows = []
    for p in result:
        data = p.as_json()
        row = {k: _short(data[k]) for k, _ in POSITION_COLUMNS if k not in ("symbol", "other_fees")}
        row["symbol"] = p.symbol
        for key in ("realized", "unrealized"):
            row[key] = f"{row[key]} {p.quote}" if data[key] is not None else "unknown"
        row["held_before"] = f"{row['held_before']} {p.base}" if p.held_before else "-"
        row["other_fees"] = ", ".join(f"{_short(v)} {c}" for c, v in data["other_fees"].items()) or "-"
        rows.append(row)
    widths = {k: max([len(h)] + [len(r[k]) for r in rows]) for k, h in POSITION_COLUMNS}
    out.write("  ".join(h.ljust(widths[k]) for k, h in POSITION_COLUMNS).rstrip() + "\n")
    for r in rows:
        out.write("  ".join(r[k].ljust(widths[k]) for k, _ in POSITION_COLUMNS).rstrip() + "\n")
    if not rows:
        out.write("(none)\n")
    elif any(p.unrealized is None for p in result):
        out.write("no market price in the store for some markets: their unrealized PnL is unknown\n")


def _short(value: str | None, places: int = 8) -> str:
    """A decimal string for the table: at most `places` decimals, trailing zeros dropped."""
    from executor.numbers import fmt

    return "-" if value is None else fmt(Decimal(value), at_most=places)


def _emit(rows: list[dict[str, Any]], fields: Sequence[str], *, as_json: bool, as_csv: bool) -> None:
    out = sys.stdout
    if as_json:
        json.dump(rows, out, indent=2, default=str)
        out.write("\n")
        return
    if as_csv:
        writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return
    shown = [f for f in fields if f not in ("last_error", "reason", "detail")][:9]
    widths = {f: max([len(f)] + [len(_cell(r.get(f))) for r in rows]) for f in shown}
    out.write("  ".join(f.ljust(widths[f]) for f in shown) + "\n")
    for r in rows:
        out.write("  ".join(_cell(r.get(f)).ljust(widths[f]) for f in shown) + "\n")
    if not rows:
        out.write("(none)\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        from executor.numbers import fmt

        return fmt(value)
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
