"""Positions and PnL from fills by average cost (executor/positions.py) and `tradeconsole positions`.

Every expected number below is computed by hand in the comment beside it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cli import PROBLEMS, _assert_one_line, _bad_store, tc

from executor.models import Fill, Order, OrderStatus, OrderType, Side
from executor.positions import Position, marks_from_balances_flag, marks_from_prices, positions
from executor.store import Store

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Fills:
    """Fills one second apart, ids in sequence."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []

    def add(self, side: str, amount: str, price: str, fee: str = "0", fee_currency: str | None = None, *,
            symbol: str = "BTC/USDT", ts: datetime | None = None, fill_id: str | None = None) -> Fills:  # fmt: skip
        n = len(self.fills)
        self.fills.append(
            Fill(
                fill_id=fill_id or f"f{n:03d}",
                client_order_id=f"tc{n}",
                signal_id=f"s{n}",
                symbol=symbol,
                side=Side(side),
                amount=D(amount),
                price=D(price),
                fee=D(fee),
                fee_currency=fee_currency,
                ts=ts or T0 + timedelta(seconds=n),
            )
        )
        return self

    def buy(self, *args, **kw) -> Fills:
        return self.add("buy", *args, **kw)

    def sell(self, *args, **kw) -> Fills:
        return self.add("sell", *args, **kw)


def one(fills: Fills, mark: str | None = None, symbol: str = "BTC/USDT") -> Position:
    marks = {symbol: D(mark)} if mark is not None else {}
    (p,) = [p for p in positions(fills.fills, marks) if p.symbol == symbol]
    return p


# -- hand-computed examples ---------------------------------------------------------------------


def test_buys_with_fees_in_base_and_quote_then_partial_closes():
    f = Fills()
    f.buy("2", "90", "0.2", "BTC")  # receives 1.8 BTC for 180 USDT: avg 100
    p = one(f)
    assert (p.amount, p.cost, p.average_entry) == (D("1.8"), D("180"), D("100"))
    f.buy("1.2", "145", "6", "USDT")  # 1.2 BTC for 174 + 6 = 180: 3 BTC for 360, avg 120
    p = one(f)
    assert (p.amount, p.cost, p.average_entry) == (D("3.0"), D("360"), D("120"))
    f.sell("1", "150", "1.5", "USDT")  # proceeds 148.5 - cost 120 = +28.5; 2 BTC left at 120
    p = one(f)
    assert (p.amount, p.average_entry, p.realized) == (D("2"), D("120"), D("28.5"))
    f.sell("0.5", "100", "0.5", "USDT")  # proceeds 49.5 - cost 60 = -10.5: realized 18; 1.5 left at 120
    p = one(f, mark="130")
    assert p.amount == D("1.5")
    assert p.average_entry == D("120")
    assert p.cost == D("180")
    assert p.realized == D("18")
    assert p.mark == D("130")
    assert p.unrealized == D("15")  # 1.5 x 130 - 180
    assert p.total_pnl == D("33")
    # cash flow: -180 - 180 + 148.5 + 49.5 = -162; + 1.5 x 130 = 33 = realized + unrealized
    assert p.quote_flow == D("-162")
    assert (p.bought, p.sold) == (D("3.2"), D("1.5"))
    assert p.fees == {"BTC": D("0.2"), "USDT": D("8")}
    assert p.other_fees == {}
    assert p.held_before == 0 and p.fills == 4


def test_a_sell_whose_fee_is_in_base_delivers_the_fee_too():
    f = Fills().buy("2", "100").sell("1", "120", "0.01", "BTC")
    p = one(f, mark="100")
    # 1.01 BTC leave the position (cost 101) for 120 USDT: +19; 0.99 left at 100
    assert (p.amount, p.average_entry, p.realized, p.unrealized) == (D("0.99"), D("100"), D("19"), D("0"))


def test_a_fee_in_a_third_currency_is_reported_apart_and_not_in_the_cost():
    f = Fills().buy("1", "100", "0.075", "BNB")
    p = one(f)
    assert (p.amount, p.average_entry, p.other_fees) == (D("1"), D("100"), {"BNB": D("0.075")})
    f.sell("1", "110", "0.08", "BNB")
    p = one(f)
    assert p.realized == D("10")  # the BNB is not converted into USDT
    assert p.other_fees == {"BNB": D("0.155")} and p.fees == {"BNB": D("0.155")}


