"""The kill -9 soak of SPEC section 7: `tradeconsole run` SIGKILLed again and again against the emulator.

`harness` runs one soak and checks its invariants, `venue` is the emulator it trades against,
`run` is `make chaos` (also `python -m tests.chaos`), `test_kill9` is the small soak of `make test`.
"""
