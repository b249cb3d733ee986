"""Any ccxt venue behind the exchange port: `CcxtExchange`, put together from one part per job.

Owns the adapter's construction (from arguments, or from `[exchange]` settings with keys from
`TRADECONSOLE_API_KEY` / `TRADECONSOLE_API_SECRET`), the markets it trades (spot only), the
ticker and balances, and closing the client. The rest is one module per job:

- `client`: building and configuring the ccxt client (spot only, sandbox, `api_url`, no retries).
- `discipline`: every request's discipline (cooldowns, order-rate limit, paced throttle, weight
  window) and the request budget; `_request` is where each failure gets its class.
- `throttle` and `bucket`: the brakes (the venue's order-rate and weight windows, its clock,
  ccxt's leaky bucket and what each call costs in it).
- `orders`: placing, looking up and canceling one order by client order id, each venue its way.
- `history`: the bulk reads reconciliation relies on (open orders, orders since, our fills).
- `translate`: ccxt's answers as the port's types, and the client id <-> exchange id map.
- `errors`: `classify`, the single place a ccxt exception becomes `NotPlaced`, `Rejected` or
  `MaybePlaced`, and `scrub`.

Secrets never leave the package: messages are scrubbed of query strings, signatures and the key
and secret themselves, exceptions are raised `from None`, and ccxt's wire log (which carries
request headers) goes through a redacting logger.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from executor.exchanges.base import ExchangeOrder, ExchangePort, Ticker, Trade
from executor.exchanges.ccxt.client import DEFAULT_TIMEOUT_MS, is_binance, new_client
from executor.exchanges.ccxt.discipline import RequestDiscipline
from executor.exchanges.ccxt.errors import scrub
from executor.exchanges.ccxt.history import BulkReads
from executor.exchanges.ccxt.orders import OrderCalls
from executor.exchanges.ccxt.translate import IdMap, to_balances, to_market_info, to_order, to_ticker, to_trade
from executor.models import Balance, ExchangeMode, MarketInfo

if TYPE_CHECKING:
    from executor.config import Settings

log = logging.getLogger("tradeconsole.exchange.ccxt")


class CcxtExchange(OrderCalls, BulkReads, RequestDiscipline, ExchangePort):
    """A ccxt venue (`ccxt.async_support.<exchange_id>`) behind the port. Always `close()` it."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        sandbox: bool = False,
        api_url: str = "",
        markets: Sequence[str] = (),
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        order_limits: Sequence[tuple[int, float]] | None = None,
        mode: ExchangeMode | None = None,
        password: str | None = None,
    ) -> None:
        """`password`: the API passphrase some venues ask for besides key and secret (OKX).
        `order_limits`: the venue's order-rate limits as (orders, seconds) until it announces its
        own (Binance's 100 per 10 s for Binance, none elsewhere)."""
        self.name = exchange_id
        # `mode` lets a caller that knows better say so (the emulator behind a demo is PAPER).
        self.mode = mode or (ExchangeMode.SANDBOX if sandbox else ExchangeMode.LIVE)
        self._secrets = tuple(s for s in (api_key, api_secret, password) if s)
        self._markets_wanted = tuple(markets)
        self._markets: dict[str, MarketInfo] = {}
        self._ids = IdMap()
        # No session is opened before the first request.
        keys = {"apiKey": api_key or "", "secret": api_secret or "", **({"password": password} if password else {})}
        self._ex = new_client(exchange_id, keys, timeout_ms, sandbox=sandbox, api_url=api_url, secrets=self._secrets)
        self._binance = is_binance(self._ex)
        self._init_discipline(order_limits)

    @property
    def _venue(self) -> str:
        """The venue family whose rules apply (binanceus and the emulator speak Binance)."""
        return "binance" if self._binance else self.name

    @classmethod
    def from_settings(cls, settings: Settings, **given: Any) -> CcxtExchange:
        """The venue of `[exchange]`, keys from the environment unless `given` (`api_key`,
        `api_secret`); anything else `given` goes to the constructor (`timeout_ms`)."""
        from executor.config import API_KEY_ENV, API_SECRET_ENV, ConfigError, ConfigProblem, secrets_from_env

        creds = secrets_from_env()
        api_key, api_secret = given.pop("api_key", None), given.pop("api_secret", None)
        if api_key is None and creds.api_key is not None:
            api_key = creds.api_key.get_secret_value()
        if api_secret is None and creds.api_secret is not None:
            api_secret = creds.api_secret.get_secret_value()
        exchange = settings.exchange
        if not api_key or not api_secret:
            missing = API_KEY_ENV if not api_key else API_SECRET_ENV
            raise ConfigError(
                [
                    ConfigProblem(
                        None, missing, None, f"is not set: trading on {exchange.id} needs an API key and secret"
                    )
                ]
            )
        try:
            return cls(
                exchange.id,
                api_key=api_key,
                api_secret=api_secret,
                sandbox=exchange.sandbox,
                api_url=exchange.api_url,
                markets=list(exchange.markets),
                **given,
            )
        except ValueError as exc:
            raise ConfigError([ConfigProblem(None, "exchange.id", None, str(exc))]) from None
        except Exception as exc:  # ccxt NotSupported: no sandbox on this venue
            key = "exchange.sandbox" if exchange.sandbox else "exchange.id"
            raise ConfigError([ConfigProblem(None, key, None, scrub(str(exc)))]) from None

    # -- answers as the port's types (see `translate`) -------------------------------------------

    def _order(
        self, raw: dict[str, Any], client_order_id: str | None = None, *, creating: bool = False, **known: Any
    ) -> ExchangeOrder:
        """A ccxt order as the port's (`translate.to_order`), its ids remembered."""
        return to_order(
            raw, self._ids, binance=self._binance, client_order_id=client_order_id, creating=creating, **known
        )

    def _trade(self, raw: dict[str, Any], symbol: str) -> Trade:
        return to_trade(raw, symbol, self._ids)

    # -- the port: markets, prices, balances ----------------------------------------------------

    async def load_markets(self) -> dict[str, MarketInfo]:
        markets = await self._request("load_markets", lambda: self._ex.load_markets(True))
        wanted = self._markets_wanted or [
            s for s, m in markets.items() if m.get("spot") and m.get("active") is not False
        ]
        out: dict[str, MarketInfo] = {}
        for symbol in wanted:
            market = markets.get(symbol)
            if market is None or not market.get("spot", True):
                log.warning("%s has no spot market %s; signals for it will be refused", self.name, symbol)
                continue
            out[symbol] = to_market_info(market, self._ex.precisionMode, self.name)
        self._markets = out
        return out

    async def fetch_ticker(self, symbol: str) -> Ticker:
        raw = await self._request("fetch_ticker", lambda: self._ex.fetch_ticker(symbol))
        return to_ticker(raw, symbol, self.name)

    async def fetch_balances(self) -> dict[str, Balance]:
        raw = await self._request("fetch_balances", self._ex.fetch_balance)
        return to_balances(raw)

    async def close(self) -> None:
        self._drop_expected()
        await self._ex.close()

    async def __aenter__(self) -> CcxtExchange:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