def test_a_fee_without_a_currency_is_reported_as_unknown():
    p = one(Fills().buy("1", "100", "0.1", None))
    assert (p.cost, p.other_fees) == (D("100"), {"unknown": D("0.1")})


def test_a_full_close_then_a_reopen_starts_from_the_new_price():
    f = Fills().buy("2", "100", symbol="ETH/USDT").sell("2", "110", "0.22", "USDT", symbol="ETH/USDT")
    p = one(f, symbol="ETH/USDT")
    # proceeds 219.78 - cost 200 = 19.78; flat: no average, unrealized 0 even without a mark
    assert (p.amount, p.cost, p.average_entry, p.realized) == (D("0"), D("0"), None, D("19.78"))
    assert p.unrealized == 0 and p.total_pnl == D("19.78")
    f.buy("1.25", "40", "0.25", "ETH", symbol="ETH/USDT")  # 1 ETH for 50: avg 50, nothing of the old 100
    p = one(f, symbol="ETH/USDT")
    assert (p.amount, p.average_entry, p.realized) == (D("1.00"), D("50"), D("19.78"))
    assert p.unrealized is None and p.total_pnl is None  # held, and no mark: unknown, not zero
    assert one(f, mark="45", symbol="ETH/USDT").unrealized == D("-5")


def test_a_sell_beyond_the_fills_is_a_balance_held_before_them():
    f = Fills().buy("2", "10", symbol="SOL/USDT").sell("5", "12", "0.6", "USDT", symbol="SOL/USDT")
    p = one(f, mark="11", symbol="SOL/USDT")
    # proceeds 59.4 for 5 SOL: 2/5 of it (23.76) closes the 2 bought at 10 (+3.76);
    # the other 3 SOL were held before the first fill: 35.64 received, no cost basis, no PnL
    assert p.amount == 0 and p.average_entry is None and p.cost == 0
    assert p.realized == D("3.76")
    assert (p.held_before, p.held_before_proceeds) == (D("3"), D("35.64"))
    assert p.unrealized == 0
    f.sell("1", "20", symbol="SOL/USDT")  # nothing held from fills: all of it held before
    p = one(f, symbol="SOL/USDT")
    assert (p.amount, p.realized, p.held_before, p.held_before_proceeds) == (D("0"), D("3.76"), D("4"), D("55.64"))


def test_a_first_fill_that_sells_is_held_before_and_a_later_buy_opens_a_position():
    f = Fills().sell("1", "100").buy("0.5", "90")
    p = one(f, mark="100")
    assert (p.held_before, p.held_before_proceeds, p.realized) == (D("1"), D("100"), D("0"))
    assert (p.amount, p.average_entry, p.unrealized) == (D("0.5"), D("90"), D("5"))


def test_fills_are_folded_by_time_then_fill_id_whatever_the_input_order():
    same = T0 + timedelta(minutes=5)
    f = Fills().buy("1", "100", ts=same, fill_id="a").sell("1", "110", ts=same, fill_id="b")
    f.buy("1", "50", ts=T0, fill_id="z")  # earliest
    forward = positions(f.fills, {})
    backward = positions(list(reversed(f.fills)), {})
    assert forward == backward
    (p,) = forward
    # z buys 1 at 50, a buys 1 at 100 (avg 75), b sells 1 at 110: +35
    assert (p.amount, p.average_entry, p.realized, p.held_before) == (D("1"), D("75"), D("35"), D("0"))
    assert (p.first_fill, p.last_fill) == (T0, same)


def test_one_position_per_market_sorted_by_market():
    f = Fills().buy("1", "10", symbol="SOL/USDT").buy("1", "100").buy("1", "5", symbol="ETH/BTC")
    result = positions(f.fills, {"BTC/USDT": D("110")})
    assert [p.symbol for p in result] == ["BTC/USDT", "ETH/BTC", "SOL/USDT"]
    assert [(p.base, p.quote) for p in result] == [("BTC", "USDT"), ("ETH", "BTC"), ("SOL", "USDT")]
    assert [p.unrealized for p in result] == [D("10"), None, None]
    assert positions([], {}) == []


def test_a_fee_in_base_at_least_the_amount_bought_is_refused():
    with pytest.raises(ValueError, match="f000"):
        positions(Fills().buy("1", "100", "1.5", "BTC").fills)


