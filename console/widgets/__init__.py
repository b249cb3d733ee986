"""The console's panes: signals, orders, balances, log and the status bar."""
