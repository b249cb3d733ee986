"""Integration tests: the real ccxt client against the emulator on 127.0.0.1.

A package, so this directory's conftest never shadows `tests/conftest.py` as module `conftest`.
"""
