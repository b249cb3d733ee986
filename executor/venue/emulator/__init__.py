"""The Binance-spot-compatible REST venue that `tradeconsole emulator` serves, over the paper engine.

`app` is the aiohttp app and its request pipeline (`Emulator`, `make_app`, `start_emulator`),
`handlers` the endpoints (`ROUTES`), `trading` the order helpers they share, `limits` the rate
limits, `wire` and `shapes` Binance's wire format (requests and answers), `record` the record of
every accepted order and its audit. The faults it injects are `executor.venue.faults`'; the
command line that serves it is `console.emulator_cli`'s (the emulator knows neither argparse nor
the ccxt adapter).

Endpoints (what ccxt 4.5's `binance` and Binance's own `binance-sdk-spot` call for spot):
`GET /api/v3/ping`, `time`, `exchangeInfo`, `ticker/24hr`, `ticker/bookTicker`, `ticker/price`,
`depth`, `avgPrice`, `klines`, `trades`, `aggTrades`, `account`; `POST|GET|DELETE /api/v3/order`;
`GET|DELETE /api/v3/openOrders`; `GET /api/v3/allOrders`, `myTrades`; `POST
/api/v3/order/cancelReplace`; `GET /sapi/v1/system/status` and `GET /sapi/v1/asset/tradeFee`
(signed; the engine's fees). Plus `GET /_emulator/record` (no auth, no limits, no faults). Any
other path or method is a 404 with `{"code": -1020, "msg": "This operation is not supported."}`,
which ccxt raises as BadRequest and never retries.

Binance behaviour kept: error codes and HTTP statuses (-2010 insufficient balance / duplicate
order / a LIMIT_MAKER that would take, -1013 filter failure, -2013 / -2011 unknown order, -1022
bad signature, -2014 / -2015 bad key, -1021 timestamp outside recvWindow, -1127 a time window over
24 hours, -1128 a bad parameter combination, -1001 / -1007 with 5xx); a client order id unique
among open orders only (reused once its order ended; a lookup by it finds the most recent order);
fees in the asset received (see `executor.venue.accounts`); request weights per endpoint
(`wire.request_weight`) counted per minute, and new orders per 10 s and per day, in
fixed windows aligned to the epoch, Binance's default limits unless the faults file says
otherwise, announced exactly in exchangeInfo; a cancel-replace checks its new order's filters and
the order count before it cancels anything.

Orders as Binance takes them: LIMIT with timeInForce GTC, IOC (what does not fill at once expires)
or FOK (fills completely at once or expires untouched); LIMIT_MAKER (refused with -2010 when it
would take); MARKET by `quantity` or by `quoteOrderQty` (the most, in whole steps, that the quote
buys, or that brings at most that quote). A limit buy locks exactly quantity x price. The filters
are PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL, PERCENT_PRICE_BY_SIDE (Binance BTCUSDT's
multipliers 5 / 0.2 around the 5-minute `avgPrice`) and, with `max_orders_per_symbol`
(`--max-orders-per-symbol N`; off by default, as the paper exchange enforces no such limit),
MAX_NUM_ORDERS; exchangeInfo announces exactly those in force. The market data come from the
engine: a book of `EMULATOR_BOOK_LEVELS` (100) levels a side (`depth` sends 100 by default), a
24-hour ticker whose open, high and low roll with the engine's one-minute candles, which also
make the klines (1m to 1M, the last 24 hours), and the engine's own fills as `trades` and
`aggTrades` (one aggregate per fill).

The order count counts unfilled orders, as Binance's: every accepted new order takes one from the
current 10 s and day windows (a refused one gives its one back; a cancel-replace counts even when
its new order was not attempted), and an order's first fill (at once, or later as a maker) gives
one back to the windows current then; the answer that placed an order that filled at once still
shows the count with it, as on Binance.

Rate limits as Binance answers them: request weight over the minute's limit is 429 -1003; an
exhausted order count is 429 -1015 for new orders only (`POST /api/v3/order`, and a
cancel-replace, which with `orderRateLimitExceededMode=CANCEL_ONLY` still cancels and fails just
its new-order leg) while cancels and reads go on; a client that keeps sending inside a
request-weight 429's Retry-After is banned with 418 (order-count 429s never lead to a ban).
Every answer carries `X-MBX-USED-WEIGHT-1M`, order answers `X-MBX-ORDER-COUNT-10S` and
`X-MBX-ORDER-COUNT-1D`, 429 and 418 a `Retry-After` in whole seconds.

Faults (`--faults FILE`): see `executor.venue.faults` for the file's format and what each fault
does.
"""