def test_json_form_has_decimal_strings_only():
    f = Fills().buy("2", "90", "0.2", "BTC").buy("1.2", "145", "6", "USDT").sell("1", "150", "1.5", "USDT")
    data = one(f, mark="130").as_json()
    assert data["amount"] == "2" and data["average_entry"] == "120" and data["realized"] == "28.5"
    assert data["unrealized"] == "20" and data["mark"] == "130" and data["fees"] == {"BTC": "0.2", "USDT": "7.5"}
    assert one(Fills().buy("1", "1")).as_json()["unrealized"] is None

    def no_floats(value):
        assert not isinstance(value, float)
        for v in value.values() if isinstance(value, dict) else []:
            no_floats(v)

    no_floats(data)


def test_marks_come_from_the_prices_the_core_persists_with_balances():
    raw = json.dumps(
        {"quote": "USDT", "balances": {"USDT": ["1", "0"]}, "prices": {"USDT": "1", "BTC": "60000", "ETH": "3000"}}
    )
    marks = marks_from_balances_flag(raw, ["BTC/USDT", "ETH/BTC", "SOL/USDT", "XRP/EUR"])
    assert marks["BTC/USDT"] == D("60000")
    assert marks["ETH/BTC"] == D("0.05")  # a cross rate from both prices in USDT
    assert "SOL/USDT" not in marks and "XRP/EUR" not in marks  # unknown stays unknown
    assert marks_from_balances_flag(None, ["BTC/USDT"]) == {}
    assert marks_from_balances_flag("not json", ["BTC/USDT"]) == {}
    assert marks_from_balances_flag('{"prices": {}}', ["BTC/USDT"]) == {}
    assert marks_from_prices({"BTC": D("0")}, "USDT", ["ETH/BTC"]) == {}


# -- the cash-flow identity ---------------------------------------------------------------------

amounts = st.decimals(min_value=D("0.00000001"), max_value=D("1000"), places=8, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2, allow_nan=False, allow_infinity=False)
steps = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell", "sell all"]),
        amounts,
        prices,
        st.sampled_from(["none", "base", "quote", "BNB"]),
        st.integers(min_value=0, max_value=20),  # fee in tenths of a percent
    ),
    max_size=30,
)


@given(steps=steps, mark=prices)
def test_realized_plus_unrealized_is_the_cash_flow_plus_the_position_at_the_mark(steps, mark):
    f = Fills()
    held = D(0)  # base held, tracked here independently
    flow = D(0)  # quote received - quote spent, fees in quote included
    for kind, amount, price, fee_kind, permille in steps:
        if kind == "sell all":
            if not held:
                continue
            amount, fee_kind = held, ("quote" if fee_kind == "base" else fee_kind)
        fee = (amount * price if fee_kind == "quote" else amount) * permille / 1000
        currency = {"none": None, "base": "BTC", "quote": "USDT", "BNB": "BNB"}[fee_kind]
        fee = D(0) if currency is None else fee
        base_fee = fee if fee_kind == "base" else D(0)
        quote_fee = fee if fee_kind == "quote" else D(0)
        if kind == "buy":
            held += amount - base_fee
            flow -= amount * price + quote_fee
            f.buy(str(amount), str(price), str(fee), currency)
        else:
            if amount + base_fee > held:
                continue  # no pre-held balance in this property
            held -= amount + base_fee
            flow += amount * price - quote_fee
            f.sell(str(amount), str(price), str(fee), currency)
    if not f.fills:
        return
    p = one(f, mark=str(mark))
    assert p.held_before == 0
    assert p.amount == held and p.amount >= 0
    assert abs(p.quote_flow - flow) < D("1e-20")
    assert p.unrealized is not None
    assert abs(p.realized + p.unrealized - (flow + held * mark)) < D("1e-18")
    if held:
        assert abs(p.average_entry * held - p.cost) < D("1e-18")
    else:
        assert p.cost == 0 and p.average_entry is None


# -- `tradeconsole positions` on a store ----------------------------------------------------------


