"""`tradeconsole ctl`: one command to a running core over its control socket, for runbooks and scripts.

`ctl [--db PATH | --socket PATH] COMMAND [--json]`, COMMAND one of `status`, `pause`, `resume`,
`approve ID [--confirm]`, `reject ID [--reason TEXT]`, `cancel COID`, `kill-switch`, `submit [FILE or -]`.
One line of words per command, or one JSON object with `--json`. Exit codes: 0 done; 1 the core
refused (the reason is printed; an approval far from the market needs `--confirm`; a kill switch
that left orders open; a submitted signal not recorded `pending` or `approved`); 2 bad usage (a
file to submit that cannot be read); 3 no core answers (the message names the socket it tried).

`submit` reads JSONL (a file, or standard input), skips blank lines, sends the rest in batches
(`protocol.batches`) and prints one line per signal, `ID  STATUS  REASON`, then a count by status.

The socket: `--socket`, else `[control] socket`, else the default derived from the store path
(`--db`, `[store] path` or the platform default), the same one the core on that store serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

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
                   "waits at least 120; submit 0.1 s more a line of each batch)")
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
    c = command("submit", help="send JSONL signals to the core; exit 0 only when each is pending or approved")
    c.add_argument("file", nargs="?", default="-", metavar="FILE",
                   help="one signal a line (default: -, standard input)")


def socket_for(args: argparse.Namespace, settings: Settings) -> Path:
    from executor.control.paths import default_socket_path

    if args.socket:
        return Path(args.socket).expanduser()
    return default_socket_path(settings.db_path(args.db), settings)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_ctl(args, socket_for(args, settings)))
    except KeyboardInterrupt:
        if args.ctl_command != "submit":
            raise
        print("tradeconsole ctl: submit interrupted: some signals may have been recorded (see `signals`)",
              file=sys.stderr)
        return EXIT_REFUSED


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


def read_signals(handle: IO[bytes]) -> Iterator[str]:
    """The lines of `handle` that are not blank, without their line end, as the core's file source
    reads them (undecodable bytes replaced). Of a line longer than `MAX_LINE` bytes only a bit more
    than `MAX_LINE` is read, enough for the client to know it too long; the rest is skipped."""
    from executor.sources.lines import MAX_LINE

    while chunk := handle.readline(MAX_LINE + 2):
        line = chunk.removesuffix(b"\n").removesuffix(b"\r") if chunk.endswith(b"\n") else chunk
        if len(line) > MAX_LINE:
            if not chunk.endswith(b"\n"):  # the rest of it: skipped, a bit at a time
                while (rest := handle.readline(1 << 16)) and not rest.endswith(b"\n"):
                    pass
        elif not line.strip():
            continue
        yield line.decode("utf-8", errors="replace")


def _printable(text: str) -> str:
    """One line for the terminal: control characters escaped."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def submit_report(results: list[Any]) -> tuple[list[str], str]:
    """(one aligned line per result, the count by status) as `ctl submit` prints them."""
    from executor.models import SignalStatus

    if not results:
        return [], "no signals"
    rows = [(_printable(r.id) if r.id is not None else "(no id)", r.status.value, _printable(r.reason))
            for r in results]
    width = max(len(row[0]) for row in rows)
    status_width = max(len(row[1]) for row in rows)
    lines = [f"{sid.ljust(width)}  {status.ljust(status_width)}  {reason}".rstrip() for sid, status, reason in rows]
    counts = {s: n for s in SignalStatus if (n := sum(1 for r in results if r.status is s))}
    summary = f"{_plural(len(results), 'signal')}: " + ", ".join(f"{n} {s.value}" for s, n in counts.items())
    return lines, summary


async def _submit(args: argparse.Namespace, client: Any) -> tuple[int, list[Any], BaseException | None]:
    """(exit code, the results, the failure that stopped it) of `ctl submit`; the results are those
    of the batches the core answered, in order, also when a later one failed."""
    from executor.control import protocol as wire
    from executor.control.client import Refused

    if args.file == "-" and sys.stdin is None:
        raise SubmitUsage("submit: there is no standard input to read (give a FILE)")
    try:
        handle = sys.stdin.buffer if args.file == "-" else await asyncio.to_thread(open, args.file, "rb")
    except OSError as exc:
        raise SubmitUsage(f"submit: cannot read {args.file}: {exc.strerror or exc}") from None
    results: list[Any] = []
    try:
        sent = False
        for batch in wire.batches(read_signals(handle)):
            sent = True
            results.extend(await client.submit(batch))
        if not sent:
            results.extend(await client.submit([]))  # nothing to send: still, is a core there?
    except OSError as exc:
        raise SubmitUsage(f"submit: cannot read {args.file}: {exc.strerror or exc}", results) from None
    except Refused as exc:
        return EXIT_REFUSED, results, exc
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    return (EXIT_OK if all(r.accepted for r in results) else EXIT_REFUSED), results, None


class SubmitUsage(Exception):
    """A file to submit that cannot be read (exit 2); `results`: what was sent before."""

    def __init__(self, message: str, results: list[Any] | None = None) -> None:
        super().__init__(message)
        self.results = results or []


async def _ctl(args: argparse.Namespace, path: Path) -> int:
    from executor.control.client import NeedsConfirmation, Refused
    from executor.control.remote import BadRequest, CoreUnreachable, Forbidden, RemoteClient

    as_json, name = args.json, args.ctl_command
    if not args.timeout > 0:
        print("tradeconsole: ctl --timeout must be more than 0 seconds", file=sys.stderr)
        return EXIT_USAGE
    client = RemoteClient(path, answer_within=args.timeout)
    kind = "refused"
    results: list[Any] = []
    try:
        if name == "submit":
            code, results, failure = await _submit(args, client)
            if failure is not None:
                raise failure
            lines, summary = submit_report(results)
            fields = {"results": [r.as_json() for r in results], "counts": _counts(results)}
            words = "\n".join([*lines, summary])
            if not as_json:
                print(words)  # the results, whatever they are: exit 1 says some were not taken
                return code
        else:
            code, words, fields = await _execute(args, client)
    except SubmitUsage as exc:
        results = exc.results
        code, kind, words = EXIT_USAGE, "bad_usage", str(exc)
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
    partial: dict[str, Any] = {}
    if name == "submit":
        # What the core recorded before the failure: to send again only the rest.
        partial = {"results": [r.as_json() for r in results], "counts": _counts(results)}
        if results and not as_json:
            print("\n".join(submit_report(results)[0]))
        if results:
            words += f" ({_plural(len(results), 'signal')} recorded before, printed above)"
    if as_json:
        print(json.dumps({"ok": False, "command": name, "error": {"kind": kind, "message": words}, **partial}))
    else:
        what = "" if kind in ("no_core", "bad_usage") else f"{name} refused: "
        print(f"tradeconsole ctl: {what}{words}", file=sys.stderr)
    return code


def _counts(results: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    return counts
