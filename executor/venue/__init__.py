"""The venue simulation: a deterministic paper venue, and a Binance-compatible emulator over it.

`engine` is the paper engine (`PaperEngine`: matching, over `market`'s synthetic markets and
`history`'s candles, with `accounts`' money, `orders`' order model, `checks`' order checks and
`records`' book of record: what it keeps of orders and fills, and their reads). `faults` is the
one fault model both venues draw from (the kinds, the faults file, the draws) and `endpoints` the
one list of endpoints they name. `emulator/` serves the engine as Binance's spot REST API. The
paper exchange (`executor.exchanges.paper`) puts the engine behind the exchange port; nothing here
knows the port, the ccxt adapter or the console.
"""