async def _build_store(path: Path, *, prices: dict[str, str] | None) -> None:
    store = await Store.open(path)
    try:
        f = Fills().buy("2", "90", "0.2", "BTC").buy("1.2", "145", "6", "USDT").sell("1", "150", "1.5", "USDT")
        f.buy("2", "10", symbol="SOL/USDT").sell("5", "12", "0.6", "USDT", symbol="SOL/USDT")
        f.buy("1", "2000", "0.75", "BNB", symbol="ETH/USDT")
        for fill in f.fills:
            order = Order(
                client_order_id=fill.client_order_id,
                signal_id=fill.signal_id,
                symbol=fill.symbol,
                side=fill.side,
                type=OrderType.MARKET,
                amount=fill.amount,
                status=OrderStatus.FILLED,
                filled=fill.amount,
                average=fill.price,
                fee=fill.fee,
                fee_currency=fill.fee_currency,
                created_at=fill.ts,
                updated_at=fill.ts,
            )
            await store.save_order(order, old=None, source="request", fills=[fill])
        if prices is not None:
            await store.set_flag(
                "balances", json.dumps({"quote": "USDT", "balances": {"USDT": ["100", "0"]}, "prices": prices})
            )
    finally:
        await store.close()


def test_the_positions_command_exports_json_with_decimal_strings(tmp_path):
    db = tmp_path / "p.db"
    asyncio.run(_build_store(db, prices={"USDT": "1", "BTC": "130", "ETH": "2100.5"}))
    out = tc("positions", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["symbol"]: r for r in json.loads(out.stdout, parse_float=lambda s: pytest.fail(f"a float: {s}"))}
    assert list(rows) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    btc = rows["BTC/USDT"]
    assert (btc["amount"], btc["average_entry"], btc["realized"]) == ("2", "120", "28.5")
    assert (btc["mark"], btc["unrealized"], btc["total_pnl"]) == ("130", "20", "48.5")
    assert btc["fees"] == {"BTC": "0.2", "USDT": "7.5"}
    eth = rows["ETH/USDT"]
    assert (eth["amount"], eth["average_entry"], eth["unrealized"]) == ("1", "2000", "100.5")
    assert eth["other_fees"] == {"BNB": "0.75"}
    sol = rows["SOL/USDT"]
    assert (sol["amount"], sol["average_entry"], sol["realized"]) == ("0", None, "3.76")
    assert (sol["held_before"], sol["held_before_proceeds"], sol["unrealized"]) == ("3", "35.64", "0")


def test_the_positions_command_prints_a_table(tmp_path):
    db = tmp_path / "p.db"
    asyncio.run(_build_store(db, prices={"USDT": "1", "BTC": "130"}))
    out = tc("positions", "--db", str(db))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "symbol", "amount", "avg", "entry", "realized", "mark", "unrealized", "held", "before", "other", "fees",
    ]  # fmt: skip
    btc, eth, sol = (line.split() for line in lines[1:4])
    assert btc == ["BTC/USDT", "2", "120", "28.5", "USDT", "130", "20", "USDT", "-", "-"]
    assert eth == ["ETH/USDT", "1", "2000", "0", "USDT", "-", "unknown", "-", "0.75", "BNB"]
    assert sol == ["SOL/USDT", "0", "-", "3.76", "USDT", "-", "0", "USDT", "3", "SOL", "-"]
    assert "unknown" in lines[4]


def test_without_persisted_prices_unrealized_is_unknown(tmp_path):
    db = tmp_path / "p.db"
    asyncio.run(_build_store(db, prices=None))
    rows = {r["symbol"]: r for r in json.loads(tc("positions", "--db", str(db), "--json").stdout)}
    assert rows["BTC/USDT"]["mark"] is None and rows["BTC/USDT"]["unrealized"] is None
    assert rows["BTC/USDT"]["realized"] == "28.5"
    assert rows["SOL/USDT"]["unrealized"] == "0"  # flat: nothing to value


def test_an_empty_store_has_no_positions(tmp_path):
    db = tmp_path / "empty.db"
    asyncio.run(_close_new(db))
    assert json.loads(tc("positions", "--db", str(db), "--json").stdout) == []
    assert tc("positions", "--db", str(db)).stdout.splitlines()[1:] == ["(none)"]


async def _close_new(path: Path) -> None:
    store = await Store.open(path)
    await store.close()


@pytest.mark.parametrize("kind", list(PROBLEMS))
@pytest.mark.parametrize("command", [("positions",), ("positions", "--json")], ids=" ".join)
def test_positions_on_a_bad_store_path_exits_2_with_one_line(tmp_path, command, kind):
    path = _bad_store(tmp_path, kind)
    _assert_one_line(tc(*command, "--db", str(path), input="", timeout=60), path, PROBLEMS[kind])
