"""`tradeconsole ctl`: one command to a running core over its control socket, for runbooks and scripts.

`ctl [--db PATH | --socket PATH] COMMAND [--json]`, COMMAND one of `status`, `pause`, `resume`,
`approve ID [--confirm]`, `reject ID [--reason TEXT]`, `cancel COID`, `kill-switch`. One line of
words per command, or one JSON object with `--json`. Exit codes: 0 done; 1 the core refused (the
reason is printed; an approval far from the market needs `--confirm`; a kill switch that left
orders open); 2 bad usage; 3 no core answers (the message names the socket it tried).

The socket: `--socket`, else `[control] socket`, else the default derived from the store path
(`--db`, `[store] path` or the platform default), the same one the core on that store serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from executor.config import Settings

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NO_CORE = 0, 1, 2, 3


def add_parser(sub: Any) -> None:
    """The `ctl` subcommand and its commands, on the CLI's subparsers."""
    p = sub.add_parser("ctl", help="one command to a running core, over its control socket",
                       description="Exit codes: 0 done, 1 the core refused, 2 bad usage, 3 no core answers.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--db", metavar="PATH", help="the store of the core; its socket is found from it")
    where.add_argument("--socket", metavar="PATH", help="the core's control socket")
    p.add_argument("--config", metavar="FILE", help="TOML config (default: the platform config dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                   help="how long to wait for the core's answer before exit 3 (default 20; the kill switch "
                   "waits at least 120)")
    commands = p.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        c = commands.add_parser(name, help=help)
        c.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")
        return c

    command("status", help="mode, exchange, paused, open orders, pending signals, last reconciliation, drift")
    command("pause", help="stop intake and auto-approval")
    command("resume", help="resume intake and auto-approval (and lift a kill switch)")
    c = command("approve", help="approve a pending signal")
    c.add_argument("signal_id", metavar="ID")
    c.add_argument("--confirm", action="store_true", help="go ahead although the order is far from the market")
    c = command("reject", help="reject a pending signal")
    c.add_argument("signal_id", metavar="ID")
    c.add_argument("--reason", default="", help="why (kept with the decision)")
    c = command("cancel", help="cancel an open order")
    c.add_argument("coid", metavar="COID", help="its client order id")
    command("kill-switch", help="pause, block new orders and cancel every open order")


def socket_for(args: argparse.Namespace, settings: Settings) -> Path:
    from executor.control.paths import default_socket_path

    if args.socket:
        return Path(args.socket).expanduser()
    return default_socket_path(settings.db_path(args.db), settings)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_ctl(args, socket_for(args, settings)))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "not reconciled yet"
    if seconds < 120:
        return f"reconciled {seconds:.0f} s ago"
    return f"reconciled {seconds / 60:.0f} min ago"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def status_line(status: Any) -> str:
    drift = ", ".join(f"{c} {v}" for c, v in sorted(status.drift.items()))
    parts = [
        f"{status.mode} {status.exchange}: {'paused' if status.paused else 'trading'}",
        f"{status.open} open",
        f"{status.unknown} unknown",
        _plural(status.pending_signals, "pending signal"),
        _age(status.reconcile_age_seconds),
        f"drift {drift}" if drift else "no drift",
    ]
    if status.rate_limit and status.rate_limit != "ok":
        parts.append(f"rate limit: {status.rate_limit}")
    return " · ".join(parts)


async def _execute(args: argparse.Namespace, client: Any) -> tuple[int, str, dict[str, Any]]:
    """(exit code, line of words, JSON fields) of the command."""
    name = args.ctl_command
    if name == "status":
        status = await client.status()
        return EXIT_OK, status_line(status), status.as_json()
    if name == "pause":
        await client.pause()
        return EXIT_OK, "paused: no intake, no auto-approval", {}
    if name == "resume":
        await client.resume()
        return EXIT_OK, "resumed: intake and auto-approval", {}
    if name == "approve":
        await client.approve(args.signal_id, confirm=args.confirm)
        return EXIT_OK, f"{args.signal_id} approved", {"signal_id": args.signal_id}
    if name == "reject":
        await client.reject(args.signal_id, reason=args.reason)
        return EXIT_OK, f"{args.signal_id} rejected", {"signal_id": args.signal_id}
    if name == "cancel":
        await client.cancel_order(args.coid)
        return EXIT_OK, f"{args.coid} cancel requested", {"client_order_id": args.coid}
    if name == "kill-switch":
        result = await client.kill_switch()
        fields = {"canceled": result.canceled, "left_open": result.left_open,
                  "orders": [o.client_order_id for o in result.orders]}
        return (EXIT_REFUSED if result.left_open else EXIT_OK), result.describe(), fields
    raise AssertionError(f"ctl command {name} has no handler")  # the parser and this list disagree


async def _ctl(args: argparse.Namespace, path: Path) -> int:
    from executor.control.client import NeedsConfirmation, Refused
    from executor.control.remote import BadRequest, CoreUnreachable, Forbidden, RemoteClient

    as_json, name = args.json, args.ctl_command
    if not args.timeout > 0:
        print("tradeconsole: ctl --timeout must be more than 0 seconds", file=sys.stderr)
        return EXIT_USAGE
    client = RemoteClient(path, answer_within=args.timeout)
    kind = "refused"
    try:
        code, words, fields = await _execute(args, client)
    except CoreUnreachable as exc:
        code, kind, words = EXIT_NO_CORE, "no_core", str(exc)
    except BadRequest as exc:
        code, kind, words = EXIT_USAGE, "bad_request", str(exc)
    except NeedsConfirmation as exc:
        reason = str(exc).removesuffix(": confirm to go ahead")
        code, kind, words = EXIT_REFUSED, "needs_confirmation", f"{reason}: run again with --confirm to go ahead"
    except Refused as exc:
        code, kind, words = EXIT_REFUSED, "forbidden" if isinstance(exc, Forbidden) else "refused", str(exc)
    else:
        if as_json:
            print(json.dumps({"ok": code == EXIT_OK, "command": name, **fields}, default=str))
        else:
            print(words, file=sys.stdout if code == EXIT_OK else sys.stderr)
        return code
    finally:
        await client.close()
    if as_json:
        print(json.dumps({"ok": False, "command": name, "error": {"kind": kind, "message": words}}))
    else:
        what = "" if code == EXIT_NO_CORE else f"{name} refused: "
        print(f"tradeconsole ctl: {what}{words}", file=sys.stderr)
    return code
